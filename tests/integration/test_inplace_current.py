"""In-place /dev/shm resize (KEP-6030) by fix-shm.yml with remediate_strategy=inplace, on both clusters in one run.

A Deployment and a StatefulSet on the current cluster (v1.37, localcluster/lib/current.sh) and a Deployment on the
legacy one, each pod holding a file in a 64Mi sized Memory emptyDir at /dev/shm, are fixed to 256Mi by one
fix-shm.yml run over an inventory of the two clusters. The legacy cluster rolls out and the report says why (its
nodes do not declare the feature). On the current cluster:

- where its kubelet can resize memory-backed volumes (cgroup v2, or the kubelet built with the cgroup v1 refusal
  removed, SHMFIX_CURRENT_KUBELET=cgroupv1-resize): the same pods (UID, restartCount 0) show 256Mi in df, keep their
  file, an mmap writer gets past 64 MiB without SIGBUS; rollback (shm_patch state=absent, check mode first) resizes
  them back, timed from the request to df showing the old size; a new replica gets 256Mi at admission
  (shmfix.k8s.admission_policy);
- where it cannot (the stock v1.37.2 kubelet on a cgroup v1 host, this VM): the kubelet marks the resize
  Infeasible, shmfix resizes the pods back, rolls the workloads out instead, and the report gives the kubelet's reason.

Cost: one fix-shm.yml run on two clusters without the eviction canaries (about a minute) and a few pods.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import yaml
from current_helpers import CURRENT_CONTEXT, CURRENT_KUBECONFIG, MEMORY_VOLUME_RESIZE, kubelet_can_resize_memory_volumes, new_namespace
from helpers import import_collection, playbook_env, run_playbook, single_report
from localcluster_helpers import BUSYBOX, STATE, df_k

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import admission, client, patching

MIB = 1024 * 1024
FILE = "/dev/shm/kept"


def workload(kind: str, name: str) -> dict:
    """A Deployment or StatefulSet whose pod has a 64Mi sized Memory emptyDir at /dev/shm and sleeps."""
    container = {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", "while true; do sleep 1; done"],
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    spec = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [container],
                "terminationGracePeriodSeconds": 1,
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
            },
        },
    }
    if kind == "StatefulSet":
        spec.update(serviceName=name, podManagementPolicy="Parallel")
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def running_pods(kubectl, namespace: str, app: str, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        pods = [
            p
            for p in kubectl.json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        if pods and all(all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}]) for p in pods):
            return pods
        assert time.monotonic() < deadline, f"no ready pod of {app} in {namespace} after {timeout}s"
        time.sleep(1)


def snapshot(kubectl, namespace: str, pod: dict) -> dict:
    name = pod["metadata"]["name"]
    kept = kubectl.exec(namespace, name, "cat", FILE)
    return {
        "pod": name,
        "uid": pod["metadata"]["uid"],
        "restarts": sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or []),
        "df": df_k(kubectl, namespace, name),
        "kept": kept.stdout.strip() if kept.returncode == 0 else None,
    }


def inventory(tmp_path, legacy_namespace: str, current_namespace: str) -> str:
    common = {"eviction_verify_enabled": False, "remediate_size_limit": "256Mi", "remediate_strategy": "inplace", "remediate_rollout_timeout": 150}
    hosts = {
        "legacy": dict(common, shmfix_kubeconfig=str(STATE / "kubeconfig"), shmfix_context="shmfix-local", remediate_namespaces=[legacy_namespace]),
        "current": dict(common, shmfix_kubeconfig=str(CURRENT_KUBECONFIG), shmfix_context=CURRENT_CONTEXT, remediate_namespaces=[current_namespace]),
    }
    path = tmp_path / "two-clusters.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "hosts": hosts}}))
    return path


def changed_by_name(report: dict, cluster: str) -> dict:
    (entry,) = [c for c in report["clusters"] if c["name"] == cluster]
    return {w["name"]: w for w in entry["changed"]}


@pytest.fixture(scope="module")
def fixed(kubectl, current_kubectl, tmp_path_factory):
    """Both clusters' workloads before and after one fix-shm.yml run with remediate_strategy=inplace (run once for the module)."""
    legacy_ns, current_ns = new_namespace(kubectl, "shmfix-a-inplace"), new_namespace(current_kubectl, "shmfix-a-inplace")
    tmp_path = tmp_path_factory.mktemp("inplace")
    try:
        kubectl.apply(workload("Deployment", "legacy-web"), legacy_ns)
        for kind, name in (("Deployment", "notebook"), ("StatefulSet", "db")):
            current_kubectl.apply(workload(kind, name), current_ns)
        for app in ("notebook", "db"):
            # written into the running pod, not by its command: a new pod does not have it
            for p in running_pods(current_kubectl, current_ns, app):
                current_kubectl("exec", "-n", current_ns, p["metadata"]["name"], "--", "sh", "-c", f"echo {app} > {FILE}")
        before = {app: [snapshot(current_kubectl, current_ns, p) for p in running_pods(current_kubectl, current_ns, app)] for app in ("notebook", "db")}
        running_pods(kubectl, legacy_ns, "legacy-web")
        started = time.monotonic()
        proc = run_playbook("fix-shm.yml", inventory(tmp_path, legacy_ns, current_ns), playbook_env(tmp_path / "reports"), 900)
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        report = single_report(tmp_path / "reports")
        after = {app: [snapshot(current_kubectl, current_ns, p) for p in running_pods(current_kubectl, current_ns, app)] for app in ("notebook", "db")}
        print(f"fix-shm.yml on both clusters: {elapsed:.1f}s")
        yield {"before": before, "after": after, "report": report, "namespace": current_ns}
    finally:
        if os.environ.get("SHMFIX_KEEP_NAMESPACES") != "1":
            kubectl.run("delete", "namespace", legacy_ns, "--wait=false", check=False)
            current_kubectl.run("delete", "namespace", current_ns, "--wait=false", check=False)


