# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the fleet report logic (plugins/module_utils/report.py): plain dicts, no cluster."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import report

MI = 1024 * 1024
GI = 1024 * MI
NODE_MEM = 25276059648  # memory capacity of a node of the embedded cluster


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "-"),
        (0, "0 B"),
        (512, "512 B"),
        (64 * MI, "64 MiB"),
        (256 * MI, "256 MiB"),
        (1536 * MI, "1.5 GiB"),
        (12638027776, "11.8 GiB"),
        ("67108864", "64 MiB"),
        ("n/a", "n/a"),
    ],
)
def test_human_bytes(value, text):
    assert report.human_bytes(value) == text


def test_page_round_rounds_up_to_a_page():
    assert report.page_round(256 * MI) == 256 * MI
    assert report.page_round(10**9) == 1000001536  # tmpfs size= rounds up to 4 KiB pages
    assert report.page_round(None) is None


@pytest.mark.parametrize(
    "measured, expected, enforcement, node_mem, verdict",
    [
        (256 * MI, 256 * MI, "sized", None, "ok"),
        (1000001536, 10**9, "sized", None, "ok"),
        (64 * MI, 256 * MI, "sized", None, "mismatch"),
        (128 * MI, 256 * MI, "sized", None, "mismatch"),
        (None, 256 * MI, "sized", None, "unmeasured"),
        (256 * MI, None, "sized", None, "unmeasured"),
        # eviction nodes: the tmpfs is the kernel default, half the node's memory
        (12638027776, 256 * MI, "eviction", NODE_MEM, "ok"),
        (256 * MI, 256 * MI, "eviction", NODE_MEM, "mismatch"),
        (64 * MI, 256 * MI, "eviction", None, "mismatch"),
        (12638027776, 256 * MI, "eviction", None, "ok"),
    ],
)
def test_compare_size(measured, expected, enforcement, node_mem, verdict):
    got, note = report.compare_size(measured, expected, enforcement, node_mem)
    assert got == verdict
    assert note


def test_compare_size_note_names_both_figures():
    verdict, note = report.compare_size(64 * MI, 256 * MI, "sized")
    assert verdict == "mismatch"
    assert note == "expected 256 MiB, df shows 64 MiB"


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "result, unreachable",
    [
        ({"msg": "cannot reach the Kubernetes API server https://127.0.0.1:1 while trying to get version: ...", "reason": "Unreachable"}, True),
        ({"msg": "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded ... Connection refused"}, True),
        ({"msg": "forbidden: the credentials may not list nodes", "status": 403, "reason": "Forbidden"}, False),
        ({"msg": "TLS failure talking to https://x while trying to get version", "reason": "TLSError"}, False),
        ({"msg": "context 'nope' not found in kubeconfig"}, False),
        ({"unreachable": True, "msg": "whatever"}, True),
        ({}, False),
    ],
)
def test_classify_failure(result, unreachable):
    failure = report.classify_failure(result, "version_check")
    assert failure["unreachable"] is unreachable
    assert failure["phase"] == "version_check"
    assert failure["message"]


# --------------------------------------------------------------------------- clusters


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
    assert rep["totals"] == {"clusters": 3, "ok": 1, "failed": 1, "unreachable": 1, "not_run": 0, "changed": 1, "skipped": 0, "failed_workloads": 1}
    assert rep["failed_clusters"] == ["a-dead", "c-bad"]
    assert rep["playbook"] == "fix-shm"
    lines = report.summary_table(rep)
    assert lines[0].split()[:3] == ["CLUSTER", "STATUS", "SERVER"]
    assert set(lines[1]) <= {"-", " "}
    body = {line.split()[0]: line.split() for line in lines[2:]}
    assert body["a-dead"][1] == "unreachable"
    assert body["b-ok"][1:3] == ["ok", "v1.34.4"]
    assert body["c-bad"][1] == "failed"


def test_render_table_aligns_columns():
    lines = report.render_table([["A", "BB"], ["ccc", "d"]]).split("\n")
    assert lines == ["A    BB", "---  --", "ccc  d"]


# --------------------------------------------------------------------------- version_check


