"""Fleet run of playbooks/fix-shm.yml: three clusters, one of them unreachable.

Two inventory hosts reach the embedded cluster under different contexts (shmfix-local and
shmfix-local-alt) and fix different namespaces; the third points at https://127.0.0.1:1 where
nothing listens. The two finish, the third is reported unreachable, the run's exit code says a
cluster failed, and report.json / report.md show all three.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import playbook_env, run_playbook
from localcluster_helpers import BUSYBOX, REPO_ROOT

MI = 1024 * 1024
VENV_BIN = REPO_ROOT / ".venv" / "bin"


def deployment(name: str, node_mode: str) -> dict:
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
                    "terminationGracePeriodSeconds": 1,
                    "nodeSelector": {"shmfix.io/node-mode": node_mode},
                    "containers": [
                        {
                            "name": "main",
                            "image": BUSYBOX,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "while true; do sleep 1; done"],
                        }
                    ],
                },
            },
        },
    }


@pytest.fixture
def fleet_namespaces(kubectl):
    suffix = uuid.uuid4().hex[:6]
    names = [f"shmfix-fleet-a-{suffix}", f"shmfix-fleet-b-{suffix}"]
    for ns in names:
        kubectl("create", "namespace", ns)
        deadline = time.monotonic() + 60
        while kubectl.run("get", "serviceaccount", "default", "-n", ns, check=False).returncode != 0:
            assert time.monotonic() < deadline, f"no default ServiceAccount in {ns}"
            time.sleep(0.5)
    kubectl.apply(deployment("web", "sized"), names[0])
    kubectl.apply(deployment("api", "sized"), names[1])
    for ns, name in ((names[0], "web"), (names[1], "api")):
        kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=180s", timeout=200)
    yield names
    if os.environ.get("SHMFIX_KEEP_NAMESPACES") != "1":
        for ns in names:
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def write_inventory(path: Path, kubeconfig: Path, namespaces: list[str]) -> None:
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "eviction_verify_image": BUSYBOX,
                "eviction_verify_image_pull_policy": "Never",
                "remediate_size_limit": "128Mi",
                "remediate_rollout_timeout": 180,
            },
            "hosts": {
                "local-a": {
                    "shmfix_kubeconfig": str(kubeconfig),
                    "shmfix_context": "shmfix-local",
                    "remediate_namespaces": [namespaces[0]],
                },
                "local-b": {
                    "shmfix_kubeconfig": str(kubeconfig),
                    "shmfix_context": "shmfix-local-alt",
                    "remediate_namespaces": [namespaces[1]],
                    # One cluster proving enforcement is enough for this test's wall time.
                    "eviction_verify_enabled": False,
                },
                "dead": {
                    # Loopback only: nothing listens on port 1.
                    "shmfix_host": "https://127.0.0.1:1",
                    "shmfix_api_key": "not-a-token",
                    "shmfix_validate_certs": False,
                },
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


def run_fix_shm(inventory: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    """Run playbooks/fix-shm.yml with the venv's ansible-playbook against `inventory`, output captured."""
    return run_playbook("fix-shm.yml", inventory, env, timeout)


