"""The way AWX runs a job: ansible-runner on a private data dir, and the remote-execution stream
``ansible-runner transmit | ansible-runner worker | ansible-runner process``, with the collection
installed from its tarball (tests/artifact/build_install.sh) and the embedded cluster.

Two clusters: the embedded one, fixed, and one that cannot be reached. The job's status and rc say a
cluster failed, and the fleet summary comes back as the job's artifact (set_stats: shmfix_report),
with the paths of the report files.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import VENV_BIN, apply_web_deployment
from localcluster_helpers import REPO_ROOT


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    dest = tmp_path_factory.mktemp("runner-artifact")
    proc = subprocess.run([str(REPO_ROOT / "tests" / "artifact" / "build_install.sh"), str(dest)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return dest / "collections"


def private_data_dir(path: Path, kubeconfig: Path, namespace: str, collections: Path) -> Path:
    """What AWX hands ansible-runner: project/, inventory/, env/extravars, env/envvars."""
    (path / "project").mkdir(parents=True)
    (path / "inventory").mkdir()
    (path / "env").mkdir()
    (path / "project" / "fix.yml").write_text(
        "---\n- name: Fix /dev/shm on every cluster of the fleet\n  ansible.builtin.import_playbook: shmfix.k8s.fix_shm\n"
    )
    hosts = {
        "local": {"shmfix_kubeconfig": str(kubeconfig), "shmfix_context": "shmfix-local", "remediate_namespaces": [namespace]},
        # Loopback only: nothing listens on port 1.
        "dead": {"shmfix_host": "https://127.0.0.1:1", "shmfix_api_key": "not-a-token", "shmfix_validate_certs": False},
    }
    (path / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "hosts": hosts}}))
    (path / "env" / "extravars").write_text(yaml.safe_dump({"remediate_size_limit": "128Mi", "eviction_verify_enabled": False}))
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "SHMFIX_REPORT_DIR": str(path / "reports"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    (path / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    return path


def artifact_data(artifacts: Path) -> dict:
    """The set_stats data of the job (what AWX shows as the job's artifacts)."""
    for event in sorted((artifacts / "job_events").glob("*.json")):
        data = json.loads(event.read_text())
        if data.get("event") == "playbook_on_stats":
            return data["event_data"].get("artifact_data") or {}
    raise AssertionError("no playbook_on_stats event in %s" % artifacts)


def check_outcome(kubectl, namespace, artifacts: Path):
    assert (artifacts / "status").read_text().strip() == "failed"
    assert (artifacts / "rc").read_text().strip() == "2"
    report = artifact_data(artifacts)["shmfix_report"]
    assert report["failed_clusters"] == ["dead"]
    assert report["totals"]["ok"] == 1 and report["totals"]["unreachable"] == 1
    assert any("dead" in line and "unreachable" in line for line in report["summary"])
    assert Path(report["files"]["json"]).is_file() and Path(report["files"]["html"]).is_file()
    spec = kubectl.json("get", "deployment", "web", "-n", namespace)["spec"]["template"]["spec"]
    assert spec["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}}]


def test_ansible_runner_run(kubectl, kubeconfig, namespace, collections, tmp_path):
    apply_web_deployment(kubectl, namespace)
    pdd = private_data_dir(tmp_path / "job", kubeconfig, namespace, collections)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", "fix.yml", "--ident", "job1"], capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-4000:]
    check_outcome(kubectl, namespace, pdd / "artifacts" / "job1")


def test_ansible_runner_transmit_worker_process(kubectl, kubeconfig, namespace, collections, tmp_path):
    apply_web_deployment(kubectl, namespace)
    pdd = private_data_dir(tmp_path / "job", kubeconfig, namespace, collections)
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    runner = str(VENV_BIN / "ansible-runner")
    transmit = subprocess.run([runner, "transmit", str(pdd), "-p", "fix.yml", "--ident", "job2"], capture_output=True, timeout=120, check=True)
    worker = subprocess.run([runner, "worker", "--private-data-dir", str(worker_dir)], input=transmit.stdout, capture_output=True, timeout=900, check=False)
    # The worker exits with the job's rc (ansible-runner's main() returns res.rc for worker too): 2, a cluster failed.
    assert worker.returncode == 2, worker.stderr.decode()[-4000:]
    assert worker.stdout.rstrip().endswith(b'{"eof": true}'), worker.stdout[-400:]
    processed = subprocess.run([runner, "process", str(pdd), "--ident", "job2"], input=worker.stdout, capture_output=True, text=False, timeout=300, check=False)
    # process exits 0 once it has processed the stream (ansible-runner 2.4's Processor keeps rc None): the job's
    # outcome is what it writes into the artifacts, checked next, as AWX reads it.
    assert processed.returncode == 0, processed.stderr.decode()[-4000:]
    check_outcome(kubectl, namespace, pdd / "artifacts" / "job2")
