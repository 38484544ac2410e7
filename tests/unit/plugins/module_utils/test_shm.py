# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""shm.py against real-shaped manifests (tests/fixtures/manifests) with exact figures."""

import copy
import os
import subprocess
import sys

import pytest
import yaml
from ansible_collections.shmfix.k8s.plugins.module_utils import shm
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes

MANIFESTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "manifests")
MI = 1024**2
GI = 1024**3
# a 16 GB node as the API reports it: capacity 16393236Ki, allocatable 15241236Ki
NODE_CAPACITY = 16393236 * 1024
NODE_ALLOCATABLE = 15241236 * 1024


def load(name):
    with open(os.path.join(MANIFESTS, name + ".yaml")) as f:
        obj = yaml.safe_load(f)
    path = shm.pod_spec_path(obj["kind"])
    template = obj
    for key in path[:-1]:
        template = template[key]
    return obj, template.get("metadata") or {}, template[path[-1]]


def assess_fixture(name, **kwargs):
    obj, pod_meta, spec = load(name)
    kwargs.setdefault("node_allocatable_bytes", NODE_ALLOCATABLE)
    return shm.assess(spec, parse=parse_bytes, pod_metadata=pod_meta, object_metadata=obj["metadata"], **kwargs)


# fixture -> expected assessment (node: allocatable 15241236Ki, mode sized) and policy results.
EXPECTED = {
    "postgresql-bitnami-statefulset": {
        "state": "unbounded_memory",
        "volume": "dshm",
        "pod_limit": (768 * MI, "containers"),
        "effective": 768 * MI,
        "codes": {"managed_by_helm", "memory_accounting"},
        "desired": (384 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "ray-head-kuberay-pod": {
        "state": "sized",
        "volume": "shared-mem",
        "pod_limit": (8 * GI, "containers"),
        "effective": 8 * GI,
        "codes": {"memory_accounting"},
        "desired": (4 * GI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "cronjob-batch-inference": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (6 * GI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (3 * GI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-init-sidecar": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (1408 * MI, "containers"),  # max(1Gi + 128Mi + sidecar 256Mi, init 64Mi, 256Mi)
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (704 * MI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "daemonset-hostipc-mps": {
        "state": "host_ipc",
        "volume": None,
        "pod_limit": (None, None),
        "effective": None,
        "codes": {"host_ipc", "managed_by_helm"},
        "desired": (GI, "default_no_memory_limit"),
        "actions": {"keep": "skip", "grow": "skip", "replace": "skip"},
    },
    "deployment-configmap-named-dshm": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (2 * GI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (GI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-small-limit": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (128 * MI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (64 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "add"},
    },
    "pod-level-resources": {
        "state": "sized",
        "volume": "dshm",
        "pod_limit": (2 * GI, "pod"),
        "effective": 2 * GI,
        "codes": {"size_limit_above_memory_limit", "containers_without_mount", "memory_accounting"},
        "desired": (GI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "deployment-triton-flux-helm": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (16 * GI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default", "managed_by_flux", "managed_by_helm"},
        "desired": (8 * GI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-argocd-gunicorn": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (512 * MI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default", "managed_by_argocd"},
        "desired": (256 * MI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-selenium-chrome": {
        "state": "sized",
        "volume": "dshm",
        "pod_limit": (GI, "containers"),
        "effective": GI,
        "codes": {"managed_by_helm", "memory_accounting"},
        "desired": (512 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "statefulset-oracle-disk-shm": {
        "state": "disk_backed",
        "volume": "dshm",
        "pod_limit": (4 * GI, "containers"),
        "effective": None,
        "codes": {"disk_backed"},
        "desired": (2 * GI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "replace"},
    },
    "deployment-pytorch-mixed-mounts": {
        "state": "sized",
        "volume": "dshm",
        "pod_limit": (32 * GI + 256 * MI, "containers"),
        "effective": 8 * GI,
        "codes": {"containers_without_mount"},
        "desired": (16512 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "resize", "replace": "resize"},
    },
    "daemonset-hostpath-shm": {
        "state": "host_path",
        "volume": "host-shm",
        "pod_limit": (GI, "containers"),
        "effective": None,
        "codes": {"host_path"},
        "desired": (512 * MI, "default_ratio"),
        "actions": {"keep": "skip", "grow": "skip", "replace": "skip"},
    },
}
FIXTURES = sorted(EXPECTED)
MODES = ("keep", "grow", "replace")


def test_every_fixture_has_expectations():
    on_disk = sorted(n[: -len(".yaml")] for n in os.listdir(MANIFESTS) if n.endswith(".yaml"))
    assert on_disk == FIXTURES


@pytest.mark.parametrize("name", FIXTURES)
def test_assess_state_and_figures(name):
    want = EXPECTED[name]
    got = assess_fixture(name)
    assert got["state"] == want["state"]
    assert got["volume"] == want["volume"]
    assert (got["pod_memory_limit_bytes"], got["pod_memory_limit_source"]) == want["pod_limit"]
    assert got["effective_bytes"] == want["effective"]
    assert got["node_mode"] == "sized"
    assert got["node_mode_assumed"] is True


@pytest.mark.parametrize("name", FIXTURES)
def test_assess_findings_exact_codes_and_actionable(name):
    findings = assess_fixture(name)["findings"]
    assert {f["code"] for f in findings} == EXPECTED[name]["codes"]
    for f in findings:
        assert f["severity"] in ("error", "warning", "info")
        assert f["message"].endswith(".") and len(f["message"]) > 60, f


@pytest.mark.parametrize("name", FIXTURES)
def test_desired_size_default_policy(name):
    spec = load(name)[2]
    assert shm.desired_size(spec, parse=parse_bytes) == EXPECTED[name]["desired"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FIXTURES)
def test_plan_action(name, mode):
    spec = load(name)[2]
    size = EXPECTED[name]["desired"][0]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=size, existing=mode)
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
    p = shm.plan(spec, parse=parse_bytes, size_bytes=size, existing=mode)
    if not p["changed"]:
        assert shm.apply_plan(spec, p) == spec
        return
    after = shm.apply_plan(spec, p)
    assert spec == pristine, "apply_plan must not modify its input"
    # only the shm volume and /dev/shm mounts change
    assert _strip_shm_parts(after) == _strip_shm_parts(spec)
    other_volumes = [v for v in spec.get("volumes") or [] if v["name"] != p["volume_name"]]
    assert [v for v in after["volumes"] if v["name"] != p["volume_name"]] == other_volumes
    for before_c, after_c in zip(spec["containers"], after["containers"]):
        kept = [m for m in after_c.get("volumeMounts") or [] if m["mountPath"] != "/dev/shm"]
        assert kept == [m for m in before_c.get("volumeMounts") or [] if m["mountPath"] != "/dev/shm"]
    # the result is what was asked for
    got = shm.assess(after, parse=parse_bytes, node_allocatable_bytes=NODE_ALLOCATABLE)
    assert got["state"] == "sized"
    assert got["size_limit_bytes"] == size
    assert all(c["volume"] == p["volume_name"] for c in got["containers"]) or mode != "replace"
    # a second run changes nothing
    again = shm.plan(after, parse=parse_bytes, size_bytes=size, existing=mode)
    assert again["action"] == "none", again["reason"]
    # rollback through the annotation text restores the spec exactly
    text = shm.encode_original(p["original"])
    assert shm.rollback(after, shm.decode_original(text)) == pristine
    assert shm.plan_rollback(pristine, text)["action"] == "none"


# ----------------------------------------------------------------------------------------------
# specific rules


def test_configmap_named_dshm_is_never_touched():
    spec = load("deployment-configmap-named-dshm")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI)
    assert p["volume_name"] == "dshm-1"
    after = shm.apply_plan(spec, p)
    assert after["volumes"] == [
        {"name": "dshm", "configMap": {"name": "dshm-gateway-config", "defaultMode": 420}},
        {"name": "dshm-1", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
    ]
    assert after["containers"][0]["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/etc/dshm", "readOnly": True},
        {"name": "dshm-1", "mountPath": "/dev/shm"},
    ]
    spec["volumes"].append({"name": "dshm-1", "secret": {"secretName": "x"}})
    assert shm.plan(spec, parse=parse_bytes, size_bytes=GI)["volume_name"] == "dshm-2"


def test_init_containers_and_sidecars_are_not_mounted():
    spec = load("deployment-init-sidecar")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=704 * MI)
    after = shm.apply_plan(spec, p)
    assert after["initContainers"] == spec["initContainers"]
    assert [c["name"] for c in after["containers"] if {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]] == ["api", "log-shipper"]
    assert p["patch"][0] == {"op": "add", "path": "/volumes/-", "value": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "704Mi"}}}


def test_plan_only_named_containers():
    spec = load("deployment-init-sidecar")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI, containers=["api"])
    assert p["after"]["mounts"] == {"api": {"name": "dshm", "mountPath": "/dev/shm"}, "log-shipper": None}
    with pytest.raises(ValueError, match=r"containers: cloud-sql-proxy not in the pod template \(its containers: api, log-shipper\)"):
        shm.plan(spec, parse=parse_bytes, size_bytes=GI, containers=["cloud-sql-proxy"])


def test_volumes_key_absent_is_restored_absent():
    spec = load("deployment-small-limit")[2]
    assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=256 * MI)
    assert [op["path"] for op in p["patch"]] == ["/volumes", "/containers/0/name", "/containers/0/volumeMounts"]
    back = shm.rollback(shm.apply_plan(spec, p), p["original"])
    assert back == spec and "volumes" not in back and "volumeMounts" not in back["containers"][0]


def test_null_lists_are_restored_null():
    spec = {"containers": [{"name": "app", "volumeMounts": None}], "volumes": None}
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI)
    assert shm.rollback(shm.apply_plan(spec, p), p["original"]) == spec


def test_keep_and_grow_refuse_to_add_no_more_than_the_runtime_default():
    spec = load("deployment-small-limit")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=64 * MI, existing="grow")
    assert p["action"] == "none"
    assert "already 64.0 MiB" in p["reason"]


def test_grow_raises_only():
    spec = load("deployment-selenium-chrome")[2]
    assert shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="grow")["action"] == "none"
    p = shm.plan(spec, parse=parse_bytes, size_bytes=2 * GI, existing="grow")
    assert p["action"] == "resize"
    assert p["reason"] == "raise sizeLimit of dshm from 1Gi to 2Gi"
    assert p["after"]["volume"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    # the volume entry sits at index 1: the patch tests it before replacing it
    assert p["patch"][0] == {"op": "test", "path": "/volumes/1", "value": {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}}


def test_grow_leaves_unbounded_memory_capped_by_a_pod_limit():
    spec = load("postgresql-bitnami-statefulset")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=16 * GI, existing="grow")
    assert p["action"] == "none"
    assert "the pod memory limit already caps its tmpfs" in p["reason"]
    assert "use existing=replace" in p["reason"]


def test_grow_bounds_unbounded_memory_without_pod_limit_and_rolls_back():
    # the seed's case 1: medium Memory, no sizeLimit, no memory limit -> the tmpfs is node-sized
    spec = load("postgresql-bitnami-statefulset")[2]
    for c in spec["containers"] + spec.get("initContainers", []):
        c.get("resources", {}).pop("limits", None)
    assert shm.pod_memory_limit(spec, parse=parse_bytes) == (None, None)
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="grow")
    assert p["action"] == "resize"
    assert p["reason"].startswith("bound dshm (Memory emptyDir without sizeLimit, no pod memory limit")
    assert p["after"]["volume"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    patched = shm.apply_plan(spec, p)
    assert shm.plan(patched, parse=parse_bytes, size_bytes=GI, existing="grow")["action"] == "none"
    assert shm.rollback(patched, p["original"]) == spec
    assert shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="keep")["action"] == "none"


def test_replace_keeps_equal_size_written_differently():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm/"}]}],
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}}],
    }
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")
    assert p["action"] == "none"


