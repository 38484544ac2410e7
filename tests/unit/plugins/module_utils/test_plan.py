# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plan.py: minimal, guarded, reversible plans over the fixtures; apply with jsonpatch; diff."""

import copy

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import assessment, kinds, podspec, rollback
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from shm_fixtures import EXPECTED, FIXTURES, GI, MI, MODES, NODE_ALLOCATABLE, load


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FIXTURES)
def test_plan_action(name, mode):
    spec = load(name)[2]
    size = EXPECTED[name]["desired"][0]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=size, existing=mode)
    assert p["action"] == EXPECTED[name]["actions"][mode], p["reason"]
    assert p["changed"] is bool(p["patch"])
    assert (p["original"] is None) is (not p["patch"])
    assert p["reason"]


def _strip_shm_parts(spec):
    """The spec without what a plan may touch: volumes, and volumeMounts of regular containers."""
    out = copy.deepcopy(spec)
    out.pop("volumes", None)
    for c in out.get("containers") or []:
        c.pop("volumeMounts", None)
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FIXTURES)
def test_apply_is_minimal_idempotent_and_rollback_is_exact(name, mode):
    spec = load(name)[2]
    pristine = copy.deepcopy(spec)
    size = EXPECTED[name]["desired"][0]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=size, existing=mode)
    if not p["changed"]:
        assert planner.apply_plan(spec, p) == spec
        return
    after = planner.apply_plan(spec, p)
    assert spec == pristine, "apply_plan must not modify its input"
    # only the shm volume and /dev/shm mounts change
    assert _strip_shm_parts(after) == _strip_shm_parts(spec)
    other_volumes = [v for v in spec.get("volumes") or [] if v["name"] != p["volume_name"]]
    assert [v for v in after["volumes"] if v["name"] != p["volume_name"]] == other_volumes
    for before_c, after_c in zip(spec["containers"], after["containers"]):
        kept = [m for m in after_c.get("volumeMounts") or [] if m["mountPath"] != "/dev/shm"]
        assert kept == [m for m in before_c.get("volumeMounts") or [] if m["mountPath"] != "/dev/shm"]
    # the result is what was asked for
    got = assessment.assess(after, parse=parse_bytes, node_allocatable_bytes=NODE_ALLOCATABLE)
    assert got["state"] == "sized"
    assert got["size_limit_bytes"] == size
    assert all(c["volume"] == p["volume_name"] for c in got["containers"]) or mode != "replace"
    # a second run changes nothing
    again = planner.plan(after, parse=parse_bytes, size_bytes=size, existing=mode)
    assert again["action"] == "none", again["reason"]
    # rollback through the annotation text restores the spec exactly
    text = rollback.encode_original(p["original"])
    assert rollback.rollback(after, rollback.decode_original(text)) == pristine
    assert rollback.plan_rollback(pristine, text)["action"] == "none"


def test_configmap_named_dshm_is_never_touched():
    spec = load("deployment-configmap-named-dshm")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI)
    assert p["volume_name"] == "dshm-1"
    after = planner.apply_plan(spec, p)
    assert after["volumes"] == [
        {"name": "dshm", "configMap": {"name": "dshm-gateway-config", "defaultMode": 420}},
        {"name": "dshm-1", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    assert after["containers"][0]["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/etc/dshm", "readOnly": True},
        {"name": "dshm-1", "mountPath": "/dev/shm"},
    ]
    spec["volumes"].append({"name": "dshm-1", "secret": {"secretName": "x"}})
    assert planner.plan(spec, parse=parse_bytes, size_bytes=GI)["volume_name"] == "dshm-2"


def test_init_containers_and_sidecars_are_not_mounted():
    spec = load("deployment-init-sidecar")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=704 * MI)
    after = planner.apply_plan(spec, p)
    assert after["initContainers"] == spec["initContainers"]
    assert [c["name"] for c in after["containers"] if {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]] == ["api", "log-shipper"]
    assert p["patch"][0] == {"op": "add", "path": "/volumes/-", "value": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "704Mi"}}}


def test_plan_only_named_containers():
    spec = load("deployment-init-sidecar")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI, containers=["api"])
    assert p["after"]["mounts"] == {"api": {"name": "dshm", "mountPath": "/dev/shm"}, "log-shipper": None}
    with pytest.raises(ValueError, match=r"containers: cloud-sql-proxy not in the pod template \(its containers: api, log-shipper\)"):
        planner.plan(spec, parse=parse_bytes, size_bytes=GI, containers=["cloud-sql-proxy"])


def test_volumes_key_absent_is_restored_absent():
    spec = load("deployment-small-limit")[2]
    assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=256 * MI)
    assert [op["path"] for op in p["patch"]] == ["/volumes", "/containers/0/name", "/containers/0/volumeMounts"]
    back = rollback.rollback(planner.apply_plan(spec, p), p["original"])
    assert back == spec and "volumes" not in back and "volumeMounts" not in back["containers"][0]


def test_null_lists_are_restored_null():
    spec = {"containers": [{"name": "app", "volumeMounts": None}], "volumes": None}
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI)
    assert rollback.rollback(planner.apply_plan(spec, p), p["original"]) == spec


def test_keep_and_grow_refuse_to_add_no_more_than_the_runtime_default():
    spec = load("deployment-small-limit")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=64 * MI, existing="grow")
    assert p["action"] == "none"
    assert "already 64 MiB" in p["reason"]