def test_fix_shm_inplace_on_both_clusters(fixed, current_kubectl):
    report, before, after = fixed["report"], fixed["before"], fixed["after"]
    for app in ("notebook", "db"):
        for b in before[app]:
            print(f"before {app}: pod {b['pod']} uid {b['uid']} restarts {b['restarts']} df {b['df']} file {b['kept']!r}")
            assert b["df"]["size_kib"] == 64 * 1024 and b["kept"] == app
        for a in after[app]:
            print(f"after  {app}: pod {a['pod']} uid {a['uid']} restarts {a['restarts']} df {a['df']} file {a['kept']!r}")
    # The legacy cluster: rolled out, and why (its nodes declare no features).
    legacy = changed_by_name(report, "legacy")["legacy-web"]
    assert legacy["strategy"].startswith("rolled out (node shmfix-"), legacy["strategy"]
    assert f"does not declare {MEMORY_VOLUME_RESIZE}" in legacy["strategy"], legacy["strategy"]
    assert legacy["rollout"]["status"] == "complete", legacy["rollout"]
    current = changed_by_name(report, "current")
    assert set(current) == {"notebook", "db"}, current
    if kubelet_can_resize_memory_volumes(current_kubectl):
        for app in ("notebook", "db"):
            w = current[app]
            assert (w["action"], w["strategy"], w["verdict"]) == ("resized", "resized in place", "ok"), w
            assert w["measured_bytes"] == [256 * MIB], w["measured"]
            assert [(a["uid"], a["restarts"], a["df"]["size_kib"], a["kept"]) for a in after[app]] == [(b["uid"], 0, 256 * 1024, app) for b in before[app]]
        for app, tmpl in (("notebook", "deployment"), ("db", "statefulset")):
            volumes = current_kubectl.json("get", tmpl, app, "-n", fixed["namespace"])["spec"]["template"]["spec"]["volumes"]
            assert volumes == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}], "the pod template must stay untouched"
    else:
        for app in ("notebook", "db"):
            w = current[app]
            assert w["action"] == "patched" and w["strategy"].startswith("rolled out (the kubelet on node shmfix-current did not resize pod"), w
            assert "Memory-backed emptyDir volume resize is not supported on cgroups v1" in w["strategy"], w["strategy"]
            assert "resized back to 64Mi" in w["strategy"], w["strategy"]
            assert {a["uid"] for a in after[app]}.isdisjoint({b["uid"] for b in before[app]}), "the fallback is a rollout: new pods"
            assert [(a["df"]["size_kib"], a["kept"]) for a in after[app]] == [(256 * 1024, None)], after[app]


