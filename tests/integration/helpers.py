"""Helpers of the module integration tests (test_targets.py, test_shm_modules_live.py, test_fleet.py):
the collection on sys.path, the integration targets, ansible-playbook runs.

The cluster itself (paths, kubectl, pid files) is localcluster_helpers.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from localcluster_helpers import BUSYBOX, REPO_ROOT, STATE

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
CONTEXT = "shmfix-local"


def collections_path() -> Path:
    """.collections with the ansible_collections/shmfix/k8s link (what `make collection` creates)."""
    base = REPO_ROOT / ".collections"
    link = base / "ansible_collections" / "shmfix" / "k8s"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT)
    return base


def import_collection():
    """Make ``ansible_collections.shmfix.k8s`` importable in this pytest process."""
    base = str(collections_path())
    if base not in sys.path:
        sys.path.insert(0, base)


def targets() -> list[str]:
    return sorted(p.name for p in TARGETS_DIR.iterdir() if (p / "tasks" / "main.yml").is_file())


def kubectl_argv(kubeconfig: Path) -> list[str]:
    local = STATE / "bin" / "kubectl"
    return [str(local) if local.exists() else "kubectl", "--kubeconfig", str(kubeconfig), "--context", CONTEXT]


def run_target(target: str, kubeconfig: Path, namespace: str, workdir: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run targets/<target>/tasks/main.yml in a play on localhost with the venv's ansible-playbook."""
    tasks = TARGETS_DIR / target / "tasks" / "main.yml"
    playbook = workdir / f"{target}.yml"
    play = [
        {
            "name": f"integration target {target}",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "module_defaults": {"group/shmfix.k8s.k8s": {"kubeconfig": str(kubeconfig), "context": CONTEXT}},
            "tasks": [{"name": f"Run the {target} target", "ansible.builtin.import_tasks": str(tasks)}],
        }
    ]
    playbook.write_text(json.dumps(play, indent=1))
    extra = {
        "test_namespace": namespace,
        "kubeconfig": str(kubeconfig),
        "kube_context": CONTEXT,
        "kubectl": kubectl_argv(kubeconfig),
        "busybox_image": BUSYBOX,
        "target_dir": str(TARGETS_DIR / target),
    }
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path()),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook), "-e", json.dumps(extra)]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def playbook_env(reports: Path | None = None, **extra: str) -> dict:
    """The environment of an ansible-playbook run of the checkout's playbooks (reports under ``reports``)."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path()),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )
    if reports is not None:
        env["SHMFIX_REPORT_DIR"] = str(reports)
    env.update(extra)
    return env


def run_playbook(playbook: str, inventory: Path, env: dict, timeout: int, *args: str) -> subprocess.CompletedProcess:
    """Run playbooks/<playbook> with the venv's ansible-playbook against ``inventory``, output captured."""
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO_ROOT / "playbooks" / playbook), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def single_report(reports: Path) -> dict:
    """report.json of the one run written under ``reports``."""
    (run_dir,) = list(reports.iterdir())
    return json.loads((run_dir / "report.json").read_text())


def apply_web_deployment(kubectl, namespace):
    """Deployment web (replicas 0, one busybox container) in ``namespace``: what the artifact and runner tests fix."""
    kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"]}]},
                },
            },
        },
        namespace,
    )