def test_replace_disk_backed_to_memory_and_back():
    spec = load("statefulset-oracle-disk-shm")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=2 * GI, existing="replace")
    assert p["action"] == "replace"
    assert p["before"]["volume"] == {"name": "dshm", "emptyDir": {"sizeLimit": "2Gi"}}
    assert p["after"]["volume"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    assert p["original"]["volume"]["entry"] == {"name": "dshm", "emptyDir": {"sizeLimit": "2Gi"}}
    assert shm.rollback(shm.apply_plan(spec, p), p["original"]) == spec


def test_replace_mounts_the_volume_in_containers_lacking_it():
    spec = load("deployment-pytorch-mixed-mounts")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=16 * GI, existing="replace")
    assert p["action"] == "resize"
    assert p["after"]["mounts"]["dcgm-metrics"] == {"name": "dshm", "mountPath": "/dev/shm"}
    after = shm.apply_plan(spec, p)
    assert "containers_without_mount" not in {f["code"] for f in shm.assess(after, parse=parse_bytes)["findings"]}
    assert shm.rollback(after, p["original"]) == spec


def test_different_volumes_at_dev_shm_are_skipped():
    spec = {
        "containers": [
            {"name": "a", "volumeMounts": [{"name": "s1", "mountPath": "/dev/shm"}]},
            {"name": "b", "volumeMounts": [{"name": "s2", "mountPath": "/dev/shm"}]},
        ],
        "volumes": [{"name": "s1", "emptyDir": {"medium": "Memory"}}, {"name": "s2", "emptyDir": {"medium": "Memory"}}],
    }
    assert shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")["action"] == "skip"
    got = shm.assess(spec, parse=parse_bytes)
    assert got["volumes"] == ["s1", "s2"] and got["volume"] is None
    assert "several_shm_volumes" in {f["code"] for f in got["findings"]}


