"""Faults 2, 5 and 7 of issue 11 (test_faults.py has 1, 3, 4 and 6), each on the real embedded cluster.

2. ansible-playbook SIGKILLed in the middle of a wave (fleet member 1, 100 Deployments): the rerun
   converges and rollback_shm.yml restores every template exactly (compared with the snapshot).
5. A cluster that accepts TCP and never answers (a loopback listener) and one whose API returns 500/429
   for a while (a loopback HTTP front of fleet member 1's real API server): the run finishes the
   others, reports the silent one unreachable with the reason, within client.py's documented bound.
7. A canary that cannot be scheduled: a clear failure with the scheduler's reason, nothing written, no
   canary namespace left. A canary namespace stuck terminating (a ConfigMap with a finalizer nobody
   removes): a clear timeout naming what holds it; the next run deletes what earlier runs left behind
   (and leaves another run's live canary namespace alone).
"""

from __future__ import annotations

import threading
import time
import uuid

from fault_helpers import (
    FLEET_NAMESPACES,
    FlakyProxy,
    PatchedCounter,
    PlaybookRun,
    SilentListener,
    compare_with_snapshot,
    create_namespaces,
    create_workloads,
    delete_namespaces,
    fleet_host,
    fleet_workloads,
    main_host,
    snapshot,
    to_fix,
    wait_rolled_out,
    workload_set,
    write_inventory,
)
from helpers import import_collection, playbook_env, single_report
from localcluster_helpers import Kubectl

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import canary, canary_leftovers, client, kube_time

# --------------------------------------------------------------------------- 2. the controller dies


def test_controller_killed_mid_wave_rerun_converges_and_rollback_restores_exactly(fleet1, tmp_path):
    namespaces, before = fleet_workloads(fleet1, "faults-ctl", 25)
    try:
        fixable = to_fix(workload_set(25)) * FLEET_NAMESPACES
        inventory = write_inventory(tmp_path / "fleet1.yml", {"fleet-1": fleet_host(fleet1, namespaces, remediate_batch_size=20)})
        counter = PatchedCounter(fleet1.kubectl, "shmfix-test/shape", 25)
        counter.start()
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports1"), tmp_path / "run1.log")
        try:
            assert counter.reached.wait(300), f"25 patched objects not seen (watch error {counter.error}):\n{run.output()[-3000:]}"
            run.kill()  # SIGKILL to ansible-playbook in wave 2 of 4
        finally:
            counter.close()
            run.stop()
        assert run.proc.returncode == -9, run.proc.returncode
        middle = compare_with_snapshot(before, snapshot(fleet1.kubectl, namespaces))
        print(f"fault 2: ansible-playbook killed after {len(counter.patched)} patched objects: {middle}")
        assert 20 <= middle["patched"] < fixable, middle

        rerun = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports2"), tmp_path / "run2.log")
        assert rerun.wait(600) == 0, rerun.output()[-4000:]
        converged = compare_with_snapshot(before, snapshot(fleet1.kubectl, namespaces))
        assert converged == {"compared": len(before), "patched": fixable, "untouched": len(before) - fixable}, converged

        back = PlaybookRun("rollback_shm.yml", inventory, playbook_env(tmp_path / "rollback"), tmp_path / "rollback.log")
        assert back.wait(600) == 0, back.output()[-4000:]
        restored = compare_with_snapshot(before, snapshot(fleet1.kubectl, namespaces))
        assert restored == {"compared": len(before), "patched": 0, "untouched": len(before)}, restored
        total = middle["compared"] + converged["compared"] + restored["compared"]
        print(f"fault 2: rerun {rerun.elapsed:.0f}s, rollback {back.elapsed:.0f}s; compared field by field: {total}")
    finally:
        delete_namespaces(fleet1.kubectl, namespaces)


# --------------------------------------------------------------------------- 5. a silent cluster and a flaky one

# client.py's bound per request: CONNECT s to connect (TCP and TLS) or READ s to answer, tried twice
# (urllib3 retries=1); a cluster whose API server never answers fails after its first request.
CONNECT, READ = client.DEFAULT_TIMEOUT


