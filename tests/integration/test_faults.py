"""Faults of issue 11, each on the real embedded cluster: what was kept and what was changed.

1. kube-apiserver SIGKILLed (by its pid file) while the waves are written, on fleet member 1 (500
   replicas-0 Deployments in 4 namespaces): the run reports the cluster failed; every object is either
   untouched or fully patched, compared field by field with a snapshot; a rerun converges.
3. A concurrent writer (env var, replicas, an annotation) on the same Deployments while the waves are
   written (main cluster): every one of its changes and the shm fix are both present (lost updates: 0);
   the conflicts shm_patch re-read and re-planned are counted.
4. A wave that never becomes ready (a LimitRange tightened after the pods started refuses the new
   pods): the wave stops at remediate_max_failures, the later waves stay untouched, the report says
   which workload and why (the server's message), rollback_shm.yml restores it.
6. A ValidatingAdmissionPolicy denies the patch in one namespace: those workloads are reported with
   the server's message, all the others are fixed.
(Faults 2, 5 and 7: test_faults_more.py.)

Figures (printed with -s): wall times, objects compared, conflicts retried.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from fault_helpers import (
    FLEET_NAMESPACES,
    PER_NAMESPACE,
    ApiFront,
    PatchedCounter,
    PlaybookRun,
    api_client,
    compare_with_snapshot,
    conflicts_retried,
    create_namespaces,
    create_workloads,
    delete_namespaces,
    deployment,
    diff_paths,
    fleet_host,
    fleet_workloads,
    main_host,
    recap_line,
    shm_volume_name,
    snapshot,
    state_of,
    strip,
    to_fix,
    wait_rolled_out,
    workload_set,
    write_inventory,
)
from helpers import CONTEXT, import_collection, playbook_env, single_report
from kubernetes import client as k8s
from localcluster_helpers import API_PORT, STATE, Kubectl

import_collection()


# --------------------------------------------------------------------------- 1. the API server killed mid-run


def test_apiserver_killed_mid_run_leaves_every_object_whole_and_a_rerun_converges(fleet1, tmp_path):
    namespaces, before = fleet_workloads(fleet1, "faults-kill", PER_NAMESPACE)
    try:
        assert len(before) == FLEET_NAMESPACES * PER_NAMESPACE
        fixable = to_fix(workload_set(PER_NAMESPACE)) * FLEET_NAMESPACES
        inventory = write_inventory(tmp_path / "fleet1.yml", {"fleet-1": fleet_host(fleet1, namespaces, remediate_batch_size=100)})
        # Killed in the third of four waves, 10 objects into its writes.
        counter = PatchedCounter(fleet1.kubectl, "shmfix-test/shape", 210)
        counter.start()
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports1"), tmp_path / "run1.log")
        try:
            assert counter.reached.wait(480), f"210 patched objects not seen (watch error {counter.error}):\n{run.output()[-3000:]}"
            killed = fleet1.kill_apiserver()
            seen_at_kill = len(counter.patched)
            restart = fleet1.restart()
            rc = run.wait(600)
        finally:
            counter.close()
            run.stop()
        output = run.output()
        assert restart.returncode == 0, f"fleet-up did not repair the killed kube-apiserver {killed}: {restart.stdout[-2000:]} {restart.stderr[-2000:]}"
        print(f"fault 1: kube-apiserver {killed} killed after {seen_at_kill} patched objects; run rc={rc} in {run.elapsed:.0f}s")

        # The run says the cluster failed, and why; never ok.
        assert rc == 2, output[-4000:]
        assert "failed=1" in recap_line(output, "fleet-1"), recap_line(output, "fleet-1")
        (cluster,) = single_report(tmp_path / "reports1")["clusters"]
        assert cluster["status"] in ("failed", "unreachable"), cluster
        message = cluster["failure"]["message"]
        assert "127.0.0.1:17101" in message or "failed" in message, message
        print(f"fault 1: reported {cluster['status']} in phase {cluster['failure']['phase']}: {message[:300]}")
        print(f"fault 1: report lists changed={len(cluster['changed'])} failed={len(cluster['failed'])} untouched={len(cluster['untouched'])}")
        # Every workload to fix is in the report: changed, failed (the writes cut off) or untouched (later waves).
        assert cluster["failed"], cluster["failure"]
        assert len(cluster["changed"]) + len(cluster["failed"]) + len(cluster["untouched"]) == fixable, cluster["counts"]

        # Every object whole: untouched or fully patched with an exact record; nothing else differs.
        middle = compare_with_snapshot(before, snapshot(fleet1.kubectl, namespaces))
        print(f"fault 1: after the kill {middle}")
        assert middle["patched"] >= 200 and middle["untouched"] > len(before) - fixable, middle

        rerun = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports2"), tmp_path / "run2.log")
        rc2 = rerun.wait(600)
        assert rc2 == 0, rerun.output()[-4000:]
        (cluster2,) = single_report(tmp_path / "reports2")["clusters"]
        assert cluster2["status"] == "ok", cluster2["failure"]
        after = compare_with_snapshot(before, snapshot(fleet1.kubectl, namespaces))
        assert after == {"compared": len(before), "patched": fixable, "untouched": len(before) - fixable}, after
        assert len(cluster2["changed"]) == fixable - middle["patched"], (len(cluster2["changed"]), middle)
        print(f"fault 1: rerun in {rerun.elapsed:.0f}s changed {len(cluster2['changed'])}; compared field by field: {middle['compared'] + after['compared']}")
    finally:
        delete_namespaces(fleet1.kubectl, namespaces)


# --------------------------------------------------------------------------- 3. a concurrent writer


class Writer(threading.Thread):
    """Another client (no precondition, as kubectl patch does) changing the same Deployments in a loop:
    an env var of the main container and an annotation in every write, replicas 0 -> 1 on ``scale``.
    Remembers the last value it wrote successfully per object (its writes are serialized, so the last
    one recorded is the last one the API server applied)."""

    def __init__(self, client, namespace: str, names: list[str], scale: set):
        super().__init__(daemon=True)
        self.apps = k8s.AppsV1Api(client)
        self.namespace, self.names, self.scale = namespace, names, scale
        self.stop = threading.Event()
        self.active = threading.Event()
        self.lock = threading.Lock()
        self.rev = 0
        self.last: dict = {}
        self.writes = 0
        self.errors: list = []

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.active.wait(0.2):
                continue
            for name in self.names:
                if self.stop.is_set() or not self.active.is_set():
                    break
                self.write(name)

    def write(self, name: str) -> None:
        with self.lock:
            self.rev += 1
            body = {
                "metadata": {"annotations": {"writer/rev": str(self.rev)}},
                "spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "WRITER", "value": str(self.rev)}]}]}}},
            }
            if name in self.scale:
                body["spec"]["replicas"] = 1
            try:
                self.apps.patch_namespaced_deployment(name, self.namespace, body, _content_type="application/strategic-merge-patch+json")
            except Exception as exc:  # noqa: BLE001 - counted and shown by the test
                self.errors.append(f"{name}: {exc}")
                return
            self.writes += 1
            self.last[name] = {"rev": str(self.rev), "replicas": 1 if name in self.scale else 0}


class WriteBetween:
    """The front's intercept that makes the race certain: before shm_patch's first guarded (real) write of each of
    the first ``count`` Deployments reaches the API server, the writer changes that Deployment, so that
    write meets a newer object than the one planned."""

    def __init__(self, writer: Writer, count: int):
        self.writer, self.count = writer, count
        self.names: list[str] = []

    def __call__(self, command: str, path: str, body: bytes) -> None:  # always forwarded
        prefix = f"/apis/apps/v1/namespaces/{self.writer.namespace}/deployments/"
        # Not the plan's server-side dry run (dryRun=All): it re-plans on its own, and the wave's write
        # that follows reads the object afresh.
        if command != "PATCH" or not path.startswith(prefix) or "dryRun=" in path or b'"/metadata/generation"' not in body:
            return
        name = path[len(prefix) :].split("?", 1)[0]
        with self.writer.lock:
            first = name not in self.names and len(self.names) < self.count
            if first:
                self.names.append(name)
        if first:
            self.writer.write(name)


def with_writes(obj: dict, last: dict | None) -> dict:
    """The snapshot's object with the writer's last successful write applied, as the API server merges it."""
    out = json.loads(json.dumps(obj))
    if not last:
        return out
    out["metadata"].setdefault("annotations", {})["writer/rev"] = last["rev"]
    out["spec"]["replicas"] = last["replicas"]
    main = next(c for c in out["spec"]["template"]["spec"]["containers"] if c["name"] == "main")
    # A strategic merge adds a new env entry first (keyed by name); the snapshot has no WRITER.
    main["env"] = [{"name": "WRITER", "value": last["rev"]}] + (main.get("env") or [])
    return out


def test_concurrent_writer_loses_no_update_and_the_fix_lands(kubectl, tmp_path):
    ns = f"faults-writer-{uuid.uuid4().hex[:6]}"
    create_namespaces(kubectl, [ns])
    try:
        manifests = workload_set(30)
        for m in manifests:  # the replicas the writer sets run real pods: keep them on the sized node
            m["spec"]["template"]["spec"]["nodeSelector"] = {"shmfix.io/node-mode": "sized"}
        create_workloads(kubectl, ns, manifests)
        wait_rolled_out(kubectl, [ns])
        before = snapshot(kubectl, [ns])
        names = sorted(name for _ns, name in before)
        scale = {n for n in names if n.endswith("-plain")}
        waves = -(-to_fix(manifests) // 8)
        writer = Writer(api_client(STATE / "kubeconfig", CONTEXT), ns, names, scale)
        # shm_patch reaches the cluster through a loopback front that writes between its read and its write
        # (one Deployment per wave); the writer's own loop races it the rest of the time.
        between = WriteBetween(writer, waves)
        front = ApiFront(STATE / "pki", API_PORT, between)
        host = dict(main_host([ns], remediate_batch_size=8), shmfix_host=f"http://127.0.0.1:{front.port}", shmfix_api_key="unused")
        for key in ("shmfix_kubeconfig", "shmfix_context"):
            host.pop(key)
        inventory = write_inventory(tmp_path / "main.yml", {"main": host})
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports"), tmp_path / "run.log", "-v")
        writer.start()
        try:
            # The writer writes from the look at each wave's workloads until the wave's changes are written,
            # and pauses while its rollouts are awaited (a template changed every second never finishes
            # rolling out). The cluster play's strategy is free: a task's banner is printed with its first
            # result, once the task is done.
            for wave in range(1, waves + 1):
                run.wait_output("Keep the workloads to change", wave, timeout=300)
                writer.active.set()
                run.wait_output("Write the wave's changes", wave, timeout=300)
                writer.active.clear()
            writer.stop.set()
            writer.join(30)
            rc = run.wait(600)
        finally:
            writer.stop.set()
            run.stop()
            front.close()
        output = run.output()
        assert rc == 0, output[-4000:]
        assert writer.writes >= len(names), (writer.writes, writer.errors[:5])
        assert len(between.names) == waves, between.names
        report = single_report(tmp_path / "reports")
        (cluster,) = report["clusters"]
        assert cluster["status"] == "ok", cluster["failure"]

        after = snapshot(kubectl, [ns])
        lost, states = [], {"patched": 0, "untouched": 0}
        for key, old in before.items():
            expected, new = with_writes(old, writer.last.get(key[1])), after[key]
            name = shm_volume_name(new, expected)
            if strip(new, name) != strip(expected, name):
                lost.append((key, diff_paths(strip(expected, name), strip(new, name))))
                continue
            states[state_of(expected, new)] += 1
        conflicts = conflicts_retried(output)
        print(
            f"fault 3: writer made {writer.writes} writes ({len(writer.errors)} refused, {len(between.names)} between a read and a write) during the waves; lost updates {len(lost)}; conflicts retried {conflicts}"
        )
        assert lost == [], lost[:3]
        assert states == {"patched": to_fix(manifests), "untouched": len(manifests) - to_fix(manifests)}, states
        # The writer changed the pod templates while shm_patch wrote them: at least the writes it was put
        # in front of met a newer object, and were re-read and re-planned.
        assert conflicts >= len(between.names), f"{conflicts} conflicts retried, although the writer wrote first to {between.names}"
        # ... and the report says so, per workload and in total
        assert report["totals"]["conflicts_retried"] == conflicts == sum(w["conflict_retries"] for w in cluster["changed"]), report["totals"]
    finally:
        delete_namespaces(kubectl, [ns])


# --------------------------------------------------------------------------- 4. a wave that never becomes ready


def test_wave_that_never_becomes_ready_stops_the_waves_and_rolls_back(kubectl, tmp_path):
    ns = f"faults-budget-{uuid.uuid4().hex[:6]}"
    create_namespaces(kubectl, [ns])
    try:
        manifests = []
        for name in ("a-first", "b-second", "c-third"):
            m = deployment(name, "plain", replicas=1)
            spec = m["spec"]["template"]["spec"]
            spec["nodeSelector"] = {"shmfix.io/node-mode": "sized"}
            spec["containers"][0]["resources"] = {"limits": {"memory": "64Mi"}, "requests": {"memory": "16Mi"}}
            m["spec"]["progressDeadlineSeconds"] = 10
            manifests.append(m)
        create_workloads(kubectl, ns, manifests)
        for m in manifests:
            kubectl("rollout", "status", f"deployment/{m['metadata']['name']}", "-n", ns, "--timeout=120s", timeout=150)
        # Tightened after the pods started: the running pods stay, every new pod is refused.
        limit = {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "tight"},
            "spec": {"limits": [{"type": "Container", "max": {"memory": "32Mi"}}]},
        }
        kubectl.apply(limit, ns)
        before = snapshot(kubectl, [ns])
        inventory = write_inventory(
            tmp_path / "main.yml", {"main": main_host([ns], remediate_batch_size=1, remediate_max_failures=1, remediate_rollout_timeout=90)}
        )
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports"), tmp_path / "run.log")
        rc = run.wait(600)
        output = run.output()
        assert rc == 2, output[-4000:]
        (cluster,) = single_report(tmp_path / "reports")["clusters"]
        assert cluster["status"] == "failed" and cluster["stopped"] is True, cluster["failure"]
        assert [w["name"] for w in cluster["failed"]] == ["a-first"]
        reason = cluster["failed"][0]["reason"]
        print(f"fault 4: report: {reason}")
        assert "progress deadline exceeded" in reason and "maximum memory usage per Container is 32Mi" in reason, reason
        assert sorted(u["name"] for u in cluster["untouched"]) == ["b-second", "c-third"]
        assert "remediate_max_failures=1" in cluster["untouched"][0]["reason"]
        counts = compare_with_snapshot(before, snapshot(kubectl, [ns]))
        assert counts == {"compared": 3, "patched": 1, "untouched": 2}, counts

        back = PlaybookRun("rollback_shm.yml", inventory, playbook_env(tmp_path / "rollback"), tmp_path / "rollback.log")
        rc_back = back.wait(600)
        assert rc_back == 0, back.output()[-4000:]
        restored = compare_with_snapshot(before, snapshot(kubectl, [ns]))
        assert restored == {"compared": 3, "patched": 0, "untouched": 3}, restored
        print(f"fault 4: run {run.elapsed:.0f}s, rollback {back.elapsed:.0f}s; compared field by field: {counts['compared'] + restored['compared']}")
    finally:
        delete_namespaces(kubectl, [ns])


# --------------------------------------------------------------------------- 6. an admission policy that denies the patch


def freeze_policy(name: str, namespace: str) -> list[dict]:
    message = f"pod templates are frozen in namespace {namespace} (change freeze {name})"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]},
                "validations": [{"expression": "object.spec.template == oldObject.spec.template", "message": message}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        },
    ]


def wait_denied(kubectl: Kubectl, namespace: str, name: str, timeout: float = 60) -> None:
    """Until the API server enforces the binding (a dry-run template change is refused)."""
    patch = json.dumps({"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}})
    deadline = time.monotonic() + timeout
    while kubectl.run("patch", "deployment", name, "-n", namespace, "--dry-run=server", "-p", patch, check=False).returncode == 0:
        assert time.monotonic() < deadline, f"the freeze policy is not enforced after {timeout}s"
        time.sleep(0.5)


def test_admission_policy_denial_is_reported_and_the_others_are_fixed(kubectl, tmp_path):
    sfx = uuid.uuid4().hex[:6]
    frozen, open_ns = f"faults-frozen-{sfx}", f"faults-open-{sfx}"
    policy = f"faults-freeze-{sfx}"
    create_namespaces(kubectl, [frozen, open_ns])
    try:
        for ns in (frozen, open_ns):
            create_workloads(kubectl, ns, workload_set(4))
        wait_rolled_out(kubectl, [frozen, open_ns])
        for obj in freeze_policy(policy, frozen):
            kubectl.apply(obj)
        wait_denied(kubectl, frozen, "w000-plain")
        before = snapshot(kubectl, [frozen, open_ns])
        inventory = write_inventory(tmp_path / "main.yml", {"main": main_host([frozen, open_ns])})
        run = PlaybookRun("fix-shm.yml", inventory, playbook_env(tmp_path / "reports"), tmp_path / "run.log")
        rc = run.wait(600)
        output = run.output()
        assert rc == 2, output[-4000:]
        (cluster,) = single_report(tmp_path / "reports")["clusters"]
        assert cluster["status"] == "failed"
        fixable = to_fix(workload_set(4))
        failed = {w["name"]: w for w in cluster["failed"]}
        assert {(w["namespace"]) for w in cluster["failed"]} == {frozen} and len(failed) == fixable, sorted(failed)
        for entry in failed.values():
            assert f"pod templates are frozen in namespace {frozen} (change freeze {policy})" in entry["reason"], entry
            assert policy in entry["reason"]
        assert sorted((w["namespace"], w["name"]) for w in cluster["changed"]) == sorted(k for k in before if k[0] == open_ns and "skipped" not in k[1])
        counts = compare_with_snapshot(before, snapshot(kubectl, [frozen, open_ns]))
        assert counts == {"compared": 8, "patched": fixable, "untouched": 8 - fixable}, counts
        print(f"fault 6: {len(failed)} denied with the server's message: {next(iter(failed.values()))['reason'][:200]}")
    finally:
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            kubectl.run("delete", kind, policy, "--ignore-not-found", check=False)
        delete_namespaces(kubectl, [frozen, open_ns])
