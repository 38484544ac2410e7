# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""List the workloads of every kind, read and write their pod templates.

The API side of shm_info and shm_patch. Pure decisions (assessment, size policy, plan,
rollback, diff, GitOps snippet) are delegated to shm.py; this file only lists objects
(once per kind), turns them into workload records (docs/module-contract.md) and writes
minimal JSON patches guarded by the object's resourceVersion, with field manager
``shmfix``, dryRun=All in check mode, and a bounded re-read/re-plan on conflicts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.shmfix.k8s.plugins.module_utils import shm
from ansible_collections.shmfix.k8s.plugins.module_utils.client import (
    ConflictError,
    ShmfixError,
    api_prefix,
    resource_label,
    resource_path,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes, parse_ratio

try:
    from ansible_collections.shmfix.k8s.plugins.module_utils import versions as _versions
except ImportError:  # pragma: no cover - versions.py is written in parallel
    _versions = None

DEFAULT_KINDS = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "CronJob", "Job", "Pod"]
DEFAULT_EXCLUDE_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease"]
CONFLICT_RETRIES = 3

BUILTIN_KINDS = {
    "Deployment": dict(api_version="apps/v1", plural="deployments", template_path="spec.template"),
    "StatefulSet": dict(api_version="apps/v1", plural="statefulsets", template_path="spec.template"),
    "DaemonSet": dict(api_version="apps/v1", plural="daemonsets", template_path="spec.template"),
    "ReplicaSet": dict(api_version="apps/v1", plural="replicasets", template_path="spec.template"),
    "ReplicationController": dict(api_version="v1", plural="replicationcontrollers", template_path="spec.template"),
    "CronJob": dict(api_version="batch/v1", plural="cronjobs", template_path="spec.jobTemplate.spec.template"),
    "Job": dict(api_version="batch/v1", plural="jobs", template_path="spec.template", immutable=True),
    "Pod": dict(api_version="v1", plural="pods", template_path="", immutable=True),
}
# Kinds left to their controller when they have one (a Deployment's ReplicaSets, a controller's Pods).
OWNED_SKIPPED = ("ReplicaSet", "ReplicationController", "Pod")

SELECTION_ARG_SPEC = dict(
    namespaces=dict(type="list", elements="str"),
    exclude_namespaces=dict(type="list", elements="str", default=list(DEFAULT_EXCLUDE_NAMESPACES)),
    kinds=dict(type="list", elements="str", choices=list(DEFAULT_KINDS), default=list(DEFAULT_KINDS)),
    label_selector=dict(type="str"),
    names=dict(type="list", elements="str"),
    extra_kinds=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            api_version=dict(type="str", required=True),
            kind=dict(type="str", required=True),
            template_path=dict(type="str", default="spec.template"),
        ),
    ),
)

PATCH_ARG_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    size_limit=dict(type="str"),
    size_ratio=dict(type="float"),
    min_size=dict(type="str"),
    max_size=dict(type="str"),
    existing=dict(type="str", choices=list(shm.EXISTING_MODES), default="grow"),
    managed=dict(type="str", choices=["warn", "skip", "patch"], default="warn"),
    volume_name=dict(type="str", default=shm.DEFAULT_VOLUME_NAME),
)


# --------------------------------------------------------------------------- kinds


class KindSpec(dict):
    """kind, api_version, plural, namespaced, template_path, immutable, custom."""

    @property
    def resource(self):
        return resource_label(self["api_version"], self["plural"])

    def path(self, namespace=None, name=None):
        return resource_path(self["api_version"], self["plural"], namespace if self["namespaced"] else None, name)

    def template_keys(self):
        return [k for k in self["template_path"].split(".") if k]

    def pod_spec_pointer(self):
        keys = self.template_keys() + ["spec"]
        return "/" + "/".join(_escape(k) for k in keys)


def _escape(key):
    return str(key).replace("~", "~0").replace("/", "~1")


