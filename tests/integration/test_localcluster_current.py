"""The current cluster (localcluster/lib/current.sh): Kubernetes v1.37.2 beside the legacy cluster.

It comes up on its own (up-current is idempotent and leaves the main cluster alone), its node is
Ready with kubelet v1.37.2 and declares InPlacePodVerticalScalingMemoryBackedVolumes, a pod with a
sized memory-backed emptyDir at /dev/shm gets a tmpfs of exactly that size (df inside the pod), and
MutatingAdmissionPolicy is served as admissionregistration.k8s.io/v1.
"""

from __future__ import annotations

import json
import subprocess

from current_helpers import CURRENT_NODE, CURRENT_VERSION, MEMORY_VOLUME_RESIZE
from localcluster_helpers import CLUSTER_SH, STATE, busybox_pod, df_k


def main_pids() -> dict[str, str]:
    return {f.stem: f.read_text().split()[0] for f in (STATE / "run").glob("*.pid")}


def test_up_current_is_idempotent_and_leaves_the_main_cluster_alone(current_kubectl):
    before = main_pids()
    proc = subprocess.run([str(CLUSTER_SH), "up-current"], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "current cluster already up and healthy" in proc.stderr
    assert main_pids() == before
    status = subprocess.run([str(CLUSTER_SH), "status-current"], capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"server: {CURRENT_VERSION}" in status.stdout
    assert "https://127.0.0.1:18443" in status.stdout


def test_server_and_node_are_v1_37_and_the_node_declares_the_memory_volume_resize(current_kubectl):
    version = json.loads(current_kubectl("get", "--raw", "/version"))
    assert version["gitVersion"] == CURRENT_VERSION
    nodes = current_kubectl.json("get", "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [CURRENT_NODE]
    node = nodes[0]
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    assert node["status"]["nodeInfo"]["kubeletVersion"] == CURRENT_VERSION
    assert MEMORY_VOLUME_RESIZE in (node["status"].get("declaredFeatures") or []), node["status"].get("declaredFeatures")


def test_sized_memory_emptydir_is_a_tmpfs_of_that_size(current_kubectl, current_namespace):
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "96Mi"}}]
    pod = busybox_pod("sized", None, volumes, [{"name": "dshm", "mountPath": "/dev/shm"}])
    current_kubectl.apply(pod, current_namespace)
    current_kubectl.wait_pod_running(current_namespace, "sized", timeout=120)
    df = df_k(current_kubectl, current_namespace, "sized")
    assert df["fs"] == "tmpfs"
    assert df["size_kib"] == 96 * 1024, df


def test_runtime_default_shm_is_64_mib(current_kubectl, current_namespace):
    current_kubectl.apply(busybox_pod("plain"), current_namespace)
    current_kubectl.wait_pod_running(current_namespace, "plain", timeout=120)
    assert df_k(current_kubectl, current_namespace, "plain")["size_kib"] == 64 * 1024


def test_mutating_admission_policy_is_served_as_v1(current_kubectl):
    resources = json.loads(current_kubectl("get", "--raw", "/apis/admissionregistration.k8s.io/v1"))["resources"]
    names = {r["name"] for r in resources}
    assert {"mutatingadmissionpolicies", "mutatingadmissionpolicybindings"} <= names, names
