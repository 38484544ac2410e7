# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the remediate role: waves, their results, and df verdicts.

PURE: what the role's tasks registered (shm_patch loops, rollout_status, shm_df_info) in,
the workload records of the fleet report out. The filters of plugins/filter/remediation.py
are thin wrappers around these functions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.findings import needing_a_look
from ansible_collections.shmfix.k8s.plugins.module_utils.kinds import workload_ref
from ansible_collections.shmfix.k8s.plugins.module_utils.outcomes import (
    FAILED,
    PATCHED,
    RESIZED,
    RESTORED,
    ROLLOUT_BAD_ENDS,
    SKIPPED,
    WOULD_PATCH,
    WOULD_RESIZE,
    WOULD_RESTORE,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import MEMORY_STATES, RUNTIME_DEFAULT_BYTES
from ansible_collections.shmfix.k8s.plugins.module_utils.units import PAGE_SIZE, human, page_round


def workload_key(item):
    return "%s/%s/%s" % (item.get("kind"), item.get("namespace"), item.get("name"))


# --------------------------------------------------------------------------- df verdicts


def compare_size(measured, expected, enforcement, node_memory_bytes=None, tolerance=0.02):
    """Verdict on one df figure: (verdict, note) with verdict one of ok, mismatch, unmeasured.

    ``enforcement`` sized: the tmpfs must be exactly the expected effective size (rounded up to a
    page). eviction: the tmpfs is the kernel default (half the node's RAM), so df must show about
    half the node's memory and not the 64 MiB runtime default; the sizeLimit is then enforced by
    eviction only.
    """
    if measured is None:
        return "unmeasured", "no df figure"
    measured = int(measured)
    if enforcement == "eviction":
        return _compare_eviction(measured, node_memory_bytes, tolerance)
    if expected is None:
        return "unmeasured", "expected size unknown"
    want = page_round(int(expected))
    if abs(measured - want) <= PAGE_SIZE:
        return "ok", "df shows the expected %s" % human(want)
    return "mismatch", "expected %s, df shows %s" % (human(want), human(measured))


def _compare_eviction(measured, node_memory_bytes, tolerance):
    if node_memory_bytes:
        half = int(node_memory_bytes) // 2
        if abs(measured - half) <= max(PAGE_SIZE, int(half * tolerance)):
            return "ok", "eviction-enforced node: tmpfs is the kernel default (half of %s)" % human(int(node_memory_bytes))
        return "mismatch", "eviction-enforced node: expected about %s (half the node's memory), df shows %s" % (human(half), human(measured))
    if measured == RUNTIME_DEFAULT_BYTES:
        return "mismatch", "df still shows the 64 MiB runtime default"
    return "ok", "eviction-enforced node: tmpfs is the kernel default, sizeLimit enforced by eviction"


# --------------------------------------------------------------------------- registered loops


def loop_items(loop_result):
    """The per-item results of a registered loop (or [] when the task was skipped)."""
    if not loop_result:
        return []
    if isinstance(loop_result, dict):
        return loop_result.get("results") or []
    return list(loop_result)


def df_by_workload(result, items=None):
    """{workload key: [df entries]} from one run of shm_df_info with ``workloads`` (each entry names its workload).

    A failed run counts against every one of ``items`` (the workloads it was given); a skipped one measured nothing.
    """
    if not result or result.get("skipped"):
        return {}
    if result.get("failed"):
        failed = {"method": "unavailable", "reason": result.get("msg") or "shm_df_info failed", "size_bytes": None}
        return {workload_key(item): [failed] for item in items or []}
    out = {}
    for entry in result.get("shm_df") or []:
        out.setdefault(workload_key(entry.get("workload") or {}), []).append(entry)
    return out


def df_targets(items):
    """[{kind, namespace, name, pods?}] of workload records, rollout results or resized refs: shm_df_info's ``workloads``."""
    return [dict(workload_ref(item), **({"pods": item["pods"]} if item.get("pods") else {})) for item in items or []]


def patch_groups(wave):
    """Group a wave's workloads by (namespace, kind): one shm_patch call per group, with their names."""
    groups = []
    index = {}
    for item in wave or []:
        key = (item.get("namespace"), item.get("kind"))
        if key not in index:
            index[key] = {"namespace": key[0], "kind": key[1], "names": []}
            groups.append(index[key])
        if item.get("name") not in index[key]["names"]:
            index[key]["names"].append(item.get("name"))
    return groups


def workload_refs(loop_result, actions=(PATCHED, RESTORED)):
    """[{kind, namespace, name}] of the workloads a loop of shm_patch calls changed."""
    return [workload_ref(r) for res in loop_items(loop_result) for r in res.get("results") or [] if r.get("action") in actions]


def resized_refs(loop_result):
    """[{kind, namespace, name, pods}] of the workloads a loop of shm_patch calls resized in place: the same pods to measure."""
    return [
        dict(workload_ref(r), pods=r.get("pods") or [])
        for res in loop_items(loop_result)
        for r in res.get("results") or []
        if r.get("action") == RESIZED and r.get("pods")
    ]


def untouched(waves, reason):
    """Records of the workloads of waves that were not started."""
    return [dict(workload_ref(item), reason=reason) for wave in waves or [] for item in wave]


# --------------------------------------------------------------------------- one wave


def _patched_records(patch_results):
    """({key: shm_patch record}, {key: error of a group call that returned no records})."""
    patched, group_errors = {}, {}
    for res in loop_items(patch_results):
        for record in res.get("results") or []:
            patched[workload_key(record)] = record
        # failed, or failed and let through by the role's failed_when: false (failed_when_result false, the module's msg kept)
        if res.get("failed") or (res.get("failed_when_result") is False and res.get("msg")):
            # a run that stopped (403, unreachable) reports only the records that finished: the rest are its error
            item = res.get("item") or {}
            for name in item.get("names") or []:
                key = workload_key(dict(item, name=name))
                if key not in patched:
                    group_errors[key] = res.get("msg") or "shm_patch failed"
    return patched, group_errors


def _measured_after(entries, record, node_info):
    """The df entries of a workload's new pods with their verdicts against the expected size."""
    expected = (record.get("after") or {}).get("effective_bytes")
    memory_backed = (record.get("after") or {}).get("state") in MEMORY_STATES
    measured = []
    for entry in entries:
        node = node_info.get(entry.get("node")) or {}
        # Only a memory-backed emptyDir depends on the node's enforcement; the runtime default is 64 MiB everywhere.
        enforcement = (node.get("expected_enforcement") or "sized") if memory_backed else "sized"
        if entry.get("size_bytes") is None:
            verdict, note = "unmeasured", entry.get("reason") or "no df figure"
        else:
            verdict, note = compare_size(entry.get("size_bytes"), expected, enforcement, node.get("memory_capacity_bytes"))
        measured.append(dict(_df_fields(entry), enforcement=enforcement, verdict=verdict, note=note))
    return measured


def _df_fields(entry):
    return {k: entry.get(k) for k in ("pod", "container", "node", "size_bytes", "method", "reason")}


def _with_measured(block, entries):
    sizes = [e["size_bytes"] for e in entries if e.get("size_bytes") is not None]
    return dict(block, measured_bytes=sizes[0] if sizes else None)


def _wave_outcome(record, rollout, measured, check_mode):
    """Count the record as failed (1) or not (0), and set its verdict where the wave decides it."""
    if record.get("action") == FAILED:
        return 1
    if rollout and rollout.get("status") in ROLLOUT_BAD_ENDS:
        record["reason"] = "rollout %s: %s" % (rollout.get("status"), rollout.get("message"))
        return 1
    if check_mode and record.get("action") in (WOULD_PATCH, WOULD_RESTORE, WOULD_RESIZE):
        record["verdict"] = "planned"
        record["verdict_note"] = "check mode: the API server accepted the change as a dry run; nothing was written"
    elif not measured and record.get("action") in (PATCHED, RESTORED, RESIZED) and not check_mode:
        record["verdict"] = "unmeasured"
        record["verdict_note"] = (rollout or {}).get("message") or "no running pod to measure"
    return 0


def broken(health_results):
    """{workload key: why} of the workloads a rollout_status look (wait=false) found unhealthy."""
    return {workload_key(res): "; ".join(res.get("problems") or []) for res in loop_items(health_results) if res.get("healthy") is False}


def healthy_items(wave, health_results):
    """The wave without the workloads that were broken before the run (they are left alone)."""
    unhealthy = broken(health_results)
    return [item for item in wave or [] if workload_key(item) not in unhealthy]


def merge_wave(plan_items, patch_results, rollout_results, df_before=None, df_after=None, nodes=None, check_mode=False, health=None):
    """One wave's workload records for the report, and how many failed.

    plan_items: the wave's records from the check-mode plan (shm_patch would_patch);
    patch_results: the registered loop of shm_patch calls (one per namespace/kind group);
    rollout_results: the registered rollout_status result (or None);
    df_before / df_after: what one run of shm_df_info with ``workloads`` registered;
    nodes: version_check_result.nodes (name, expected_enforcement, memory_capacity_bytes);
    health: the registered rollout_status look (wait=false) before the change: a workload that was
    broken then and not written is reported skipped with why, not failed.
    """
    node_info = {n.get("name"): n for n in nodes or []}
    patched, group_errors = _patched_records(patch_results)
    rollouts = {workload_key(res): res for res in (rollout_results or {}).get("results") or []}
    before_df, after_df = df_by_workload(df_before, plan_items), df_by_workload(df_after, plan_items)
    unhealthy = broken(health)
    records, failures = [], 0
    for item in plan_items or []:
        key = workload_key(item)
        record = dict(patched.get(key) or item)
        if item.get("target"):  # why remediate_target chose it (plugin_utils/targeting.py), for the report
            record["target"] = item["target"]
        if key in unhealthy and key not in patched:
            record.update(action=SKIPPED, reason="broken before the run, left alone (remediate_broken=skip): %s" % unhealthy[key])
            records.append(record)
            continue
        if key in group_errors:
            record.update(action="failed", error=group_errors[key], reason=group_errors[key])
        elif key not in patched:
            record.update(action="failed", error="shm_patch returned no result for this workload", reason="no result")
        rollout = rollouts.get(key)
        record["rollout"] = rollout and {"status": rollout.get("status"), "message": rollout.get("message"), "pods": rollout.get("pods") or []}
        record["measured_before"] = [_df_fields(e) for e in before_df.get(key, [])]
        if record.get("before") is not None:
            record["before"] = _with_measured(record["before"], record["measured_before"])
        record["measured"] = _measured_after(after_df.get(key, []), record, node_info)
        if record.get("after") is not None:
            record["after"] = _with_measured(record["after"], record["measured"])
        failures += _wave_outcome(record, rollout, record["measured"], check_mode)
        records.append(record)
    return {"records": records, "failures": failures}


# --------------------------------------------------------------------------- audit and failures


def _audit_entry(entry, item, node_info):
    """One df entry of an audited workload, with what this pod's node makes of its /dev/shm and the verdict."""
    node = node_info.get(entry.get("node")) or {}
    enforcement = node.get("expected_enforcement") or "sized"
    state = item.get("state")
    verdict, note, expected = None, entry.get("reason") or "", None
    if entry.get("size_bytes") is not None and state in MEMORY_STATES:
        # a memory emptyDir is what the pod's node makes of it: sized, or half the node's RAM with eviction
        expected = int(node["memory_capacity_bytes"]) // 2 if enforcement == "eviction" and node.get("memory_capacity_bytes") else item.get("effective_bytes")
        verdict, note = compare_size(entry["size_bytes"], item.get("effective_bytes"), enforcement, node.get("memory_capacity_bytes"))
    elif entry.get("size_bytes") is not None and state == "runtime_default":
        expected = RUNTIME_DEFAULT_BYTES
        verdict, note = compare_size(entry["size_bytes"], RUNTIME_DEFAULT_BYTES, "sized")
    return dict(_df_fields(entry), enforcement=enforcement, expected_bytes=expected, verdict=verdict, note=note)


def audit_records(workloads, df_loop=None, nodes=None, verify=False):
    """shm_info records with action 'audited' and the df of their running pods.

    Every measured pod is compared with what its own node makes of the workload's /dev/shm (a memory
    emptyDir on an eviction node is half the node's RAM; the runtime default is 64 MiB everywhere).
    With verify, a workload whose memory-backed /dev/shm should run pods and runs none is 'unverified'.
    """
    measured = df_by_workload(df_loop, workloads)
    node_info = {n.get("name"): n for n in nodes or []}
    out = []
    for item in workloads or []:
        record = dict(item, action="audited")
        record["reason"] = "; ".join(f.get("message", "") for f in needing_a_look(item.get("findings")))
        entries = [_audit_entry(e, item, node_info) for e in measured.get(workload_key(item), [])]
        record["measured"] = entries
        memory_backed = item.get("state") in MEMORY_STATES
        if verify and memory_backed and item.get("replicas") and not [e for e in entries if e.get("size_bytes") is not None]:
            # a workload that should run pods and runs none cannot prove its /dev/shm: say so, do not call it ok
            running = len({e.get("pod") for e in entries})
            record["verdict"] = "unverified"
            record["verdict_note"] = "%d of %d desired pods running with a measurable /dev/shm: nothing to compare" % (running, item["replicas"])
        out.append(record)
    return out


def failed_names(records):
    """'Kind ns/name: why' of the failed records of a remediation (patch failed, rollout failed or timed out)."""
    out = []
    for record in records or []:
        rollout = record.get("rollout") or {}
        name = "%s %s/%s" % (record.get("kind"), record.get("namespace"), record.get("name"))
        if record.get("action") == FAILED:
            out.append("%s: %s" % (name, record.get("error") or record.get("reason") or "failed"))
        elif rollout.get("status") in ROLLOUT_BAD_ENDS:
            out.append("%s: rollout %s: %s" % (name, rollout.get("status"), rollout.get("message")))
    return out