def resolve_kinds(kube, kinds, extra_kinds):
    """KindSpecs for the selected kinds. Custom kinds are looked up by discovery (one call per group/version)."""
    specs = []
    for kind in kinds if kinds is not None else DEFAULT_KINDS:
        if kind not in BUILTIN_KINDS:
            raise ShmfixError("unknown kind %r in kinds; supported: %s (custom resources go in extra_kinds)" % (kind, ", ".join(DEFAULT_KINDS)))
        base = BUILTIN_KINDS[kind]
        specs.append(
            KindSpec(kind=kind, namespaced=True, immutable=base.get("immutable", False), custom=False, **{k: v for k, v in base.items() if k != "immutable"})
        )
    discovered = {}
    for extra in extra_kinds or []:
        api_version = (extra.get("api_version") or "").strip()
        kind = (extra.get("kind") or "").strip()
        template_path = extra.get("template_path") or "spec.template"
        if not api_version or not kind:
            raise ShmfixError("extra_kinds entry %r needs api_version and kind" % (extra,))
        if api_version not in discovered:
            try:
                discovered[api_version] = kube.get(api_prefix(api_version), verb="get", resource="API group %s" % api_version)
            except ShmfixError as err:
                if err.status == 404:
                    raise ShmfixError(
                        "extra_kinds: api_version %r is not served by this cluster (kind %r); is the CRD installed?" % (api_version, kind),
                        status=404,
                        reason=err.reason,
                    )
                raise
        found = None
        for res in discovered[api_version].get("resources", []):
            if res.get("kind") == kind and "/" not in res.get("name", ""):
                found = res
                break
        if not found:
            raise ShmfixError(
                "unknown kind %r in extra_kinds: api_version %r serves %s"
                % (
                    kind,
                    api_version,
                    ", ".join(sorted({r.get("kind") for r in discovered[api_version].get("resources", []) if "/" not in r.get("name", "")})) or "nothing",
                )
            )
        specs.append(
            KindSpec(
                kind=kind,
                api_version=api_version,
                plural=found["name"],
                namespaced=bool(found.get("namespaced", True)),
                template_path=template_path,
                immutable=False,
                custom=True,
            )
        )
    return specs


# --------------------------------------------------------------------------- listing


def _list(kube, spec, namespace, label_selector):
    query = {"labelSelector": label_selector} if label_selector else None
    try:
        data = kube.get(spec.path(namespace), query=query, verb="list", resource=spec.resource, namespace=namespace)
    except ShmfixError as err:
        if err.status == 400 and label_selector:
            raise ShmfixError("label_selector %r is malformed: %s" % (label_selector, err.msg), status=err.status, reason=err.reason)
        raise
    items = data.get("items") or []
    for item in items:
        # list items carry no apiVersion/kind
        item.setdefault("apiVersion", spec["api_version"])
        item.setdefault("kind", spec["kind"])
    return items


def controller_owner(obj):
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return {"kind": ref.get("kind"), "name": ref.get("name")}
    if refs:
        return {"kind": refs[0].get("kind"), "name": refs[0].get("name")}
    return None


def select_workloads(kube, params, specs):
    """[(KindSpec, obj)] for the selection. One list call per kind (per namespace when namespaces is set).

    A namespace given in `namespaces` that yields no object is checked (GET) so a typo fails
    instead of silently selecting nothing.
    """
    namespaces = params.get("namespaces")
    exclude = set(params.get("exclude_namespaces") or [])
    names = set(params.get("names") or [])
    label_selector = params.get("label_selector")
    if namespaces is not None:
        namespaces = [n for n in namespaces if n not in exclude]
    seen_ns = set()
    selected = []
    for spec in specs:
        if namespaces is None or not spec["namespaced"]:
            batches = [_list(kube, spec, None, label_selector)]
        else:
            batches = [_list(kube, spec, ns, label_selector) for ns in namespaces]
        for items in batches:
            for obj in items:
                meta = obj.get("metadata") or {}
                ns = meta.get("namespace")
                seen_ns.add(ns)
                if ns in exclude:
                    continue
                if names and meta.get("name") not in names:
                    continue
                if spec["kind"] in OWNED_SKIPPED and any(r.get("controller") for r in meta.get("ownerReferences") or []):
                    continue
                selected.append((spec, obj))
    if namespaces:
        for ns in namespaces:
            if ns in seen_ns:
                continue
            try:
                kube.get(resource_path("v1", "namespaces", name=ns), verb="get", resource="namespaces", name=ns)
            except ShmfixError as err:
                if err.status == 404:
                    raise ShmfixError("namespace %r (in namespaces) does not exist" % ns, status=404, reason=err.reason)
                if err.status != 403:  # cannot check: say nothing, the lists worked
                    raise
    return selected