def test_grow_raises_only():
    spec = load("deployment-selenium-chrome")[2]
    assert planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="grow")["action"] == "none"
    p = planner.plan(spec, parse=parse_bytes, size_bytes=2 * GI, existing="grow")
    assert p["action"] == "resize"
    assert p["reason"] == "raise sizeLimit of dshm from 1Gi to 2Gi"
    assert p["after"]["volume"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    # the volume entry sits at index 1: the patch tests it before replacing it
    assert p["patch"][0] == {"op": "test", "path": "/volumes/1", "value": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}}


def test_grow_leaves_unbounded_memory_capped_by_a_pod_limit():
    spec = load("postgresql-bitnami-statefulset")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=16 * GI, existing="grow")
    assert p["action"] == "none"
    assert "the pod memory limit already caps its tmpfs" in p["reason"]
    assert "use existing=replace" in p["reason"]


def test_grow_bounds_unbounded_memory_without_pod_limit_and_rolls_back():
    # the seed's case 1: medium Memory, no sizeLimit, no memory limit -> the tmpfs is node-sized
    spec = load("postgresql-bitnami-statefulset")[2]
    for c in spec["containers"] + spec.get("initContainers", []):
        c.get("resources", {}).pop("limits", None)
    assert podspec.pod_memory_limit(spec, parse=parse_bytes) == (None, None)
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="grow")
    assert p["action"] == "resize"
    assert p["reason"].startswith("bound dshm (Memory emptyDir without sizeLimit, no pod memory limit")
    assert p["after"]["volume"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    patched = planner.apply_plan(spec, p)
    assert planner.plan(patched, parse=parse_bytes, size_bytes=GI, existing="grow")["action"] == "none"
    assert rollback.rollback(patched, p["original"]) == spec
    assert planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="keep")["action"] == "none"


def test_replace_keeps_equal_size_written_differently():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm/"}]}],
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}}],
    }
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")
    assert p["action"] == "none"


def test_replace_disk_backed_to_memory_and_back():
    spec = load("statefulset-oracle-disk-shm")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=2 * GI, existing="replace")
    assert p["action"] == "replace"
    assert p["before"]["volume"] == {"name": "dshm", "emptyDir": {"sizeLimit": "2Gi"}}
    assert p["after"]["volume"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    assert p["original"]["volume"]["entry"] == {"name": "dshm", "emptyDir": {"sizeLimit": "2Gi"}}
    assert rollback.rollback(planner.apply_plan(spec, p), p["original"]) == spec


def test_replace_mounts_the_volume_in_containers_lacking_it():
    spec = load("deployment-pytorch-mixed-mounts")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=16 * GI, existing="replace")
    assert p["action"] == "resize"
    assert p["after"]["mounts"]["dcgm-metrics"] == {"name": "dshm", "mountPath": "/dev/shm"}
    after = planner.apply_plan(spec, p)
    assert "containers_without_mount" not in {f["code"] for f in assessment.assess(after, parse=parse_bytes)["findings"]}
    assert rollback.rollback(after, p["original"]) == spec


def test_apply_plan_refuses_a_spec_that_changed_since_planning():
    spec = load("deployment-init-sidecar")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI)
    moved = copy.deepcopy(spec)
    moved["containers"].reverse()
    with pytest.raises(ValueError, match=r"the JSON patch does not apply to this pod spec \(.*log-shipper.*api.*\); re-read the object and plan again"):
        planner.apply_plan(moved, p)


def test_template_diff_shows_only_changed_parts():
    spec = load("deployment-configmap-named-dshm")[2]
    after = planner.apply_plan(spec, planner.plan(spec, parse=parse_bytes, size_bytes=GI))
    assert planner.template_diff(spec, after) == {
        "before": {"volumes": [], "containers": [{"name": "gateway", "volumeMounts": [{"name": "dshm", "mountPath": "/etc/dshm", "readOnly": True}]}]},
        "after": {
            "volumes": [{"name": "dshm-1", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            "containers": [
                {"name": "gateway", "volumeMounts": [{"name": "dshm", "mountPath": "/etc/dshm", "readOnly": True}, {"name": "dshm-1", "mountPath": "/dev/shm"}]}
            ],
        },
    }
    assert planner.template_diff(spec, spec) == {"before": {}, "after": {}}


def test_prefix_patch_and_pod_spec_path():
    ops = [{"op": "add", "path": "/volumes/-", "value": {}}]
    assert kinds.builtin("CronJob").pod_spec_keys() == ["spec", "jobTemplate", "spec", "template", "spec"]
    assert kinds.builtin("CronJob").pod_spec_pointer() == "/spec/jobTemplate/spec/template/spec"
    assert planner.prefix_patch(ops, kinds.builtin("CronJob").pod_spec_keys()) == [
        {"op": "add", "path": "/spec/jobTemplate/spec/template/spec/volumes/-", "value": {}}
    ]
    assert planner.prefix_patch(ops, "/spec/template/spec/")[0]["path"] == "/spec/template/spec/volumes/-"
    assert ops[0]["path"] == "/volumes/-"
    with pytest.raises(ValueError, match="unknown kind 'Service'; supported: Deployment, StatefulSet"):
        kinds.builtin("Service")


def test_containers_may_be_a_single_name():
    spec = load("deployment-init-sidecar")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI, containers="log-shipper")
    assert [name for name, mount in p["after"]["mounts"].items() if mount] == ["log-shipper"]
