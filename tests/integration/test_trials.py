"""What went wrong when the playbooks were tried as a new user would, each now a test on the real cluster.

- A crash-looping Deployment was reported ``Rollout: complete`` and the run took down its last working pod.
- ``remediate_size_ratio: 0`` was silently replaced by the default 0.5.
- A typo in a role variable (``remediate_size_limt``) patched with the inventory's size and said nothing.
- Rollback threw away a sizeLimit raised by hand after the fix.
- verify said ok with nothing about a workload that had no running pod.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from helpers import playbook_env, run_playbook, single_report
from localcluster_helpers import BUSYBOX

MI = 1024 * 1024


def deployment(name: str, command: str = "while true; do sleep 1; done", node_mode: str = "sized", **spec) -> dict:
    pod = {
        "terminationGracePeriodSeconds": 1,
        "nodeSelector": {"shmfix.io/node-mode": node_mode},
        "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sh", "-c", command]}],
    }
    pod.update(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": pod}},
    }


def inventory(tmp_path, kubeconfig, namespace, **extra):
    host = {
        "ansible_connection": "local",
        "shmfix_kubeconfig": str(kubeconfig),
        "shmfix_context": "shmfix-local",
        "eviction_verify_enabled": False,
        "remediate_namespaces": [namespace],
        "remediate_size_limit": "128Mi",
        "remediate_batch_size": 1,
        "remediate_rollout_timeout": 150,
    }
    host.update(extra)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"local": host}}}))
    return path


def template(kubectl, namespace, name):
    return kubectl.json("get", "deployment", name, "-n", namespace)["spec"]["template"]


def resource_versions(kubectl, namespace):
    return {d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in kubectl.json("get", "deployments", "-n", namespace)["items"]}


@pytest.fixture
def three_with_a_broken_middle(kubectl, namespace):
    """a-web, b-mid, c-api running; then b-mid's command becomes `exit 1`: its new pod crash-loops."""
    for name in ("a-web", "b-mid", "c-api"):
        kubectl.apply(deployment(name), namespace)
    for name in ("a-web", "b-mid", "c-api"):
        kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=180s", timeout=200)
    kubectl(
        "patch",
        "deployment",
        "b-mid",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/command", "value": ["sh", "-c", "exit 1"]}]),
    )
    deadline = time.monotonic() + 120
    while True:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app=b-mid")["items"]
        restarts = [s.get("restartCount", 0) for p in pods for s in p["status"].get("containerStatuses") or []]
        if any(r >= 1 for r in restarts):
            break
        assert time.monotonic() < deadline, "b-mid's new pod never restarted"
        time.sleep(2)
    # Its old pod usually still runs here, but not always: the new pod is Ready for a moment after each
    # start, and the deployment controller (minReadySeconds 0) may count it available and scale the old
    # one away (seen in CI under load). Either way b-mid is broken before the run, which is what both
    # tests need.
    return namespace


def test_a_workload_broken_before_the_run_is_left_alone_and_reported(kubectl, kubeconfig, three_with_a_broken_middle, tmp_path):
    ns = three_with_a_broken_middle
    before = kubectl.json("get", "deployment", "b-mid", "-n", ns)
    proc = run_playbook("fix-shm.yml", inventory(tmp_path, kubeconfig, ns), playbook_env(tmp_path / "reports"), 900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (cluster,) = single_report(tmp_path / "reports")["clusters"]
    assert cluster["status"] == "ok", cluster["failure"]
    assert sorted(w["name"] for w in cluster["changed"]) == ["a-web", "c-api"]
    (skipped,) = [w for w in cluster["skipped"] if w["name"] == "b-mid"]
    assert skipped["reason"].startswith("broken before the run, left alone (remediate_broken=skip): ")
    assert "CrashLoopBackOff" in skipped["reason"] or "restarted" in skipped["reason"] or "replicas available" in skipped["reason"]
    # left alone: never written (same generation, same template, no shmfix annotation). Whether its old pod
    # survives is the deployment controller's business: the crash-looping pod is Ready for a moment after each
    # start, and the controller may scale the old one away on its own.
    after = kubectl.json("get", "deployment", "b-mid", "-n", ns)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert "shmfix.io/original" not in (after["metadata"].get("annotations") or {})
    for name in ("a-web", "c-api"):
        assert template(kubectl, ns, name)["spec"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}}]