# --------------------------------------------------------------------------- nodes


def _node_mode(node):
    """Expected enforcement of a node from its kubelet version (gate default assumed)."""
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
    if not version or _versions is None:
        return None
    try:
        parsed = _versions.parse_version(version)
        return _versions.expected_enforcement(parsed, None)
    except ValueError:
        return None


def read_nodes(kube):
    """One list of nodes -> {'allocatable': {node: bytes}, 'capacity': {...}, 'labels': {...}, 'mode': {...}, 'error': str|None}."""
    out = dict(allocatable={}, capacity={}, labels={}, mode={}, error=None)
    try:
        data = kube.get("/api/v1/nodes", verb="list", resource="nodes")
    except ShmfixError as err:
        if err.status in (401, 403):
            out["error"] = err.msg
            return out
        raise
    for node in data.get("items") or []:
        name = node["metadata"]["name"]
        status = node.get("status") or {}
        for key, field in (("allocatable", "allocatable"), ("capacity", "capacity")):
            mem = (status.get(field) or {}).get("memory")
            if mem:
                try:
                    out[key][name] = parse_bytes(mem, "node %s %s memory" % (name, field))
                except ValueError:
                    pass
        out["labels"][name] = (node.get("metadata") or {}).get("labels") or {}
        out["mode"][name] = _node_mode(node)
    return out


def _candidate_nodes(nodes, pod_spec):
    """Nodes a pod could land on, judged by its plain nodeSelector only."""
    selector = (pod_spec or {}).get("nodeSelector") or {}
    if pod_spec and pod_spec.get("nodeName") and pod_spec["nodeName"] in nodes["labels"]:
        return [pod_spec["nodeName"]]
    return [n for n, labels in nodes["labels"].items() if all(labels.get(k) == v for k, v in selector.items())]


def node_context(nodes, pod_spec):
    """(allocatable_bytes, capacity_bytes, node_mode) for assess(): the smallest candidate node; mode when all agree."""
    candidates = _candidate_nodes(nodes, pod_spec)
    alloc = [nodes["allocatable"][n] for n in candidates if n in nodes["allocatable"]]
    cap = [nodes["capacity"][n] for n in candidates if n in nodes["capacity"]]
    modes = {nodes["mode"].get(n) for n in candidates}
    mode = modes.pop() if len(modes) == 1 else None
    return (min(alloc) if alloc else None, min(cap) if cap else None, mode)


# --------------------------------------------------------------------------- records


def _dig(obj, keys):
    cur = obj
    for key in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def pod_template(spec, obj):
    """(pod_metadata, pod_spec) of an object; the object itself for Pods."""
    template = _dig(obj, spec.template_keys()) if spec.template_keys() else obj
    if not isinstance(template, dict):
        return None, None
    return template.get("metadata") or {}, template.get("spec")


def _managed_by(assessment):
    managed = assessment.get("managed_by") or []
    if isinstance(managed, str):
        return managed
    return managed[0] if managed else None


def _volume_record(pod_spec, assessment):
    name = assessment.get("volume")
    if not name:
        return None
    for vol in (pod_spec or {}).get("volumes") or []:
        if vol.get("name") == name:
            empty = vol.get("emptyDir")
            medium = None
            if empty is not None:
                medium = empty.get("medium") or "disk"
            elif vol.get("hostPath") is not None:
                medium = "hostPath"
            else:
                medium = next((k for k in vol if k != "name"), None)
            return {"name": name, "medium": medium, "size_limit_bytes": assessment.get("size_limit_bytes")}
    return {"name": name, "medium": None, "size_limit_bytes": assessment.get("size_limit_bytes")}