def test_plan_input_errors():
    spec = {"containers": [{"name": "a"}]}
    with pytest.raises(ValueError, match="existing: 'shrink' must be one of keep, grow, replace"):
        shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="shrink")
    with pytest.raises(ValueError, match="size_bytes: 0 must be a positive number of bytes"):
        shm.plan(spec, parse=parse_bytes, size_bytes=0)
    with pytest.raises(ValueError, match="volume_name: 'Dshm' is not a valid volume name"):
        shm.plan(spec, parse=parse_bytes, size_bytes=GI, volume_name="Dshm")


def test_apply_plan_refuses_a_spec_that_changed_since_planning():
    spec = load("deployment-init-sidecar")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI)
    moved = copy.deepcopy(spec)
    moved["containers"].reverse()
    with pytest.raises(ValueError, match="test failed at /containers/0/name: found 'log-shipper', expected 'api'"):
        shm.apply_plan(moved, p)


def test_rollback_is_idempotent_and_keeps_later_unrelated_edits():
    spec = load("cronjob-batch-inference")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=3 * GI)
    after = shm.apply_plan(spec, p)
    after["volumes"].append({"name": "scratch", "emptyDir": {}})
    after["containers"][0]["volumeMounts"].append({"name": "scratch", "mountPath": "/scratch"})
    back = shm.rollback(after, p["original"])
    assert back["volumes"] == spec["volumes"] + [{"name": "scratch", "emptyDir": {}}]
    assert back["containers"][0]["volumeMounts"] == spec["containers"][0]["volumeMounts"] + [{"name": "scratch", "mountPath": "/scratch"}]
    assert shm.rollback(back, p["original"]) == back
    assert shm.plan_rollback(back, p["original"])["action"] == "none"


