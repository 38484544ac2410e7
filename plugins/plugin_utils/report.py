# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the fleet_report role: turn what each cluster's roles recorded into one report.

PURE: plain dicts in, plain dicts and strings out. Nothing here imports Ansible
or the kubernetes client, so every rule is unit-testable without a cluster. The filters of
plugins/filter/report.py are thin wrappers around these functions.

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

from ansible_collections.shmfix.k8s.plugins.module_utils.findings import needing_a_look
from ansible_collections.shmfix.k8s.plugins.module_utils.inplace import strategy_note
from ansible_collections.shmfix.k8s.plugins.module_utils.outcomes import CHANGED_ACTIONS, FAILED, ROLLOUT_BAD_ENDS, SKIPPED_ACTIONS
from ansible_collections.shmfix.k8s.plugins.plugin_utils.remediation import workload_ref

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_UNREACHABLE = "unreachable"
STATUS_NOT_RUN = "not_run"
VERSION_DEFAULT = "default for the kubelet version"  # how cluster_info's feature_gates_source starts when the gates were not read


# Words that tell an unreachable API server from one that answered with an error.
UNREACHABLE_MARKERS = ("connection refused", "failed to establish a new connection", "max retries exceeded", "name or service not known", "no route to host")
UNREACHABLE_MARKERS += ("timed out", "timeout", "network is unreachable", "cannot connect", "could not connect", "unreachable")


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
    elif status or reason or "assertion" in result:
        # a failed assert (the remediate role's "N workload(s) failed: ... timed out progressing") is no transport error
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


def _size_pair(block):
    block = block or {}
    return {
        "state": block.get("state"),
        "size_limit_bytes": block.get("size_limit_bytes"),
        "effective_bytes": block.get("effective_bytes"),
        "measured_bytes": block.get("measured_bytes"),
    }


def _reason(item):
    """Why: the reason, with the API server's own message when it refused the write ('write refused' alone says nothing)."""
    reason, error = item.get("reason") or "", item.get("error") or ""
    if error and error not in reason:
        return "%s: %s" % (reason, error) if reason else error
    return reason


def _df_label(df):
    """pod/container of a df entry (a pod with two containers has two entries)."""
    return "%s/%s" % (df.get("pod"), df["container"]) if df.get("container") else str(df.get("pod"))


def _df_entry(df):
    entry = {k: df.get(k) for k in ("pod", "container", "node", "enforcement", "size_bytes", "method", "verdict")}
    entry.update(label=_df_label(df), note=df.get("note") or df.get("reason") or ("df %s" % df["method"] if df.get("method") else ""))
    return entry


def _unmeasured_why(item, measured):
    """Why no df figure shows (empty when one does): what the df entries said, else the verdict's note."""
    if any(m.get("size_bytes") is not None for m in measured):
        return ""
    notes = [m["note"] for m in measured if m.get("note")]
    if notes:
        return "; ".join(sorted(set(notes)))
    return item.get("verdict_note") or ((item.get("rollout") or {}).get("message")) or "no running pod to measure"


def _before_why(item, measured_before):
    if "measured_before" not in item or any(m.get("size_bytes") is not None for m in measured_before):
        return ""
    notes = sorted({m["note"] for m in measured_before if m.get("note")})
    return "; ".join(notes) if notes else "no running pod was measured before the change"


def _verdict(item, measured):
    verdicts = {m.get("verdict") for m in measured if m.get("verdict")}
    if "mismatch" in verdicts:
        return "mismatch"
    if "ok" in verdicts:
        return "ok"
    return item.get("verdict") or "unmeasured"


