# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the YAML to paste into the source of a Helm/Argo CD/Flux-managed workload.

A live patch of such a workload is reverted at the next sync, so shm_patch returns, with each of
them, the same change as a kustomize patch and as the usual Helm values. The YAML is written by
PyYAML's safe dumper: every scalar that YAML would read as something else (a container named
``0x10``, a quantity ``100000000``) comes out quoted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import SHM_PATH

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False


def _dump(value):
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n").split("\n")


def gitops_snippet(kind, plan, name=None):
    """Two YAML documents for ``kind`` (a kinds.KindSpec) / ``name`` from ``plan['after']``.

    A kustomize strategic-merge patch (``patches: - path: shm-patch.yaml``) and the usual Helm chart
    values (``extraVolumes``/``extraVolumeMounts``; key names vary by chart). A plan that changes
    nothing gives a comment.
    """
    name = name or "NAME"
    volume = (plan.get("after") or {}).get("volume")
    if not plan.get("changed") or not volume:
        return "# shmfix: nothing to change for {}/{}: {}\n".format(kind["kind"], name, plan.get("reason", ""))
    mount_names = [c for c, m in sorted((plan["after"].get("mounts") or {}).items()) if m and m.get("name") == volume["name"]]
    mount = {"name": volume["name"], "mountPath": SHM_PATH}
    pod_part = {"containers": [{"name": c, "volumeMounts": [mount]} for c in mount_names], "volumes": [volume]}
    for key in reversed(kind.pod_spec_keys()):
        pod_part = {key: pod_part}
    patch = {"apiVersion": kind["api_version"], "kind": kind["kind"], "metadata": {"name": name}}
    patch.update(pod_part)
    values = {"extraVolumes": [volume], "extraVolumeMounts": [mount]}
    header = [
        "# shmfix: /dev/shm for {}/{}: Memory emptyDir {}, sizeLimit {}.".format(kind["kind"], name, volume["name"], volume["emptyDir"].get("sizeLimit")),
        "# This workload is deployed from a source (Helm, Argo CD, Flux): change the source, a live patch would be reverted.",
        "# 1) kustomize: save as shm-patch.yaml and add `patches: [{path: shm-patch.yaml}]` to kustomization.yaml",
    ]
    helm = [
        "# 2) Helm: most charts take these values (names vary: Bitnami uses primary.extraVolumes/extraVolumeMounts,",
        "#    and its PostgreSQL chart has shmVolume.sizeLimit; check `helm show values`)",
    ]
    return "\n".join(header + _dump(patch) + ["---"] + helm + _dump(values)) + "\n"