def test_fleet_two_clusters_fixed_one_unreachable(kubectl, kubeconfig, fleet_namespaces, tmp_path):
    inventory = tmp_path / "fleet.yml"
    write_inventory(inventory, kubeconfig, fleet_namespaces)
    reports = tmp_path / "reports"
    env = playbook_env(reports)
    started = time.monotonic()
    proc = run_fix_shm(inventory, env, timeout=900)
    wall = time.monotonic() - started
    output = proc.stdout + proc.stderr
    (tmp_path / "ansible.log").write_text(output)

    # The run fails because one cluster failed; the others are not stopped by it.
    assert proc.returncode == 2, output[-4000:]
    recap = output[output.rindex("PLAY RECAP") :]
    assert "local-a" in recap and "local-b" in recap and "dead" in recap
    for line in recap.splitlines():
        if line.startswith(("local-a", "local-b")):
            assert "failed=0" in line, line
        if line.startswith("dead"):
            assert "failed=1" in line, line

    # One report for the fleet, with all three clusters.
    (run_dir,) = list(reports.iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    clusters = {c["name"]: c for c in report["clusters"]}
    assert set(clusters) == {"local-a", "local-b", "dead"}
    assert report["failed_clusters"] == ["dead"]
    assert report["totals"]["clusters"] == 3
    assert report["totals"]["ok"] == 2
    assert report["totals"]["unreachable"] == 1

    dead = clusters["dead"]
    assert dead["status"] == "unreachable"
    assert dead["failure"]["phase"] == "version_check"
    assert "127.0.0.1:1" in dead["failure"]["message"]
    assert dead["changed"] == [] and dead["nodes"] == []

    for name, ns, workload in (("local-a", fleet_namespaces[0], "web"), ("local-b", fleet_namespaces[1], "api")):
        cluster = clusters[name]
        assert cluster["status"] == "ok", cluster["failure"]
        assert cluster["server_version"].startswith("v1.34.")
        assert sorted(n["tier"] for n in cluster["nodes"]) == ["default_on", "ga"]
        # each cluster changed only its own namespace
        assert [(w["kind"], w["namespace"], w["name"]) for w in cluster["changed"]] == [("Deployment", ns, workload)]
        changed = cluster["changed"][0]
        assert changed["before"]["effective_bytes"] == 64 * MI
        assert changed["before"]["measured_bytes"] == 64 * MI
        assert changed["after"]["size_limit_bytes"] == 128 * MI
        assert changed["after"]["measured_bytes"] == 128 * MI
        assert changed["rollout"]["status"] == "complete"
        assert changed["verdict"] == "ok"

    # The canaries ran on local-a only and proved both enforcement modes.
    probes = {p["node"]: p for p in clusters["local-a"]["enforcement"]["probes"]}
    assert clusters["local-a"]["enforcement"]["proven"] is True
    assert probes["shmfix-sized"]["outcome"] == "sized"
    assert probes["shmfix-sized"]["df_size_bytes"] == 32 * MI
    assert probes["shmfix-eviction"]["outcome"] == "evicted"
    assert probes["shmfix-eviction"]["event_message"] == 'Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".'
    assert clusters["local-b"]["enforcement"]["proven"] is None

    markdown = (run_dir / "report.md").read_text()
    assert "| dead | **unreachable** |" in markdown
    assert "| local-a | **ok** |" in markdown and "| local-b | **ok** |" in markdown

    # The summary table is printed at the end of the play.
    assert "CLUSTER" in output and "unreachable" in output[output.rindex("CLUSTER") :]

    # The namespaces were really patched: df in the new pod shows 128 MiB.
    pods = kubectl.json("get", "pods", "-n", fleet_namespaces[0], "-l", "app=web")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert running
    proc_df = kubectl.exec(fleet_namespaces[0], running[0]["metadata"]["name"], "df", "-k", "/dev/shm")
    assert proc_df.stdout.strip().splitlines()[-1].split()[1] == str(128 * 1024)
    print(f"fleet run: {wall:.0f}s")


def test_failure_budget_stops_the_waves_and_the_report_says_why(kubectl, kubeconfig, tmp_path):
    """A Deployment whose new pods cannot start fails its wave; with remediate_max_failures=1 the
    later waves stay untouched, the cluster is reported failed, and the run's exit code says so."""
    ns = f"shmfix-fleet-budget-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    try:
        deadline = time.monotonic() + 60
        while kubectl.run("get", "serviceaccount", "default", "-n", ns, check=False).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        broken = deployment("a-broken", "sized")
        broken["spec"]["template"]["spec"]["containers"][0]["image"] = "localhost/shmfix/does-not-exist:local"
        kubectl.apply(broken, ns)
        kubectl.apply(deployment("b-web", "sized"), ns)
        kubectl.apply(deployment("c-api", "sized"), ns)
        for name in ("b-web", "c-api"):
            kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=180s", timeout=200)

        inventory = tmp_path / "one.yml"
        inventory.write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "hosts": {
                            "local": {
                                "ansible_connection": "local",
                                "shmfix_kubeconfig": str(kubeconfig),
                                "shmfix_context": "shmfix-local",
                                "eviction_verify_enabled": False,
                                "remediate_namespaces": [ns],
                                "remediate_size_limit": "128Mi",
                                "remediate_batch_size": 1,
                                "remediate_max_failures": 1,
                                "remediate_rollout_timeout": 120,
                                # broken before the run too: patch it anyway, so its wave is the one that fails
                                "remediate_broken": "patch",
                            }
                        }
                    }
                }
            )
        )
        reports = tmp_path / "reports"
        env = playbook_env(reports)
        proc = run_fix_shm(inventory, env, timeout=600)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2, output[-4000:]

        (run_dir,) = list(reports.iterdir())
        report = json.loads((run_dir / "report.json").read_text())
        (cluster,) = report["clusters"]
        assert cluster["status"] == "failed"
        assert cluster["failure"]["phase"] == "remediate"
        assert cluster["stopped"] is True
        assert [w["name"] for w in cluster["failed"]] == ["a-broken"]
        failed = cluster["failed"][0]
        assert failed["rollout"]["status"] == "failed"
        assert "ErrImageNeverPull" in failed["reason"]
        assert sorted(u["name"] for u in cluster["untouched"]) == ["b-web", "c-api"]
        assert cluster["changed"] == []

        # The untouched Deployments really were not patched.
        for name in ("b-web", "c-api"):
            spec = kubectl.json("get", "deployment", name, "-n", ns)["spec"]["template"]["spec"]
            assert not spec.get("volumes"), f"{name} was patched although its wave should not have started"
    finally:
        if os.environ.get("SHMFIX_KEEP_NAMESPACES") != "1":
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)