def test_a_new_replica_gets_the_size_at_admission(fixed, current_kubectl):
    """The template stays at 64Mi; shmfix.k8s.admission_policy (MutatingAdmissionPolicy v1) gives a new pod 256Mi."""
    if not kubelet_can_resize_memory_volumes(current_kubectl):
        pytest.skip("the workloads were rolled out (the kubelet refuses memory-backed volume resizes on cgroup v1): their template already has 256Mi")
    namespace = fixed["namespace"]
    kube = client.Kube(params={"kubeconfig": str(CURRENT_KUBECONFIG), "context": CURRENT_CONTEXT})
    policy = {
        "name": "shmfix-a-inplace",
        "state": "present",
        "mode": "mutating",
        "validation_actions": ["Warn", "Audit"],
        "namespaces": [namespace],
        "exclude_namespaces": [],
        "label_selector": None,
        "size_limit": "256Mi",
        "size_ratio": None,
        "min_size": None,
        "max_size": None,
        "existing": "grow",
        "volume_name": "dshm",
    }
    installed = admission.run_admission(kube, policy)
    assert ("MutatingAdmissionPolicy", "admissionregistration.k8s.io/v1") in [(o["kind"], o["api_version"]) for o in installed["objects"]], installed
    try:
        # The policy's binding takes effect within a second or two: a replica admitted before keeps 64Mi.
        deadline = time.monotonic() + 30
        while True:
            dry = current_kubectl.json(
                "create",
                "-n",
                namespace,
                "--dry-run=server",
                "-f",
                "-",
                input=json.dumps(workload("Deployment", "probe")["spec"]["template"] | {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}}),
            )
            if dry["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "256Mi" or time.monotonic() > deadline:
                break
            time.sleep(1)
        current_kubectl("scale", "statefulset", "db", "-n", namespace, "--replicas", "2")
        new = current_kubectl.wait_pod_running(namespace, "db-1", timeout=120)
        assert new["spec"]["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Mi"}, new["spec"]["volumes"]
        assert df_k(current_kubectl, namespace, "db-1")["size_kib"] == 256 * 1024
        template = current_kubectl.json("get", "statefulset", "db", "-n", namespace)["spec"]["template"]["spec"]["volumes"]
        assert template == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    finally:
        admission.run_admission(kube, dict(policy, state="absent"))
        current_kubectl("scale", "statefulset", "db", "-n", namespace, "--replicas", "1")


def mmap_write(kubectl, namespace: str, pod: str, mib: int):
    proc = kubectl.exec(namespace, pod, "shm-mmap", str(mib), "/dev/shm/mmap-test")
    kubectl.exec(namespace, pod, "rm", "-f", "/dev/shm/mmap-test")
    return proc


def test_resized_pods_write_past_64mib_then_roll_back_in_place(fixed, current_kubectl):
    if not kubelet_can_resize_memory_volumes(current_kubectl):
        pytest.skip("the current node's kubelet refuses memory-backed volume resizes (cgroup v1); test_fix_shm_inplace_on_both_clusters proved the fallback")
    namespace = fixed["namespace"]
    (pod,) = fixed["after"]["notebook"]
    proc = mmap_write(current_kubectl, namespace, pod["pod"], 100)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-300:], proc.stderr)
    assert f"shm-mmap: written 100 MiB ({100 * MIB} bytes)" in proc.stdout
    kube = client.Kube(params={"kubeconfig": str(CURRENT_KUBECONFIG), "context": CURRENT_CONTEXT})
    params = {
        "namespaces": [namespace],
        "exclude_namespaces": [],
        "kinds": ["Deployment", "StatefulSet"],
        "extra_kinds": [],
        "label_selector": None,
        "names": None,
        "state": "absent",
        "size_limit": None,
        "size_ratio": None,
        "min_size": None,
        "max_size": None,
        "existing": "grow",
        "managed": "warn",
        "volume_name": "dshm",
        "strategy": "inplace",
    }
    check = patching.run_patch(kube, params, check_mode=True)
    assert sorted((r["name"], r["action"]) for r in check["results"]) == [("db", "would_restore"), ("notebook", "would_restore")], check["results"]
    assert df_k(current_kubectl, namespace, pod["pod"])["size_kib"] == 256 * 1024, "check mode must not resize"
    # Rollback, timed from the request until df in the pod shows 64Mi again; then in place again to 256Mi, timed the same way.
    result, latency = timed_until_df(current_kubectl, namespace, pod["pod"], 64 * 1024, lambda: patching.run_patch(kube, params))
    print(f"rollback: request to df showing 64Mi in pod {pod['pod']}: {latency:.2f}s")
    assert sorted((r["name"], r["action"]) for r in result["results"]) == [("db", "restored"), ("notebook", "restored")], result["results"]
    back = current_kubectl.json("get", "pod", pod["pod"], "-n", namespace)
    assert back["metadata"]["uid"] == pod["uid"] and "shmfix.io/resized-from" not in (back["metadata"].get("annotations") or {})
    assert mmap_write(current_kubectl, namespace, pod["pod"], 100).returncode == 135, "back at 64Mi the writer dies of SIGBUS again"
    grow = dict(params, state="present", size_limit="256Mi", names=["notebook"], kinds=["Deployment"])
    result, latency = timed_until_df(current_kubectl, namespace, pod["pod"], 256 * 1024, lambda: patching.run_patch(kube, grow))
    (rec,) = result["results"]
    print(
        f"resize: request to df showing 256Mi in pod {pod['pod']}: {latency:.2f}s (the kubelet reported it done after {rec['resized_pods'][0]['actuated_s']}s)"
    )
    assert (rec["action"], rec["resized_pods"][0]["uid"], rec["resized_pods"][0]["restart_count"]) == ("resized", pod["uid"], 0), rec


def timed_until_df(kubectl, namespace: str, pod: str, size_kib: int, call):
    """(call's result, seconds from the start of call until df in the pod shows size_kib); call runs in a thread."""
    result, seen = {}, {}
    worker = threading.Thread(target=lambda: result.update(call()))
    started = time.monotonic()
    worker.start()
    while time.monotonic() - started < 120 and "at" not in seen:
        if df_k(kubectl, namespace, pod)["size_kib"] == size_kib:
            seen["at"] = time.monotonic() - started
        time.sleep(0.2)
    worker.join(120)
    assert "at" in seen, f"df in {pod} never showed {size_kib} KiB within 120 s"
    return result, seen["at"]