def _workload_entry(item):
    measured = [_df_entry(df) for df in item.get("measured") or []]
    measured_before = [_df_entry(df) for df in item.get("measured_before") or []]
    rollout = item.get("rollout") or {}
    concerns = [f.get("message", "") for f in needing_a_look(item.get("findings"))]
    return {
        "kind": item.get("kind"),
        "namespace": item.get("namespace"),
        "name": item.get("name"),
        "action": item.get("action"),
        "reason": _reason(item),
        "managed_by": item.get("managed_by"),
        "before": _size_pair(item.get("before")),
        "after": _size_pair(item.get("after")),
        "rollout": {"status": rollout.get("status"), "message": rollout.get("message")},
        # writes refused because the object had changed since it was read (a concurrent edit), then re-read and re-planned
        "conflict_retries": int(item.get("conflict_retries") or 0),
        # how a changed workload was fixed: "resized in place" or "rolled out (why not in place)"
        "strategy": strategy_note(item) if item.get("action") in CHANGED_ACTIONS else None,
        "measured": measured,
        "measured_bytes": [m["size_bytes"] for m in measured if m.get("size_bytes") is not None],
        "measured_before": measured_before,
        "unmeasured_why": _unmeasured_why(item, measured),
        "before_unmeasured_why": _before_why(item, measured_before),
        "verdict": _verdict(item, measured),
        "verdict_note": item.get("verdict_note") or "",
        "snippet": item.get("snippet"),
        # remediate_target: why the plan's change was made or left ({target, level, selected, why}; None with target all)
        "target": item.get("target") if (item.get("target") or {}).get("target") not in (None, "all") else None,
        "findings": item.get("findings") or [],
        # the warnings and errors of the audit: a workload left as is with none of them is fine
        "concerns": concerns,
        "fine": not concerns,
    }


def _proofs(enforcement):
    """{node: (mode the canaries proved, probe name)} from the probes of the report."""
    proofs = {}
    for probe in enforcement.get("probes") or []:
        mode = {"sized": "sized", "evicted": "eviction"}.get(probe.get("outcome"))
        for name in probe.get("covers") or ([probe["node"]] if probe.get("node") else []):
            proofs[name] = (mode, probe.get("name"), probe.get("outcome"))
    return proofs


def _source_note(node, proof):
    """Where the node's expected enforcement comes from, and why when it is only assumed."""
    source, gates = node.get("expected_source"), node.get("feature_gates_source") or ""
    if source == "label":
        note = "stated by a node label"
    elif source == "configz" or (source is None and gates.startswith("configz")):
        note = "read from the kubelet's configuration (configz)"
    else:
        why = gates[len(VERSION_DEFAULT) :].strip(" ()") if gates.startswith(VERSION_DEFAULT) else gates
        note = "assumed from the default of kubelet %s, feature gates not read: %s" % (node.get("kubelet_version"), why or "no reason recorded")
    if proof:
        mode, probe, outcome = proof
        if mode is None:
            note += "; canary %s: %s, nothing proven" % (probe, outcome)
        elif mode != node.get("expected_enforcement"):
            note += "; canary %s proved %s, not %s" % (probe, mode, node.get("expected_enforcement"))
        else:
            note += "; proven by canary %s" % probe
    return note


def _nodes(version_check, enforcement):
    nodes, proofs = [], _proofs(enforcement)
    for node in (version_check or {}).get("nodes") or []:
        source, gates = node.get("expected_source"), node.get("feature_gates_source") or ""
        proof = proofs.get(node.get("name"))
        nodes.append(
            {
                "name": node.get("name"),
                "kubelet_version": node.get("kubelet_version"),
                "tier": node.get("tier"),
                "expected_enforcement": node.get("expected_enforcement"),
                "expected_source": source,
                "feature_gates_source": node.get("feature_gates_source"),
                "assumed": source == "version default" or (source is None and bool(gates) and not gates.startswith("configz")),
                "source_note": _source_note(node, proof),
                "proven_enforcement": proof[0] if proof else None,
                "verdict": node.get("verdict", "ok"),
                "message": node.get("message", ""),
            }
        )
    return nodes


# What the report keeps of a canary probe's result (besides ok, reason and covers).
PROBE_KEYS = "name node expected outcome size_limit_bytes df_size_bytes write_exit_code write_message event_message elapsed_seconds".split()  # noqa: SIM905


