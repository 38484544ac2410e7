# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugin_utils/report.py: plain dicts, no cluster."""

import pytest
from ansible_collections.shmfix.k8s.plugins.plugin_utils import remediation, report
from shapes import NODES
from shapes import df_run as _df_run

MI = 1024 * 1024
GI = 1024 * MI
NODE_MEM = 25276059648  # memory capacity of a node of the embedded cluster


@pytest.mark.parametrize(
    "result, unreachable",
    [
        ({"msg": "cannot reach the Kubernetes API server https://127.0.0.1:1 while trying to get version: ...", "reason": "Unreachable"}, True),
        ({"msg": "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded ... Connection refused"}, True),
        ({"msg": "forbidden: the credentials may not list nodes", "status": 403, "reason": "Forbidden"}, False),
        ({"msg": "TLS failure talking to https://x while trying to get version", "reason": "TLSError"}, False),
        ({"msg": "context 'nope' not found in kubeconfig"}, False),
        ({"unreachable": True, "msg": "whatever"}, True),
        # the remediate role's final assert: a rollout that timed out is a failed cluster, not an unreachable one
        ({"msg": 'Deployment ns/a: rollout failed: ReplicaSet "a-1" has timed out progressing.', "assertion": "remediate_failures | int == 0"}, False),
        ({}, False),
    ],
)
def test_classify_failure(result, unreachable):
    failure = report.classify_failure(result, "version_check")
    assert failure["unreachable"] is unreachable
    assert failure["phase"] == "version_check"
    assert failure["message"]


def _version_check(nodes=None):
    return {
        "server_version": "v1.34.4",
        "min_version": "1.20",
        "tiers": {"ga": 1, "default_on": 1},
        "nodes": nodes
        or [
            {"name": "n-sized", "kubelet_version": "v1.34.4", "tier": "ga", "expected_enforcement": "sized", "verdict": "ok"},
            {"name": "n-evict", "kubelet_version": "v1.31.14", "tier": "default_on", "expected_enforcement": "eviction", "verdict": "warn"},
        ],
    }


def _eviction_verify(ok=True):
    return {
        "enabled": True,
        "probes": [
            {"name": "v1-34-sized", "node": "n-sized", "expected": "sized", "outcome": "sized", "ok": True, "df_size_bytes": 32 * MI},
            {
                "name": "v1-31-eviction",
                "node": "n-evict",
                "expected": "eviction",
                "outcome": "evicted" if ok else "not_enforced",
                "ok": ok,
                "event_message": 'Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".' if ok else None,
            },
        ],
    }


def _patched(name, measured=256 * MI, verdict="ok", rollout="complete"):
    return {
        "kind": "Deployment",
        "namespace": "demo",
        "name": name,
        "action": "patched",
        "before": {"state": "runtime_default", "size_limit_bytes": None, "effective_bytes": 64 * MI, "measured_bytes": 64 * MI},
        "after": {"state": "sized", "size_limit_bytes": 256 * MI, "effective_bytes": 256 * MI, "measured_bytes": measured},
        "rollout": {"status": rollout, "message": "done"},
        "measured": [{"pod": name + "-1", "node": "n-sized", "size_bytes": measured, "method": "exec", "verdict": verdict, "note": "n"}],
    }


def _remediate(workloads, **extra):
    out = {"mode": "remediate", "workloads": workloads, "waves": 1, "stopped": False, "untouched": []}
    out.update(extra)
    return out


def test_cluster_ok_groups_workloads_by_action():
    record = {
        "name": "c1",
        "version_check": _version_check(),
        "eviction_verify": _eviction_verify(),
        "remediate": _remediate(
            [
                _patched("web"),
                {"kind": "Job", "namespace": "demo", "name": "migrate", "action": "immutable", "reason": "a Job's pod template cannot be changed"},
                {"kind": "StatefulSet", "namespace": "demo", "name": "db", "action": "unchanged", "reason": "already sized"},
                {"kind": "Deployment", "namespace": "demo", "name": "helm-app", "action": "skipped", "reason": "managed by helm"},
            ]
        ),
    }
    cluster = report.build_cluster(record)
    assert cluster["status"] == "ok"
    assert cluster["failure"] is None
    assert [w["name"] for w in cluster["changed"]] == ["web"]
    assert sorted(w["name"] for w in cluster["skipped"]) == ["helm-app", "migrate"]
    assert [w["name"] for w in cluster["unchanged"]] == ["db"]
    assert cluster["counts"] == {
        "changed": 1,
        "skipped": 2,
        "failed": 0,
        "unchanged": 1,
        "untouched": 0,
        "audited": 0,
        "measured_ok": 1,
        "df_checked": 1,
        "mismatch": 0,
        "fine": 1,
    }
    assert cluster["enforcement"]["proven"] is True
    assert cluster["enforcement"]["summary"] == "n-sized=sized, n-evict=evicted"
    web = cluster["changed"][0]
    assert web["before"]["measured_bytes"] == 64 * MI
    assert web["after"]["measured_bytes"] == 256 * MI
    assert web["measured_bytes"] == [256 * MI]