def test_repatch_keeps_the_first_original():
    spec = load("cronjob-batch-inference")[2]
    first = shm.plan(spec, parse=parse_bytes, size_bytes=GI)
    once = shm.apply_plan(spec, first)
    second = shm.plan(once, parse=parse_bytes, size_bytes=2 * GI, existing="replace")
    assert second["action"] == "resize"
    merged = shm.merge_original(first["original"], second["original"])
    assert merged["volume"]["entry"] is None  # shmfix added the volume: rollback removes it
    assert merged["size_limit"] == "2Gi"
    assert shm.rollback(shm.apply_plan(once, second), merged) == spec
    assert shm.merge_original(None, second["original"]) == second["original"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"v": 2, "volume": {"name": "dshm"}, "mounts": []}',
        '{"v": 1, "volume": {}, "mounts": []}',
        '{"v": 1, "volume": {"name": "d"}, "mounts": [1]}',
    ],
)
def test_decode_original_rejects_foreign_annotations(text):
    with pytest.raises(ValueError, match="annotation shmfix.io/original was not written by shmfix or was edited"):
        shm.decode_original(text)


def test_template_diff_shows_only_changed_parts():
    spec = load("deployment-configmap-named-dshm")[2]
    after = shm.apply_plan(spec, shm.plan(spec, parse=parse_bytes, size_bytes=GI))
    assert shm.template_diff(spec, after) == {
        "before": {"volumes": [], "containers": [{"name": "gateway", "volumeMounts": [{"name": "dshm", "mountPath": "/etc/dshm", "readOnly": True}]}]},
        "after": {
            "volumes": [{"name": "dshm-1", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            "containers": [
                {"name": "gateway", "volumeMounts": [{"name": "dshm", "mountPath": "/etc/dshm", "readOnly": True}, {"name": "dshm-1", "mountPath": "/dev/shm"}]}
            ],
        },
    }
    assert shm.template_diff(spec, spec) == {"before": {}, "after": {}}


def test_prefix_patch_and_pod_spec_path():
    ops = [{"op": "add", "path": "/volumes/-", "value": {}}]
    assert shm.pod_spec_path("CronJob") == ["spec", "jobTemplate", "spec", "template", "spec"]
    assert shm.prefix_patch(ops, shm.pod_spec_path("CronJob")) == [{"op": "add", "path": "/spec/jobTemplate/spec/template/spec/volumes/-", "value": {}}]
    assert shm.prefix_patch(ops, "/spec/template/spec/")[0]["path"] == "/spec/template/spec/volumes/-"
    assert ops[0]["path"] == "/volumes/-"
    with pytest.raises(ValueError, match="kind 'Service' has no pod template"):
        shm.pod_spec_path("Service")


@pytest.mark.parametrize("name", ["deployment-triton-flux-helm", "cronjob-batch-inference", "deployment-argocd-gunicorn"])
def test_gitops_snippet_is_valid_yaml_matching_the_plan(name):
    obj, spec = load(name)[0], load(name)[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=EXPECTED[name]["desired"][0])
    text = shm.gitops_snippet(obj["kind"], p, name=obj["metadata"]["name"])
    patch, values = yaml.safe_load_all(text)
    assert patch["apiVersion"] == obj["apiVersion"] and patch["kind"] == obj["kind"]
    assert patch["metadata"] == {"name": obj["metadata"]["name"]}
    node = patch
    for key in shm.pod_spec_path(obj["kind"]):
        node = node[key]
    assert node["volumes"] == [p["after"]["volume"]]
    assert node["containers"] == [{"name": c["name"], "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]} for c in spec["containers"]]
    assert values == {"extraVolumes": [p["after"]["volume"]], "extraVolumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}


def test_gitops_snippet_quotes_numeric_quantities():
    spec = {"containers": [{"name": "a"}]}
    p = shm.plan(spec, parse=parse_bytes, size_bytes=100_000_000)
    docs = list(yaml.safe_load_all(shm.gitops_snippet("Deployment", p, name="a")))
    assert len(docs) == 2
    patch = docs[0]
    assert patch["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "100000000"


# ----------------------------------------------------------------------------------------------
# effective size


def test_effective_without_node_allocatable_is_an_upper_bound():
    got = assess_fixture("postgresql-bitnami-statefulset", node_allocatable_bytes=None)
    assert got["effective_bytes"] == 768 * MI
    assert got["effective_complete"] is False
    assert "node allocatable memory unknown" in got["effective_note"]


def test_effective_unbounded_without_any_bound_is_unknown():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    got = shm.assess(spec, parse=parse_bytes)
    assert (got["state"], got["effective_bytes"], got["effective_complete"]) == ("unbounded_memory", None, False)
    assert {f["code"] for f in got["findings"]} == {"no_memory_limit_no_size_limit"}
    got = shm.assess(spec, parse=parse_bytes, node_allocatable_bytes=NODE_ALLOCATABLE)
    assert got["effective_bytes"] == NODE_ALLOCATABLE
    assert "can grow to node allocatable memory (14.5 GiB)" in got["findings"][0]["message"]


def test_effective_note_names_the_bound():
    got = assess_fixture("pod-level-resources")
    assert (
        got["effective_note"] == "min(pod memory limit 2.0 GiB, sizeLimit 4.0 GiB, node allocatable memory 14.5 GiB) = 2.0 GiB (pod memory limit is the bound)"
    )


def test_eviction_mode_tmpfs_is_half_the_node_ram():
    got = assess_fixture("deployment-selenium-chrome", node_mode="eviction", node_capacity_bytes=NODE_CAPACITY)
    assert got["effective_bytes"] == NODE_CAPACITY // 2 == 8393336832
    assert got["eviction_bytes"] == GI
    assert got["node_mode_assumed"] is False
    assert "eviction_enforced" in {f["code"] for f in got["findings"]}
    unknown = assess_fixture("deployment-selenium-chrome", node_mode="eviction")
    assert unknown["effective_bytes"] is None
    assert "node memory capacity unknown" in unknown["effective_note"]
    with pytest.raises(ValueError, match="node_mode: 'fast'"):
        assess_fixture("deployment-selenium-chrome", node_mode="fast")


def test_effective_below_target_says_what_bounds_it():
    cases = {
        "cronjob-batch-inference": "it is the container runtime's default; add a memory emptyDir of 16Gi",
        "deployment-selenium-chrome": "the tmpfs is capped by the pod memory limit; raise limits.memory above 16Gi",
        "deployment-pytorch-mixed-mounts": "raise sizeLimit to 16Gi",
    }
    for name, fragment in cases.items():
        findings = {f["code"]: f for f in assess_fixture(name, target_bytes=16 * GI)["findings"]}
        assert fragment in findings["effective_below_target"]["message"], name
        assert findings["effective_below_target"]["severity"] == "warning"
    assert "effective_below_target" not in {f["code"] for f in assess_fixture("ray-head-kuberay-pod", target_bytes=8 * GI)["findings"]}


def test_size_limit_above_memory_limit_message():
    findings = {f["code"]: f for f in assess_fixture("pod-level-resources")["findings"]}
    assert findings["size_limit_above_memory_limit"]["message"] == (
        "sizeLimit 4.0 GiB of volume dshm is above the pod memory limit 2.0 GiB: the kubelet silently caps the tmpfs at 2.0 GiB; "
        "lower sizeLimit to at most 2Gi or raise limits.memory."
    )


# ----------------------------------------------------------------------------------------------
# pod memory limit (kubelet PodLimits)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}, {"name": "b"}]}, (None, None)),
        ({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}], "overhead": {"memory": "160Mi"}}, (GI + 160 * MI, "containers")),
        (
            {
                "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
                "initContainers": [{"name": "big", "resources": {"limits": {"memory": "4Gi"}}}],
            },
            (4 * GI, "containers"),
        ),
        ({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}], "initContainers": [{"name": "nolimit"}]}, (None, None)),
        (
            {
                "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
                "initContainers": [{"name": "side", "restartPolicy": "Always", "resources": {"limits": {"memory": "512Mi"}}}, {"name": "after"}],
            },
            (1536 * MI, "containers"),
        ),
        ({"containers": [{"name": "a"}], "resources": {"limits": {"memory": "3Gi"}}}, (3 * GI, "pod")),
        ({"containers": [{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]}, (None, None)),
        ({"containers": []}, (None, None)),
    ],
)
def test_pod_memory_limit(spec, expected):
    assert shm.pod_memory_limit(spec, parse=parse_bytes) == expected


# ----------------------------------------------------------------------------------------------
# states


@pytest.mark.parametrize(
    ("volume", "state"),
    [
        ({"name": "v", "emptyDir": {"medium": "Memory"}}, "unbounded_memory"),
        ({"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "0"}}, "unbounded_memory"),  # the kubelet ignores 0
        ({"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}, "sized"),
        ({"name": "v", "emptyDir": {}}, "disk_backed"),
        ({"name": "v"}, "disk_backed"),
        ({"name": "v", "emptyDir": {"medium": "HugePages-2Mi"}}, "other"),
        ({"name": "v", "hostPath": {"path": "/dev/shm"}}, "host_path"),
        ({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}, "other"),
        ({"name": "v", "configMap": {"name": "c"}}, "other"),
    ],
)
def test_volume_states(volume, state):
    spec = {"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/dev/shm"}]}], "volumes": [volume]}
    got = shm.assess(spec, parse=parse_bytes)
    assert got["state"] == got["containers"][0]["state"] == state
    action = shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")["action"]
    assert (action == "skip") is (state in ("host_path", "other"))


def test_missing_volume_is_an_error_finding_and_skipped():
    spec = {"containers": [{"name": "a", "volumeMounts": [{"name": "gone", "mountPath": "/dev/shm"}]}]}
    got = shm.assess(spec, parse=parse_bytes)
    assert [(f["severity"], f["code"]) for f in got["findings"]] == [("error", "missing_volume")]
    assert shm.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")["action"] == "skip"


def test_init_containers_reported_separately():
    got = assess_fixture("deployment-init-sidecar")
    assert [(c["name"], c["state"], c["memory_limit_bytes"]) for c in got["init_containers"]] == [
        ("wait-for-db", "runtime_default", 64 * MI),
        ("cloud-sql-proxy", "runtime_default", 256 * MI),
    ]
    assert [c["name"] for c in got["containers"]] == ["api", "log-shipper"]


def test_read_only_mount_is_reported():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": "/dev/shm", "readOnly": True}]}],
        "volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
    }
    assert "read_only_mount" in {f["code"] for f in shm.assess(spec, parse=parse_bytes)["findings"]}


