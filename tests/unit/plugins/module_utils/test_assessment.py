# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""assessment.py (and findings.py) against real-shaped manifests (tests/fixtures/manifests) with exact figures."""

import os

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import assessment, podspec
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from shm_fixtures import EXPECTED, FIXTURES, GI, MANIFESTS, MI, NODE_ALLOCATABLE, NODE_CAPACITY, assess_fixture, load


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
    got = assessment.assess(spec, parse=parse_bytes)
    assert (got["state"], got["effective_bytes"], got["effective_complete"]) == ("unbounded_memory", None, False)
    assert {f["code"] for f in got["findings"]} == {"no_memory_limit_no_size_limit"}
    got = assessment.assess(spec, parse=parse_bytes, node_allocatable_bytes=NODE_ALLOCATABLE)
    assert got["effective_bytes"] == NODE_ALLOCATABLE
    assert "can grow to node allocatable memory (14.5 GiB)" in got["findings"][0]["message"]


def test_effective_note_names_the_bound():
    got = assess_fixture("pod-level-resources")
    assert got["effective_note"] == "min(pod memory limit 2 GiB, sizeLimit 4 GiB, node allocatable memory 14.5 GiB) = 2 GiB (pod memory limit is the bound)"


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
    findings = {f["code"]: f for f in assess_fixture("pod-level-resources", node_mode="sized")["findings"]}
    assert findings["size_limit_above_memory_limit"]["message"] == (
        "sizeLimit 4 GiB of volume dshm is above the pod memory limit 2 GiB: the kubelet silently caps the tmpfs at 2 GiB; "
        "lower sizeLimit to at most 2Gi or raise limits.memory."
    )
    # where the node is not known, the cap is said to hold where the kubelet sizes memory emptyDirs
    assumed = {f["code"]: f for f in assess_fixture("pod-level-resources")["findings"]}
    assert (
        "2 GiB: where the kubelet sizes memory emptyDirs (SizeMemoryBackedVolumes), the kubelet silently caps"
        in assumed["size_limit_above_memory_limit"]["message"]
    )
    # on an eviction node nothing caps the tmpfs: no such finding
    evicted = assess_fixture("pod-level-resources", node_mode="eviction", node_capacity_bytes=NODE_CAPACITY)["findings"]
    assert "size_limit_above_memory_limit" not in {f["code"] for f in evicted}


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
    got = assessment.assess(spec, parse=parse_bytes)
    assert got["state"] == got["containers"][0]["state"] == state
    action = planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")["action"]
    assert (action == "skip") is (state in ("host_path", "other"))


def test_missing_volume_is_an_error_finding_and_skipped():
    spec = {"containers": [{"name": "a", "volumeMounts": [{"name": "gone", "mountPath": "/dev/shm"}]}]}
    got = assessment.assess(spec, parse=parse_bytes)
    assert [(f["severity"], f["code"]) for f in got["findings"]] == [("error", "missing_volume")]
    assert planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")["action"] == "skip"


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
    assert "read_only_mount" in {f["code"] for f in assessment.assess(spec, parse=parse_bytes)["findings"]}


def test_bad_size_annotation_is_a_finding_and_never_a_size():
    obj, pod_meta, spec = load("deployment-argocd-gunicorn")
    obj["metadata"]["annotations"][podspec.ANNOTATION_SIZE_LIMIT] = "2GB"
    got = assessment.assess(spec, parse=parse_bytes, pod_metadata=pod_meta, object_metadata=obj["metadata"])
    bad = [f for f in got["findings"] if f["code"] == "bad_annotation"]
    assert bad == [
        {
            "severity": "error",
            "code": "bad_annotation",
            "message": "annotation shmfix.io/size-limit: '2GB' is not a Kubernetes quantity (use a binary suffix such as 256Mi or 1Gi); "
            "shmfix does not patch this workload until it is fixed: kubectl annotate <kind>/<name> shmfix.io/size-limit=1Gi --overwrite.",
        }
    ]
    assert got["annotation_size_limit"] == "2GB" and got["annotation_size_limit_bytes"] is None
    assert got["annotation_error"].startswith("annotation shmfix.io/size-limit: '2GB' is not a Kubernetes quantity")
    obj["metadata"]["annotations"][podspec.ANNOTATION_SIZE_LIMIT] = "3Gi"
    got = assessment.assess(spec, parse=parse_bytes, pod_metadata=pod_meta, object_metadata=obj["metadata"])
    assert (got["annotation_size_limit_bytes"], got["annotation_error"]) == (3 * GI, None)


def test_unbounded_without_limit_in_eviction_mode_reaches_half_the_ram():
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    got = assessment.assess(spec, parse=parse_bytes, node_mode="eviction", node_capacity_bytes=NODE_CAPACITY)
    message = {f["code"]: f["message"] for f in got["findings"]}["no_memory_limit_no_size_limit"]
    assert "can grow to half of the node's RAM (7.8 GiB)" in message


def test_different_volumes_at_dev_shm_are_skipped():
    spec = {
        "containers": [
            {"name": "a", "volumeMounts": [{"name": "s1", "mountPath": "/dev/shm"}]},
            {"name": "b", "volumeMounts": [{"name": "s2", "mountPath": "/dev/shm"}]},
        ],
        "volumes": [{"name": "s1", "emptyDir": {"medium": "Memory"}}, {"name": "s2", "emptyDir": {"medium": "Memory"}}],
    }
    assert planner.plan(spec, parse=parse_bytes, size_bytes=GI, existing="replace")["action"] == "skip"
    got = assessment.assess(spec, parse=parse_bytes)
    assert got["volumes"] == ["s1", "s2"] and got["volume"] is None
    assert "several_shm_volumes" in {f["code"] for f in got["findings"]}