def test_cluster_unreachable():
    failure = report.classify_failure({"msg": "cannot reach the Kubernetes API server https://127.0.0.1:1", "reason": "Unreachable"}, "version_check")
    cluster = report.build_cluster({"name": "dead", "failure": failure})
    assert cluster["status"] == "unreachable"
    assert cluster["failure"]["phase"] == "version_check"
    assert cluster["counts"]["changed"] == 0


def test_cluster_without_any_record_is_not_run():
    cluster = report.build_cluster({"name": "ghost"})
    assert cluster["status"] == "not_run"
    assert "no result" in cluster["failure"]["message"]


def test_failed_rollout_moves_a_patched_workload_to_failed():
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": _remediate([_patched("web", rollout="timeout")])})
    assert cluster["status"] == "failed"
    assert [w["name"] for w in cluster["failed"]] == ["web"]
    assert cluster["changed"] == []
    assert "1 workload(s) failed" in cluster["failure"]["message"]


def test_df_mismatch_fails_the_cluster():
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": _remediate([_patched("web", 64 * MI, "mismatch")])})
    assert cluster["status"] == "failed"
    assert cluster["counts"]["mismatch"] == 1
    assert "different /dev/shm" in cluster["failure"]["message"]


def test_unproven_enforcement_fails_the_cluster():
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "eviction_verify": _eviction_verify(ok=False), "remediate": _remediate([])})
    assert cluster["status"] == "failed"
    assert cluster["enforcement"]["proven"] is False
    assert "n-evict=not_enforced" in cluster["failure"]["message"]


def test_canary_namespaces_left_by_earlier_runs_are_named_in_the_enforcement_summary():
    proof = dict(_eviction_verify(), leftovers={"shmfix-canary-old": "deleted", "shmfix-canary-stuck": "terminating", "shmfix-canary-other": "live"})
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "eviction_verify": proof, "remediate": _remediate([])})
    assert cluster["status"] == "ok"
    summary = cluster["enforcement"]["summary"]
    assert summary.endswith("; canary namespaces left by earlier runs: shmfix-canary-old deleted, shmfix-canary-stuck terminating"), summary
    assert "shmfix-canary-other" not in summary  # another run's, still at work: not a leftover


def test_stopped_remediation_lists_untouched_workloads():
    rem = _remediate(
        [_patched("a", rollout="failed")],
        stopped=True,
        stopped_reason="stopped after 1 failed workload(s); 1 left untouched",
        untouched=[{"kind": "Deployment", "namespace": "demo", "name": "b", "reason": "not started"}],
    )
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": rem})
    assert cluster["status"] == "failed"
    assert cluster["stopped"] is True
    assert [u["name"] for u in cluster["untouched"]] == ["b"]
    assert cluster["counts"]["untouched"] == 1


def test_disabled_eviction_verify_is_not_checked():
    cluster = report.build_cluster(
        {"name": "c", "version_check": _version_check(), "eviction_verify": {"enabled": False, "probes": []}, "remediate": _remediate([])}
    )
    assert cluster["status"] == "ok"
    assert cluster["enforcement"] == {"proven": None, "summary": "not checked", "probes": []}


