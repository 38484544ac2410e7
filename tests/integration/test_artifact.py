"""The collection as users get it: the tarball built from the checkout, installed outside it.

- It holds what a user needs (plugins, roles, playbooks, meta, docs, rbac, LICENSE, README) and
  nothing of the development tree (bench, localcluster, molecule, tests, CI, lint configs).
- ``ansible-playbook shmfix.k8s.fix_shm`` from the installed copy fixes a workload of the embedded
  cluster, with an empty ansible.cfg and only that collections path (the checkout cannot be seen).
- An execution environment built with ansible-builder gets the runtime requirements only:
  ``ansible-builder introspect`` of the installed copy lists no development tool, and
  ``ansible-builder create`` writes a build context (no container engine or registry needed).

(ansible-test sanity on the installed copy is ``make sanity``: tests/sanity/run.sh.)
"""

from __future__ import annotations

import os
import subprocess
import tarfile

import pytest
import yaml
from helpers import VENV_BIN, apply_web_deployment
from localcluster_helpers import REPO_ROOT

DEV_TREE = (
    "bench/",
    "localcluster/",
    "molecule/",
    "tests/",
    ".ci/",
    "Makefile",
    "ruff.toml",
    ".yamllint",
    ".ansible-lint",
    "ansible.cfg",
    "changelogs/fragments/",
)
DEV_TOOLS = ("ruff", "molecule", "ansible-lint", "yamllint", "pytest", "antsibull", "ansible-builder", "ansible-runner", "ansible-core")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("artifact")
    proc = subprocess.run([str(REPO_ROOT / "tests" / "artifact" / "build_install.sh"), str(dest)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    tarball = proc.stdout.strip().splitlines()[-1]
    return dest, tarball, dest / "collections" / "ansible_collections" / "shmfix" / "k8s"


def test_the_tarball_holds_what_a_user_needs_and_no_development_tree(installed):
    _dest, tarball, collection = installed
    with tarfile.open(tarball) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    leaked = sorted(n for n in names if n.startswith(DEV_TREE) or n in DEV_TREE)
    assert leaked == []
    for needed in ("LICENSE", "README.md", "requirements.txt", "bindep.txt", "meta/runtime.yml", "meta/execution-environment.yml", "playbooks/fix_shm.yml"):
        assert needed in names, needed
    assert any(n.startswith("plugins/modules/shm_patch.py") for n in names)
    assert any(n.startswith("roles/remediate/") for n in names) and any(n.startswith("rbac/") for n in names)
    assert (collection / "plugins" / "modules" / "shm_patch.py").is_file()
    print(f"tarball {os.path.basename(tarball)}: {os.path.getsize(tarball)} bytes, {len(names)} files")


def test_fix_shm_runs_from_the_installed_copy(installed, kubectl, kubeconfig, namespace):
    dest, _tarball, _collection = installed
    apply_web_deployment(kubectl, namespace)
    inventory = dest / "clusters.yml"
    host = {
        "ansible_connection": "local",
        "shmfix_kubeconfig": str(kubeconfig),
        "shmfix_context": "shmfix-local",
        "remediate_namespaces": [namespace],
        "remediate_size_limit": "256Mi",
        "eviction_verify_enabled": False,
    }
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"local": host}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(dest / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(dest / "collections"),
        SHMFIX_REPORT_DIR=str(dest / "reports"),
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "shmfix.k8s.fix_shm"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # the roles and plugins came from the installed copy, not the checkout
    assert str(REPO_ROOT) not in proc.stdout
    spec = kubectl.json("get", "deployment", "web", "-n", namespace)["spec"]["template"]["spec"]
    assert spec["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}]
    assert list((dest / "reports").iterdir())


def test_an_execution_environment_gets_the_runtime_requirements_only(installed):
    dest, tarball, _collection = installed
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "introspect", "--sanitize", str(dest / "collections")], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    python = [line.split("#")[0].strip() for line in yaml.safe_load(proc.stdout)["python"]]
    assert python == ["kubernetes>=37.0.0", "jsonpatch>=1.32"], proc.stdout  # PyYAML: ansible-core's own, dropped by --sanitize
    assert not [p for p in python if p.startswith(DEV_TOOLS)], proc.stdout
    assert yaml.safe_load(proc.stdout)["system"] == []
    definition = dest / "execution-environment.yml"
    definition.write_text(
        yaml.safe_dump(
            {
                "version": 3,
                "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
                "dependencies": {"galaxy": {"collections": [{"name": tarball, "type": "file"}]}},
            }
        )
    )
    context = dest / "context"
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", str(definition), "-c", str(context)],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (context / "Containerfile").is_file() or (context / "Dockerfile").is_file()  # by the container runtime it finds
    assert "shmfix" in (context / "_build" / "requirements.yml").read_text()