def _enforcement(eviction_verify):
    if not eviction_verify or not eviction_verify.get("enabled", True):
        return {"proven": None, "summary": "not checked", "probes": []}
    probes = []
    for probe in eviction_verify.get("probes") or []:
        entry = {key: probe.get(key) for key in PROBE_KEYS}
        entry.update(ok=bool(probe.get("ok")), reason=probe.get("reason", ""), covers=probe.get("covers") or ([probe["node"]] if probe.get("node") else []))
        probes.append(entry)
    proven = bool(probes) and all(p["ok"] for p in probes)
    summary = ", ".join("%s=%s" % (p.get("node") or p.get("name"), p.get("outcome")) for p in probes) or "no probe ran"
    leftovers = eviction_verify.get("leftovers") or {}
    gone = sorted(name for name, outcome in leftovers.items() if outcome != "live")
    if gone:
        summary += "; canary namespaces left by earlier runs: %s" % ", ".join("%s %s" % (name, leftovers[name]) for name in gone)
    return {"proven": proven, "summary": summary, "probes": probes, "leftovers": leftovers}


def _cluster_status(record):
    """(status, failure) of a cluster from what it recorded, before its results are looked at."""
    failure = record.get("failure")
    if failure:
        return (STATUS_UNREACHABLE if failure.get("unreachable") else STATUS_FAILED), failure
    if not record.get("version_check") and not record.get("remediate") and not record.get("eviction_verify"):
        return STATUS_NOT_RUN, {"phase": "none", "message": "the cluster recorded no result (was it in the play?)", "unreachable": False}
    return STATUS_OK, None


def _sort_workloads(remediate):
    """The remediate role's workload records sorted into changed, skipped, failed, unchanged, audited."""
    groups = {"changed": [], "skipped": [], "failed": [], "unchanged": [], "audited": []}
    for item in remediate.get("workloads") or []:
        entry = _workload_entry(item)
        action, rollout_failed = entry["action"], entry["rollout"]["status"] in ROLLOUT_BAD_ENDS
        if action == "audited":
            entry.update(state=item.get("state"), effective_bytes=item.get("effective_bytes"), effective_note=item.get("effective_note"))
            groups["audited"].append(entry)
        elif action in CHANGED_ACTIONS and not rollout_failed:
            groups["changed"].append(entry)
        elif action in SKIPPED_ACTIONS:
            groups["skipped"].append(entry)
        elif action == FAILED or rollout_failed:
            # A workload whose rollout failed after a patch counts as failed, not changed.
            groups["failed"].append(entry)
        else:
            groups["unchanged"].append(entry)
    return groups


def _result_failure(groups, mismatches, enforcement, remediate):
    """The failure of a cluster that ran but did not end as asked, or None.

    What an audit measured (df of workloads it did not change) fails only a verify run: an audit
    reports it and ends ok, as a read-only look should.
    """
    reasons = []
    judged = groups["audited"] if remediate.get("mode") == "verify" else []
    unverified = [e for e in judged if e["verdict"] == "unverified"]
    audited = {id(e) for e in groups["audited"]}
    mismatches = [e for e in mismatches if judged or id(e) not in audited]
    if groups["failed"]:
        reasons.append("%d workload(s) failed" % len(groups["failed"]))
    if mismatches:
        reasons.append("%d workload(s) measured a different /dev/shm than expected" % len(mismatches))
    if unverified:
        reasons.append("%d workload(s) could not be verified: no running pod (%s)" % (len(unverified), ", ".join(e["name"] for e in unverified[:5])))
    if enforcement["proven"] is False:
        reasons.append("sizeLimit enforcement not proven (%s)" % enforcement["summary"])
    if remediate.get("stopped"):
        reasons.append(remediate.get("stopped_reason") or "remediation stopped")
    return {"phase": "result", "message": "; ".join(reasons), "unreachable": False} if reasons else None


