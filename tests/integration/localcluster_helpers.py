"""Helpers of the integration tests on the embedded cluster (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE = REPO_ROOT / ".localcluster"
API_PORT = 16443  # the main cluster's kube-apiserver (localcluster/lib/common.sh APISERVER_PORT)
CLUSTER_SH = REPO_ROOT / "localcluster" / "cluster.sh"
BUSYBOX = "localhost/shmfix/busybox:local"
SIZED_NODE = "shmfix-sized"
EVICTION_NODE = "shmfix-eviction"


class Kubectl:
    """Runs kubectl against the embedded cluster. ``kubectl("get", "pods")`` returns stdout;
    failures raise AssertionError with the command and its stderr."""

    def __init__(self, kubeconfig: Path, context: str = "shmfix-local"):
        self.kubeconfig = kubeconfig
        self.context = context
        local = STATE / "bin" / "kubectl"
        self.binary = str(local) if local.exists() else (shutil.which("kubectl") or "kubectl")

    def run(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args]
        proc = subprocess.run(cmd, check=False, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def __call__(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout

    def json(self, *args: str, **kwargs):
        return json.loads(self(*args, "-o", "json", **kwargs))

    def apply(self, manifest: dict, namespace: str | None = None) -> None:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self(*args, input=json.dumps(manifest))

    def exec(self, namespace: str, pod: str, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """``kubectl exec`` without raising: the caller checks returncode/stdout/stderr."""
        return self.run("exec", "-n", namespace, pod, "--", *command, timeout=timeout, check=False)

    def wait_pod_running(self, namespace: str, pod: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.json("get", "pod", "-n", namespace, pod)
            phase = obj.get("status", {}).get("phase")
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in obj.get("status", {}).get("conditions", []))
            if phase == "Running" and ready:
                return obj
            if phase in ("Failed", "Succeeded") or time.monotonic() > deadline:
                events = self("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={pod}", check=False)
                raise AssertionError(f"pod {namespace}/{pod} not Running (phase {phase}) after {timeout}s; events:\n{events}")
            time.sleep(1)


def busybox_pod(name: str, node_mode: str | None = None, volumes=None, mounts=None, resources=None, restart_policy: str = "Never") -> dict:
    """A pod that sleeps, running the locally built busybox image."""
    container = {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        # Like the seed's pods: sh is pid 1 without a TERM handler, so an evicted container dies by
        # SIGKILL (exit 137) and the pod ends Failed/Evicted. (A container that exits 0 on SIGTERM
        # ends Succeeded without reason Evicted on a v1.31 kubelet, although the Evicted event is
        # still recorded.)
        "command": ["sh", "-c", "while true; do sleep 1; done"],
    }
    if mounts:
        container["volumeMounts"] = mounts
    if resources:
        container["resources"] = resources
    spec = {"containers": [container], "terminationGracePeriodSeconds": 1, "restartPolicy": restart_policy}
    if volumes:
        spec["volumes"] = volumes
    if node_mode:
        spec["nodeSelector"] = {"shmfix.io/node-mode": node_mode}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "shmfix-tests"}}, "spec": spec}


def df_k(kubectl: Kubectl, namespace: str, pod: str, path: str = "/dev/shm") -> dict:
    """``df -k <path>`` inside the pod, as {'size_kib', 'used_kib', 'avail_kib', 'fs'}."""
    proc = kubectl.exec(namespace, pod, "df", "-k", path)
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.strip().splitlines()[-1].split()
    return {"fs": fields[0], "size_kib": int(fields[1]), "used_kib": int(fields[2]), "avail_kib": int(fields[3])}
