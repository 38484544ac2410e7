# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dfexec.py helpers that need no API server: selectors, the /dev/shm volume of a container, owners."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import dfexec
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError


def test_selector_to_string():
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}],
    }
    assert dfexec.selector_to_string(sel) == "app=web,tier in (a,b),!x"
    assert dfexec.selector_to_string({"app": "web"}) == "app=web"


def test_shm_volume_of():
    pod = {"spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm/"}]}]}}
    assert dfexec.shm_volume_of(pod, "c") == "dshm"
    assert dfexec.shm_volume_of(pod, "other") is None


def test_owner_kind_comes_from_the_registry_or_in_full():
    assert dfexec._owner_kind({"kind": "StatefulSet", "name": "pg"})["pods"] == "selector"
    assert dfexec._owner_kind({"kind": "Rollout", "name": "r", "api_version": "argoproj.io/v1alpha1", "plural": "rollouts"}).resource == "rollouts.argoproj.io"
    with pytest.raises(ShmfixError, match="owner kind 'Rollout' is not a built-in workload kind; give owner.api_version and owner.plural"):
        dfexec._owner_kind({"kind": "Rollout", "name": "r"})


@pytest.mark.parametrize(
    "selector, labels, matches",
    [
        ({"matchLabels": {"app": "web"}}, {"app": "web", "pod-template-hash": "x"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        ({"app": "web"}, {"app": "web"}, True),  # a ReplicationController's plain map
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
        ({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, {"x": ""}, True),
        ({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, {"x": ""}, False),
        ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, {"app": "web"}, True),
    ],
)
def test_selector_matches_as_the_api_server_does(selector, labels, matches):
    assert dfexec.selector_matches(selector, labels) is matches


def _pod(name, labels=None, phase="Running", owner=None, deleting=False):
    meta = {"name": name, "namespace": "ml", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1]}]
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}, "status": {"phase": phase}}


class ListingKube:
    """Answers lists from plain manifests by path and records each request."""

    def __init__(self, lists):
        self.lists, self.paths = lists, []

    def get(self, path, query=None, **kw):
        self.paths.append(path)
        if path not in self.lists:
            raise ShmfixError("not found: %s" % path, status=404)
        return {"items": self.lists[path]}


def test_the_pods_of_many_workloads_cost_one_list_per_namespace_and_kind():
    deployments = [{"metadata": {"name": "d%d" % i}, "spec": {"selector": {"matchLabels": {"app": "d%d" % i}}}} for i in range(3)]
    pods = [_pod("d0-a", {"app": "d0"}), _pod("d0-b", {"app": "d0"}, phase="Pending"), _pod("d1-a", {"app": "d1"}, deleting=True), _pod("d2-a", {"app": "d2"})]
    pods += [_pod("job-1-x", owner=("Job", "nightly-1")), _pod("bare")]
    jobs = [{"metadata": {"name": "nightly-1", "ownerReferences": [{"kind": "CronJob", "name": "nightly"}]}}]
    kube = ListingKube({"/api/v1/namespaces/ml/pods": pods, "/apis/apps/v1/namespaces/ml/deployments": deployments, "/apis/batch/v1/namespaces/ml/jobs": jobs})
    wanted = [{"kind": "Deployment", "namespace": "ml", "name": "d%d" % i} for i in range(3)]
    wanted += [{"kind": "CronJob", "namespace": "ml", "name": "nightly"}, {"kind": "Pod", "namespace": "ml", "name": "bare"}]
    wanted += [{"kind": "Deployment", "namespace": "ml", "name": "d9"}, {"kind": "StatefulSet", "namespace": "ml", "name": "db", "pods": ["d2-a"]}]
    found, failed = dfexec.select_workload_pods(kube, wanted)
    assert [(ref["name"], pod["metadata"]["name"]) for ref, pod in found] == [
        ("d0", "d0-a"),
        ("d2", "d2-a"),
        ("nightly", "job-1-x"),
        ("bare", "bare"),
        ("db", "d2-a"),
    ]
    assert [(e["workload"]["name"], e["method"], e["reason"]) for e in failed] == [("d9", "unavailable", "Deployment ml/d9 not found")]
    assert sorted(kube.paths) == ["/api/v1/namespaces/ml/pods", "/apis/apps/v1/namespaces/ml/deployments", "/apis/batch/v1/namespaces/ml/jobs"]


def test_a_namespace_that_cannot_be_listed_is_each_of_its_workloads_entry_and_listed_once():
    kube = ListingKube({})
    found, failed = dfexec.select_workload_pods(kube, [{"kind": "Deployment", "namespace": "gone", "name": n} for n in ("a", "b")])
    assert found == [] and [e["workload"]["name"] for e in failed] == ["a", "b"]
    assert all("not found" in e["reason"] for e in failed)
    assert kube.paths.count("/api/v1/namespaces/gone/pods") == 1


def test_a_workload_without_a_namespace_is_named():
    with pytest.raises(ShmfixError, match=r"workloads\[1\] \(Deployment web\) has no namespace: give it one, or set the module's namespace"):
        dfexec.run_df(ListingKube({}), workloads=[{"kind": "Pod", "name": "p", "namespace": "ml"}, {"kind": "Deployment", "name": "web"}])
