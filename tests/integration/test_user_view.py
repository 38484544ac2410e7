"""What a user sees in a run, as a new user would run it: a diff for every planned workload in
``--check --diff``, and a report with a true exit code under ``--limit``, ``--tags`` and ``serial``."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import playbook_env, run_playbook, single_report
from localcluster_helpers import BUSYBOX


def deployment(name: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"]}]}},
        },
    }


@pytest.fixture
def two_clusters(kubectl, kubeconfig, namespace, tmp_path):
    """Two inventory hosts (the embedded cluster under two contexts), each with its own Deployments."""
    for name in ("web", "api", "worker"):
        kubectl.apply(deployment(name), namespace)
    common = {"shmfix_kubeconfig": str(kubeconfig), "remediate_namespaces": [namespace], "eviction_verify_enabled": False, "remediate_verify_df": False}
    hosts = {
        "one": dict(common, shmfix_context="shmfix-local", remediate_names=["web", "api"]),
        "two": dict(common, shmfix_context="shmfix-local-alt", remediate_names=["worker"]),
    }
    path = tmp_path / "two.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local", "remediate_size_limit": "128Mi"}, "hosts": hosts}}))
    return path


def test_check_diff_prints_a_diff_for_every_planned_workload(kubectl, two_clusters, namespace, tmp_path):
    proc = run_playbook("fix-shm.yml", two_clusters, playbook_env(tmp_path / "reports"), 600, "--check", "--diff")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    shown = sorted(set(re.findall(r"^\+\+\+ after: Deployment (\S+)$", output, re.MULTILINE)))
    assert shown == [f"{namespace}/api", f"{namespace}/web", f"{namespace}/worker"]
    # each diff shows the volume it would add
    assert output.count('"sizeLimit": "128Mi"') >= 3
    report = single_report(tmp_path / "reports")
    assert report["check_mode"] is True
    assert sorted(w["name"] for c in report["clusters"] for w in c["changed"]) == ["api", "web", "worker"]
    # and nothing was written
    for name in ("web", "api", "worker"):
        assert "volumes" not in kubectl.json("get", "deployment", name, "-n", namespace)["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "args, ran, patched",
    [
        (["--limit", "one"], ["one"], ["api", "web"]),
        (["--tags", "remediate"], ["one", "two"], ["api", "web", "worker"]),
        (["-e", "shmfix_serial=1"], ["one", "two"], ["api", "web", "worker"]),
    ],
    ids=["limit", "tags", "serial"],
)
def test_limit_tags_and_serial_still_report_with_a_true_exit_code(kubectl, two_clusters, namespace, tmp_path, args, ran, patched):
    proc = run_playbook("fix-shm.yml", two_clusters, playbook_env(tmp_path / "reports"), 900, *args)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    report = single_report(tmp_path / "reports")
    assert sorted(c["name"] for c in report["clusters"]) == ran
    assert all(c["status"] == "ok" for c in report["clusters"]), [c["failure"] for c in report["clusters"]]
    assert sorted(w["name"] for c in report["clusters"] for w in c["changed"]) == patched
    if args[0] == "--tags":
        # only the remediate phase ran: no version check recorded, the canaries not even started
        assert all(c["server_version"] is None and c["enforcement"]["proven"] is None for c in report["clusters"])

    # a failed cluster under --limit still fails the run
    bad = yaml.safe_load(two_clusters.read_text())
    bad["all"]["hosts"]["one"]["shmfix_context"] = "no-such-context"
    two_clusters.write_text(yaml.safe_dump(bad))
    proc = run_playbook("fix-shm.yml", two_clusters, playbook_env(tmp_path / "bad"), 600, *args)
    if "one" in ran:
        assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
        failed = single_report(tmp_path / "bad")["failed_clusters"]
        assert failed == ["one"]