# ----------------------------------------------------------------------------------------------
# annotations and managers


def test_bad_size_annotation_is_a_finding_and_desired_size_refuses_it():
    obj, pod_meta, spec = load("deployment-argocd-gunicorn")
    obj["metadata"]["annotations"][shm.ANNOTATION_SIZE_LIMIT] = "2GB"
    got = shm.assess(spec, parse=parse_bytes, pod_metadata=pod_meta, object_metadata=obj["metadata"])
    bad = [f for f in got["findings"] if f["code"] == "bad_annotation"]
    assert bad == [
        {
            "severity": "error",
            "code": "bad_annotation",
            "message": "annotation shmfix.io/size-limit: '2GB' is not a Kubernetes quantity (use a binary suffix such as 256Mi or 1Gi); "
            "shmfix does not patch this workload until it is fixed: kubectl annotate <kind>/<name> shmfix.io/size-limit=1Gi --overwrite.",
        }
    ]
    with pytest.raises(ValueError, match="annotation shmfix.io/size-limit: '2GB' is not a Kubernetes quantity"):
        shm.desired_size(spec, parse=parse_bytes, annotation_value="2GB")


def test_size_annotation_on_the_pod_template_counts():
    pod_meta = {"annotations": {shm.ANNOTATION_SIZE_LIMIT: "3Gi"}}
    assert shm.annotation(shm.ANNOTATION_SIZE_LIMIT, pod_metadata=pod_meta, object_metadata={}) == "3Gi"
    assert shm.annotation(shm.ANNOTATION_SIZE_LIMIT, pod_metadata=pod_meta, object_metadata={"annotations": {shm.ANNOTATION_SIZE_LIMIT: "1Gi"}}) == "1Gi"


