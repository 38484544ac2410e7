# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""API side of the admission policies: discovery of what the API server serves, server-side apply and delete.

- ``served(kube)``: which MutatingAdmissionPolicy version (v1, v1beta1, v1alpha1, the first served
  wins) and whether ValidatingAdmissionPolicy v1 is served, from API discovery;
- ``run_admission(kube, params, check_mode, want_diff)``: ``state: present`` applies the objects
  admission_policy.py builds (server-side apply, field manager ``shmfix``, ``dryRun=All`` in check
  mode) and deletes what shmfix installed before that is no longer wanted (the other protection, after
  an upgrade); ``state: absent`` deletes every object carrying admission_policy.owned_labels(name);
- ``run_info(kube, params)``: what is served and which of shmfix's objects are installed.

An object of the same name that does not carry shmfix's labels is never overwritten nor deleted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

from ansible_collections.shmfix.k8s.plugins.module_utils import admission_policy as ap
from ansible_collections.shmfix.k8s.plugins.module_utils.client import resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.options import size_options
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import FIELD_MANAGER

MUTATING, VALIDATING, NONE = "mutating", "validating", "none"
PLURALS = {
    "MutatingAdmissionPolicy": "mutatingadmissionpolicies",
    "MutatingAdmissionPolicyBinding": "mutatingadmissionpolicybindings",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}
# Metadata the server owns: left out of --diff and of the comparison that decides "changed".
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")


def served(kube):
    """{'mutating': 'admissionregistration.k8s.io/vX' or None, 'validating': '.../v1' or None} from discovery."""
    try:
        group = kube.get("/apis/" + ap.GROUP, verb="get", resource="API group " + ap.GROUP)
    except ShmfixError as err:
        if err.status != 404:
            raise
        group = {}
    versions = {v.get("version") for v in group.get("versions") or []}
    found = {MUTATING: None, VALIDATING: None}
    for version in ap.MUTATING_VERSIONS + (ap.VALIDATING_VERSION,):
        if version not in versions:
            continue
        names = {
            r.get("name") for r in kube.get("/apis/%s/%s" % (ap.GROUP, version), verb="get", resource="API %s/%s" % (ap.GROUP, version)).get("resources") or []
        }
        if found[MUTATING] is None and {"mutatingadmissionpolicies", "mutatingadmissionpolicybindings"} <= names:
            found[MUTATING] = "%s/%s" % (ap.GROUP, version)
        if version == ap.VALIDATING_VERSION and {"validatingadmissionpolicies", "validatingadmissionpolicybindings"} <= names:
            found[VALIDATING] = "%s/%s" % (ap.GROUP, version)
    return found


def choose(found, mode):
    """(protection, api_version): the MutatingAdmissionPolicy where served (mode auto), else the ValidatingAdmissionPolicy."""
    if mode in ("auto", MUTATING) and found[MUTATING]:
        return MUTATING, found[MUTATING]
    if mode == MUTATING:
        raise ShmfixError(
            "mode=mutating: the API server serves no MutatingAdmissionPolicy (%s v1 from 1.36; v1beta1 in 1.34-1.35 and v1alpha1 in 1.32-1.33 "
            "only with the feature gate MutatingAdmissionPolicy and --runtime-config=%s/<version>=true); use mode=auto for the warning policy"
            % (ap.GROUP, ap.GROUP)
        )
    if found[VALIDATING]:
        return VALIDATING, found[VALIDATING]
    return NONE, None


def protection_label(protection, api_version, actions):
    """'mutating v1beta1', 'validating Warn,Audit' or 'none': what the fleet report shows."""
    if protection == MUTATING:
        return "mutating " + api_version.rsplit("/", 1)[-1]
    if protection == VALIDATING:
        return "validating " + ",".join(actions)
    return NONE


def available(found):
    """What mode=auto would install on this cluster, as protection_label says it (with the default validation actions)."""
    protection, api_version = choose(found, "auto")
    return protection_label(protection, api_version, ap.DEFAULT_VALIDATION_ACTIONS)


def desired(params, protection, api_version):
    """The objects to install for ``protection`` (none for 'none'), from the validated options."""
    sizes = size_options(params)
    actions = params.get("validation_actions") or ap.DEFAULT_VALIDATION_ACTIONS
    if "Deny" in actions and "Warn" in actions:
        raise ShmfixError(
            "validation_actions: Deny and Warn cannot be combined (the API server refuses it: a denied request already says why); give [Deny, Audit]"
        )
    selection = {k: params.get(k) for k in ("namespaces", "exclude_namespaces", "label_selector")}
    try:
        if protection == MUTATING:
            return ap.mutating_objects(params["name"], api_version, sizes, selection)
        if protection == VALIDATING:
            return ap.validating_objects(params["name"], sizes, selection, params.get("validation_actions"))
    except ValueError as exc:
        raise ShmfixError(str(exc))
    return []


def _path(api_version, kind, name=None):
    return resource_path(api_version, PLURALS[kind], name=name)


def trimmed(obj):
    """An object without what the server owns (status, uid, resourceVersion, managedFields...): what --diff shows."""
    if not obj:
        return {}
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (out.get("metadata") or {}).items() if k not in _SERVER_METADATA}
    out["metadata"] = meta
    return out


def _get(kube, api_version, kind, name):
    try:
        return kube.get(_path(api_version, kind, name), verb="get", resource=PLURALS[kind], name=name)
    except ShmfixError as err:
        if err.status == 404:
            return None
        raise


def _owned(obj, name):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in ap.owned_labels(name).items())


def _record(doc, action, before=None, after=None):
    return {"kind": doc["kind"], "api_version": doc["apiVersion"], "name": doc["metadata"]["name"], "action": action, "before": before, "after": after}


