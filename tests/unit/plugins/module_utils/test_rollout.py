# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the rollout rules (kubectl rollout status) and of finding the new pods."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import kube_time, rollout


def deployment(generation=2, observed=2, replicas=2, updated=2, total=2, available=2, paused=False, conditions=None):
    return {
        "metadata": {"name": "web", "namespace": "d", "uid": "dep-uid", "generation": generation, "annotations": {"deployment.kubernetes.io/revision": "3"}},
        "spec": {"replicas": replicas, "paused": paused, "selector": {"matchLabels": {"app": "web"}}},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


@pytest.mark.parametrize(
    "obj, state",
    [
        (deployment(), "complete"),
        (deployment(observed=1), "progressing"),
        (deployment(updated=1), "progressing"),
        (deployment(total=3), "progressing"),
        (deployment(available=1), "progressing"),
        (deployment(paused=True), "manual"),
        (deployment(updated=1, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]), "failed"),
    ],
)
def test_deployment_state(obj, state):
    assert rollout.rollout_state("Deployment", obj)[0] == state


def test_deployment_that_cannot_create_pods_says_why():
    """The controller's ReplicaFailure message (a LimitRange refused the new pods) is in the rollout's message."""
    refused = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": 'pods "web-2" is forbidden: maximum memory usage per Container is 32Mi, but limit is 64Mi',
    }
    deadline = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": 'ReplicaSet "web-2" has timed out progressing.'}
    state, message = rollout.rollout_state("Deployment", deployment(updated=0, conditions=[deadline, refused]))
    assert state == "failed"
    assert message == (
        'progress deadline exceeded: ReplicaSet "web-2" has timed out progressing.; pods cannot be created (FailedCreate): '
        'pods "web-2" is forbidden: maximum memory usage per Container is 32Mi, but limit is 64Mi'
    )
    state, message = rollout.rollout_state("Deployment", deployment(updated=0, conditions=[refused]))
    assert state == "progressing" and message.endswith("but limit is 64Mi") and message.startswith("0 out of 2 new replicas")
    assert (
        rollout.rollout_state("Deployment", deployment(updated=1, conditions=[dict(refused, status="False")]))[1] == "1 out of 2 new replicas have been updated"
    )


def statefulset(ready=1, current="r1", update="r2", strategy=None, observed=2, partition=None, updated=0):
    spec = {"replicas": 1, "updateStrategy": strategy or {"type": "RollingUpdate"}}
    if partition is not None:
        spec["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    return {
        "metadata": {"generation": 2, "uid": "sts"},
        "spec": spec,
        "status": {"observedGeneration": observed, "readyReplicas": ready, "currentRevision": current, "updateRevision": update, "updatedReplicas": updated},
    }


@pytest.mark.parametrize(
    "obj, state",
    [
        (statefulset(current="r2"), "complete"),
        (statefulset(), "progressing"),
        (statefulset(ready=0, current="r2"), "progressing"),
        (statefulset(observed=1, current="r2"), "progressing"),
        (statefulset(strategy={"type": "OnDelete"}), "manual"),
        (statefulset(partition=1), "complete"),
    ],
)
def test_statefulset_state(obj, state):
    assert rollout.rollout_state("StatefulSet", obj)[0] == state


def test_daemonset_and_other_kinds():
    ds = {
        "metadata": {"generation": 1},
        "spec": {},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2},
    }
    assert rollout.rollout_state("DaemonSet", ds)[0] == "complete"
    ds["status"]["numberAvailable"] = 1
    assert rollout.rollout_state("DaemonSet", ds)[0] == "progressing"
    state, note = rollout.rollout_state("CronJob", {})
    assert state == "not_applicable" and "next Job" in note
    assert rollout.rollout_state("ReplicaSet", {})[0] == "not_applicable"


