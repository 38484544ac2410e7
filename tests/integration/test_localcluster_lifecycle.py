"""`cluster.sh down` stops exactly what `up` started and leaves no mount behind; `up` brings the
cluster back. Runs after every other integration test (marker ``cluster_lifecycle``) and leaves
the cluster up."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from localcluster_helpers import CLUSTER_SH, EVICTION_NODE, SIZED_NODE, STATE, busybox_pod, df_k

NODES = (SIZED_NODE, EVICTION_NODE)


def recorded_pids() -> dict[str, int]:
    """component -> pid, from the pid files `up` wrote (".localcluster/run/<component>.pid")."""
    pids = {}
    for f in (STATE / "run").glob("*.pid"):
        pids[f.stem] = int(f.read_text().split()[0])
    return pids


def shim_and_pod_pids() -> set[int]:
    """Pids of containerd shims (listening on the sockets recorded in each containerd's task bundles)
    and of every process in the nodes' cgroups."""
    pids = set()
    for f in STATE.glob("nodes/*/containerd/state/io.containerd.runtime.v2.task/*/*/address"):
        socket = f.read_text().strip().removeprefix("unix://")
        ss = subprocess.run(["ss", "-xlpH", f"src = {socket}"], capture_output=True, text=True, check=True).stdout
        pids.update(int(m) for m in re.findall(r"pid=(\d+)", ss))
    for node in NODES:
        for procs in Path("/sys/fs/cgroup/pids", node).rglob("cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def mounts_under_state() -> list[str]:
    prefix = str(STATE) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for pid 1 to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cluster_sh(command: str, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(CLUSTER_SH), command], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"cluster.sh {command} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.cluster_lifecycle
def test_down_leaves_nothing_running_and_up_restores_the_cluster(kubectl, namespace):
    # A pod with a memory-backed volume on each node, so there are pod processes, shims and tmpfs mounts.
    for mode, node in (("sized", SIZED_NODE), ("eviction", EVICTION_NODE)):
        volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
        pod = busybox_pod(f"lifecycle-{mode}", mode, volumes, [{"name": "dshm", "mountPath": "/dev/shm"}], restart_policy="Always")
        kubectl.apply(pod, namespace)
    before = {}
    for mode in ("sized", "eviction"):
        before[mode] = kubectl.wait_pod_running(namespace, f"lifecycle-{mode}")["status"]["containerStatuses"][0]["containerID"]

    components = recorded_pids()
    assert set(components) >= {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} | {
        f"{kind}-{node}" for kind in ("containerd", "kubelet") for node in NODES
    }
    assert all(alive(pid) for pid in components.values()), components
    workload_pids = shim_and_pod_pids()
    assert len(workload_pids) >= 6, workload_pids  # per pod at least a shim, a pause and a sleep process
    assert any("kubernetes.io~empty-dir" in m for m in mounts_under_state())

    started = time.monotonic()
    cluster_sh("down", timeout=240)
    down_seconds = time.monotonic() - started

    assert [c for c, pid in components.items() if alive(pid)] == []
    assert sorted(p for p in workload_pids if alive(p)) == []
    assert list((STATE / "run").glob("*.pid")) == []
    assert mounts_under_state() == []
    for node in NODES:
        assert not Path("/sys/fs/cgroup/pids", node).exists()

    started = time.monotonic()
    cluster_sh("up", timeout=600)
    up_seconds = time.monotonic() - started
    print(f"cluster.sh down: {down_seconds:.1f}s, up: {up_seconds:.1f}s")

    for node in NODES:
        ready = kubectl("get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
        assert ready == "True"
    # The bare pods survive the restart: the kubelets give them new sandboxes and containers.
    for mode in ("sized", "eviction"):
        deadline = time.monotonic() + 120
        while True:
            pod = kubectl.wait_pod_running(namespace, f"lifecycle-{mode}", timeout=120)
            status = pod["status"]["containerStatuses"][0]
            if status["containerID"] != before[mode] and status.get("ready"):
                break
            assert time.monotonic() < deadline, f"lifecycle-{mode} not restarted after up: {status}"
            time.sleep(1)
    assert df_k(kubectl, namespace, "lifecycle-sized")["size_kib"] == 64 * 1024
