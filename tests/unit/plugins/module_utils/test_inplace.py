# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""inplace.py: which workloads are resized in place and why the others roll out; the resize patch; pod status.

Over a real-shaped Deployment (tests/fixtures/inplace/) and the fixture manifests of shm_fixtures, with pods built from
their templates as the API server returns running pods, and a pod status captured from the v1.37 cluster of localcluster/.
"""

import copy
import os

import jsonpatch
import pytest
import yaml
from ansible_collections.shmfix.k8s.plugins.module_utils import inplace, kinds
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from ansible_collections.shmfix.k8s.plugins.module_utils.size_policy import desired_size
from shm_fixtures import GI
from shm_fixtures import load as load_fixture

INPLACE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "inplace")
DECLARED = {"node-a": [inplace.FEATURE], "node-b": ["SomethingElse", inplace.FEATURE], "old-node": []}


def load(name):
    with open(os.path.join(INPLACE, name)) as f:
        return yaml.safe_load(f)


def notebook():
    obj = load("deployment-notebook-sized-64mi.yaml")
    return obj, obj["spec"]["template"]["spec"]


def template_plan(pod_spec, existing="grow", size=None):
    size = size or desired_size(pod_spec, parse=parse_bytes)[0]
    return planner.plan(pod_spec, parse=parse_bytes, size_bytes=size, existing=existing)


def running_pod(pod_spec, name, node="node-a", uid=None, phase="Running"):
    spec = copy.deepcopy(pod_spec)
    spec["nodeName"] = node
    return {"metadata": {"name": name, "uid": uid or "uid-" + name, "generation": 1}, "spec": spec, "status": {"phase": phase}}


def test_the_notebook_grows_in_place_to_the_size_policy_size():
    _obj, spec = notebook()
    p = template_plan(spec)
    assert (p["action"], p["size_bytes"]) == ("resize", 1 * GI)
    assert inplace.template_reason("Deployment", p) is None
    pods = [running_pod(spec, "notebook-1"), running_pod(spec, "notebook-2", node="node-b")]
    v = inplace.qualify("Deployment", p, pods, DECLARED, parse=parse_bytes)
    assert v["strategy"] == "inplace", v["reason"]
    assert [(e["pod"], e["node"], e["from"], e["to"], e["index"]) for e in v["pods"]] == [
        ("notebook-1", "node-a", "64Mi", "1Gi", 1),
        ("notebook-2", "node-b", "64Mi", "1Gi", 1),
    ]
    assert v["reason"] == "resize dshm of 2 running pod(s) from 64Mi to 1Gi in place"


@pytest.mark.parametrize(
    "fixture,why",
    [
        ("deployment-small-limit", "no sized Memory emptyDir at /dev/shm"),  # runtime default: a new volume needs new pods
        ("cronjob-batch-inference", "a CronJob's pods are not resized in place"),
        ("postgresql-bitnami-statefulset", "is not a Memory emptyDir with a sizeLimit"),  # replace bounds an unbounded one
        ("statefulset-oracle-disk-shm", "no sized Memory emptyDir at /dev/shm to resize"),  # replace moves disk to memory
    ],
)
def test_fixtures_that_must_roll_out_say_why(fixture, why):
    obj, _meta, spec = load_fixture(fixture)
    p = template_plan(spec, existing="replace", size=2 * GI)
    assert p["patch"], p["reason"]
    reason = inplace.template_reason(obj["kind"], p)
    assert reason and why in reason, reason


def test_adding_the_mount_to_a_container_rolls_out():
    _obj, spec = notebook()
    spec = copy.deepcopy(spec)
    spec["containers"].append({"name": "sidecar", "image": "registry.example.com/sidecar:1"})
    p = template_plan(spec, existing="replace", size=1 * GI)
    assert "volume mounts cannot change on resize" in inplace.template_reason("Deployment", p)


@pytest.mark.parametrize(
    "mutate,why",
    [
        (lambda pod: pod["spec"].update(nodeName="old-node"), "node old-node does not declare InPlacePodVerticalScalingMemoryBackedVolumes"),
        (lambda pod: pod["spec"].update(volumes=pod["spec"]["volumes"][:1]), "has no volume dshm (it runs an older template)"),
        (lambda pod: pod["spec"]["volumes"][1]["emptyDir"].pop("sizeLimit"), "volume dshm is not a Memory emptyDir with a sizeLimit"),
        (lambda pod: pod["status"].update(phase="Pending"), "is not running (phase Pending)"),
    ],
)
def test_one_pod_that_cannot_be_resized_rolls_the_workload_out(mutate, why):
    _obj, spec = notebook()
    pods = [running_pod(spec, "notebook-1"), running_pod(spec, "notebook-2")]
    mutate(pods[1])
    v = inplace.qualify("Deployment", template_plan(spec), pods, DECLARED, parse=parse_bytes)
    assert v["strategy"] == "rollout"
    assert why in v["reason"], v["reason"]
    assert v["pods"] == []


def test_no_running_pod_rolls_out():
    _obj, spec = notebook()
    v = inplace.qualify("Deployment", template_plan(spec), [], DECLARED, parse=parse_bytes)
    assert (v["strategy"], v["reason"]) == ("rollout", "no running pod to resize: the new pods come from the pod template")


def test_pods_already_resized_are_done_and_the_rerun_changes_nothing():
    _obj, spec = notebook()
    grown = copy.deepcopy(spec)
    grown["volumes"][1]["emptyDir"]["sizeLimit"] = "1Gi"
    pods = [running_pod(grown, "notebook-1"), running_pod(spec, "notebook-2")]
    v = inplace.qualify("Deployment", template_plan(spec), pods, DECLARED, parse=parse_bytes)
    assert [e["pod"] for e in v["pods"]] == ["notebook-2"] and v["done"] == ["notebook-1"]
    pods[1] = running_pod(grown, "notebook-2")
    v = inplace.qualify("Deployment", template_plan(spec), pods, DECLARED, parse=parse_bytes)
    assert (v["strategy"], v["pods"], v["done"]) == ("inplace", [], ["notebook-1", "notebook-2"])
    assert "already has dshm of 1Gi" in v["reason"]


def test_grow_never_shrinks_a_larger_pod_but_replace_does():
    _obj, spec = notebook()
    big = copy.deepcopy(spec)
    big["volumes"][1]["emptyDir"]["sizeLimit"] = "2Gi"
    pod = running_pod(big, "notebook-1")
    assert inplace.pod_resize(pod, "dshm", 1 * GI, parse=parse_bytes, existing="grow") == (None, None)
    entry, why = inplace.pod_resize(pod, "dshm", 1 * GI, parse=parse_bytes, existing="replace")
    assert why is None and (entry["from"], entry["to"], entry["from_bytes"], entry["to_bytes"]) == ("2Gi", "1Gi", 2 * GI, 1 * GI)


def test_the_resize_patch_changes_only_that_sizelimit_and_is_guarded():
    _obj, spec = notebook()
    pod = running_pod(spec, "notebook-1")
    ops = inplace.resize_patch(1, "dshm", "64Mi", "1Gi")
    after = jsonpatch.apply_patch(pod, ops)
    assert after["spec"]["volumes"][1] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    assert jsonpatch.make_patch(pod, after).patch == [{"op": "replace", "path": "/spec/volumes/1/emptyDir/sizeLimit", "value": "1Gi"}]
    # the pod changed in between (another size, or the volumes reordered): the guards refuse
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(after, ops)
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(pod, inplace.resize_patch(0, "dshm", "64Mi", "1Gi"))


def test_resized_from_round_trips_and_refuses_garbage():
    value = inplace.resized_from("dshm", "64Mi")
    assert value == "dshm=64Mi" and inplace.parse_resized_from(value) == ("dshm", "64Mi")
    for bad in ("", "dshm", "=64Mi", "dshm="):
        with pytest.raises(ValueError, match="shmfix.io/resized-from"):
            inplace.parse_resized_from(bad)


def _pod_status(observed, *conditions):
    return {"status": {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": "True"}] + list(conditions)}}


def test_resize_state_follows_the_kubelet():
    pending = {"type": "PodResizePending", "status": "True", "reason": "Deferred", "message": "Node didn't have enough capacity"}
    progress = {"type": "PodResizeInProgress", "status": "True"}
    error = {"type": "PodResizeInProgress", "status": "True", "reason": "Error", "message": "failed to resize volume dshm"}
    assert inplace.resize_state(_pod_status(1), 2) == ("pending", "the kubelet has not observed generation 2 yet")
    assert inplace.resize_state(_pod_status(2, pending), 2) == ("pending", "Node didn't have enough capacity")
    assert inplace.resize_state(_pod_status(2, progress), 2)[0] == "pending"
    assert inplace.resize_state(_pod_status(2, error), 2) == ("error", "failed to resize volume dshm")
    assert inplace.resize_state(_pod_status(2), 2) == ("done", None)


def test_resize_state_of_a_pod_the_cgroup_v1_kubelet_refused():
    pod = load("pod-resize-infeasible-cgroupv1.yaml")
    state, message = inplace.resize_state(pod, pod["metadata"]["generation"])
    assert state == "infeasible"
    assert message == "Memory-backed emptyDir volume resize is not supported on cgroups v1"


def test_strategy_note():
    assert inplace.strategy_note({"strategy": "inplace"}) == "resized in place"
    assert inplace.strategy_note({"strategy": "rollout", "strategy_reason": "node n1 does not declare X"}) == "rolled out (node n1 does not declare X)"
    assert inplace.strategy_note({}) == "rolled out"
    assert inplace.strategy_note({"rollout": {"status": "not_applicable"}}) == "pod template patched"
    assert inplace.strategy_note({"rollout": {"status": "complete"}}) == "rolled out"


def test_every_resizable_kind_is_a_builtin_found_by_selector():
    for kind in inplace.RESIZABLE_KINDS:
        spec = kinds.builtin(kind)
        assert spec["pods"] == "selector" and not spec["immutable"]
