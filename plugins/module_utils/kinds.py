# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the one registry of the workload kinds shmfix knows.

Every module, filter and role reads the kinds from here: adding a built-in kind is one entry in
``BUILTIN`` (plus its tests, and the ``kinds`` choices of doc_fragments/selection.py that
ansible-test compares with the argument spec). Custom resources (``extra_kinds``) become a
``KindSpec`` of the same shape once API discovery has found their plural.

A ``KindSpec`` says:

- ``kind``, ``api_version``, ``plural``, ``namespaced``;
- ``template_path``: dotted path of the pod template in the object ('' for a Pod itself);
- ``immutable``: the pod template cannot be changed (Job, bare Pod): report, never patch;
- ``left_to_owner``: objects of this kind owned by a controller are left to it (a Deployment's
  ReplicaSets, a controller's Pods);
- ``rollout``: how a template change reaches the pods: 'deployment', 'statefulset', 'daemonset'
  (rolled out by the controller, waited for), or None (``rollout_note`` says what happens instead);
- ``pods``: how the pods of a workload are found: 'selector' (``spec.selector``), 'jobs' (through
  the Jobs it owns), 'self' (the object is the pod), or None (unknown: custom kinds).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class KindSpec(dict):
    """One kind: see the module docstring for the keys."""

    @property
    def resource(self):
        """How RBAC names the resource: 'deployments.apps', 'pods', 'rollouts.argoproj.io'."""
        group = self["api_version"].split("/")[0] if "/" in self["api_version"] else ""
        return self["plural"] + ("." + group if group else "")

    def template_keys(self):
        return [k for k in self["template_path"].split(".") if k]

    def pod_spec_keys(self):
        """Keys leading to the pod spec (CronJob: spec, jobTemplate, spec, template, spec)."""
        return self.template_keys() + ["spec"]

    def pod_spec_pointer(self):
        """The pod spec as a JSON pointer: '/spec/template/spec'."""
        return pointer(self.pod_spec_keys())


def _builtin(kind, api_version, plural, template_path="spec.template", immutable=False, left_to_owner=False, rollout=None, pods="selector", note=None):
    return KindSpec(
        kind=kind,
        api_version=api_version,
        plural=plural,
        namespaced=True,
        template_path=template_path,
        immutable=immutable,
        left_to_owner=left_to_owner,
        rollout=rollout,
        rollout_note=note,
        pods=pods,
        custom=False,
    )


BUILTIN = {
    spec["kind"]: spec
    for spec in (
        _builtin("Deployment", "apps/v1", "deployments", rollout="deployment"),
        _builtin("StatefulSet", "apps/v1", "statefulsets", rollout="statefulset"),
        _builtin("DaemonSet", "apps/v1", "daemonsets", rollout="daemonset"),
        _builtin(
            "ReplicaSet",
            "apps/v1",
            "replicasets",
            left_to_owner=True,
            note="a ReplicaSet does not replace running pods when its template changes; new pods get the new /dev/shm",
        ),
        _builtin(
            "ReplicationController",
            "v1",
            "replicationcontrollers",
            left_to_owner=True,
            note="a ReplicationController does not replace running pods when its template changes; new pods get the new /dev/shm",
        ),
        _builtin(
            "CronJob",
            "batch/v1",
            "cronjobs",
            template_path="spec.jobTemplate.spec.template",
            pods="jobs",
            note="the next Job the CronJob starts gets the new /dev/shm",
        ),
        _builtin("Job", "batch/v1", "jobs", immutable=True, note="a Job's pod template is immutable"),
        _builtin("Pod", "v1", "pods", template_path="", immutable=True, left_to_owner=True, pods="self", note="a bare Pod cannot change its volumes"),
    )
}

# The kinds shm_info / shm_patch select by default: every built-in kind, in this order.
DEFAULT_KINDS = list(BUILTIN)


def builtin(kind):
    """The KindSpec of a built-in kind; ValueError naming the supported kinds otherwise."""
    if kind not in BUILTIN:
        raise ValueError(f"unknown kind {kind!r}; supported: {', '.join(DEFAULT_KINDS)} (custom resources go in extra_kinds)")
    return BUILTIN[kind]


def custom(kind, api_version, plural, namespaced=True, template_path="spec.template"):
    """The KindSpec of a custom resource found by discovery: mutable, pods and rollout unknown."""
    return KindSpec(
        kind=kind,
        api_version=api_version,
        plural=plural,
        namespaced=namespaced,
        template_path=template_path,
        immutable=False,
        left_to_owner=False,
        rollout=None,
        rollout_note=f"{kind} is a custom resource: its controller rolls out the change",
        pods=None,
        custom=True,
    )


def pods_findable(kind):
    """True when shmfix knows how to find the pods of a workload of ``kind`` (a built-in kind)."""
    return kind in BUILTIN and BUILTIN[kind]["pods"] is not None


def pointer(keys):
    """Keys as an RFC 6901 JSON pointer ('~' and '/' escaped)."""
    return "".join("/" + str(k).replace("~", "~0").replace("/", "~1") for k in keys)


def workload_ref(workload):
    """{kind, namespace, name} of a workload record, an entry of shm_df_info's ``workloads`` or a rollout result."""
    return {"kind": workload.get("kind"), "namespace": workload.get("namespace"), "name": workload.get("name")}