def _cluster_info(nodes, server="v1.34.4"):
    return {"server_version": {"git_version": server}, "nodes": nodes}


def _node(name, version, tier, expected, source="configz", labels=None):
    return {
        "name": name,
        "kubelet_version": version,
        "tier": tier,
        "expected_enforcement": expected,
        "feature_gates_source": source,
        "labels": labels or {"kubernetes.io/hostname": name},
        "memory_capacity_bytes": NODE_MEM,
    }


def test_grade_versions_policies():
    info = _cluster_info(
        [
            _node("old", "v1.19.16", "unsized", "eviction"),
            _node("alpha", "v1.21.14", "gated", "eviction"),
            _node("off", "v1.31.14", "default_on", "eviction"),
            _node("new", "v1.34.4", "ga", "sized"),
        ]
    )
    graded = report.grade_versions(info, "1.20", below_min_policy="fail", gated_policy="warn", eviction_policy="warn")
    verdicts = {n["name"]: n["verdict"] for n in graded["nodes"]}
    assert verdicts == {"old": "fail", "alpha": "warn", "off": "warn", "new": "ok"}
    assert graded["ok"] is False
    assert len(graded["problems"]) == 1 and "old" in graded["problems"][0] and "below the minimum version 1.20" in graded["problems"][0]
    assert len(graded["warnings"]) == 2
    assert graded["node_enforcement"] == {"old": "eviction", "alpha": "eviction", "off": "eviction", "new": "sized"}
    assert graded["tiers"] == {"unsized": 1, "gated": 1, "default_on": 1, "ga": 1}


def test_grade_versions_warn_policy_and_old_server():
    graded = report.grade_versions(_cluster_info([_node("old", "v1.19.16", "unsized", "eviction")], server="v1.19.16"), "1.20", below_min_policy="warn")
    assert graded["ok"] is True
    assert graded["server_below_min_version"] is True
    assert any("API server v1.19.16" in w for w in graded["warnings"])


def test_grade_versions_label_states_enforcement():
    info = _cluster_info(
        [
            _node(
                "e",
                "v1.31.14",
                "default_on",
                "sized",
                source="default for the kubelet version (configz not readable)",
                labels={"shmfix.io/node-mode": "eviction"},
            )
        ]
    )
    plain = report.grade_versions(info)
    assert plain["nodes"][0]["expected_enforcement"] == "sized"
    assert plain["nodes"][0]["expected_source"] == "version default"
    labelled = report.grade_versions(info, enforcement_label="shmfix.io/node-mode")
    assert labelled["nodes"][0]["expected_enforcement"] == "eviction"
    assert labelled["nodes"][0]["expected_source"] == "label"
    assert labelled["nodes"][0]["verdict"] == "warn"


def test_grade_versions_configz_without_the_gate_is_known():
    node = _node("s", "v1.34.4", "ga", "sized", source="configz (gate not set: default for the kubelet version)")
    graded = report.grade_versions(_cluster_info([node]))
    assert graded["nodes"][0]["expected_source"] == "configz"
    assert report.canary_probes(graded)[0]["expect"] == "sized"


def test_canary_probes_one_per_alike_group():
    graded = report.grade_versions(
        _cluster_info(
            [
                _node("a1", "v1.34.4", "ga", "sized"),
                _node("a2", "v1.34.2", "ga", "sized"),
                _node("b1", "v1.31.14", "default_on", "eviction", source="version default"),
            ]
        )
    )
    probes = report.canary_probes(graded, node_selector={"pool": "x"})
    assert probes == [
        {"name": "v1-34-sized", "node_selector": {"pool": "x", "kubernetes.io/hostname": "a1"}, "expect": "sized", "assumed": "sized", "covers": ["a1", "a2"]},
        # a version default is an assumption: the canary decides
        {"name": "v1-31-eviction", "node_selector": {"pool": "x", "kubernetes.io/hostname": "b1"}, "expect": None, "assumed": "eviction", "covers": ["b1"]},
    ]
    assert [p["name"] for p in report.canary_probes(graded, per="mode")] == ["sized", "eviction"]
    assert [p["covers"] for p in report.canary_probes(graded, per="node")] == [["a1"], ["a2"], ["b1"]]


