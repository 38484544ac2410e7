# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugin_utils/remediation.py: plain dicts, no cluster."""

import pytest
from ansible_collections.shmfix.k8s.plugins.plugin_utils import remediation
from shapes import NODES
from shapes import df_run as _df_run

MI = 1024 * 1024
GI = 1024 * MI
NODE_MEM = 25276059648  # memory capacity of a node of the embedded cluster


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
    got, note = remediation.compare_size(measured, expected, enforcement, node_mem)
    assert got == verdict
    assert note


def test_compare_size_note_names_both_figures():
    verdict, note = remediation.compare_size(64 * MI, 256 * MI, "sized")
    assert verdict == "mismatch"
    assert note == "expected 256 MiB, df shows 64 MiB"


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
    assert remediation.patch_groups(wave) == [
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
    before = _df_run([(web, [{"pod": "web-0", "node": "n-sized", "size_bytes": 64 * MI, "method": "exec"}])])
    after = _df_run(
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
    out = remediation.merge_wave(wave, _patch_loop(wave), rollouts, before, after, NODES)
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
    out = remediation.merge_wave([a, b], patch, rollouts, None, None, NODES)
    assert out["failures"] == 2
    recs = {r["name"]: r for r in out["records"]}
    assert recs["a"]["reason"] == "rollout failed: CrashLoopBackOff"
    assert recs["b"]["action"] == "failed"
    assert "forbidden" in recs["b"]["error"]
    assert remediation.failed_names(out["records"]) == [
        "Deployment d/a: rollout failed: CrashLoopBackOff",
        "Deployment e/b: forbidden: the credentials may not patch deployments.apps b",
    ]


def test_merge_wave_names_the_error_of_a_write_cut_off_by_a_dead_api_server():
    """The role registers shm_patch with failed_when: false: the module's error still explains the records it lacks."""
    a, b = _plan("Deployment", "d", "a"), _plan("Deployment", "d", "b")
    error = "cannot reach the Kubernetes API server https://127.0.0.1:17101 while trying to patch deployments.apps b in namespace d: refused"
    patch = {
        "results": [
            {
                "item": {"namespace": "d", "kind": "Deployment", "names": ["a", "b"]},
                "failed": False,
                "failed_when_result": False,
                "msg": error,
                "results": [dict(a, action="patched")],
            }
        ]
    }
    out = remediation.merge_wave([a, b], patch, None, None, None, NODES)
    recs = {r["name"]: r for r in out["records"]}
    assert out["failures"] == 1 and recs["a"]["action"] == "patched"
    assert recs["b"]["action"] == "failed" and recs["b"]["error"] == error


def test_merge_wave_after_a_rollback_expects_the_runtime_default_everywhere():
    rec = dict(_plan("Deployment", "d", "web"), action="would_restore")
    rec["after"] = {"state": "runtime_default", "size_limit_bytes": None, "effective_bytes": 64 * MI}
    patch = {"results": [{"item": {}, "results": [dict(rec, action="restored")]}]}
    rollouts = {"results": [{"kind": "Deployment", "namespace": "d", "name": "web", "status": "complete", "pods": ["web-2"]}]}
    after = _df_run([({"kind": "Deployment", "namespace": "d", "name": "web"}, [{"pod": "web-2", "node": "n-evict", "size_bytes": 64 * MI}])])
    out = remediation.merge_wave([rec], patch, rollouts, None, after, NODES)
    assert out["records"][0]["measured"][0]["verdict"] == "ok"
    assert out["records"][0]["measured"][0]["enforcement"] == "sized"


def test_workload_refs_and_untouched():
    wave = [_plan("Deployment", "d", "a")]
    assert remediation.workload_refs(_patch_loop(wave)) == [{"kind": "Deployment", "namespace": "d", "name": "a"}]
    assert remediation.workload_refs({"skipped": True}) == []
    assert remediation.untouched([wave], "not started") == [{"kind": "Deployment", "namespace": "d", "name": "a", "reason": "not started"}]


def test_a_workload_resized_in_place_is_measured_in_the_same_pods_and_not_waited_for():
    """shm_patch strategy=inplace: no rollout to wait for; df is read in the pods that were resized."""
    plan = dict(_plan("StatefulSet", "d", "db"), action="would_resize")
    plan["before"] = {"state": "sized", "size_limit_bytes": 64 * MI, "effective_bytes": 64 * MI}
    resized = dict(plan, action="resized", strategy="inplace", strategy_reason="resize dshm of 1 running pod(s) from 64Mi to 256Mi in place", pods=["db-0"])
    rolled = dict(_plan("Deployment", "d", "web"), action="patched", strategy="rollout", strategy_reason="node n-evict does not declare X")
    patch = {"results": [{"item": {"namespace": "d", "kind": "StatefulSet", "names": ["db"]}, "results": [resized, rolled]}]}
    assert remediation.workload_refs(patch) == [{"kind": "Deployment", "namespace": "d", "name": "web"}]
    assert remediation.resized_refs(patch) == [{"kind": "StatefulSet", "namespace": "d", "name": "db", "pods": ["db-0"]}]
    after = _df_run([(remediation.resized_refs(patch)[0], [{"pod": "db-0", "node": "n-sized", "size_bytes": 256 * MI, "method": "exec"}])])
    out = remediation.merge_wave([plan], patch, None, None, after, NODES)
    (rec,) = out["records"]
    assert (out["failures"], rec["action"], rec["strategy"], rec["measured"][0]["verdict"]) == (0, "resized", "inplace", "ok")
    unmeasured = remediation.merge_wave([plan], patch, None, None, None, NODES)["records"][0]
    assert unmeasured["verdict"] == "unmeasured"


def test_df_of_one_run_by_workload_and_a_failed_run_against_every_workload_given():
    web, db = _plan("Deployment", "d", "web"), _plan("StatefulSet", "d", "db")
    run = _df_run([(web, [{"pod": "web-0", "size_bytes": 64 * MI}, {"pod": "web-1", "size_bytes": 64 * MI}]), (db, [{"pod": "db-0", "size_bytes": None}])])
    by = remediation.df_by_workload(run, [web, db])
    assert [e["pod"] for e in by["Deployment/d/web"]] == ["web-0", "web-1"] and [e["pod"] for e in by["StatefulSet/d/db"]] == ["db-0"]
    failed = remediation.df_by_workload({"failed": True, "msg": "Unauthorized"}, [web, db])
    assert failed == {k: [{"method": "unavailable", "reason": "Unauthorized", "size_bytes": None}] for k in ("Deployment/d/web", "StatefulSet/d/db")}
    assert remediation.df_by_workload({"skipped": True}, [web]) == {} and remediation.df_by_workload(None) == {}


def test_df_targets_keep_the_pods_to_measure():
    rollout = {"kind": "Deployment", "namespace": "d", "name": "web", "status": "complete", "pods": ["web-1"]}
    assert remediation.df_targets([rollout, _plan("CronJob", "d", "nightly")]) == [
        {"kind": "Deployment", "namespace": "d", "name": "web", "pods": ["web-1"]},
        {"kind": "CronJob", "namespace": "d", "name": "nightly"},
    ]
