"""The current cluster (Kubernetes v1.37, localcluster/lib/current.sh) for the integration tests.

``current_kubectl`` and ``current_namespace`` are fixtures (conftest.py registers them). The cluster must be up
(``make cluster-up``, or ``localcluster/cluster.sh up-current``); a test that needs it fails, naming the command.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from localcluster_helpers import REPO_ROOT, Kubectl

CURRENT_STATE = REPO_ROOT / ".localcluster-current"
CURRENT_KUBECONFIG = CURRENT_STATE / "kubeconfig"
CURRENT_CONTEXT = "shmfix-current"
CURRENT_NODE = "shmfix-current"
CURRENT_VERSION = "v1.37.2"
MEMORY_VOLUME_RESIZE = "InPlacePodVerticalScalingMemoryBackedVolumes"
# Set on the node when its kubelet is built without the cgroup v1 refusal (SHMFIX_CURRENT_KUBELET=cgroupv1-resize).
KUBELET_PATCH_LABEL = "shmfix.io/kubelet-patch"


def kubelet_can_resize_memory_volumes(kubectl: Kubectl) -> bool:
    """Whether the current node's kubelet actuates memory-backed volume resizes: the stock v1.37 kubelet refuses
    them on cgroup v1 (Infeasible), so only on a cgroup v2 host or with the cgroupv1-resize kubelet."""
    labels = kubectl.json("get", "node", CURRENT_NODE)["metadata"].get("labels") or {}
    return labels.get(KUBELET_PATCH_LABEL) == "cgroupv1-resize" or Path("/sys/fs/cgroup/cgroup.controllers").exists()


class CurrentKubectl(Kubectl):
    """kubectl v1.37 of the current cluster (context shmfix-current)."""

    def __init__(self):
        super().__init__(CURRENT_KUBECONFIG, context=CURRENT_CONTEXT)
        self.binary = str(CURRENT_STATE / "bin" / "kubectl")


@pytest.fixture(scope="session")
def current_kubectl() -> CurrentKubectl:
    if not CURRENT_KUBECONFIG.exists():
        pytest.fail(f"{CURRENT_KUBECONFIG} missing: the current cluster is not up; run `make cluster-up` or `localcluster/cluster.sh up-current`")
    k = CurrentKubectl()
    proc = k.run("get", "--raw", "/readyz", check=False, timeout=20)
    if proc.returncode != 0:
        pytest.fail(f"the current cluster is not reachable ({proc.stderr.strip()}); run `localcluster/cluster.sh up-current` (status: status-current)")
    return k


def new_namespace(kubectl: Kubectl, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    deadline = time.monotonic() + 60
    while kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 60s (kube-controller-manager down?)"
        time.sleep(0.5)
    return name


@pytest.fixture
def current_namespace(current_kubectl):
    name = new_namespace(current_kubectl, "shmfix-current-it")
    yield name
    if os.environ.get("SHMFIX_KEEP_NAMESPACES") != "1":
        current_kubectl.run("delete", "namespace", name, "--wait=false", check=False)