def test_silent_and_flaky_clusters_are_bounded_and_reported(fleet1, tmp_path):
    namespaces, before = fleet_workloads(fleet1, "faults-net", 5)
    silent, proxy = SilentListener(), FlakyProxy(1, faults=3)
    silent.start()
    try:
        hosts = {
            "silent": dict(
                fleet_host(fleet1, [namespaces[0]]), shmfix_host=f"https://127.0.0.1:{silent.port}", shmfix_api_key="unused", shmfix_validate_certs=False
            ),
            "flaky": dict(fleet_host(fleet1, [namespaces[1]]), shmfix_host=f"http://127.0.0.1:{proxy.port}", shmfix_api_key="unused"),
            "fleet-1": fleet_host(fleet1, namespaces[2:]),
        }
        for name in ("silent", "flaky"):
            for key in ("shmfix_kubeconfig", "shmfix_context"):
                hosts[name].pop(key)
        inventory = write_inventory(tmp_path / "net.yml", hosts)
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports"), tmp_path / "run.log")
        rc = run.wait(900)
        output = run.output()
        assert rc == 2, output[-4000:]
        clusters = {c["name"]: c for c in single_report(tmp_path / "reports")["clusters"]}
        dead = clusters["silent"]
        print(f"fault 5: run {run.elapsed:.0f}s; silent: {dead['status']} {dead['failure']}; injected faults {proxy.faulted}, forwarded {proxy.forwarded}")
        assert dead["status"] == "unreachable", dead
        assert f"127.0.0.1:{silent.port}" in dead["failure"]["message"] and "timed out" in dead["failure"]["message"], dead["failure"]
        assert silent.accepted >= 1
        # 500/429 for a while, then answers: retried with backoff, the cluster is fixed.
        assert proxy.faulted == 3 and proxy.forwarded > 0
        for name in ("flaky", "fleet-1"):
            assert clusters[name]["status"] == "ok", clusters[name]["failure"]
        counts = compare_with_snapshot(before, snapshot(fleet1.kubectl, namespaces))
        fixable = to_fix(workload_set(5))
        assert counts == {"compared": len(before), "patched": 3 * fixable, "untouched": len(before) - 3 * fixable}, counts
        # No hang beyond the documented bound: the silent cluster's one request, tried twice, plus the others' run.
        assert run.elapsed < 2 * (CONNECT + READ) + 240, run.elapsed
    finally:
        silent.close()
        proxy.close()
        delete_namespaces(fleet1.kubectl, namespaces)


# --------------------------------------------------------------------------- 7. a canary that cannot be scheduled


def canary_namespaces(kubectl: Kubectl, prefix: str) -> list[str]:
    return [n["metadata"]["name"] for n in kubectl.json("get", "namespaces")["items"] if n["metadata"]["name"].startswith(prefix)]


def test_unschedulable_canary_times_out_clearly_and_leaves_nothing(kubectl, tmp_path):
    sfx = uuid.uuid4().hex[:6]
    ns, prefix = f"faults-canary-ws-{sfx}", f"faults-canary-{sfx}"
    create_namespaces(kubectl, [ns])
    try:
        create_workloads(kubectl, ns, workload_set(2))
        wait_rolled_out(kubectl, [ns])
        before = snapshot(kubectl, [ns])
        nowhere = {"name": "nowhere", "node_selector": {"shmfix.io/node-mode": "nowhere"}, "expect": "sized"}
        host = main_host(
            [ns],
            eviction_verify_enabled=True,
            eviction_verify_image="localhost/shmfix/busybox:local",
            eviction_verify_image_pull_policy="Never",
            eviction_verify_probes=[nowhere],
            eviction_verify_start_timeout=15,
            eviction_verify_namespace_prefix=prefix,
        )
        inventory = write_inventory(tmp_path / "main.yml", {"main": host})
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports"), tmp_path / "run.log")
        rc = run.wait(600)
        assert rc == 2, run.output()[-4000:]
        (cluster,) = single_report(tmp_path / "reports")["clusters"]
        failure = cluster["failure"]
        print(f"fault 7: run {run.elapsed:.0f}s: {failure}")
        assert cluster["status"] == "failed" and failure["phase"] == "eviction_verify", failure
        # Said at once, with the scheduler's reason (no need to wait out eviction_verify_start_timeout).
        assert "nowhere: unschedulable" in failure["message"] and "didn't match Pod's node affinity/selector" in failure["message"], failure
        assert run.elapsed < 15 + 120, run.elapsed
        # Nothing written to the workloads, and the canary namespace is gone.
        assert compare_with_snapshot(before, snapshot(kubectl, [ns])) == {"compared": 2, "patched": 0, "untouched": 2}
        assert canary_namespaces(kubectl, prefix) == []
    finally:
        delete_namespaces(kubectl, [ns])