@pytest.mark.parametrize(("value", "skipped"), [("true", True), ("True", True), ("yes", True), ("please", True), ("false", False), ("0", False), (None, False)])
def test_skip_annotation(value, skipped):
    meta = {"annotations": {shm.ANNOTATION_SKIP: value}} if value is not None else {}
    assert shm.is_skipped(object_metadata=meta) is skipped


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"labels": {"app.kubernetes.io/managed-by": "Helm"}}, ["helm"]),
        ({"labels": {"app.kubernetes.io/managed-by": "helm"}}, ["helm"]),
        ({"labels": {"app.kubernetes.io/managed-by": "kustomize"}}, []),
        ({"annotations": {"meta.helm.sh/release-name": "pg"}}, ["helm"]),
        ({"labels": {"argocd.argoproj.io/instance": "shop"}}, ["argocd"]),
        ({"labels": {"app.kubernetes.io/instance": "shop"}}, []),
        ({"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/checkout"}}, ["argocd"]),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}, ["flux"]),
        ({"labels": {"helm.toolkit.fluxcd.io/name": "triton", "app.kubernetes.io/managed-by": "Helm"}}, ["flux", "helm"]),
    ],
)
def test_managed_by(metadata, expected):
    assert shm.managed_by(object_metadata=metadata) == expected