def _containers_record(assessment):
    out = []
    for c in assessment.get("containers") or []:
        out.append(
            {
                "name": c.get("name"),
                "state": c.get("state"),
                "effective_bytes": c.get("effective_bytes"),
                "mount": {"volume": c.get("volume"), "read_only": bool(c.get("read_only"))} if c.get("volume") else None,
            }
        )
    return out


def base_record(spec, obj):
    meta = obj.get("metadata") or {}
    return {
        "kind": spec["kind"],
        "api_version": spec["api_version"],
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resource_version": meta.get("resourceVersion"),
        "owner": controller_owner(obj),
        "managed_by": None,
        "state": "other",
        "containers": [],
        "volume": None,
        "pod_memory_limit_bytes": None,
        "effective_bytes": None,
        "effective_note": "",
        "findings": [],
    }


def assess_object(spec, obj, nodes):
    """(record, assessment, pod_spec) for one object."""
    record = base_record(spec, obj)
    pod_meta, pod_spec = pod_template(spec, obj)
    if not isinstance(pod_spec, dict):
        record["findings"].append(
            {"severity": "error", "code": "no_pod_template", "message": "no pod template at %s" % (spec["template_path"] or "the object")}
        )
        return record, None, None
    alloc, cap, mode = node_context(nodes, pod_spec)
    try:
        assessment = shm.assess(
            pod_spec,
            parse=parse_bytes,
            node_allocatable_bytes=alloc,
            pod_metadata=pod_meta,
            object_metadata=obj.get("metadata") or {},
            node_mode=mode,
            node_capacity_bytes=cap,
        )
    except ValueError as exc:
        record["findings"].append({"severity": "error", "code": "bad_spec", "message": str(exc)})
        return record, None, None
    record.update(
        managed_by=_managed_by(assessment),
        state=assessment.get("state"),
        containers=_containers_record(assessment),
        volume=_volume_record(pod_spec, assessment),
        pod_memory_limit_bytes=assessment.get("pod_memory_limit_bytes"),
        effective_bytes=assessment.get("effective_bytes"),
        effective_note=assessment.get("effective_note") or "",
        findings=list(assessment.get("findings") or []),
    )
    if spec["immutable"]:
        record["shm_state"] = record["state"]
        record["state"] = "immutable"
        owner = record["owner"]
        where = "its owner %s %s" % (owner["kind"], owner["name"]) if owner else "the manifest that creates it"
        record["findings"].append(
            {
                "severity": "info",
                "code": "immutable",
                "message": "the pod template of a %s cannot be changed (state %s); fix %s instead" % (spec["kind"], record["shm_state"], where),
            }
        )
    return record, assessment, pod_spec


def summarize_info(records):
    by_state = {}
    findings = {}
    for rec in records:
        by_state[rec["state"]] = by_state.get(rec["state"], 0) + 1
        for f in rec.get("findings") or []:
            findings[f["severity"]] = findings.get(f["severity"], 0) + 1
    return {"total": len(records), "by_state": by_state, "findings": findings}


def run_info(kube, params):
    """shm_info: read-only workload records. Returns the module result (without changed)."""
    start = kube.calls
    specs = resolve_kinds(kube, params.get("kinds"), params.get("extra_kinds"))
    selected = select_workloads(kube, params, specs)
    nodes = read_nodes(kube)
    records = [assess_object(spec, obj, nodes)[0] for spec, obj in selected]
    result = {
        "workloads": records,
        "summary": summarize_info(records),
        "node_allocatable_bytes": nodes["allocatable"],
        "api_calls": kube.calls - start,
    }
    if nodes["error"]:
        result["warnings_nodes"] = nodes["error"]
    return result


# --------------------------------------------------------------------------- patching


