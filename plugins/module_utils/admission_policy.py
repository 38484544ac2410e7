# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the size policy as admission policy objects, plain dicts ready for server-side apply.

- ``mutating_objects(name, api_version, sizes, selection)``: a MutatingAdmissionPolicy on Pod
  CREATE that gives a new pod without /dev/shm the Memory emptyDir and the mounts the remediate
  role would give its owner (plan.plan, existing=grow by default), and its binding;
- ``validating_objects(name, sizes, selection, actions)``: where MutatingAdmissionPolicy is not
  served, a ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) on the workload kinds of
  kinds.py that warns (``validationActions: [Warn, Audit]``) when fix-shm would change the object;
- ``label_selector(text)``: a label selector string as a LabelSelector;
- ``owned_labels(name)``: the labels that mark the objects as shmfix's (``state: absent`` deletes
  only objects carrying them).

``sizes`` are validated by options.size_options; ``selection`` is {namespaces, exclude_namespaces,
label_selector}. Pods are mutated, never their owners: what a GitOps tool manages does not drift.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.shmfix.k8s.plugins.module_utils import admission_cel as cel
from ansible_collections.shmfix.k8s.plugins.module_utils.kinds import BUILTIN
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import ANNOTATION_SKIP
from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes

GROUP = "admissionregistration.k8s.io"
MUTATING_VERSIONS = ("v1", "v1beta1", "v1alpha1")  # newest first: the first one served is used
VALIDATING_VERSION = "v1"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_OWNER = "shmfix.io/admission"
ANNOTATION_POLICY = "shmfix.io/size-policy"
ANNOTATION_ADMITTED = "shmfix.io/admitted-by"
VALIDATION_ACTIONS = ("Warn", "Audit", "Deny")
DEFAULT_VALIDATION_ACTIONS = ["Warn", "Audit"]
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
FIX_HINT = "ansible-playbook playbooks/fix-shm.yml (shmfix.k8s.fix_shm)"

# failurePolicy Ignore: a CEL error (a quantity the API server took but CEL cannot read) never blocks a pod.
FAILURE_POLICY = "Ignore"
# IfNeeded: when a later webhook changes the pod (a sidecar injector, the VPA's limits), the policy
# runs once more; it is idempotent (a pod that has the volume is "none" or grown, never doubled).
REINVOCATION_POLICY = "IfNeeded"


def owned_labels(name):
    return {LABEL_MANAGED_BY: "shmfix", LABEL_OWNER: name}


def _metadata(name, sizes, extra=None):
    record = {k: (format_bytes(v) if isinstance(v, int) and k.endswith(("limit", "size")) else v) for k, v in sizes.items() if v is not None}
    record.update(extra or {})
    return {"name": name, "labels": owned_labels(name), "annotations": {ANNOTATION_POLICY: json.dumps(record, sort_keys=True)}}


def _variables(pairs):
    return [{"name": n, "expression": e} for n, e in pairs]


_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(==|=|!=|\s+in\s+|\s+notin\s+)\s*(.*?))?\s*$")


def _split_terms(text):
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    return terms + [text[start:]]


def label_selector(text):
    """A label selector string (``app=web,tier in (a,b),!legacy``) as a LabelSelector {matchExpressions}; ValueError when malformed."""
    expressions = []
    for term in _split_terms(text or ""):
        if not term.strip():
            continue
        match = _TERM.match(term)
        if not match:
            raise ValueError(f"label_selector: {term.strip()!r} is not a label selector term (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))")
        bang, key, op, value = match.groups()
        op = (op or "").strip()
        if bang and op:
            raise ValueError(f"label_selector: {term.strip()!r}: '!' goes only before a bare key")
        if not op:
            expressions.append({"key": key, "operator": "DoesNotExist" if bang else "Exists"})
            continue
        if op in ("in", "notin"):
            if not (value.startswith("(") and value.endswith(")")):
                raise ValueError(f"label_selector: {term.strip()!r}: the values of {op} go in parentheses")
            values = [v.strip() for v in value[1:-1].split(",") if v.strip()]
        else:
            values = [value]
        expressions.append({"key": key, "operator": "NotIn" if op in ("!=", "notin") else "In", "values": values})
    return {"matchExpressions": expressions} if expressions else {}


def match_resources(selection):
    """The binding's matchResources: namespaces (kubernetes.io/metadata.name) and the label selector."""
    expressions = []
    if selection.get("namespaces"):
        expressions.append({"key": NAMESPACE_LABEL, "operator": "In", "values": sorted(selection["namespaces"])})
    if selection.get("exclude_namespaces"):
        expressions.append({"key": NAMESPACE_LABEL, "operator": "NotIn", "values": sorted(selection["exclude_namespaces"])})
    out = {"namespaceSelector": {"matchExpressions": expressions}}
    selector = label_selector(selection.get("label_selector"))
    if selector:
        out["objectSelector"] = selector
    return out


def _binding(kind, api_version, name, sizes, selection, extra_spec=None):
    spec = {"policyName": name, "matchResources": match_resources(selection)}
    spec.update(extra_spec or {})
    return {"apiVersion": api_version, "kind": kind + "Binding", "metadata": _metadata(name, sizes), "spec": spec}