# ----------------------------------------------------------------------------------------------
# sizing policy


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"size_limit": "2Gi"}, (2 * GI, "size_limit")),
        ({"size_limit": "2Gi", "annotation_value": "3Gi"}, (3 * GI, "annotation")),
        ({"size_ratio": 0.25}, (1536 * MI, "ratio")),
        ({"size_ratio": 0.3}, (1843 * MI, "ratio")),  # 1843.2Mi rounded down to whole MiB
        ({"size_ratio": 0.25, "max_size": "1Gi"}, (GI, "max_size")),
        ({"size_ratio": 0.01, "min_size": "256Mi"}, (256 * MI, "min_size")),
        ({"size_ratio": 0.001}, (64 * MI, "min_size")),
    ],
)
def test_desired_size_options(kwargs, expected):
    spec = load("cronjob-batch-inference")[2]  # pod limit 6Gi
    assert shm.desired_size(spec, parse=parse_bytes, **kwargs) == expected


def test_desired_size_errors():
    spec = load("cronjob-batch-inference")[2]
    with pytest.raises(ValueError, match="min_size 2Gi is above max_size 1Gi"):
        shm.desired_size(spec, parse=parse_bytes, min_size="2Gi", max_size="1Gi")
    with pytest.raises(ValueError, match="size_ratio: 1.5 must be a number with 0 < ratio <= 1"):
        shm.desired_size(spec, parse=parse_bytes, size_ratio=1.5)
    with pytest.raises(ValueError, match="size_limit: '1.5.Gi' is not a Kubernetes quantity"):
        shm.desired_size(spec, parse=parse_bytes, size_limit="1.5.Gi")