def validate_patch_params(params):
    """Parse the size options; raise ShmfixError naming the option (before anything is read or written)."""
    out = {}
    try:
        for opt in ("size_limit", "min_size", "max_size"):
            value = params.get(opt)
            out[opt] = None if value is None else parse_bytes(value, opt)
        if params.get("size_ratio") is not None:
            out["size_ratio"] = parse_ratio(params["size_ratio"], "size_ratio")
        else:
            out["size_ratio"] = None
    except ValueError as exc:
        raise ShmfixError(str(exc))
    if out["size_limit"] is not None and out["size_ratio"] is not None:
        raise ShmfixError("size_limit and size_ratio are mutually exclusive; give one")
    if out["min_size"] and out["max_size"] and out["min_size"] > out["max_size"]:
        raise ShmfixError("min_size (%s) is larger than max_size (%s)" % (params["min_size"], params["max_size"]))
    name = params.get("volume_name") or shm.DEFAULT_VOLUME_NAME
    # a DNS-1123 label: the API would reject anything else at write time
    if len(name) > 63 or not name[0].isalnum() or not name[-1].isalnum() or not all(c.isalnum() and c == c.lower() or c == "-" for c in name):
        raise ShmfixError("volume_name %r is not a valid volume name (lower-case letters, digits and '-', at most 63)" % name)
    return out


def _annotations(obj):
    return (obj.get("metadata") or {}).get("annotations") or {}


def _annotation_ops(obj, key, value):
    """JSON patch ops that set (value) or remove (None) one object annotation."""
    annotations = (obj.get("metadata") or {}).get("annotations")
    if value is None:
        if annotations and key in annotations:
            return [{"op": "remove", "path": "/metadata/annotations/" + _escape(key)}]
        return []
    if annotations is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": {key: value}}]
    return [{"op": "add", "path": "/metadata/annotations/" + _escape(key), "value": value}]


def _precondition(obj):
    """Set metadata.resourceVersion to the one read: the API server refuses a stale write with 409 Conflict."""
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv}] if rv else []


# What the API server answers when a JSON-patch `test` op fails (no details): the object may have
# changed under the plan's guards. Re-read: a new resourceVersion means it was a concurrent edit.
_FAILED_TEST = "the server rejected our request due to an error in our request"


def _is_conflict(err):
    return isinstance(err, ConflictError) or err.status == 409


def _maybe_conflict(err):
    return err.status == 422 and _FAILED_TEST in (err.msg or "")


def _sizes(assessment):
    return {
        "state": assessment.get("state") if assessment else None,
        "size_limit_bytes": assessment.get("size_limit_bytes") if assessment else None,
        "effective_bytes": assessment.get("effective_bytes") if assessment else None,
    }


def _diff_entry(record, before_spec, after_spec):
    d = shm.template_diff(before_spec, after_spec)
    header = "%s %s/%s" % (record["kind"], record["namespace"] or "-", record["name"])
    return {"before_header": header, "after_header": header, "before": d.get("before"), "after": d.get("after")}


def _plan_present(pod_spec, assessment, opts, params):
    """The plan for state=present (size policy from shm.desired_size, the annotation first)."""
    size, source = shm.desired_size(
        pod_spec,
        parse=parse_bytes,
        size_limit=opts["size_limit"],
        size_ratio=opts["size_ratio"],
        min_size=opts["min_size"],
        max_size=opts["max_size"],
        annotation_value=assessment.get("annotation_size_limit"),
    )
    p = shm.plan(
        pod_spec,
        parse=parse_bytes,
        size_bytes=size,
        existing=params.get("existing") or "grow",
        volume_name=params.get("volume_name") or shm.DEFAULT_VOLUME_NAME,
    )
    p["size_source"] = source
    return p


def _snippet(spec, plan, name):
    try:
        return shm.gitops_snippet(spec["kind"], plan, name=name, api_version=spec["api_version"])
    except ValueError:
        after = plan.get("after") or {}
        return "# shmfix: /dev/shm for %s/%s (pod template at %s): add volume %s and mount it at /dev/shm in %s\n" % (
            spec["kind"],
            name,
            spec["template_path"],
            json.dumps(after.get("volume"), sort_keys=True),
            ", ".join(sorted(c for c, m in (after.get("mounts") or {}).items() if m)),
        )