def test_build_report_totals_and_failed_clusters():
    records = [
        {"name": "b-ok", "version_check": _version_check(), "eviction_verify": _eviction_verify(), "remediate": _remediate([_patched("web")])},
        {"name": "a-dead", "failure": {"phase": "version_check", "message": "cannot reach", "unreachable": True}},
        {"name": "c-bad", "version_check": _version_check(), "remediate": _remediate([_patched("x", rollout="failed")])},
    ]
    rep = report.build_report(records, generated_at="2026-01-01T00:00:00Z", playbook="fix-shm")
    assert [c["name"] for c in rep["clusters"]] == ["a-dead", "b-ok", "c-bad"]
    assert rep["totals"] == {
        "clusters": 3,
        "ok": 1,
        "failed": 1,
        "unreachable": 1,
        "not_run": 0,
        "changed": 1,
        "skipped": 0,
        "failed_workloads": 1,
        "unchanged": 0,
        "needs_a_look": 0,
        "untouched": 0,
        "conflicts_retried": 0,
    }
    assert rep["failed_clusters"] == ["a-dead", "c-bad"]
    assert rep["playbook"] == "fix-shm"
    lines = report.summary_table(rep)
    assert lines[0].split()[:3] == ["CLUSTER", "STATUS", "SERVER"]
    assert set(lines[1]) <= {"-", " "}
    body = {line.split()[0]: line.split() for line in lines[2:]}
    assert body["a-dead"][1] == "unreachable"
    assert body["b-ok"][1:3] == ["ok", "v1.34.4"]
    assert body["c-bad"][1] == "failed"
    assert lines[0].split()[-2:] == ["WAVES", "NOTE"]
    assert body["b-ok"][10] == "1/1"
    assert body["a-dead"][10] == "-"


def test_render_table_aligns_columns():
    lines = report.render_table([["A", "BB"], ["ccc", "d"]]).split("\n")
    assert lines == ["A    BB", "---  --", "ccc  d"]


def test_audit_records_verify_compares_declared_size():
    workloads = [
        {"kind": "Deployment", "namespace": "d", "name": "ok", "state": "sized", "effective_bytes": 256 * MI, "findings": []},
        {"kind": "Deployment", "namespace": "d", "name": "bad", "state": "sized", "effective_bytes": 256 * MI, "findings": []},
        {
            "kind": "Deployment",
            "namespace": "d",
            "name": "plain",
            "state": "runtime_default",
            "effective_bytes": 64 * MI,
            "findings": [{"severity": "warning", "message": "64 MiB"}],
        },
    ]
    df = _df_run(
        [
            (workloads[0], [{"pod": "ok-1", "node": "n-sized", "size_bytes": 256 * MI}]),
            (workloads[1], [{"pod": "bad-1", "node": "n-sized", "size_bytes": 64 * MI}]),
            (workloads[2], [{"pod": "plain-1", "node": "n-sized", "size_bytes": 64 * MI}]),
        ]
    )
    recs = {r["name"]: r for r in remediation.audit_records(workloads, df, NODES, verify=True)}
    assert recs["ok"]["measured"][0]["verdict"] == "ok"
    assert recs["bad"]["measured"][0]["verdict"] == "mismatch"
    # the runtime default is 64 MiB on every node: df agreeing with it is a verdict too
    assert recs["plain"]["measured"][0]["verdict"] == "ok" and recs["plain"]["measured"][0]["expected_bytes"] == 64 * MI
    assert recs["plain"]["reason"] == "64 MiB"
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": {"mode": "verify", "workloads": list(recs.values())}})
    assert cluster["counts"]["audited"] == 3
    assert cluster["counts"]["measured_ok"] == 2
    assert cluster["counts"]["df_checked"] == 3
    assert cluster["status"] == "failed"
    assert cluster["failure"]["message"] == "1 workload(s) measured a different /dev/shm than expected"
    # an audit reports the same mismatch and ends ok: a read-only look fails nothing
    audit = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": {"mode": "audit", "workloads": list(recs.values())}})
    assert audit["counts"]["mismatch"] == 1
    assert (audit["status"], audit["failure"]) == ("ok", None)


def test_an_audited_pod_is_compared_with_what_its_own_node_makes_of_it():
    # the trial: small-worker, effective 128 MiB where the kubelet sizes, runs on the eviction node: df 11.8 GiB
    item = {"kind": "Deployment", "namespace": "d", "name": "small", "state": "sized", "effective_bytes": 128 * MI, "findings": []}
    half = NODES[1]["memory_capacity_bytes"] // 2
    (rec,) = remediation.audit_records([item], _df_run([(item, [{"pod": "small-1", "node": "n-evict", "size_bytes": half}])]), NODES)
    (entry,) = rec["measured"]
    assert (entry["enforcement"], entry["expected_bytes"], entry["verdict"]) == ("eviction", half, "ok")
    assert entry["note"].startswith("eviction-enforced node: tmpfs is the kernel default")