def test_desired_size_without_limit_is_clamped_too():
    spec = {"containers": [{"name": "a"}]}
    assert shm.desired_size(spec, parse=parse_bytes) == (GI, "default_no_memory_limit")
    assert shm.desired_size(spec, parse=parse_bytes, max_size="512Mi") == (512 * MI, "max_size")


@pytest.mark.parametrize("module", ["shm", "df", "versions", "units"])
def test_pure_modules_import_without_ansible_or_kubernetes(module):
    base = os.path.abspath(os.path.join(os.path.dirname(shm.__file__), *[".."] * 5))
    code = (
        "import sys; sys.modules['kubernetes'] = None; sys.modules['ansible'] = None; sys.path.insert(0, sys.argv[1]); "
        "import importlib; importlib.import_module('ansible_collections.shmfix.k8s.plugins.module_utils.' + sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, base, module], check=True)


def test_unbounded_without_limit_in_eviction_mode_reaches_half_the_ram():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    got = shm.assess(spec, parse=parse_bytes, node_mode="eviction", node_capacity_bytes=NODE_CAPACITY)
    message = {f["code"]: f["message"] for f in got["findings"]}["no_memory_limit_no_size_limit"]
    assert "can grow to half of the node's RAM (7.8 GiB)" in message


def test_containers_may_be_a_single_name():
    spec = load("deployment-init-sidecar")[2]
    p = shm.plan(spec, parse=parse_bytes, size_bytes=GI, containers="log-shipper")
    assert [name for name, mount in p["after"]["mounts"].items() if mount] == ["log-shipper"]