def _build_ops(spec, obj, plan, state):
    """The full JSON patch for an object: resourceVersion test, pod spec ops, annotation ops."""
    ops = _precondition(obj)
    ops += shm.prefix_patch(plan.get("patch") or [], spec.pod_spec_pointer())
    recorded = _annotations(obj).get(shm.ANNOTATION_ORIGINAL)
    if state == "present":
        original = plan.get("original")
        if original is not None:
            if recorded:
                try:
                    original = shm.merge_original(shm.decode_original(recorded), original)
                except ValueError:
                    pass
            ops += _annotation_ops(obj, shm.ANNOTATION_ORIGINAL, shm.encode_original(original))
    else:
        ops += _annotation_ops(obj, shm.ANNOTATION_ORIGINAL, None)
    return ops


def _write(kube, spec, obj, ops, dry_run):
    meta = obj["metadata"]
    return kube.patch(
        spec.path(meta.get("namespace"), meta["name"]),
        ops,
        patch_type="json",
        dry_run=dry_run,
        resource=spec.resource,
        namespace=meta.get("namespace"),
        name=meta["name"],
    )


def _is_fatal(err):
    """Errors that would repeat for every object: credentials, RBAC, transport."""
    return err.status in (401, 403) or err.status is None


def _reread(kube, spec, obj):
    meta = obj["metadata"]
    fresh = kube.get(spec.path(meta.get("namespace"), meta["name"]), verb="get", resource=spec.resource, namespace=meta.get("namespace"), name=meta["name"])
    fresh.setdefault("apiVersion", spec["api_version"])
    fresh.setdefault("kind", spec["kind"])
    return fresh