def test_proven_nodes_take_the_canary_outcome():
    nodes = [{"name": "a1", "expected_enforcement": "sized"}, {"name": "b1", "expected_enforcement": "sized"}, {"name": "c1", "expected_enforcement": "sized"}]
    proof = {"probes": [{"outcome": "evicted", "covers": ["b1"]}, {"outcome": "not_enforced", "covers": ["c1"]}]}
    out = report.proven_nodes(nodes, proof)
    assert [(n["name"], n["expected_enforcement"], n.get("expected_source")) for n in out] == [
        ("a1", "sized", None),
        ("b1", "eviction", "canary"),
        ("c1", "sized", None),
    ]
    assert report.proven_nodes(nodes, None) == nodes


# --------------------------------------------------------------------------- remediate


def _plan(kind, namespace, name, after_effective=256 * MI):
    return {
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "action": "would_patch",
        "before": {"state": "runtime_default", "size_limit_bytes": None, "effective_bytes": 64 * MI},
        "after": {"state": "sized", "size_limit_bytes": 256 * MI, "effective_bytes": after_effective},
    }


def test_patch_groups_one_call_per_namespace_and_kind():
    wave = [_plan("Deployment", "a", "x"), _plan("Deployment", "a", "y"), _plan("CronJob", "a", "z"), _plan("Deployment", "b", "x")]
    assert report.patch_groups(wave) == [
        {"namespace": "a", "kind": "Deployment", "names": ["x", "y"]},
        {"namespace": "a", "kind": "CronJob", "names": ["z"]},
        {"namespace": "b", "kind": "Deployment", "names": ["x"]},
    ]


def _patch_loop(records):
    out = []
    for rec in records:
        rec = dict(rec, action="patched")
        out.append({"item": {"namespace": rec["namespace"], "kind": rec["kind"], "names": [rec["name"]]}, "results": [rec], "changed": True})
    return {"results": out}


def _df_loop(entries_by_workload):
    return {"results": [{"item": item, "ansible_facts": {"shm_df": entries}} for item, entries in entries_by_workload]}


NODES = [
    {"name": "n-sized", "expected_enforcement": "sized", "memory_capacity_bytes": NODE_MEM},
    {"name": "n-evict", "expected_enforcement": "eviction", "memory_capacity_bytes": NODE_MEM},
]


def test_merge_wave_compares_df_per_node_enforcement():
    web, small, cron = _plan("Deployment", "d", "web"), _plan("Deployment", "d", "small", after_effective=128 * MI), _plan("CronJob", "d", "nightly")
    wave = [web, small, cron]
    rollouts = {
        "results": [
            {"kind": "Deployment", "namespace": "d", "name": "web", "status": "complete", "message": "ok", "pods": ["web-1"]},
            {"kind": "Deployment", "namespace": "d", "name": "small", "status": "complete", "message": "ok", "pods": ["small-1"]},
            {"kind": "CronJob", "namespace": "d", "name": "nightly", "status": "not_applicable", "message": "the next Job gets it", "pods": []},
        ]
    }
    before = _df_loop([(web, [{"pod": "web-0", "node": "n-sized", "size_bytes": 64 * MI, "method": "exec"}])])
    after = _df_loop(
        [
            (
                {"kind": "Deployment", "namespace": "d", "name": "web", "pods": ["web-1"]},
                [{"pod": "web-1", "node": "n-sized", "size_bytes": 256 * MI, "method": "exec"}],
            ),
            (
                {"kind": "Deployment", "namespace": "d", "name": "small", "pods": ["small-1"]},
                [{"pod": "small-1", "node": "n-evict", "size_bytes": 12638027776, "method": "exec"}],
            ),
        ]
    )
    out = report.merge_wave(wave, _patch_loop(wave), rollouts, before, after, NODES)
    assert out["failures"] == 0
    recs = {r["name"]: r for r in out["records"]}
    assert recs["web"]["action"] == "patched"
    assert recs["web"]["before"]["measured_bytes"] == 64 * MI
    assert recs["web"]["after"]["measured_bytes"] == 256 * MI
    assert recs["web"]["measured"][0]["verdict"] == "ok"
    assert recs["small"]["measured"][0]["enforcement"] == "eviction"
    assert recs["small"]["measured"][0]["verdict"] == "ok"
    assert recs["nightly"]["verdict"] == "unmeasured"
    assert recs["nightly"]["verdict_note"] == "the next Job gets it"


