# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet report: turn what each cluster's roles recorded into one report.

PURE: plain dicts in, plain dicts and strings out. Nothing here imports Ansible
or the kubernetes client, so every rule is unit-testable without a cluster.

Input, one dict per cluster (the ``shmfix_cluster`` fact the playbooks gather
from each cluster's hostvars, see roles/fleet_report)::

    {
      "name": "prod-eu",                      # inventory hostname
      "version_check": {...} | None,          # version_check_result
      "eviction_verify": {...} | None,        # eviction_verify_result
      "remediate": {...} | None,              # remediate_result
      "failure": {"phase", "message", "unreachable"} | None,
    }

Output of :func:`build_report` is what lands in report.json; report.md and the
summary table printed at the end of the play are rendered from it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

PAGE_SIZE = 4096
RUNTIME_DEFAULT_BYTES = 64 * 1024 * 1024

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_UNREACHABLE = "unreachable"
STATUS_NOT_RUN = "not_run"

# shm_patch actions (docs/module-contract.md) grouped the way the report shows them.
CHANGED_ACTIONS = ("patched", "would_patch", "restored", "would_restore")
SKIPPED_ACTIONS = ("skipped", "immutable")
FAILED_ACTIONS = ("failed",)
UNCHANGED_ACTIONS = ("unchanged",)

# Words that tell an unreachable API server from one that answered with an error.
UNREACHABLE_MARKERS = (
    "connection refused",
    "failed to establish a new connection",
    "max retries exceeded",
    "name or service not known",
    "no route to host",
    "timed out",
    "timeout",
    "network is unreachable",
    "cannot connect",
    "could not connect",
    "unreachable",
)

_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def human_bytes(value):
    """Binary-unit rendering of a byte count: 67108864 -> '64 MiB', None -> '-'."""
    if value is None or value == "":
        return "-"
    try:
        value = int(value)
    except (TypeError, ValueError):
        return str(value)
    if value < 0:
        return "-" + human_bytes(-value)
    for unit, size in _UNITS:
        if value >= size:
            amount = value / float(size)
            if amount == int(amount):
                return "%d %s" % (int(amount), unit)
            return "%.1f %s" % (amount, unit)
    return "%d B" % value


def page_round(value):
    """tmpfs rounds its size up to whole pages: what df shows for a size= of value bytes."""
    if value is None:
        return None
    return math.ceil(int(value) / float(PAGE_SIZE)) * PAGE_SIZE


def looks_unreachable(message):
    """True when an error message says the API server could not be reached at all."""
    text = (message or "").lower()
    return any(marker in text for marker in UNREACHABLE_MARKERS)


def classify_failure(result, phase):
    """Turn a failed task result (as seen in rescue: ansible_failed_result) into a failure record."""
    result = result or {}
    message = result.get("msg") or result.get("message") or "failed without a message"
    status = result.get("status")
    reason = result.get("reason")
    if result.get("unreachable") or reason == "Unreachable":
        unreachable = True
    elif status or reason:
        unreachable = False
    else:
        unreachable = looks_unreachable(message)
    return {
        "phase": phase,
        "message": str(message),
        "unreachable": unreachable,
        "status": status,
        "reason": reason,
    }


def compare_size(measured, expected, enforcement, node_memory_bytes=None, tolerance=0.02):
    """Verdict on one df figure.

    ``enforcement`` sized: the tmpfs must be exactly the expected effective size (rounded
    up to a page). eviction: the tmpfs is the kernel default (half the node's RAM), so df
    must show about half the node's memory and not the 64 MiB runtime default; the
    sizeLimit is then enforced by eviction only.

    Returns (verdict, note) with verdict one of ok, mismatch, unmeasured.
    """
    if measured is None:
        return "unmeasured", "no df figure"
    measured = int(measured)
    if enforcement == "eviction":
        if node_memory_bytes:
            half = int(node_memory_bytes) // 2
            if abs(measured - half) <= max(PAGE_SIZE, int(half * tolerance)):
                return "ok", "eviction-enforced node: tmpfs is the kernel default (half of %s)" % human_bytes(node_memory_bytes)
            return "mismatch", "eviction-enforced node: expected about %s (half the node's memory), df shows %s" % (
                human_bytes(half),
                human_bytes(measured),
            )
        if measured == RUNTIME_DEFAULT_BYTES:
            return "mismatch", "df still shows the 64 MiB runtime default"
        return "ok", "eviction-enforced node: tmpfs is the kernel default, sizeLimit enforced by eviction"
    if expected is None:
        return "unmeasured", "expected size unknown"
    want = page_round(expected)
    if abs(measured - want) <= PAGE_SIZE:
        return "ok", "df shows the expected %s" % human_bytes(want)
    return "mismatch", "expected %s, df shows %s" % (human_bytes(want), human_bytes(measured))


def _workload_key(item):
    return "%s/%s/%s" % (item.get("kind"), item.get("namespace"), item.get("name"))


def _size_pair(block):
    block = block or {}
    return {
        "state": block.get("state"),
        "size_limit_bytes": block.get("size_limit_bytes"),
        "effective_bytes": block.get("effective_bytes"),
        "measured_bytes": block.get("measured_bytes"),
    }


def _workload_entry(item):
    before = _size_pair(item.get("before"))
    after = _size_pair(item.get("after"))
    measured = []
    for df in item.get("measured") or []:
        measured.append(
            {
                "pod": df.get("pod"),
                "container": df.get("container"),
                "node": df.get("node"),
                "enforcement": df.get("enforcement"),
                "size_bytes": df.get("size_bytes"),
                "method": df.get("method"),
                "verdict": df.get("verdict"),
                "note": df.get("note") or df.get("reason"),
            }
        )
    verdicts = {m.get("verdict") for m in measured if m.get("verdict")}
    if "mismatch" in verdicts:
        verdict = "mismatch"
    elif "ok" in verdicts:
        verdict = "ok"
    elif item.get("verdict"):
        verdict = item["verdict"]
    else:
        verdict = "unmeasured"
    rollout = item.get("rollout") or {}
    return {
        "kind": item.get("kind"),
        "namespace": item.get("namespace"),
        "name": item.get("name"),
        "action": item.get("action"),
        "reason": item.get("reason") or item.get("error") or "",
        "managed_by": item.get("managed_by"),
        "before": before,
        "after": after,
        "rollout": {"status": rollout.get("status"), "message": rollout.get("message")},
        "measured": measured,
        "measured_bytes": [m["size_bytes"] for m in measured if m.get("size_bytes") is not None],
        "verdict": verdict,
        "verdict_note": item.get("verdict_note") or "",
        "snippet": item.get("snippet"),
        "findings": item.get("findings") or [],
    }


def _nodes(version_check):
    nodes = []
    for node in (version_check or {}).get("nodes") or []:
        nodes.append(
            {
                "name": node.get("name"),
                "kubelet_version": node.get("kubelet_version"),
                "tier": node.get("tier"),
                "expected_enforcement": node.get("expected_enforcement"),
                "verdict": node.get("verdict", "ok"),
                "message": node.get("message", ""),
            }
        )
    return nodes


def _enforcement(eviction_verify):
    if not eviction_verify or not eviction_verify.get("enabled", True):
        return {"proven": None, "summary": "not checked", "probes": []}
    probes = []
    for probe in eviction_verify.get("probes") or []:
        probes.append(
            {
                "name": probe.get("name"),
                "node": probe.get("node"),
                "expected": probe.get("expected"),
                "outcome": probe.get("outcome"),
                "ok": bool(probe.get("ok")),
                "size_limit_bytes": probe.get("size_limit_bytes"),
                "df_size_bytes": probe.get("df_size_bytes"),
                "write_exit_code": probe.get("write_exit_code"),
                "write_message": probe.get("write_message"),
                "event_message": probe.get("event_message"),
                "elapsed_seconds": probe.get("elapsed_seconds"),
                "reason": probe.get("reason", ""),
            }
        )
    proven = bool(probes) and all(p["ok"] for p in probes)
    summary = ", ".join("%s=%s" % (p.get("node") or p.get("name"), p.get("outcome")) for p in probes) or "no probe ran"
    return {"proven": proven, "summary": summary, "probes": probes}


def build_cluster(record):
    """One cluster's section of the report from what its roles recorded."""
    record = record or {}
    name = record.get("name") or "?"
    failure = record.get("failure")
    version_check = record.get("version_check") or {}
    remediate = record.get("remediate") or {}
    eviction_verify = record.get("eviction_verify")

    if failure:
        status = STATUS_UNREACHABLE if failure.get("unreachable") else STATUS_FAILED
    elif not version_check and not remediate and not eviction_verify:
        status = STATUS_NOT_RUN
        failure = {"phase": "none", "message": "the cluster recorded no result (was it in the play?)", "unreachable": False}
    else:
        status = STATUS_OK

    changed, skipped, failed, unchanged, audited = [], [], [], [], []
    for item in remediate.get("workloads") or []:
        entry = _workload_entry(item)
        action = entry["action"]
        if action == "audited":
            entry.update(state=item.get("state"), effective_bytes=item.get("effective_bytes"), effective_note=item.get("effective_note"))
            audited.append(entry)
        elif action in CHANGED_ACTIONS:
            changed.append(entry)
        elif action in SKIPPED_ACTIONS:
            skipped.append(entry)
        elif action in FAILED_ACTIONS or (entry["rollout"]["status"] in ("failed", "timeout")):
            failed.append(entry)
        else:
            unchanged.append(entry)
    # A workload whose rollout failed after a patch counts as failed, not changed.
    still_changed = []
    for entry in changed:
        if entry["rollout"]["status"] in ("failed", "timeout"):
            failed.append(entry)
        else:
            still_changed.append(entry)
    changed = still_changed
    untouched = [
        {"kind": u.get("kind"), "namespace": u.get("namespace"), "name": u.get("name"), "reason": u.get("reason", "")} for u in remediate.get("untouched") or []
    ]

    enforcement = _enforcement(eviction_verify)
    mismatches = [e for e in changed + audited if e["verdict"] == "mismatch"]
    if status == STATUS_OK and (failed or mismatches or enforcement["proven"] is False or remediate.get("stopped")):
        status = STATUS_FAILED
        reasons = []
        if failed:
            reasons.append("%d workload(s) failed" % len(failed))
        if mismatches:
            reasons.append("%d workload(s) measured a different /dev/shm than expected" % len(mismatches))
        if enforcement["proven"] is False:
            reasons.append("sizeLimit enforcement not proven (%s)" % enforcement["summary"])
        if remediate.get("stopped"):
            reasons.append(remediate.get("stopped_reason") or "remediation stopped")
        failure = {"phase": "result", "message": "; ".join(reasons), "unreachable": False}

    return {
        "name": name,
        "status": status,
        "failure": failure,
        "server_version": version_check.get("server_version"),
        "min_version": version_check.get("min_version"),
        "tiers": version_check.get("tiers") or {},
        "nodes": _nodes(version_check),
        "enforcement": enforcement,
        "audit": remediate.get("audit_summary") or {},
        "waves": remediate.get("waves", 0),
        "stopped": bool(remediate.get("stopped")),
        "stopped_reason": remediate.get("stopped_reason") or "",
        "changed": changed,
        "skipped": skipped,
        "failed": failed,
        "unchanged": unchanged,
        "audited": audited,
        "untouched": untouched,
        "mode": remediate.get("mode") or ("remediate" if remediate else None),
        "counts": {
            "changed": len(changed),
            "skipped": len(skipped),
            "failed": len(failed),
            "unchanged": len(unchanged),
            "untouched": len(untouched),
            "audited": len(audited),
            "measured_ok": len([e for e in changed + audited if e["verdict"] == "ok"]),
            "df_checked": len(changed) + len([e for e in audited if e["verdict"] in ("ok", "mismatch")]),
            "mismatch": len(mismatches),
        },
    }


def build_report(records, generated_at=None, playbook=None, check_mode=False):
    """The whole fleet report (report.json) from one record per cluster."""
    clusters = [build_cluster(r) for r in records or []]
    clusters.sort(key=lambda c: c["name"])
    totals = {
        "clusters": len(clusters),
        "ok": len([c for c in clusters if c["status"] == STATUS_OK]),
        "failed": len([c for c in clusters if c["status"] == STATUS_FAILED]),
        "unreachable": len([c for c in clusters if c["status"] == STATUS_UNREACHABLE]),
        "not_run": len([c for c in clusters if c["status"] == STATUS_NOT_RUN]),
        "changed": sum(c["counts"]["changed"] for c in clusters),
        "skipped": sum(c["counts"]["skipped"] for c in clusters),
        "failed_workloads": sum(c["counts"]["failed"] for c in clusters),
    }
    return {
        "schema": 1,
        "generated_at": generated_at,
        "playbook": playbook,
        "check_mode": bool(check_mode),
        "totals": totals,
        "failed_clusters": [c["name"] for c in clusters if c["status"] != STATUS_OK],
        "clusters": clusters,
    }


def _tiers_text(cluster):
    tiers = cluster.get("tiers") or {}
    if not tiers:
        return "-"
    return ",".join("%s:%s" % (k, tiers[k]) for k in sorted(tiers))


def summary_rows(report):
    """Rows (header first) of the short table printed at the end of the play."""
    rows = [["CLUSTER", "STATUS", "SERVER", "KUBELET TIERS", "ENFORCEMENT", "CHANGED", "SKIPPED", "FAILED", "DF OK", "NOTE"]]
    for cluster in report.get("clusters") or []:
        counts = cluster["counts"]
        note = ""
        if cluster.get("failure"):
            note = cluster["failure"].get("message") or ""
            if len(note) > 70:
                note = note[:67] + "..."
        rows.append(
            [
                cluster["name"],
                cluster["status"],
                cluster.get("server_version") or "-",
                _tiers_text(cluster),
                cluster["enforcement"]["summary"] if cluster["enforcement"]["proven"] is not None else "not checked",
                str(counts["changed"]),
                str(counts["skipped"]),
                str(counts["failed"]),
                "%d/%d" % (counts["measured_ok"], counts["df_checked"]),
                note,
            ]
        )
    return rows


def render_table(rows):
    """Fixed-width text table of rows (lists of strings)."""
    if not rows:
        return ""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(report):
    """The summary table as a list of lines (what the play prints)."""
    return render_table(summary_rows(report)).split("\n")


# --------------------------------------------------------------------------- version_check


def _parse_version(text):
    # versions.py is pure too; imported lazily so this module stays importable on its own.
    from ansible_collections.shmfix.k8s.plugins.module_utils import versions

    return versions.parse_version(text)


def _below(version, minimum):
    try:
        return _parse_version(version) < _parse_version(minimum)
    except ValueError:
        return None


AUTHORITATIVE_SOURCES = ("configz", "label")


def grade_versions(cluster_info, min_version="1.20", below_min_policy="fail", gated_policy="warn", eviction_policy="warn", enforcement_label=None):
    """Grade the server and every kubelet of one cluster (cluster_info's result) against the policy.

    A kubelet below min_version, or in the gated tier (1.20-1.21, SizeMemoryBackedVolumes alpha), or one
    that will only enforce sizeLimit by eviction, gets verdict ``fail`` or ``warn`` as the matching policy
    says (``ok`` otherwise). Returns the ``version_check_result`` the role records.

    enforcement_label: a node label whose value (sized or eviction) states the node's enforcement
    (when the kubelets' feature gates cannot be read). ``expected_source`` says where each node's
    expected enforcement comes from: configz, label, or the default for its version (an assumption).
    """
    cluster_info = cluster_info or {}
    server = cluster_info.get("server_version") or {}
    server_text = server.get("git_version") if isinstance(server, dict) else server
    problems, warnings = [], []

    server_below = _below(server_text, min_version) if server_text else None
    if server_below:
        message = "API server %s is below the minimum version %s" % (server_text, min_version)
        (problems if below_min_policy == "fail" else warnings).append(message)

    nodes = []
    enforcement = {}
    for node in cluster_info.get("nodes") or []:
        version = node.get("kubelet_version")
        tier = node.get("tier")
        expected = node.get("expected_enforcement")
        label_value = (node.get("labels") or {}).get(enforcement_label) if enforcement_label else None
        if label_value in ("sized", "eviction"):
            expected, source = label_value, "label"
        elif str(node.get("feature_gates_source") or "").startswith("configz"):
            # The kubelet's own configuration was read (a gate it does not set has its version's default).
            source = "configz"
        else:
            source = "version default"
        below = _below(version, min_version) if version else None
        verdict, message = "ok", ""
        if below:
            verdict = below_min_policy
            message = "kubelet %s is below the minimum version %s (tier %s: sizeLimit enforced by eviction only)" % (version, min_version, tier)
        elif tier == "gated":
            verdict = gated_policy
            message = "kubelet %s has SizeMemoryBackedVolumes as an alpha gate (%s): sizeLimit %s" % (
                version,
                "enabled" if expected == "sized" else "disabled",
                "sizes the tmpfs" if expected == "sized" else "is enforced by eviction only",
            )
        elif expected == "eviction":
            verdict = eviction_policy
            message = "kubelet %s has SizeMemoryBackedVolumes disabled: /dev/shm shows half the node's memory and sizeLimit is enforced by eviction" % version
        if verdict == "fail":
            problems.append("node %s: %s" % (node.get("name"), message))
        elif verdict == "warn":
            warnings.append("node %s: %s" % (node.get("name"), message))
        enforcement[node.get("name")] = expected
        nodes.append(
            {
                "name": node.get("name"),
                "kubelet_version": version,
                "tier": tier,
                "expected_enforcement": expected,
                "expected_source": source,
                "feature_gates": node.get("feature_gates") or {},
                "feature_gates_source": node.get("feature_gates_source"),
                "memory_capacity_bytes": node.get("memory_capacity_bytes"),
                "allocatable_memory_bytes": node.get("allocatable_memory_bytes"),
                "hostname": (node.get("labels") or {}).get("kubernetes.io/hostname", node.get("name")),
                "below_min_version": bool(below),
                "verdict": verdict,
                "message": message,
            }
        )
    tiers = cluster_info.get("tiers")
    if not tiers:
        tiers = {}
        for node in nodes:
            tiers[node["tier"]] = tiers.get(node["tier"], 0) + 1
    return {
        "server_version": server_text,
        "server_below_min_version": bool(server_below),
        "min_version": str(min_version),
        "policy": {"below_min": below_min_policy, "gated": gated_policy, "eviction": eviction_policy},
        "nodes": nodes,
        "tiers": tiers,
        "node_enforcement": enforcement,
        "problems": problems,
        "warnings": warnings,
        "ok": not problems,
    }


def _probe_key(node, per):
    if per == "node":
        return node["name"]
    mode = node.get("expected_enforcement")
    if per == "mode":
        return mode
    # per == "version": nodes alike (same kubelet minor version, same expected enforcement and
    # where it comes from) behave alike; one canary stands for each such group.
    try:
        major, minor, _patch = _parse_version(node.get("kubelet_version"))
        version = "v%d.%d" % (major, minor)
    except (ValueError, TypeError):
        version = str(node.get("kubelet_version"))
    return "%s-%s" % (version, mode)


def canary_probes(version_check_result, node_selector=None, per="version"):
    """Canary probes for the nodes of one cluster.

    per='version': one probe per group of nodes with the same kubelet minor version and expected
    enforcement; per='mode': one per expected enforcement; per='node': one per node. Each probe is
    pinned to the first node of its group by the kubernetes.io/hostname label (plus node_selector)
    and lists the nodes it stands for in ``covers``. ``expect`` is set only when the expected
    enforcement is known (feature gates read from configz, or stated by a node label); for a
    version default it is an assumption the canary checks, not a requirement.
    """
    probes = []
    index = {}
    for node in (version_check_result or {}).get("nodes") or []:
        mode = node.get("expected_enforcement")
        if not mode:
            continue
        key = _probe_key(node, per)
        if key in index:
            index[key]["covers"].append(node["name"])
            continue
        selector = dict(node_selector or {})
        selector["kubernetes.io/hostname"] = node.get("hostname") or node["name"]
        name = re.sub(r"[^a-z0-9-]+", "-", str(key).lower()).strip("-")
        probe = {
            "name": name,
            "node_selector": selector,
            "expect": mode if node.get("expected_source") in AUTHORITATIVE_SOURCES else None,
            "assumed": mode,
            "covers": [node["name"]],
        }
        index[key] = probe
        probes.append(probe)
    return probes


def proven_nodes(nodes, eviction_verify_result):
    """nodes (version_check_result.nodes) with expected_enforcement replaced by what the canaries proved.

    A probe that showed ``sized`` or ``evicted`` sets the enforcement of every node it covers
    (``expected_source: canary``).
    """
    proven = {}
    for probe in (eviction_verify_result or {}).get("probes") or []:
        mode = {"sized": "sized", "evicted": "eviction"}.get(probe.get("outcome"))
        if not mode:
            continue
        for name in probe.get("covers") or ([probe.get("node")] if probe.get("node") else []):
            proven[name] = mode
    out = []
    for node in nodes or []:
        node = dict(node)
        if node.get("name") in proven:
            node["expected_enforcement"] = proven[node["name"]]
            node["expected_source"] = "canary"
        out.append(node)
    return out


# --------------------------------------------------------------------------- remediate


def workload_key(item):
    return _workload_key(item)


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


def _loop_items(loop_result):
    """The per-item results of a registered loop (or [] when the task was skipped)."""
    if not loop_result:
        return []
    if isinstance(loop_result, dict):
        return loop_result.get("results") or []
    return list(loop_result)


def _df_by_key(loop_result):
    out = {}
    for res in _loop_items(loop_result):
        item = res.get("item") or {}
        key = _workload_key(item)
        if res.get("skipped"):
            continue
        entries = ((res.get("ansible_facts") or {}).get("shm_df")) or []
        if res.get("failed"):
            entries = [{"method": "unavailable", "reason": res.get("msg") or "shm_df_facts failed", "size_bytes": None}]
        out.setdefault(key, []).extend(entries)
    return out


def merge_wave(plan_items, patch_results, rollout_results, df_before=None, df_after=None, nodes=None, check_mode=False):
    """One wave's workload records for the report, and how many failed (pure).

    plan_items: the wave's records from the check-mode plan (shm_patch would_patch);
    patch_results: the registered loop of shm_patch calls (one per namespace/kind group);
    rollout_results: the registered rollout_status result (or None);
    df_before / df_after: registered loops of shm_df_facts whose item is a workload;
    nodes: version_check_result.nodes (name, expected_enforcement, memory_capacity_bytes).
    """
    node_info = {n.get("name"): n for n in nodes or []}
    patched = {}
    group_errors = {}
    for res in _loop_items(patch_results):
        for record in res.get("results") or []:
            patched[_workload_key(record)] = record
        if res.get("failed") and not res.get("results"):
            item = res.get("item") or {}
            for name in item.get("names") or []:
                group_errors["%s/%s/%s" % (item.get("kind"), item.get("namespace"), name)] = res.get("msg") or "shm_patch failed"
    rollouts = {}
    for res in (rollout_results or {}).get("results") or []:
        rollouts[_workload_key(res)] = res
    before_df = _df_by_key(df_before)
    after_df = _df_by_key(df_after)

    records = []
    failures = 0
    for item in plan_items or []:
        key = _workload_key(item)
        record = dict(patched.get(key) or item)
        if key in group_errors:
            record.update(action="failed", error=group_errors[key], reason=group_errors[key])
        elif key not in patched:
            record.update(action="failed", error="shm_patch returned no result for this workload", reason="no result")
        rollout = rollouts.get(key)
        record["rollout"] = rollout and {"status": rollout.get("status"), "message": rollout.get("message"), "pods": rollout.get("pods") or []}
        record["measured_before"] = [
            {"pod": e.get("pod"), "container": e.get("container"), "node": e.get("node"), "size_bytes": e.get("size_bytes"), "method": e.get("method")}
            for e in before_df.get(key, [])
        ]
        if record.get("before") is not None:
            sizes = [e["size_bytes"] for e in record["measured_before"] if e.get("size_bytes") is not None]
            record["before"] = dict(record["before"], measured_bytes=sizes[0] if sizes else None)
        expected = (record.get("after") or {}).get("effective_bytes")
        memory_backed = (record.get("after") or {}).get("state") in ("sized", "unbounded_memory")
        measured = []
        for entry in after_df.get(key, []):
            node = node_info.get(entry.get("node")) or {}
            # Only a memory-backed emptyDir depends on the node's enforcement; the runtime default is 64 MiB everywhere.
            enforcement = (node.get("expected_enforcement") or "sized") if memory_backed else "sized"
            if entry.get("size_bytes") is None:
                verdict, note = "unmeasured", entry.get("reason") or "no df figure"
            else:
                verdict, note = compare_size(entry.get("size_bytes"), expected, enforcement, node.get("memory_capacity_bytes"))
            measured.append(
                {
                    "pod": entry.get("pod"),
                    "container": entry.get("container"),
                    "node": entry.get("node"),
                    "enforcement": enforcement,
                    "size_bytes": entry.get("size_bytes"),
                    "method": entry.get("method"),
                    "verdict": verdict,
                    "note": note,
                }
            )
        record["measured"] = measured
        if record.get("after") is not None:
            sizes = [m["size_bytes"] for m in measured if m.get("size_bytes") is not None]
            record["after"] = dict(record["after"], measured_bytes=sizes[0] if sizes else None)
        if record.get("action") == "failed":
            failures += 1
        elif rollout and rollout.get("status") in ("failed", "timeout"):
            failures += 1
            record["reason"] = "rollout %s: %s" % (rollout.get("status"), rollout.get("message"))
        elif check_mode and record.get("action") in ("would_patch", "would_restore"):
            record["verdict"] = "planned"
            record["verdict_note"] = "check mode: the API server accepted the change as a dry run; nothing was written"
        elif not measured and record.get("action") in ("patched", "restored") and not check_mode:
            note = (rollout or {}).get("message") or "no running pod to measure"
            record["verdict"] = "unmeasured"
            record["verdict_note"] = note
        records.append(record)
    return {"records": records, "failures": failures}


def untouched(waves, reason):
    """Records of the workloads of waves that were not started."""
    out = []
    for wave in waves or []:
        for item in wave:
            out.append({"kind": item.get("kind"), "namespace": item.get("namespace"), "name": item.get("name"), "reason": reason})
    return out


def workload_refs(loop_result, actions=("patched", "restored")):
    """[{kind, namespace, name}] of the workloads a loop of shm_patch calls changed (pure)."""
    refs = []
    for res in _loop_items(loop_result):
        for record in res.get("results") or []:
            if record.get("action") in actions:
                refs.append({"kind": record.get("kind"), "namespace": record.get("namespace"), "name": record.get("name")})
    return refs


def audit_records(workloads, df_loop=None, nodes=None, verify=False):
    """shm_info records with action 'audited' and the df of their running pods (pure).

    With verify, the df of every workload whose /dev/shm is a memory-backed emptyDir is compared
    with its expected effective size (per node enforcement), as after a remediation.
    """
    measured = _df_by_key(df_loop)
    node_info = {n.get("name"): n for n in nodes or []}
    out = []
    for item in workloads or []:
        record = dict(item)
        record["action"] = "audited"
        record["reason"] = "; ".join(f.get("message", "") for f in item.get("findings") or [] if f.get("severity") in ("error", "warning"))
        memory_backed = item.get("state") in ("sized", "unbounded_memory")
        entries = []
        for e in measured.get(_workload_key(item), []):
            verdict, note = None, e.get("reason") or ""
            if verify and memory_backed and e.get("size_bytes") is not None:
                node = node_info.get(e.get("node")) or {}
                verdict, note = compare_size(
                    e.get("size_bytes"), item.get("effective_bytes"), node.get("expected_enforcement") or "sized", node.get("memory_capacity_bytes")
                )
            entries.append(
                {
                    "pod": e.get("pod"),
                    "container": e.get("container"),
                    "node": e.get("node"),
                    "size_bytes": e.get("size_bytes"),
                    "method": e.get("method"),
                    "verdict": verdict,
                    "note": note,
                }
            )
        record["measured"] = entries
        out.append(record)
    return out


def failed_names(records):
    """'Kind ns/name: why' of the failed records of a remediation (patch failed, rollout failed or timed out)."""
    out = []
    for record in records or []:
        rollout = record.get("rollout") or {}
        if record.get("action") == "failed":
            out.append(
                "%s %s/%s: %s" % (record.get("kind"), record.get("namespace"), record.get("name"), record.get("error") or record.get("reason") or "failed")
            )
        elif rollout.get("status") in ("failed", "timeout"):
            out.append(
                "%s %s/%s: rollout %s: %s" % (record.get("kind"), record.get("namespace"), record.get("name"), rollout.get("status"), rollout.get("message"))
            )
    return out