def mutating_objects(name, api_version, sizes, selection):
    """[MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding] of ``api_version`` (GROUP/v1, v1beta1 or v1alpha1)."""
    spec_root, metas = "object.spec", ["object.metadata"]
    variables = cel.memory_variables(spec_root) + cel.size_variables(sizes, metas) + cel.state_variables(spec_root)
    variables += cel.action_variables(sizes.get("existing") or "grow", sizes["volume_name"])
    policy = {
        "apiVersion": api_version,
        "kind": "MutatingAdmissionPolicy",
        "metadata": _metadata(name, sizes),
        "spec": {
            "failurePolicy": FAILURE_POLICY,
            "reinvocationPolicy": REINVOCATION_POLICY,
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchConditions": [
                {"name": "not-skipped", "expression": cel.skip_condition(metas)},
                {"name": "not-host-ipc", "expression": "!has(object.spec.hostIPC) || !object.spec.hostIPC"},
            ],
            "variables": _variables(variables),
            "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": cel.apply_configuration(ANNOTATION_ADMITTED, name)}}],
        },
    }
    return [policy, _binding("MutatingAdmissionPolicy", api_version, name, sizes, selection)]


def _kind_expression(template):
    """CEL of ``template`` (a pod spec or its metadata, given the kind's template keys) chosen by object.kind."""
    groups = {}
    for spec in BUILTIN.values():
        groups.setdefault(spec["template_path"], []).append(spec["kind"])
    expr = "null"
    for path, kinds in sorted(groups.items(), key=lambda item: item[0]):
        root = "object" + "".join("." + k for k in path.split(".") if k)
        expr = f"object.kind in {cel.lit(sorted(kinds))} ? {template(root)} : ({expr})"
    return expr


def _template_meta(root):
    return f"{root}.?metadata.orValue({{}})"


def _resource_rules():
    rules = {}
    for spec in BUILTIN.values():
        group, _sep, version = spec["api_version"].rpartition("/")
        rules.setdefault((group, version), []).append(spec["plural"])
    return [
        {"apiGroups": [group], "apiVersions": [version], "operations": ["CREATE", "UPDATE"], "resources": sorted(plurals)}
        for (group, version), plurals in sorted(rules.items())
    ]


def _message():
    """The warning: the object, what its /dev/shm is, the size shmfix would give it, and the fix for its kind."""
    state = (
        "variables.shmState == 'runtime_default' ? 'the runtime default (64 MiB)' : "
        "variables.shmState == 'unbounded_memory' ? 'a Memory emptyDir without sizeLimit (as large as the node allows)' : "
        "'volume ' + variables.volumeName + ' (' + variables.shmState + ')'"
    )
    immutable = sorted(spec["kind"] for spec in BUILTIN.values() if spec["immutable"])
    fix = (
        f"(object.kind in {cel.lit(immutable)} ? 'Fix: add that volume to the manifest (the pod template of a ' + object.kind + ' cannot be patched later)' : "
        f"'Fix: {FIX_HINT}, or add that volume to the pod template')"
    )
    return (
        "object.kind + ' ' + (has(object.metadata.namespace) ? object.metadata.namespace + '/' : '') + "
        "(has(object.metadata.name) ? object.metadata.name : object.metadata.generateName + '*') + "
        f"': /dev/shm is ' + ({state}) + '; shmfix would give it an emptyDir {{medium: Memory, sizeLimit: ' + variables.sizeLimit + '}} at /dev/shm. ' + "
        f"{fix} + '; opt out: annotation {ANNOTATION_SKIP}=true'"
    )


def validating_objects(name, sizes, selection, actions=None):
    """[ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding]: warn on workloads (kinds.py) fix-shm would change."""
    spec_root, metas = "variables.podSpec", ["object.metadata", "variables.podMeta"]
    variables = [
        ("podSpec", _kind_expression(lambda root: root + ".spec")),
        ("podMeta", _kind_expression(_template_meta)),
    ]
    variables += cel.memory_variables(spec_root) + cel.size_variables(sizes, metas) + cel.state_variables(spec_root)
    variables += cel.action_variables(sizes.get("existing") or "grow", sizes["volume_name"])
    no_controller = "!has(object.metadata.ownerReferences) || !object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)"
    policy = {
        "apiVersion": GROUP + "/" + VALIDATING_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _metadata(name, sizes),
        "spec": {
            "failurePolicy": FAILURE_POLICY,
            "matchConstraints": {"resourceRules": _resource_rules()},
            "matchConditions": [
                {"name": "not-skipped", "expression": cel.skip_condition(["object.metadata", "(" + _kind_expression(_template_meta) + ")"])},
                {"name": "not-controlled", "expression": no_controller},
            ],
            "variables": _variables(variables),
            "validations": [
                {
                    "expression": f"variables.podSpec == null || (has(variables.podSpec.hostIPC) && variables.podSpec.hostIPC) || "
                    f"!(variables.action in {cel.lit(list(cel.CHANGING_ACTIONS))})",
                    "messageExpression": _message(),
                    "reason": "Invalid",
                }
            ],
        },
    }
    actions = list(actions or DEFAULT_VALIDATION_ACTIONS)
    return [policy, _binding("ValidatingAdmissionPolicy", policy["apiVersion"], name, sizes, selection, {"validationActions": actions})]
