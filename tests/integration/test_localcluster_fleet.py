"""The local fleet (`make fleet-up FLEET=N`, `fleet-status`, `fleet-down`): extra control planes
(kube-apiserver + kube-controller-manager) on the main cluster's etcd, each under its own etcd
prefix, port, CA and kubeconfig context (localcluster/lib/fleet.sh).

The module starts FLEET=2 and ends with `fleet-down FLEET_PURGE=1`: a fleet that was running
before (of any size) is stopped and its etcd keys are deleted. The main cluster is only read.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from localcluster_helpers import BUSYBOX, CLUSTER_SH, REPO_ROOT, STATE, Kubectl

FLEET_DIR = STATE / "fleet"
FLEET_KUBECONFIG = FLEET_DIR / "kubeconfig"
COMPONENTS = ("kube-apiserver", "kube-controller-manager")
APISERVER_PORT = {1: 17101, 2: 17102}


def make(*args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"make {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def fleet_pids() -> dict[tuple[int, str], int]:
    """(cluster index, component) -> pid, from the fleet's pid files."""
    pids = {}
    for f in (FLEET_DIR / "run").glob("shmfix-fleet-*.pid"):
        m = re.fullmatch(r"shmfix-fleet-(\d+)-(.+)", f.stem)
        pids[(int(m.group(1)), m.group(2))] = int(f.read_text().split()[0])
    return pids


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def fleet_kubectl(i: int) -> Kubectl:
    return Kubectl(FLEET_KUBECONFIG, context=f"shmfix-fleet-{i}")


def status_rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("shmfix-fleet-")}


@pytest.fixture(scope="module")
def fleet(kubectl):
    """FLEET=2 up; yields the pids of both clusters' processes."""
    started = time.monotonic()
    proc = make("fleet-up", "FLEET=2")
    print(f"make fleet-up FLEET=2: {time.monotonic() - started:.1f}s\n{proc.stderr}")
    pids = fleet_pids()
    for i in (1, 2):
        for c in COMPONENTS:
            assert alive(pids[(i, c)]), (i, c, pids)
    yield pids
    if any(alive(p) for p in fleet_pids().values()):
        make("fleet-down", check=False)


def test_fleet_up_is_idempotent_and_clusters_hold_their_own_data(fleet, kubectl):
    again = make("fleet-up", "FLEET=2")
    assert "keeping 2 running cluster(s) (shmfix-fleet-1, shmfix-fleet-2); starting 0" in again.stderr, again.stderr
    assert {k: v for k, v in fleet_pids().items() if k[0] in (1, 2)} == {k: v for k, v in fleet.items() if k[0] in (1, 2)}

    ns = f"shmfix-fleet-it-{uuid.uuid4().hex[:8]}"
    one, two = fleet_kubectl(1), fleet_kubectl(2)
    one("create", "namespace", ns)
    assert one("get", "namespace", ns, "-o", "name").strip() == f"namespace/{ns}"
    for other in (two, kubectl):
        proc = other.run("get", "namespace", ns, check=False)
        assert proc.returncode != 0 and "NotFound" in proc.stderr, (other.context, proc.stdout, proc.stderr)
    # Distinct clusters, not one API under several names: each has its own kube-system namespace.
    uids = {k.context: k("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}") for k in (one, two, kubectl)}
    assert len(set(uids.values())) == 3, uids
    one.run("delete", "namespace", ns, "--wait=false", check=False)


def test_replicas_zero_deployment_rolls_out_without_nodes(fleet):
    k = fleet_kubectl(1)
    name = f"web-{uuid.uuid4().hex[:6]}"
    k.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never"}]},
                },
            },
        }
    )
    k("rollout", "status", f"deployment/{name}", "-n", "default", "--timeout=60s", timeout=70)
    k("patch", "deployment", name, "-n", "default", "--type=merge", "-p", '{"spec":{"template":{"metadata":{"annotations":{"shmfix.io/test":"2"}}}}}')
    k("rollout", "status", f"deployment/{name}", "-n", "default", "--timeout=60s", timeout=70)
    dep = k.json("get", "deployment", name, "-n", "default")
    assert dep["metadata"]["generation"] == 2 and dep["status"]["observedGeneration"] == 2, dep["status"]
    rs = k.json("get", "replicasets", "-n", "default", "-l", f"app={name}")["items"]
    revisions = sorted(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for r in rs)
    assert revisions == ["1", "2"], revisions
    k("delete", "deployment", name, "-n", "default", "--wait=false")