def test_verify_of_a_workload_without_a_running_pod_fails_the_cluster():
    workloads = [
        {"kind": "Deployment", "namespace": "d", "name": "gone", "state": "sized", "replicas": 1, "effective_bytes": 256 * MI, "findings": []},
        {"kind": "Deployment", "namespace": "d", "name": "idle", "state": "sized", "replicas": 0, "effective_bytes": 256 * MI, "findings": []},
        {"kind": "CronJob", "namespace": "d", "name": "cron", "state": "sized", "replicas": None, "effective_bytes": 256 * MI, "findings": []},
    ]
    recs = {r["name"]: r for r in remediation.audit_records(workloads, _df_run([]), NODES, verify=True)}
    assert recs["gone"]["verdict"] == "unverified"
    assert recs["gone"]["verdict_note"] == "0 of 1 desired pods running with a measurable /dev/shm: nothing to compare"
    assert "verdict" not in recs["idle"] and "verdict" not in recs["cron"]
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": {"mode": "verify", "workloads": list(recs.values())}})
    assert cluster["status"] == "failed"
    assert cluster["failure"]["message"] == "1 workload(s) could not be verified: no running pod (gone)"
    # an audit is not a verification: the same records do not fail it
    audit = {r["name"]: r for r in remediation.audit_records(workloads, _df_run([]), NODES)}
    assert "verdict" not in audit["gone"]


def test_a_refused_write_shows_the_api_servers_message():
    refused = {
        "kind": "Deployment",
        "namespace": "d",
        "name": "w",
        "action": "failed",
        "reason": "write refused",
        "error": 'API error 422 Unprocessable Entity while trying to patch deployments.apps w in namespace d: volumeMounts[0].name: Not found: "dshm"',
    }
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": {"workloads": [refused]}})
    assert cluster["failed"][0]["reason"] == "write refused: " + refused["error"]


def _wave_record(name, rollout="complete"):
    """A record of a workload that went through a wave (merge_wave sets its rollout)."""
    return dict(_patched(name, rollout=rollout), measured_before=[])


@pytest.mark.parametrize(
    "planned, stopped, recorded, want, text",
    [
        (1, False, None, 1, "1/1"),  # a record without waves_run that did not stop: every wave ran
        (5, True, 2, 2, "2/5"),  # the role's own count
        (5, True, None, None, "?/5"),  # stopped, and the record does not say: unknown, not guessed
    ],
)
def test_waves_run_of_planned(planned, stopped, recorded, want, text):
    rem = _remediate([_wave_record("w0")], waves=planned, stopped=stopped)
    if recorded is not None:
        rem["waves_run"] = recorded
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": rem})
    assert cluster["waves"] == planned
    assert cluster["waves_run"] == want
    assert cluster["waves_text"] == text


def test_node_enforcement_source_says_why_it_is_assumed():
    nodes = [
        dict(_version_check()["nodes"][0], expected_source="configz", feature_gates_source="configz"),
        dict(
            _version_check()["nodes"][1],
            expected_enforcement="sized",
            expected_source="version default",
            feature_gates_source='default for the kubelet version (configz not readable: cannot get resource "nodes/proxy")',
        ),
        {"name": "n-label", "kubelet_version": "v1.29.1", "tier": "default_on", "expected_enforcement": "eviction", "expected_source": "label"},
    ]
    ev = _eviction_verify()
    ev["probes"][1]["covers"] = ["n-evict", "n-label"]
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(nodes), "eviction_verify": ev, "remediate": _remediate([])})
    sized, evict, label = cluster["nodes"]
    assert sized["assumed"] is False
    assert sized["source_note"] == "read from the kubelet's configuration (configz); proven by canary v1-34-sized"
    assert evict["assumed"] is True
    assert evict["source_note"] == (
        'assumed from the default of kubelet v1.31.14, feature gates not read: configz not readable: cannot get resource "nodes/proxy"; '
        "canary v1-31-eviction proved eviction, not sized"
    )
    assert evict["proven_enforcement"] == "eviction"
    assert label["source_note"] == "stated by a node label; proven by canary v1-31-eviction"