def process_object(kube, spec, obj, nodes, params, opts, check_mode, want_diff):
    """Assess, plan and (dry-)write one object. Returns (record, diff_entry|None).

    Conflicts (409 / failed resourceVersion test) re-read the object and re-plan, CONFLICT_RETRIES times.
    Fatal API errors (401, 403, unreachable) propagate as ShmfixError.
    """
    state = params.get("state") or "present"
    attempt = 0
    while True:
        record, assessment, pod_spec = assess_object(spec, obj, nodes)
        record.update(action="unchanged", reason="", before=_sizes(assessment), after=_sizes(assessment), snippet=None, error=None)
        if attempt:
            record["conflict_retries"] = attempt
        if assessment is None:
            record.update(action="failed", reason="no pod template", error=record["findings"][-1]["message"])
            return record, None
        if spec["immutable"]:
            record.update(action="immutable", reason=record["findings"][-1]["message"])
            return record, None
        pod_meta = pod_template(spec, obj)[0]
        if state == "present" and shm.is_skipped(pod_metadata=pod_meta, object_metadata=obj.get("metadata") or {}):
            record.update(action="skipped", reason="annotation %s=true" % shm.ANNOTATION_SKIP)
            return record, None

        if state == "present":
            bad = [f for f in record["findings"] if f.get("code") == "bad_annotation"]
            if bad:
                record.update(action="skipped", reason="bad annotation %s: %s" % (shm.ANNOTATION_SIZE_LIMIT, bad[0]["message"]))
                return record, None
            try:
                plan = _plan_present(pod_spec, assessment, opts, params)
            except ValueError as exc:
                record.update(action="failed", reason="cannot plan", error=str(exc))
                return record, None
            if plan.get("action") == "skip":
                record.update(action="skipped", reason=plan.get("reason") or "")
                return record, None
            if not plan.get("patch"):
                record.update(action="unchanged", reason=plan.get("reason") or "")
                return record, None
            managed = record.get("managed_by")
            if managed:
                record["snippet"] = _snippet(spec, plan, record["name"])
                if (params.get("managed") or "warn") == "skip":
                    record.update(action="skipped", reason="managed by %s (managed=skip): apply the snippet in its source" % managed)
                    return record, None
            new_spec = shm.apply_plan(pod_spec, plan)
            done, would = "patched", "would_patch"
        else:
            recorded = _annotations(obj).get(shm.ANNOTATION_ORIGINAL)
            if not recorded:
                record.update(action="unchanged", reason="no %s annotation: nothing to restore" % shm.ANNOTATION_ORIGINAL)
                return record, None
            try:
                original = shm.decode_original(recorded)
            except ValueError as exc:
                record["findings"].append({"severity": "error", "code": "bad_annotation", "message": "%s: %s" % (shm.ANNOTATION_ORIGINAL, exc)})
                record.update(action="skipped", reason="bad annotation %s" % shm.ANNOTATION_ORIGINAL)
                return record, None
            try:
                plan = shm.plan_rollback(pod_spec, original)
                new_spec = shm.apply_plan(pod_spec, plan)
            except ValueError as exc:
                record.update(action="failed", reason="cannot plan the rollback", error=str(exc))
                return record, None
            done, would = "restored", "would_restore"

        ops = _build_ops(spec, obj, plan, state)
        record["reason"] = plan.get("reason") or ""
        alloc, cap, mode = node_context(nodes, new_spec)
        after_assessment = shm.assess(new_spec, parse=parse_bytes, node_allocatable_bytes=alloc, pod_metadata=pod_meta, node_mode=mode, node_capacity_bytes=cap)
        record["after"] = _sizes(after_assessment)
        try:
            written = _write(kube, spec, obj, ops, dry_run=check_mode)
        except ShmfixError as err:
            if _is_fatal(err):
                raise
            if not (_is_conflict(err) or _maybe_conflict(err)):
                record.update(action="failed", error=err.msg, reason="write refused")
                return record, None
            if attempt >= CONFLICT_RETRIES:
                record.update(action="failed", error=err.msg, reason="still conflicting after %d re-reads" % attempt)
                return record, None
            attempt += 1
            try:
                fresh = _reread(kube, spec, obj)
            except ShmfixError as err2:
                if _is_fatal(err2):
                    raise
                record.update(action="failed", error=err2.msg, reason="re-read after a conflict failed")
                return record, None
            if not _is_conflict(err) and fresh["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"):
                record.update(action="failed", error=err.msg, reason="write refused (a guard of the patch failed on an unchanged object)")
                return record, None
            obj = fresh
            continue
        record["action"] = would if check_mode else done
        if not check_mode and written.get("metadata", {}).get("resourceVersion"):
            record["resource_version"] = written["metadata"]["resourceVersion"]
        diff = _diff_entry(record, pod_spec, new_spec) if want_diff else None
        return record, diff


def summarize_patch(records):
    summary = {"patched": 0, "restored": 0, "unchanged": 0, "skipped": 0, "immutable": 0, "failed": 0}
    for rec in records:
        key = {"would_patch": "patched", "would_restore": "restored"}.get(rec["action"], rec["action"])
        summary[key] = summary.get(key, 0) + 1
    return summary


def run_patch(kube, params, check_mode=False, want_diff=False):
    """shm_patch: returns the module result. Raises ShmfixError before any write on bad input."""
    start = kube.calls
    opts = validate_patch_params(params)
    specs = resolve_kinds(kube, params.get("kinds"), params.get("extra_kinds"))
    selected = select_workloads(kube, params, specs)
    nodes = read_nodes(kube)
    records = []
    diffs = []
    for spec, obj in selected:
        try:
            record, diff = process_object(kube, spec, obj, nodes, params, opts, check_mode, want_diff)
        except ShmfixError as err:
            err.partial = records
            raise
        records.append(record)
        if diff:
            diffs.append(diff)
    changed = any(r["action"] in ("patched", "would_patch", "restored", "would_restore") for r in records)
    result = {"changed": changed, "results": records, "summary": summarize_patch(records), "api_calls": kube.calls - start}
    if want_diff:
        result["diff"] = diffs
    return result