SIZED_PROBE = {"name": "sized", "node_selector": {"shmfix.io/node-mode": "sized"}, "expect": "sized"}
HOLD = "shmfix.io/test-hold"


def canary_host(namespaces: list[str], prefix: str, **extra) -> dict:
    return main_host(
        namespaces,
        eviction_verify_enabled=True,
        eviction_verify_image="localhost/shmfix/busybox:local",
        eviction_verify_image_pull_policy="Never",
        eviction_verify_namespace_prefix=prefix,
        **extra,
    )


def left_behind(kubectl: Kubectl, name: str, expires_in: float) -> None:
    """A canary namespace as a run creates it, expiring ``expires_in`` seconds from now (past: its run died)."""
    annotations = {canary_leftovers.EXPIRES: kube_time.timestamp(time.time() + expires_in)}
    kubectl.apply(canary.namespace_manifest(name, annotations=annotations))


class FinalizerHold(threading.Thread):
    """Puts a ConfigMap with a finalizer into the first new canary namespace of ``prefix`` (the run's own)."""

    def __init__(self, kubectl: Kubectl, prefix: str, known: set[str]):
        super().__init__(daemon=True)
        self.kubectl, self.prefix, self.known = kubectl, prefix, known
        self.held: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and self.held is None:
            for name in canary_namespaces(self.kubectl, self.prefix):
                if name not in self.known:
                    hold = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hold", "finalizers": [HOLD]}}
                    self.kubectl.apply(hold, namespace=name)
                    self.held = name
            time.sleep(0.3)

    def release(self, check: bool = True) -> None:
        self.done.set()
        if self.held:
            patch = ("-n", self.held, "patch", "configmap", "hold", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
            self.kubectl.run(*patch, check=check)


def test_canary_namespace_stuck_terminating_times_out_clearly_and_the_next_run_clears_what_was_left(kubectl, tmp_path):
    sfx = uuid.uuid4().hex[:6]
    ns, prefix = f"faults-stuck-ws-{sfx}", f"faults-stuck-{sfx}"
    orphan, live, orphan2 = f"{prefix}-orphan", f"{prefix}-live", f"{prefix}-orphan2"
    create_namespaces(kubectl, [ns])
    hold = FinalizerHold(kubectl, prefix, {orphan, live, orphan2})
    try:
        create_workloads(kubectl, ns, workload_set(2))
        left_behind(kubectl, orphan, -60)  # a run killed before its always section
        left_behind(kubectl, live, 3600)  # another run's canaries, still at work
        host = canary_host([ns], prefix, eviction_verify_probes=[SIZED_PROBE], eviction_verify_delete_timeout=15)
        inventory = write_inventory(tmp_path / "main.yml", {"main": host})
        hold.start()
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports-1"), tmp_path / "run-1.log")
        rc = run.wait(600)
        assert hold.held, "the run's canary namespace never showed up"
        assert rc == 2, run.output()[-4000:]
        (cluster,) = single_report(tmp_path / "reports-1")["clusters"]
        message = cluster["failure"]["message"]
        print(f"fault 7b: run 1 {run.elapsed:.0f}s: {message}")
        assert cluster["status"] == "failed", cluster["failure"]
        assert f"canary namespace {hold.held} is still terminating 15s after its deletion was requested" in message, message
        assert f"finalizers remaining: {HOLD} in 1 resource instances" in message, message
        # The killed run's namespace went first; the live one was left alone.
        assert sorted(canary_namespaces(kubectl, prefix)) == sorted([hold.held, live])
        assert kubectl.json("get", "namespace", hold.held)["metadata"].get("deletionTimestamp")

        hold.release()  # what the message asks for
        left_behind(kubectl, orphan2, -1)
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports-2"), tmp_path / "run-2.log")
        assert run.wait(600) == 0, run.output()[-4000:]
        (cluster,) = single_report(tmp_path / "reports-2")["clusters"]
        print(f"fault 7b: run 2 {run.elapsed:.0f}s: {cluster['enforcement']['summary']}")
        assert cluster["status"] == "ok" and cluster["enforcement"]["proven"], cluster["enforcement"]
        assert cluster["enforcement"]["leftovers"][orphan2] == "deleted", cluster["enforcement"]
        assert f"{orphan2} deleted" in cluster["enforcement"]["summary"]
        # Nothing left behind but the live run's namespace.
        assert canary_namespaces(kubectl, prefix) == [live]
    finally:
        hold.release(check=False)  # never leave a namespace stuck behind the test
        delete_namespaces(kubectl, [ns, live, orphan, orphan2])