def test_left_as_is_tells_a_fine_workload_from_one_with_a_concern():
    oom = {"severity": "warning", "code": "memory_accounting", "message": "OOM-killed before /dev/shm is full"}
    workloads = [
        {"kind": "StatefulSet", "namespace": "d", "name": "pg", "action": "unchanged", "reason": "use existing=replace to set sizeLimit", "findings": [oom]},
        {"kind": "Deployment", "namespace": "d", "name": "ok", "action": "unchanged", "reason": "already sized", "findings": [{"severity": "info"}]},
    ]
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": _remediate(workloads)})
    pg, ok = cluster["unchanged"]
    assert (pg["fine"], pg["concerns"], pg["reason"]) == (False, ["OOM-killed before /dev/shm is full"], "use existing=replace to set sizeLimit")
    assert (ok["fine"], ok["concerns"]) == (True, [])
    assert cluster["counts"]["fine"] == 1
    assert report.build_report([{"name": "c", "version_check": _version_check(), "remediate": _remediate(workloads)}])["totals"]["needs_a_look"] == 1


def test_measured_entries_name_pod_and_container_and_say_why_nothing_was_measured():
    two = dict(
        _patched("pg"),
        measured=[
            {"pod": "pg-0", "container": "postgres", "size_bytes": 256 * MI, "verdict": "ok"},
            {"pod": "pg-0", "container": "exporter", "size_bytes": 256 * MI, "verdict": "ok"},
        ],
    )
    forbidden = dict(
        _patched("web"),
        measured=[{"pod": "web-1", "container": "app", "size_bytes": None, "method": "unavailable", "note": "cannot create resource pods/exec"}],
        measured_before=[{"pod": "web-0", "container": "app", "size_bytes": None, "method": "unavailable"}],
    )
    cron = dict(_patched("cron"), measured=[], measured_before=[], verdict="unmeasured", verdict_note="the next Job gets the new /dev/shm")
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": _remediate([two, forbidden, cron])})
    pg, web, cron = cluster["changed"]
    assert [m["label"] for m in pg["measured"]] == ["pg-0/postgres", "pg-0/exporter"]
    assert pg["unmeasured_why"] == ""
    assert web["unmeasured_why"] == "cannot create resource pods/exec"
    assert web["before_unmeasured_why"] == "df unavailable"
    assert cron["unmeasured_why"] == "the next Job gets the new /dev/shm"
    assert cron["before_unmeasured_why"] == "no running pod was measured before the change"
    assert pg["before_unmeasured_why"] == ""  # no df before in the record: nothing to explain


def test_each_changed_workload_says_how_it_was_fixed():
    resized = dict(_patched("notebook"), action="resized", strategy="inplace", strategy_reason="resize dshm of 2 running pod(s) from 64Mi to 256Mi in place")
    rolled = dict(_patched("web"), strategy="rollout", strategy_reason="node n-evict does not declare InPlacePodVerticalScalingMemoryBackedVolumes")
    record = {
        "name": "c1",
        "version_check": _version_check(),
        "eviction_verify": _eviction_verify(),
        "remediate": _remediate([resized, rolled, _patched("old")]),
    }
    cluster = report.build_cluster(record)
    how = {w["name"]: w["strategy"] for w in cluster["changed"]}
    assert how == {
        "notebook": "resized in place",
        "web": "rolled out (node n-evict does not declare InPlacePodVerticalScalingMemoryBackedVolumes)",
        "old": "rolled out",
    }
    assert cluster["status"] == "ok" and cluster["counts"]["changed"] == 3


def test_conflicts_retried_are_reported_per_workload_and_in_total():
    rec = {"kind": "Deployment", "namespace": "d", "name": "a", "action": "patched", "conflict_retries": 2, "rollout": {"status": "complete"}}
    report_ = report.build_report(
        [{"name": "c1", "version_check": {"nodes": []}, "remediate": {"mode": "remediate", "workloads": [rec, dict(rec, name="b", conflict_retries=None)]}}]
    )
    (cluster,) = report_["clusters"]
    assert [w["conflict_retries"] for w in cluster["changed"]] == [2, 0]
    assert report_["totals"]["conflicts_retried"] == 2
