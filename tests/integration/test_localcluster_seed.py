"""The seed's four observations (seed/kubernetes-shared-memory.md), and the failure users see, measured on the embedded cluster.

a. no shm volume: /dev/shm is containerd's 64 MiB tmpfs; dd stops at exactly 64 MiB.
b. emptyDir {medium: Memory} without sizeLimit on a kubelet with SizeMemoryBackedVolumes:
   tmpfs size = the pod memory limit (every container has one) or node allocatable memory.
c. sizeLimit 256Mi on that kubelet: a 256 MiB tmpfs; writes stop at 256 MiB; no eviction.
d. sizeLimit 256Mi on the kubelet with the feature off (v1.31, gate false): a tmpfs of half the
   node's RAM; 356 MiB are written; the kubelet evicts the pod like in the seed.
e. no shm volume, writes through mmap (shm-mmap, as PyTorch's shared-memory tensors): SIGBUS
   (exit code 135) after exactly 64 MiB; with a 256Mi memory emptyDir all 100 MiB are written.
"""

from __future__ import annotations

import time

import pytest
from kubernetes.utils import parse_quantity
from localcluster_helpers import EVICTION_NODE, SIZED_NODE, busybox_pod, df_k

MiB = 1024 * 1024
DSHM = [{"name": "dshm", "mountPath": "/dev/shm"}]


def memory_volume(size_limit: str | None = None) -> list[dict]:
    empty_dir = {"medium": "Memory"}
    if size_limit:
        empty_dir["sizeLimit"] = size_limit
    return [{"name": "dshm", "emptyDir": empty_dir}]


def start(kubectl, namespace, pod: dict, node: str) -> dict:
    kubectl.apply(pod, namespace)
    obj = kubectl.wait_pod_running(namespace, pod["metadata"]["name"])
    assert obj["spec"]["nodeName"] == node
    return obj


def node_memory_kib(kubectl, node: str, field: str) -> int:
    quantity = kubectl.json("get", "node", node)["status"][field]["memory"]
    return int(parse_quantity(quantity)) // 1024


def dd(kubectl, namespace, pod, target: str, mib: int):
    """dd of <mib> MiB of zeros into <target> inside the pod. Returns (process, bytes written):
    Debian's busybox dd prints only the records lines, so the bytes are read back with wc -c."""
    proc = kubectl.exec(namespace, pod, "dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}")
    size = kubectl.exec(namespace, pod, "wc", "-c", target)
    assert size.returncode == 0, size.stderr
    return proc, int(size.stdout.split()[0])


def evicted_events(kubectl, namespace, pod) -> list[dict]:
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={pod},reason=Evicted")
    return events["items"]


@pytest.mark.parametrize("node_mode,node", [("sized", SIZED_NODE), ("eviction", EVICTION_NODE)])
def test_a_default_dev_shm_is_64mib(kubectl, namespace, node_mode, node):
    start(kubectl, namespace, busybox_pod("hello-world", node_mode), node)

    df = df_k(kubectl, namespace, "hello-world")
    assert df["size_kib"] == 65536, df
    assert df["used_kib"] == 0, df

    proc, written = dd(kubectl, namespace, "hello-world", "/dev/shm/output", 100)
    assert proc.returncode != 0
    assert "No space left on device" in proc.stderr
    assert "64+0 records out" in proc.stderr
    assert written == 64 * MiB
    assert df_k(kubectl, namespace, "hello-world")["used_kib"] == 65536


def test_b_memory_emptydir_without_size_limit_is_sized_by_the_kubelet(kubectl, namespace):
    limited = busybox_pod("limited", "sized", memory_volume(), DSHM, resources={"limits": {"memory": "200Mi"}})
    unlimited = busybox_pod("unlimited", "sized", memory_volume(), DSHM)
    for pod in (limited, unlimited):
        kubectl.apply(pod, namespace)
    for pod in (limited, unlimited):
        assert kubectl.wait_pod_running(namespace, pod["metadata"]["name"])["spec"]["nodeName"] == SIZED_NODE

    # Every container declares a memory limit: the tmpfs is the pod's limit.
    assert df_k(kubectl, namespace, "limited")["size_kib"] == 200 * 1024

    # No limit: the tmpfs is the node's allocatable memory (tmpfs rounds up to whole 4 KiB pages).
    allocatable = node_memory_kib(kubectl, SIZED_NODE, "allocatable")
    size = df_k(kubectl, namespace, "unlimited")["size_kib"]
    assert allocatable <= size < allocatable + 4, (size, allocatable)
    assert size < node_memory_kib(kubectl, SIZED_NODE, "capacity")


def test_c_size_limit_on_a_sized_node_caps_the_tmpfs_without_eviction(kubectl, namespace):
    start(kubectl, namespace, busybox_pod("hello-world", "sized", memory_volume("256Mi"), DSHM), SIZED_NODE)

    assert df_k(kubectl, namespace, "hello-world")["size_kib"] == 256 * 1024

    proc, written = dd(kubectl, namespace, "hello-world", "/dev/shm/output", 300)
    assert proc.returncode != 0
    assert "No space left on device" in proc.stderr
    assert "256+0 records out" in proc.stderr
    assert written == 256 * MiB
    assert df_k(kubectl, namespace, "hello-world")["used_kib"] == 256 * 1024

    # Usage equals the limit but never exceeds it, so the eviction manager (every 10 s, volume
    # stats every 10 s here) leaves the pod alone.
    time.sleep(35)
    pod = kubectl.json("get", "pod", "-n", namespace, "hello-world")
    assert pod["status"]["phase"] == "Running", pod["status"]
    assert evicted_events(kubectl, namespace, "hello-world") == []