def pod(name, owner_uid, labels=None, deleting=False, status=None):
    meta = {"name": name, "labels": labels or {}, "ownerReferences": [{"uid": owner_uid}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status or {"phase": "Running"}}


def test_current_pods_of_a_deployment_are_those_of_the_current_replicaset():
    rs_old = {"metadata": {"uid": "rs2", "annotations": {"deployment.kubernetes.io/revision": "2"}, "ownerReferences": [{"uid": "dep-uid"}]}}
    rs_new = {"metadata": {"uid": "rs3", "annotations": {"deployment.kubernetes.io/revision": "3"}, "ownerReferences": [{"uid": "dep-uid"}]}}
    pods = [pod("web-old", "rs2"), pod("web-new-b", "rs3"), pod("web-new-a", "rs3"), pod("web-going", "rs3", deleting=True)]
    assert rollout.current_pods("Deployment", deployment(), pods, [rs_old, rs_new]) == ["web-new-a", "web-new-b"]


def test_current_pods_of_statefulset_and_daemonset_follow_the_revision_hash():
    sts = statefulset(current="pg-abc", update="pg-def")
    sts["metadata"]["name"] = "pg"
    pods = [pod("pg-0", "sts", {"controller-revision-hash": "pg-def"}), pod("pg-1", "sts", {"controller-revision-hash": "pg-abc"})]
    assert rollout.current_pods("StatefulSet", sts, pods) == ["pg-0"]
    ds = {"metadata": {"name": "agent", "uid": "ds"}}
    revisions = [
        {"metadata": {"name": "agent-111", "ownerReferences": [{"uid": "ds"}]}, "revision": 1},
        {"metadata": {"name": "agent-222", "ownerReferences": [{"uid": "ds"}]}, "revision": 2},
    ]
    pods = [pod("agent-x", "ds", {"controller-revision-hash": "111"}), pod("agent-y", "ds", {"controller-revision-hash": "222"})]
    assert rollout.current_pods("DaemonSet", ds, pods, revisions=revisions) == ["agent-y"]


@pytest.mark.parametrize(
    "status, words",
    [
        ({"phase": "Running"}, None),
        ({"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}, "CrashLoopBackOff"),
        ({"containerStatuses": [{"name": "c", "state": {"running": {}}, "lastState": {"terminated": {"reason": "OOMKilled"}}}]}, "OOM-killed"),
        ({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes"}]}, "unschedulable"),
        ({"phase": "Failed", "reason": "Evicted", "message": "Usage of EmptyDir"}, "Evicted"),
    ],
)
def test_pod_problem(status, words):
    problem = rollout.pod_problem({"metadata": {"name": "p"}, "status": status})
    if words is None:
        assert problem is None
    else:
        assert words in problem


def _pod(name, ready=True, restarts=0, waiting=None):
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "c", "restartCount": restarts, "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}],
    }
    return {"metadata": {"name": name}, "status": status}


def test_health_problems_of_a_deployment_broken_before_the_run():
    # the middle Deployment of the crash-loop trial: its old pod runs, the new one crash-loops
    obj = {"spec": {"replicas": 1}, "status": {"availableReplicas": 1, "replicas": 2, "updatedReplicas": 1}}
    pods = [_pod("old"), _pod("new", ready=False, restarts=3, waiting="CrashLoopBackOff")]
    assert rollout.health_problems("Deployment", obj, pods) == ["pod new container c: CrashLoopBackOff "]
    assert rollout.health_problems("Deployment", obj, [_pod("old")]) == []
    down = {"spec": {"replicas": 2}, "status": {"availableReplicas": 1}}
    assert rollout.health_problems("Deployment", down, [_pod("a")]) == ["1 of 2 replicas available"]
    assert rollout.health_problems("StatefulSet", {"spec": {"replicas": 1}, "status": {"readyReplicas": 0}}, []) == ["0 of 1 replicas available"]
    assert rollout.health_problems("CronJob", {}, []) == []


def test_a_crash_looping_pod_does_not_survive_the_soak():
    baseline = rollout.restart_counts([_pod("new")])
    assert baseline == {"new": 0}
    assert rollout.soak_problem([_pod("new")], baseline) is None
    # Ready for a moment after each start: the restart is what gives it away
    assert rollout.soak_problem([_pod("new", restarts=1)], baseline) == "pod new restarted (0 -> 1 restarts) after the rollout was complete"
    assert rollout.soak_problem([_pod("new", ready=False, waiting="CrashLoopBackOff")], baseline) == "pod new container c: CrashLoopBackOff "
    assert rollout.soak_problem([_pod("new", ready=False)], baseline) == "pod new is no longer Ready"


def test_a_pod_running_again_between_two_crashes_is_broken():
    # the crash-loop trial's new pod caught between two restarts: running and Ready for a moment, no
    # CrashLoopBackOff, but its container exited 1 a few seconds ago (seen in CI: it was patched)
    now = 1_800_000_000
    pod = _pod("new", restarts=2)
    last = {"exitCode": 1, "reason": "Error", "finishedAt": kube_time.timestamp(now - 5)}
    pod["status"]["containerStatuses"][0]["lastState"] = {"terminated": last}
    obj = {"spec": {"replicas": 1}, "status": {"availableReplicas": 1}}
    assert rollout.health_problems("Deployment", obj, [pod], now=now) == ["pod new container c restarted 2 times, last exit code 1 5s ago"]
    assert rollout.health_problems("Deployment", obj, [pod]) == []  # without a clock: only what the status says now
    # a crash long ago, or a clean exit, is no sign of a broken workload now
    assert rollout.health_problems("Deployment", obj, [pod], now=now + 3600) == []
    last["exitCode"] = 0
    assert rollout.health_problems("Deployment", obj, [pod], now=now) == []