def _counts(groups, mismatches):
    changed, audited = groups["changed"], groups["audited"]
    counts = {key: len(value) for key, value in groups.items()}
    counts.update(
        measured_ok=len([e for e in changed + audited if e["verdict"] == "ok"]),
        df_checked=len(changed) + len([e for e in audited if e["verdict"] in ("ok", "mismatch")]),
        mismatch=len(mismatches),
    )
    return counts


def _waves_run(remediate):
    """How many of the planned waves ran: what the remediate role recorded; when a record has no
    ``waves_run`` (a role older than this report), every wave if the run did not stop, else unknown."""
    if remediate.get("waves_run") is not None:
        return int(remediate["waves_run"])
    return None if remediate.get("stopped") else int(remediate.get("waves") or 0)


def _admission(result):
    """What the admission role recorded: the protection active on the cluster (label), what it could run, why unknown."""
    if not result:
        return None
    return {k: result.get(k) for k in ("label", "protection", "available", "enabled", "state", "changed", "check_mode", "note")}


def build_cluster(record):
    """One cluster's section of the report from what its roles recorded."""
    record = record or {}
    version_check = record.get("version_check") or {}
    remediate = record.get("remediate") or {}
    status, failure = _cluster_status(record)
    groups = _sort_workloads(remediate)
    untouched = [dict(workload_ref(u), reason=u.get("reason", "")) for u in remediate.get("untouched") or []]
    enforcement = _enforcement(record.get("eviction_verify"))
    mismatches = [e for e in groups["changed"] + groups["audited"] if e["verdict"] == "mismatch"]
    if status == STATUS_OK:
        failure = _result_failure(groups, mismatches, enforcement, remediate)
        status = STATUS_FAILED if failure else STATUS_OK
    cluster = {
        "name": record.get("name") or "?",
        "status": status,
        "failure": failure,
        "server_version": version_check.get("server_version"),
        "min_version": version_check.get("min_version"),
        "tiers": version_check.get("tiers") or {},
        "nodes": _nodes(version_check, enforcement),
        "enforcement": enforcement,
        "audit": remediate.get("audit_summary") or {},
        "waves": int(remediate.get("waves") or 0),
        "waves_run": _waves_run(remediate),
        "stopped": bool(remediate.get("stopped")),
        "stopped_reason": remediate.get("stopped_reason") or "",
        "untouched": untouched,
        "mode": remediate.get("mode") or ("remediate" if remediate else None),
        "admission": _admission(record.get("admission")),
    }
    cluster.update(groups)
    cluster["waves_text"] = waves_text(cluster)
    cluster["counts"] = dict(_counts(groups, mismatches), untouched=len(untouched), fine=len([e for e in groups["unchanged"] if e["fine"]]))
    return cluster


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
        "unchanged": sum(c["counts"]["unchanged"] for c in clusters),
        "needs_a_look": sum(c["counts"]["unchanged"] - c["counts"]["fine"] for c in clusters),
        "untouched": sum(c["counts"]["untouched"] for c in clusters),
        "conflicts_retried": sum(w["conflict_retries"] for c in clusters for g in ("changed", "failed", "skipped", "unchanged") for w in c[g]),
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


def waves_text(cluster):
    """'3/5': waves that ran of the planned ones ('?/5' when unknown, '-' without a remediation)."""
    if not cluster.get("mode") or cluster.get("mode") in ("audit", "verify"):
        return "-"
    ran = cluster.get("waves_run")
    return "%s/%d" % ("?" if ran is None else ran, cluster.get("waves") or 0)


def summary_rows(report):
    """Rows (header first) of the short table printed at the end of the play."""
    rows = [["CLUSTER", "STATUS", "SERVER", "KUBELET TIERS", "ENFORCEMENT", "CHANGED", "SKIPPED", "FAILED", "DF OK", "WAVES", "NOTE"]]
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
                cluster.get("waves_text") or waves_text(cluster),
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