def test_fleet_status_and_repair_of_a_dead_apiserver(fleet):
    proc = make("fleet-status")
    rows = status_rows(proc.stdout)
    for i in (1, 2):
        row = rows[f"shmfix-fleet-{i}"]
        # CLUSTER PORT CM-PORT API-PID CM-PID STATE RSS (apiserver + controller-manager)
        assert row[1] == str(APISERVER_PORT[i]) and row[5] == "healthy", proc.stdout
        assert (int(row[3]), int(row[4])) == (fleet[(i, "kube-apiserver")], fleet[(i, "kube-controller-manager")])
        assert float(row[6]) > 50, proc.stdout  # MiB; an idle kube-apiserver alone takes more
    assert re.search(r"^running: \d+ cluster\(s\); RSS total [\d.]+ MiB", proc.stdout, re.MULTILINE), proc.stdout

    # A dead API server: status names the stale pid file and fails; fleet-up refuses a port another
    # process holds (naming it), then restarts only what is missing.
    os.kill(fleet[(2, "kube-apiserver")], 9)
    deadline = time.monotonic() + 10
    while alive(fleet[(2, "kube-apiserver")]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    bad = make("fleet-status", check=False)
    assert bad.returncode != 0
    assert "kube-apiserver: stale pid file" in bad.stdout and status_rows(bad.stdout)["shmfix-fleet-2"][5] == "UNHEALTHY", bad.stdout

    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", APISERVER_PORT[2]))
        squatter.listen()
        taken = make("fleet-up", "FLEET=2", check=False)
    assert taken.returncode != 0
    assert f"port {APISERVER_PORT[2]} (for shmfix-fleet-2 kube-apiserver) is already in use" in taken.stderr, taken.stderr
    assert f"pid={os.getpid()}," in taken.stderr, taken.stderr

    repaired = make("fleet-up", "FLEET=2")
    assert "repairing 1 (shmfix-fleet-2)" in repaired.stderr, repaired.stderr
    now = fleet_pids()
    assert now[(2, "kube-apiserver")] != fleet[(2, "kube-apiserver")] and alive(now[(2, "kube-apiserver")])
    assert now[(2, "kube-controller-manager")] == fleet[(2, "kube-controller-manager")]
    assert now[(1, "kube-apiserver")] == fleet[(1, "kube-apiserver")]
    fleet[(2, "kube-apiserver")] = now[(2, "kube-apiserver")]
    assert fleet_kubectl(2)("get", "--raw", "/readyz").strip() == "ok"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "", "1.5"])
def test_bad_fleet_value_fails_with_the_message(value):
    proc = make("fleet-up", f"FLEET={value}", check=False)
    assert proc.returncode != 0
    assert f"FLEET must be a positive integer (the number of extra clusters), got '{value}'" in proc.stderr, proc.stderr


def test_fleet_up_without_the_main_cluster_says_run_cluster_up(tmp_path):
    # A state directory where no cluster runs; the real one is not touched.
    env = {**os.environ, "SHMFIX_STATE": str(tmp_path / "state")}
    proc = subprocess.run([str(CLUSTER_SH), "fleet-up", "1"], capture_output=True, text=True, timeout=30, check=False, env=env)
    assert proc.returncode != 0
    assert "run make cluster-up first" in proc.stderr, proc.stderr


def test_fleet_down_stops_every_fleet_process_and_keeps_the_main_cluster(fleet, kubectl):
    pids = fleet_pids()
    assert set(pids) >= {(i, c) for i in (1, 2) for c in COMPONENTS}
    started = time.monotonic()
    proc = make("fleet-down", "FLEET_PURGE=1", timeout=120)
    print(f"make fleet-down: {time.monotonic() - started:.1f}s\n{proc.stderr}")
    assert [k for k, pid in pids.items() if alive(pid)] == []
    assert list((FLEET_DIR / "run").glob("*.pid")) == []
    assert re.search(r"deleted \d+ etcd key\(s\) under /registry-fleet-", proc.stderr), proc.stderr

    after = make("fleet-status", check=False)
    assert after.returncode != 0 and status_rows(after.stdout)["shmfix-fleet-1"][5] == "stopped", after.stdout
    assert kubectl("get", "--raw", "/readyz").strip() == "ok"
    assert "default" in kubectl("get", "namespaces", "-o", "name")
    again = make("fleet-down")
    assert "no fleet process was running" in again.stderr, again.stderr
