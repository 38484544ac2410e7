"""Fixtures for the integration tests: they run against the embedded real cluster (make cluster-up).

- ``kubeconfig``: path of .localcluster/kubeconfig (contexts ``shmfix-local`` and ``shmfix-local-alt``).
- ``kubectl``: runs the cluster's kubectl with that kubeconfig (``localcluster_helpers.Kubectl``).
- ``namespace``: a fresh namespace per test, deleted afterwards.
- ``current_kubectl``, ``current_namespace``: the same for the current cluster (v1.37, current_helpers.py).

Tests marked ``cluster_lifecycle`` (they stop and restart the cluster) always run last.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from current_helpers import current_kubectl, current_namespace  # noqa: F401 (fixtures of the current cluster, v1.37)
from fault_helpers import fleet1  # noqa: F401 (fixture: fleet member 1, for the tests that kill its API server)
from localcluster_helpers import STATE, Kubectl


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster_lifecycle: stops and restarts the embedded cluster; runs after every other test")


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("cluster_lifecycle") is not None)


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    path = STATE / "kubeconfig"
    if not path.exists():
        pytest.fail(f"{path} missing: the embedded cluster is not up; run `make cluster-up`")
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig) -> Kubectl:
    k = Kubectl(kubeconfig)
    proc = k.run("get", "--raw", "/readyz", check=False, timeout=20)
    if proc.returncode != 0:
        pytest.fail(f"the embedded cluster is not reachable ({proc.stderr.strip()}); run `make cluster-up` (or localcluster/cluster.sh status)")
    return k


@pytest.fixture
def namespace(kubectl):
    name = f"shmfix-it-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    deadline = time.monotonic() + 60
    while kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 60s (kube-controller-manager down?)"
        time.sleep(0.5)
    yield name
    if os.environ.get("SHMFIX_KEEP_NAMESPACES") != "1":
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)
