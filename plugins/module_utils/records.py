# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The workload record of one object (docs/module-contract.md), and the shm_info run that lists them.

``assess_object(spec, obj, nodes) -> (record, assessment, pod_spec)`` is pure: the assessment of
assessment.py put in the record's shape. ``run_info(kube, params)`` is shm_info.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.assessment import assess
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.evidence_reads import add_evidence
from ansible_collections.shmfix.k8s.plugins.module_utils.findings import needing_a_look
from ansible_collections.shmfix.k8s.plugins.module_utils.nodes import node_context, read_nodes
from ansible_collections.shmfix.k8s.plugins.module_utils.options import evidence_options
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import volume_index, volume_medium
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from ansible_collections.shmfix.k8s.plugins.module_utils.rollout import desired_and_available
from ansible_collections.shmfix.k8s.plugins.module_utils.selection import controller_owner, resolve_kinds, select_workloads


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


def _volume_record(pod_spec, assessment):
    name = assessment.get("volume")
    if not name:
        return None
    volume = volume_index(pod_spec or {}, name)[1]
    medium = volume_medium(volume) if volume is not None else None
    return {"name": name, "medium": medium, "size_limit_bytes": assessment.get("size_limit_bytes")}


def _containers_record(assessment):
    """The regular containers and the native sidecars (they run beside them, each with its own /dev/shm)."""
    sidecars = [c for c in assessment.get("init_containers") or [] if c.get("sidecar")]
    return [
        {
            "name": c.get("name"),
            "state": c.get("state"),
            "effective_bytes": c.get("effective_bytes"),
            "mount": {"volume": c.get("volume"), "read_only": bool(c.get("read_only"))} if c.get("volume") else None,
            "sidecar": c in sidecars,
        }
        for c in (assessment.get("containers") or []) + sidecars
    ]


def _replicas(spec, obj):
    """How many pods the workload wants running (None for kinds without replicas: CronJob, Job, Pod)."""
    if spec["kind"] in ("CronJob", "Job", "Pod") or spec["custom"]:
        return None
    return desired_and_available(spec["kind"], obj)[0]


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
        "replicas": _replicas(spec, obj),
        "managed_by": None,
        "state": "other",
        "containers": [],
        "volume": None,
        "pod_memory_limit_bytes": None,
        "effective_bytes": None,
        "effective_note": "",
        "findings": [],
    }


# What a brief record keeps (shm_patch unchanged_results=brief): which workload, what was decided and why,
# its size before and after, and the findings that need a look (warnings and errors).
BRIEF_FIELDS = ("kind", "api_version", "namespace", "name", "state", "action", "reason", "before", "after")


def brief_record(record):
    out = {key: record.get(key) for key in BRIEF_FIELDS}
    out["findings"] = needing_a_look(record.get("findings"))
    return out


def _immutable(record, spec):
    """A Job's or a bare Pod's record: state immutable, and where to fix it instead."""
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


def assess_object(spec, obj, nodes):
    """(record, assessment, pod_spec) for one object; assessment and pod_spec are None when it has no readable template."""
    record = base_record(spec, obj)
    pod_meta, pod_spec = pod_template(spec, obj)
    if not isinstance(pod_spec, dict):
        record["findings"].append(
            {"severity": "error", "code": "no_pod_template", "message": "no pod template at %s" % (spec["template_path"] or "the object")}
        )
        return record, None, None
    alloc, cap, mode = node_context(nodes, pod_spec)
    try:
        assessment = assess(
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
        managed_by=(assessment["managed_by"] or [None])[0],
        state=assessment["state"],
        containers=_containers_record(assessment),
        volume=_volume_record(pod_spec, assessment),
        pod_memory_limit_bytes=assessment["pod_memory_limit_bytes"],
        effective_bytes=assessment["effective_bytes"],
        effective_note=assessment["effective_note"] or "",
        findings=list(assessment["findings"]),
    )
    if spec["immutable"]:
        _immutable(record, spec)
    return record, assessment, pod_spec


def summarize_info(records):
    by_state = {}
    findings = {}
    for rec in records:
        by_state[rec["state"]] = by_state.get(rec["state"], 0) + 1
        for f in rec.get("findings") or []:
            findings[f["severity"]] = findings.get(f["severity"], 0) + 1
    return {"total": len(records), "by_state": by_state, "findings": findings}


def nodes_warning(nodes):
    """The warning of a run whose credentials may not list nodes, or None."""
    return "nodes cannot be read, effective sizes ignore node allocatable memory: %s" % nodes["error"] if nodes["error"] else None


def run_info(kube, params):
    """shm_info: read-only workload records (the module result)."""
    start = kube.calls
    warnings, listed = [], {}
    opts = evidence_options(params)
    try:
        specs = resolve_kinds(kube, params.get("kinds"), params.get("extra_kinds"))
        selected = select_workloads(kube, params, specs, warnings, listed)
        nodes = read_nodes(kube)
        assessed = [assess_object(spec, obj, nodes) for spec, obj in selected]
        records = [a[0] for a in assessed]
        evidence = add_evidence(kube, params, opts, records, [a[2] for a in assessed], listed.get("Pod"), warnings)
    except ShmfixError as err:
        raise err.with_result(api_calls=kube.calls - start)
    result = {
        "changed": False,
        "workloads": records,
        "summary": dict(summarize_info(records), evidence=evidence),
        "node_allocatable_bytes": nodes["allocatable"],
        "api_calls": kube.calls - start,
    }
    warnings += [w for w in [nodes_warning(nodes)] if w]
    if warnings:
        result["warnings"] = warnings
    return result
