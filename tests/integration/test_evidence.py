"""Evidence of who really hits the 64 MiB wall, on the embedded cluster, with the real failure: shm-mmap
(localcluster/images/shm-mmap.c) writes 100 MiB through a MAP_SHARED mapping of a /dev/shm file and dies of
SIGBUS (exit code 135) at 64 MiB on the runtime default.

- shm_info (module_utils/records.run_info, as the module runs it) turns the crash-looping Deployment into
  evidence (a sigbus item, exit code 135) and leaves a quiet one at level none;
- fix-shm.yml with remediate_target=evidence patches only the one with evidence, the report says why the
  other was left, and the same program in the new pod writes its 100 MiB and keeps running.

Costs about 90 s (two Deployments on the sized node, one fix-shm run with its rollout).
"""

from __future__ import annotations

import time
import uuid

import pytest
import yaml
from helpers import CONTEXT, import_collection, playbook_env, run_playbook, single_report
from localcluster_helpers import BUSYBOX, SIZED_NODE, df_k

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import client, records

MIB = 1024**2
WRITE_MIB = 100


def deployment(name: str, command: list[str]) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"shmfix.io/node-mode": "sized"},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": command}],
                },
            },
        },
    }


@pytest.fixture
def ns(kubectl):
    name = f"b-ev-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def pods_of(kubectl, namespace, app):
    return [p for p in kubectl.json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"] if not p["metadata"].get("deletionTimestamp")]


def wait_sigbus(kubectl, namespace, app, timeout=120):
    """The pod of ``app`` once its container has died of SIGBUS (exit code 135) and been restarted: the run that died
    is then the previous one, whose log ``kubectl logs --previous`` reads."""
    deadline = time.monotonic() + timeout
    while True:
        for pod in pods_of(kubectl, namespace, app):
            for cs in pod["status"].get("containerStatuses") or []:
                term = (cs.get("lastState") or {}).get("terminated") or {}
                if term.get("exitCode") == 135:
                    return pod
        assert time.monotonic() < deadline, f"{app}: no SIGBUS after {timeout}s"
        time.sleep(1)


def previous_written(kubectl, namespace, pod, timeout=60):
    """The 'shm-mmap: written' lines of the run that died. The pod's lastState can still name a run the kubelet has
    just removed (it keeps one dead container: when the next run dies too, the one before goes), and then
    ``kubectl logs --previous`` prints 'unable to retrieve container logs'; read again until a run's lines show."""
    deadline = time.monotonic() + timeout
    while True:
        lines = kubectl("logs", "-n", namespace, pod, "--previous").splitlines()
        written = [line for line in lines if line.startswith("shm-mmap: written ")]
        if written:
            return written
        assert time.monotonic() < deadline, f"{pod}: no 'shm-mmap: written' line in the previous run's log: {lines[-3:]}"
        time.sleep(1)


def shm_info(kube, namespace, **over):
    params = {
        "namespaces": [namespace],
        "exclude_namespaces": [],
        "kinds": ["Deployment"],
        "extra_kinds": [],
        "label_selector": None,
        "names": None,
        "evidence": True,
        "evidence_df": False,
        "evidence_df_threshold": 80,
        "evidence_logs": False,
        "evidence_log_lines": 200,
    }
    params.update(over)
    return records.run_info(kube, params)


def test_sigbus_is_evidence_and_remediate_target_evidence_fixes_only_that(kubectl, kubeconfig, ns, tmp_path):
    kubectl.apply(deployment("mmap-writer", ["shm-mmap", str(WRITE_MIB), "--hold"]), ns)
    kubectl.apply(deployment("quiet", ["sleep", "3600"]), ns)
    killed = wait_sigbus(kubectl, ns, "mmap-writer")
    assert killed["spec"]["nodeName"] == SIZED_NODE
    written = previous_written(kubectl, ns, killed["metadata"]["name"])
    assert written[-1] == f"shm-mmap: written 64 MiB ({64 * MIB} bytes)", written

    kube = client.Kube(params={"kubeconfig": str(kubeconfig), "context": CONTEXT})
    audit = shm_info(kube, ns)
    by_name = {w["name"]: w for w in audit["workloads"]}
    writer, quiet = by_name["mmap-writer"]["evidence"], by_name["quiet"]["evidence"]
    assert writer["level"] == "evidence", writer
    assert [(i["kind"], i["container"], i["exit_code"]) for i in writer["items"]][:1] == [("sigbus", "main", 135)]
    assert quiet["level"] == "none" and quiet["items"] == [] and quiet["pods"] == 1
    assert audit["summary"]["evidence"] == {"evidence": 1, "likely": 0, "none": 1}
    assert "shm_pressure_sigbus" in [f["code"] for f in by_name["mmap-writer"]["findings"]]

    inventory = tmp_path / "local.yml"
    host = {
        "shmfix_kubeconfig": str(kubeconfig),
        "shmfix_context": CONTEXT,
        "remediate_namespaces": [ns],
        "remediate_size_limit": "256Mi",
        "remediate_target": "evidence",
        # the crash-looping writer is "broken" before its wave: change it anyway, that is the fix
        "remediate_broken": "patch",
        "eviction_verify_enabled": False,
    }
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "hosts": {"shmfix-local": host}}}))
    proc = run_playbook("fix-shm.yml", inventory, playbook_env(tmp_path / "reports"), 600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    (cluster,) = single_report(tmp_path / "reports")["clusters"]
    assert [w["name"] for w in cluster["changed"]] == ["mmap-writer"]
    assert cluster["changed"][0]["target"]["why"].startswith("evidence of shm pressure: pod mmap-writer-"), cluster["changed"][0]["target"]
    assert "SIGBUS (exit code 135" in cluster["changed"][0]["target"]["why"]
    (left,) = [w for w in cluster["unchanged"] if w["name"] == "quiet"]
    assert left["reason"].startswith("remediate_target=evidence: no evidence of shm pressure (checked: images, pod statuses)"), left
    assert "volumes" not in kubectl.json("get", "deployment", "-n", ns, "quiet")["spec"]["template"]["spec"]

    (fixed,) = pods_of(kubectl, ns, "mmap-writer")
    assert df_k(kubectl, ns, fixed["metadata"]["name"])["size_kib"] == 256 * 1024
    log = kubectl("logs", "-n", ns, fixed["metadata"]["name"])
    assert f"shm-mmap: written {WRITE_MIB} MiB ({WRITE_MIB * MIB} bytes)" in log.splitlines()
    status = kubectl.json("get", "pod", "-n", ns, fixed["metadata"]["name"])["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0 and "running" in status["state"]