def apply_object(kube, doc, name, check_mode):
    """Server-side apply ``doc`` (dryRun=All in check mode): a record with action created/configured/unchanged and both sides."""
    current = _get(kube, doc["apiVersion"], doc["kind"], doc["metadata"]["name"])
    if current is not None and not _owned(current, name):
        raise ShmfixError(
            "%s %s exists and is not shmfix's (no labels %s): it is left alone; delete it or choose another name"
            % (doc["kind"], doc["metadata"]["name"], ", ".join("%s=%s" % kv for kv in sorted(ap.owned_labels(name).items())))
        )
    query = {"fieldManager": FIELD_MANAGER, "force": "true"}
    if check_mode:
        query["dryRun"] = "All"
    after = kube.request(
        "PATCH",
        _path(doc["apiVersion"], doc["kind"], doc["metadata"]["name"]),
        query=query,
        body=json.dumps(doc),
        content_type="application/apply-patch+yaml",
        verb="apply",
        resource=PLURALS[doc["kind"]],
        name=doc["metadata"]["name"],
    )
    before, after = trimmed(current), trimmed(after)
    action = "created" if current is None else ("unchanged" if before == after else "configured")
    return _record(doc, action, before or None, after)


def delete_object(kube, obj, check_mode):
    """Delete one installed object (dryRun=All in check mode): a record with action deleted."""
    meta = obj["metadata"]
    query = {"dryRun": "All"} if check_mode else None
    try:
        kube.request(
            "DELETE", _path(obj["apiVersion"], obj["kind"], meta["name"]), query=query, verb="delete", resource=PLURALS[obj["kind"]], name=meta["name"]
        )
    except ShmfixError as err:
        if err.status != 404:
            raise
    return _record(obj, "deleted", trimmed(obj), None)


def installed(kube, found, name):
    """shmfix's objects for ``name`` on the cluster (labels owned_labels(name)), bindings first, in every served kind."""
    selector = ",".join("%s=%s" % kv for kv in sorted(ap.owned_labels(name).items()))
    out = []
    for protection, kinds in (
        (MUTATING, ("MutatingAdmissionPolicyBinding", "MutatingAdmissionPolicy")),
        (VALIDATING, ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy")),
    ):
        api_version = found.get(protection)
        if not api_version:
            continue
        for kind in kinds:
            data = kube.get(_path(api_version, kind), query={"labelSelector": selector}, verb="list", resource=PLURALS[kind])
            for item in data.get("items") or []:
                item.update(apiVersion=api_version, kind=kind)
                out.append(item)
    return out


def _diff(records):
    return [
        {
            "before_header": "%s %s" % (r["kind"], r["name"]),
            "after_header": "%s %s" % (r["kind"], r["name"]),
            "before": r["before"] or {},
            "after": r["after"] or {},
        }
        for r in records
        if r["action"] != "unchanged"
    ]


def active(objects):
    """The protection shmfix's installed objects give: {protection, api_version, validation_actions, size_policy}."""
    by_kind = {o["kind"]: o for o in objects}
    for kind, protection in (("MutatingAdmissionPolicy", MUTATING), ("ValidatingAdmissionPolicy", VALIDATING)):
        if kind in by_kind and kind + "Binding" in by_kind:
            binding = by_kind[kind + "Binding"]
            actions = (binding.get("spec") or {}).get("validationActions") or []
            annotation = ((by_kind[kind].get("metadata") or {}).get("annotations") or {}).get(ap.ANNOTATION_POLICY)
            return {
                "protection": protection,
                "api_version": by_kind[kind]["apiVersion"],
                "label": protection_label(protection, by_kind[kind]["apiVersion"], actions),
                "validation_actions": actions,
                "size_policy": json.loads(annotation) if annotation else None,
            }
    return {"protection": NONE, "api_version": None, "label": NONE, "validation_actions": [], "size_policy": None}


def run_admission(kube, params, check_mode=False, want_diff=False):
    """admission_policy: install (present) or remove (absent) shmfix's admission policy; see the module docstring."""
    found = served(kube)
    records = []
    try:
        before = installed(kube, found, params["name"])
        wanted = []
        if params["state"] == "present":
            protection, api_version = choose(found, params["mode"])
            wanted = desired(params, protection, api_version)
            for doc in wanted:
                records.append(apply_object(kube, doc, params["name"], check_mode))
        keep = {(d["kind"], d["metadata"]["name"]) for d in wanted}
        for obj in before:
            if (obj["kind"], obj["metadata"]["name"]) not in keep:
                records.append(delete_object(kube, obj, check_mode))
    except ShmfixError as err:
        raise err.with_result(objects=records, served=found, api_calls=kube.calls)
    result = {
        "changed": any(r["action"] != "unchanged" for r in records),
        "served": found,
        "objects": [{k: r[k] for k in ("kind", "api_version", "name", "action")} for r in records],
        "active": active([r["after"] for r in records if r["after"]]),
        "available": available(found),
        "api_calls": kube.calls,
    }
    if params["state"] == "present" and not wanted:
        result["warnings"] = [
            "the API server serves neither MutatingAdmissionPolicy nor ValidatingAdmissionPolicy %s/v1 (Kubernetes < 1.30?): no admission protection installed"
            % ap.GROUP
        ]
    if want_diff:
        result["diff"] = _diff(records)
    return result


def run_info(kube, params):
    """admission_info: what the API server serves, what shmfix would install, what of shmfix's is installed."""
    found = served(kube)
    objects = installed(kube, found, params["name"])
    return {
        "changed": False,
        "served": found,
        "available": available(found),
        "installed": [{"kind": o["kind"], "api_version": o["apiVersion"], "name": o["metadata"]["name"]} for o in objects],
        "active": active(objects),
        "api_calls": kube.calls,
    }