def test_merge_wave_counts_failed_rollouts_and_patch_errors():
    a, b = _plan("Deployment", "d", "a"), _plan("Deployment", "e", "b")
    patch = {
        "results": [
            {"item": {"namespace": "d", "kind": "Deployment", "names": ["a"]}, "results": [dict(a, action="patched")]},
            {
                "item": {"namespace": "e", "kind": "Deployment", "names": ["b"]},
                "failed": True,
                "msg": "forbidden: the credentials may not patch deployments.apps b",
            },
        ]
    }
    rollouts = {"results": [{"kind": "Deployment", "namespace": "d", "name": "a", "status": "failed", "message": "CrashLoopBackOff", "pods": ["a-1"]}]}
    out = report.merge_wave([a, b], patch, rollouts, None, None, NODES)
    assert out["failures"] == 2
    recs = {r["name"]: r for r in out["records"]}
    assert recs["a"]["reason"] == "rollout failed: CrashLoopBackOff"
    assert recs["b"]["action"] == "failed"
    assert "forbidden" in recs["b"]["error"]
    assert report.failed_names(out["records"]) == [
        "Deployment d/a: rollout failed: CrashLoopBackOff",
        "Deployment e/b: forbidden: the credentials may not patch deployments.apps b",
    ]


def test_merge_wave_after_a_rollback_expects_the_runtime_default_everywhere():
    rec = dict(_plan("Deployment", "d", "web"), action="would_restore")
    rec["after"] = {"state": "runtime_default", "size_limit_bytes": None, "effective_bytes": 64 * MI}
    patch = {"results": [{"item": {}, "results": [dict(rec, action="restored")]}]}
    rollouts = {"results": [{"kind": "Deployment", "namespace": "d", "name": "web", "status": "complete", "pods": ["web-2"]}]}
    after = _df_loop([({"kind": "Deployment", "namespace": "d", "name": "web"}, [{"pod": "web-2", "node": "n-evict", "size_bytes": 64 * MI}])])
    out = report.merge_wave([rec], patch, rollouts, None, after, NODES)
    assert out["records"][0]["measured"][0]["verdict"] == "ok"
    assert out["records"][0]["measured"][0]["enforcement"] == "sized"


def test_workload_refs_and_untouched():
    wave = [_plan("Deployment", "d", "a")]
    assert report.workload_refs(_patch_loop(wave)) == [{"kind": "Deployment", "namespace": "d", "name": "a"}]
    assert report.workload_refs({"skipped": True}) == []
    assert report.untouched([wave], "not started") == [{"kind": "Deployment", "namespace": "d", "name": "a", "reason": "not started"}]


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
    df = _df_loop(
        [
            (workloads[0], [{"pod": "ok-1", "node": "n-sized", "size_bytes": 256 * MI}]),
            (workloads[1], [{"pod": "bad-1", "node": "n-sized", "size_bytes": 64 * MI}]),
            (workloads[2], [{"pod": "plain-1", "node": "n-sized", "size_bytes": 64 * MI}]),
        ]
    )
    recs = {r["name"]: r for r in report.audit_records(workloads, df, NODES, verify=True)}
    assert recs["ok"]["measured"][0]["verdict"] == "ok"
    assert recs["bad"]["measured"][0]["verdict"] == "mismatch"
    assert recs["plain"]["measured"][0]["verdict"] is None
    assert recs["plain"]["reason"] == "64 MiB"
    cluster = report.build_cluster({"name": "c", "version_check": _version_check(), "remediate": {"mode": "verify", "workloads": list(recs.values())}})
    assert cluster["counts"]["audited"] == 3
    assert cluster["counts"]["measured_ok"] == 1
    assert cluster["counts"]["df_checked"] == 2
    assert cluster["status"] == "failed"