def test_d_size_limit_without_the_feature_is_enforced_by_eviction(kubectl, namespace):
    start(kubectl, namespace, busybox_pod("hello-world", "eviction", memory_volume("256Mi"), DSHM), EVICTION_NODE)

    # The kernel's default tmpfs size: half of the node's RAM (the seed's 14.7G on a 29G host).
    mem_total = node_memory_kib(kubectl, EVICTION_NODE, "capacity")
    df = df_k(kubectl, namespace, "hello-world")
    assert abs(df["size_kib"] - mem_total / 2) <= mem_total * 0.01, (df, mem_total)

    # As in the seed: 256 MiB, then 100 MiB more, both succeed.
    first, written = dd(kubectl, namespace, "hello-world", "/dev/shm/output", 256)
    assert first.returncode == 0, first.stderr
    assert written == 256 * MiB
    second, written = dd(kubectl, namespace, "hello-world", "/dev/shm/output2", 100)
    assert second.returncode == 0, second.stderr
    assert written == 100 * MiB
    assert df_k(kubectl, namespace, "hello-world")["used_kib"] == 356 * 1024

    deadline = time.monotonic() + 150
    while True:
        pod = kubectl.json("get", "pod", "-n", namespace, "hello-world")
        if pod["status"].get("phase") == "Failed":
            break
        assert time.monotonic() < deadline, f"pod not evicted within 150 s: {pod['status']}"
        time.sleep(2)
    assert pod["status"]["reason"] == "Evicted"
    assert 'Usage of EmptyDir volume "dshm" exceeds the limit "256Mi".' in pod["status"]["message"]

    events = evicted_events(kubectl, namespace, "hello-world")
    assert len(events) == 1, events
    assert events[0]["type"] == "Warning"
    assert events[0]["message"].strip() == 'Usage of EmptyDir volume "dshm" exceeds the limit "256Mi".'
    assert events[0]["source"].get("host") == EVICTION_NODE or events[0].get("reportingInstance") == EVICTION_NODE


# e. The failure users see: a program that writes /dev/shm through a MAP_SHARED mapping (PyTorch's
#    shared-memory tensors) gets SIGBUS at the page that no longer fits, where dd gets ENOSPC.
MMAP_MIB = 100


def mmap_pod(name: str, node_mode: str, volumes=None, mounts=None) -> dict:
    """A pod whose only container runs shm-mmap (localcluster/images/shm-mmap.c) once."""
    pod = busybox_pod(name, node_mode, volumes, mounts)
    pod["spec"]["containers"][0]["command"] = ["shm-mmap", str(MMAP_MIB)]
    return pod


def wait_terminated(kubectl, namespace, pod: str, timeout: float = 120) -> dict:
    """The terminated state of the pod's container once the pod has ended (Succeeded or Failed)."""
    deadline = time.monotonic() + timeout
    while True:
        obj = kubectl.json("get", "pod", "-n", namespace, pod)
        if obj["status"].get("phase") in ("Succeeded", "Failed"):
            return obj["status"]["containerStatuses"][0]["state"]["terminated"]
        assert time.monotonic() < deadline, f"pod {pod} still {obj['status'].get('phase')} after {timeout}s"
        time.sleep(1)


def written_lines(kubectl, namespace, pod: str) -> list[str]:
    return [line for line in kubectl("logs", "-n", namespace, pod).splitlines() if line.startswith("shm-mmap: written ")]


@pytest.mark.parametrize("node_mode,node", [("sized", SIZED_NODE), ("eviction", EVICTION_NODE)])
def test_e_mmap_writer_dies_of_sigbus_at_64mib_and_writes_all_with_a_memory_volume(kubectl, namespace, node_mode, node):
    kubectl.apply(mmap_pod("default-shm", node_mode), namespace)
    # 256Mi: above what is written, so the eviction node's kubelet (sizeLimit enforced by eviction) keeps the pod.
    kubectl.apply(mmap_pod("sized-shm", node_mode, memory_volume("256Mi"), DSHM), namespace)

    killed = wait_terminated(kubectl, namespace, "default-shm")
    assert killed["exitCode"] == 135, killed  # 128 + SIGBUS (7): "Bus error"
    lines = written_lines(kubectl, namespace, "default-shm")
    assert lines[-1] == f"shm-mmap: written 64 MiB ({64 * MiB} bytes)", lines[-3:]
    assert kubectl.json("get", "pod", "-n", namespace, "default-shm")["spec"]["nodeName"] == node

    done = wait_terminated(kubectl, namespace, "sized-shm")
    assert done["exitCode"] == 0, done
    assert written_lines(kubectl, namespace, "sized-shm")[-1] == f"shm-mmap: written {MMAP_MIB} MiB ({MMAP_MIB * MiB} bytes)"
    assert f"shm-mmap: done: {MMAP_MIB} MiB ({MMAP_MIB * MiB} bytes)" in kubectl("logs", "-n", namespace, "sized-shm")
    assert kubectl.json("get", "pod", "-n", namespace, "sized-shm")["spec"]["nodeName"] == node