def test_a_crash_looping_rollout_fails_its_wave_and_stops_the_run(kubectl, kubeconfig, three_with_a_broken_middle, tmp_path):
    ns = three_with_a_broken_middle
    inv = inventory(tmp_path, kubeconfig, ns, remediate_broken="patch", remediate_max_failures=1)
    proc = run_playbook("fix-shm.yml", inv, playbook_env(tmp_path / "reports"), 900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-4000:]
    (cluster,) = single_report(tmp_path / "reports")["clusters"]
    assert cluster["status"] == "failed" and cluster["stopped"] is True
    assert [w["name"] for w in cluster["changed"]] == ["a-web"]
    (failed,) = cluster["failed"]
    assert failed["name"] == "b-mid" and failed["rollout"]["status"] == "failed"
    assert "CrashLoopBackOff" in failed["reason"] or "restarted" in failed["reason"], failed["reason"]
    assert "successfully rolled out" not in failed["reason"] or "then" in failed["reason"]
    assert [u["name"] for u in cluster["untouched"]] == ["c-api"]
    assert "volumes" not in template(kubectl, ns, "c-api")["spec"]
    assert "1 workload(s) failed" in cluster["failure"]["message"]


def test_verify_does_not_call_a_workload_without_running_pods_ok(kubectl, kubeconfig, namespace, tmp_path):
    shm = {"volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}}]}
    stuck = deployment("stuck", node_mode="no-such-node", **shm)
    stuck["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    kubectl.apply(stuck, namespace)
    proc = run_playbook("verify_shm.yml", inventory(tmp_path, kubeconfig, namespace), playbook_env(tmp_path / "reports"), 600)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
    (cluster,) = single_report(tmp_path / "reports")["clusters"]
    assert cluster["status"] == "failed"
    assert cluster["failure"]["message"] == "1 workload(s) could not be verified: no running pod (stuck)"
    (audited,) = cluster["audited"]
    assert audited["verdict"] == "unverified" and audited["verdict_note"].startswith("0 of 1 desired pods running")


def test_rollback_reports_a_volume_changed_by_hand_and_keeps_it_unless_forced(kubectl, kubeconfig, namespace, tmp_path):
    kubectl.apply(deployment("web"), namespace)
    kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    pristine = template(kubectl, namespace, "web")
    inv = inventory(tmp_path, kubeconfig, namespace, remediate_size_limit="512Mi")
    assert run_playbook("fix-shm.yml", inv, playbook_env(tmp_path / "fix"), 900).returncode == 0
    # raised by hand after the fix
    kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/template/spec/volumes/0/emptyDir/sizeLimit", "value": "700Mi"}]),
    )
    by_hand = template(kubectl, namespace, "web")
    proc = run_playbook("rollback_shm.yml", inv, playbook_env(tmp_path / "rollback"), 900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (cluster,) = single_report(tmp_path / "rollback")["clusters"]
    (skipped,) = cluster["skipped"]
    assert skipped["name"] == "web" and skipped["reason"].startswith("drift since shmfix patched it: volume dshm is now ")
    assert '"sizeLimit": "700Mi"' in skipped["reason"]
    assert template(kubectl, namespace, "web") == by_hand
    forced = run_playbook("rollback_shm.yml", inv, playbook_env(tmp_path / "forced"), 900, "-e", "remediate_force=true")
    assert forced.returncode == 0, (forced.stdout + forced.stderr)[-4000:]
    assert [w["name"] for w in single_report(tmp_path / "forced")["clusters"][0]["changed"]] == ["web"]
    assert template(kubectl, namespace, "web") == pristine


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            "remediate_size_limt=2Gi",
            "remediate_size_limt is not an input of the remediate role: did you mean remediate_size_limit? the run stops before anything is written",
        ),
        ("remediate_size_ratio=0", "size_ratio: 0.0 is out of range (give a ratio with 0 < ratio <= 1, e.g. 0.5 for half of the pod memory limit)"),
    ],
)
def test_a_bad_role_variable_fails_before_any_write(kubectl, kubeconfig, namespace, tmp_path, extra, message):
    kubectl.apply(deployment("web"), namespace)
    kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s", timeout=200)
    versions = resource_versions(kubectl, namespace)
    inv = inventory(tmp_path, kubeconfig, namespace)
    inv_data = yaml.safe_load(inv.read_text())
    inv_data["all"]["hosts"]["local"].pop("remediate_size_limit")  # the ratio case must reach the module as given
    inv.write_text(yaml.safe_dump(inv_data))
    proc = run_playbook("fix-shm.yml", inv, playbook_env(tmp_path / "reports"), 600, "-e", extra)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
    (cluster,) = single_report(tmp_path / "reports")["clusters"]
    assert cluster["status"] == "failed"
    assert message in cluster["failure"]["message"], cluster["failure"]
    assert resource_versions(kubectl, namespace) == versions
