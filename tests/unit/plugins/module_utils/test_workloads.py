# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""workloads.py / dfexec.py helpers that need no API server: option checks, patch building, selectors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import shm, workloads
from ansible_collections.shmfix.k8s.plugins.module_utils.client import ConflictError, ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.dfexec import selector_to_string, shm_volume_of


@pytest.mark.parametrize("value", ["256MB", "-1", "1.5.Gi", ""])
def test_bad_size_limit_names_the_option(value):
    with pytest.raises(ShmfixError) as err:
        workloads.validate_patch_params({"size_limit": value})
    assert err.value.msg.startswith("size_limit: ")
    assert repr(value) in err.value.msg


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5])
def test_ratio_outside_0_1(ratio):
    with pytest.raises(ShmfixError) as err:
        workloads.validate_patch_params({"size_ratio": ratio})
    assert "size_ratio" in err.value.msg


def test_min_above_max():
    with pytest.raises(ShmfixError) as err:
        workloads.validate_patch_params({"min_size": "1Gi", "max_size": "256Mi"})
    assert "min_size" in err.value.msg and "max_size" in err.value.msg


def test_bad_volume_name():
    with pytest.raises(ShmfixError) as err:
        workloads.validate_patch_params({"volume_name": "Bad_Name"})
    assert "volume_name 'Bad_Name'" in err.value.msg


def test_good_options_parse_to_bytes():
    opts = workloads.validate_patch_params({"size_limit": "256Mi", "min_size": "64Mi", "max_size": "1Gi", "volume_name": "dshm"})
    assert opts == {"size_limit": 268435456, "min_size": 67108864, "max_size": 1073741824, "size_ratio": None}


def test_unknown_kind_fails_before_any_call():
    with pytest.raises(ShmfixError) as err:
        workloads.resolve_kinds(None, ["Deploymnet"], [])
    assert "unknown kind 'Deploymnet'" in err.value.msg


@pytest.mark.parametrize(
    "kind, pointer",
    [
        ("Deployment", "/spec/template/spec"),
        ("CronJob", "/spec/jobTemplate/spec/template/spec"),
        ("Pod", "/spec"),
    ],
)
def test_pod_spec_pointer(kind, pointer):
    spec = workloads.resolve_kinds(None, [kind], [])[0]
    assert spec.pod_spec_pointer() == pointer
    assert spec.pod_spec_pointer().lstrip("/").split("/") == shm.pod_spec_path(kind)


def _deployment(annotations=None):
    meta = {"name": "web", "namespace": "a", "resourceVersion": "41"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def test_patch_is_guarded_by_resource_version_and_records_the_original():
    spec = workloads.resolve_kinds(None, ["Deployment"], [])[0]
    obj = _deployment()
    pod_spec = obj["spec"]["template"]["spec"]
    plan = shm.plan(pod_spec, parse=lambda v, w=None, allow_zero=False: 268435456, size_bytes=268435456)
    ops = workloads._build_ops(spec, obj, plan, "present")
    assert ops[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "41"}
    assert all(op["path"].startswith("/spec/template/spec/") or op["path"].startswith("/metadata/") for op in ops)
    assert ops[-1]["path"] == "/metadata/annotations"
    assert shm.decode_original(ops[-1]["value"][shm.ANNOTATION_ORIGINAL])["volume"]["name"] == "dshm"


def test_rollback_removes_the_annotation_only():
    spec = workloads.resolve_kinds(None, ["Deployment"], [])[0]
    obj = _deployment({"keep": "me", shm.ANNOTATION_ORIGINAL: "{}"})
    ops = workloads._build_ops(spec, obj, {"patch": []}, "absent")
    assert ops == [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "remove", "path": "/metadata/annotations/shmfix.io~1original"},
    ]


@pytest.mark.parametrize(
    "err, conflict, maybe",
    [
        (ConflictError("conflict", status=409), True, False),
        (
            ShmfixError(
                "API error 422 Unprocessable Entity while trying to patch x: the server rejected our request due to an error in our request", status=422
            ),
            False,
            True,
        ),
        (ShmfixError("spec.template.spec.volumes[1].name: Duplicate value", status=422), False, False),
        (ShmfixError("forbidden", status=403), False, False),
    ],
)
def test_conflict_detection(err, conflict, maybe):
    assert workloads._is_conflict(err) is conflict
    assert workloads._maybe_conflict(err) is maybe


def test_owned_replicasets_and_pods_are_left_to_their_owner():
    rs = {"metadata": {"ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}]}}
    assert workloads.controller_owner(rs) == {"kind": "Deployment", "name": "web"}
    assert "ReplicaSet" in workloads.OWNED_SKIPPED and "Pod" in workloads.OWNED_SKIPPED


def test_node_context_uses_the_node_selector():
    nodes = {
        "allocatable": {"big": 8 << 30, "small": 2 << 30},
        "capacity": {"big": 8 << 30, "small": 2 << 30},
        "labels": {"big": {"size": "big"}, "small": {"size": "small"}},
        "mode": {"big": "sized", "small": "eviction"},
        "error": None,
    }
    assert workloads.node_context(nodes, {"nodeSelector": {"size": "big"}}) == (8 << 30, 8 << 30, "sized")
    assert workloads.node_context(nodes, {}) == (2 << 30, 2 << 30, None)


def test_selector_to_string():
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}],
    }
    assert selector_to_string(sel) == "app=web,tier in (a,b),!x"
    assert selector_to_string({"app": "web"}) == "app=web"


def test_shm_volume_of():
    pod = {"spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm/"}]}]}}
    assert shm_volume_of(pod, "c") == "dshm"
    assert shm_volume_of(pod, "other") is None
