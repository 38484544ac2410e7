"""Helpers of the fault, bad-input and secrets tests (test_faults.py, test_bad_inputs.py, test_secrets.py).

- ``fleet_cluster()``: fleet control plane 1 (make fleet-up FLEET=1) for the tests that kill an API server;
  stopped afterwards when the test started it.
- ``workload_set()``: replicas-0 Deployments of five shapes (plain, memory limit and a disk emptyDir,
  a sidecar, a 64Mi Memory emptyDir already at /dev/shm, shmfix.io/skip), created with one request each.
- ``snapshot()`` / ``compare_with_snapshot()``: every object field by field against a snapshot taken before
  the run. Only the shm volume, the /dev/shm mounts and shmfix.io/original may differ (plus what the API
  server and the controllers own: managedFields, resourceVersion, generation, status and the deployment
  controller's revision annotation). Each object is also checked to be either untouched or fully patched:
  its volume mounted at /dev/shm in every regular container, and the shmfix.io/original record restoring
  exactly the snapshot's pod spec (rollback.py applied in-process, as the rollback would).
"""

from __future__ import annotations

import copy
import http.client
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers import CONTEXT, VENV_BIN, import_collection
from kubernetes import config as k8s_config
from localcluster_helpers import BUSYBOX, REPO_ROOT, STATE, Kubectl

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import rollback
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import ANNOTATION_ORIGINAL, ANNOTATION_SKIP, SHM_PATH

FLEET_DIR = STATE / "fleet"
FLEET_KUBECONFIG = FLEET_DIR / "kubeconfig"
CLUSTER_SH = REPO_ROOT / "localcluster" / "cluster.sh"
# Owned by the API server or the controllers, never written by shmfix.
SERVER_OWNED_META = ("managedFields", "resourceVersion", "generation")
CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/revision",)
SHAPES = ("plain", "limited", "sidecar", "sized64", "skipped")


# --------------------------------------------------------------------------- processes by pid file


def pid_of(pidfile: Path) -> int | None:
    """The live pid written in ``pidfile`` (first field), or None."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fleet_pidfile(i: int, component: str) -> Path:
    return FLEET_DIR / "run" / f"shmfix-fleet-{i}-{component}.pid"


def cluster_sh(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    return subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout, check=False, env=full)


class FleetCluster:
    """Fleet cluster ``i`` (kube-apiserver on 127.0.0.1:17100+i and its controller-manager), as the fleet scripts run it."""

    def __init__(self, i: int = 1):
        self.i = i
        self.name = f"shmfix-fleet-{i}"
        self.kubectl = Kubectl(FLEET_KUBECONFIG, context=self.name)
        self.started = False

    def up(self) -> None:
        running = pid_of(fleet_pidfile(self.i, "kube-apiserver")) and pid_of(fleet_pidfile(self.i, "kube-controller-manager"))
        self.started = not running
        proc = cluster_sh("fleet-up", str(self.i))
        assert proc.returncode == 0, f"fleet-up {self.i} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"

    def apiserver_pid(self) -> int | None:
        return pid_of(fleet_pidfile(self.i, "kube-apiserver"))

    def kill_apiserver(self) -> int:
        pid = self.apiserver_pid()
        assert pid, f"no live kube-apiserver pid in {fleet_pidfile(self.i, 'kube-apiserver')}"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while pid_of(fleet_pidfile(self.i, "kube-apiserver")) == pid:
            assert time.monotonic() < deadline, f"kube-apiserver {pid} still alive 20s after SIGKILL"
            time.sleep(0.1)
        return pid

    def restart(self) -> subprocess.CompletedProcess:
        """fleet-up repairs a cluster whose component died: it drops the stale pid file and starts only that one."""
        return cluster_sh("fleet-up", str(self.i))

    def down(self) -> None:
        """Stop this member (both components, by their pid files) if this test started it. Never fleet-down:
        it stops every member, and other tests may use member 2."""
        if not self.started or os.environ.get("SHMFIX_KEEP_FLEET") == "1":
            return
        pids = [p for p in (pid_of(fleet_pidfile(self.i, c)) for c in ("kube-apiserver", "kube-controller-manager")) if p]
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def host_vars(self) -> dict:
        return {"shmfix_kubeconfig": str(FLEET_KUBECONFIG), "shmfix_context": self.name, "eviction_verify_enabled": False, "remediate_verify_df": False}


# --------------------------------------------------------------------------- workloads


def deployment(name: str, shape: str, replicas: int = 0) -> dict:
    """A replicas-0 Deployment of one of SHAPES (replicas 0: it rolls out on a cluster without nodes)."""
    main = {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", "while true; do sleep 1; done"],
        "env": [{"name": "SHAPE", "value": shape}],
    }
    spec: dict = {"terminationGracePeriodSeconds": 1, "containers": [main]}
    meta: dict = {"name": name, "labels": {"app": name, "shmfix-test/shape": shape}, "annotations": {"team": "faults", "note": f"{shape} {name}"}}
    if shape == "limited":
        main["resources"] = {"limits": {"memory": "512Mi"}, "requests": {"memory": "64Mi"}}
        main["volumeMounts"] = [{"name": "scratch", "mountPath": "/data"}]
        spec["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    elif shape == "sidecar":
        side = dict(main, name="side", env=[{"name": "ROLE", "value": "sidecar"}])
        spec["containers"] = [main, side]
        spec["initContainers"] = [{"name": "init", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["true"]}]
    elif shape == "sized64":
        main["volumeMounts"] = [{"name": "dshm", "mountPath": SHM_PATH}]
        spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    elif shape == "skipped":
        meta["annotations"][ANNOTATION_SKIP] = "true"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": {"shape": shape}}, "spec": spec},
        },
    }


def workload_set(count: int) -> list[dict]:
    return [deployment(f"w{i:03d}-{SHAPES[i % len(SHAPES)]}", SHAPES[i % len(SHAPES)]) for i in range(count)]


def to_fix(manifests: list[dict]) -> int:
    """How many of ``manifests`` a fix with a size above 64Mi changes (all but the skipped)."""
    return sum(1 for m in manifests if ANNOTATION_SKIP not in m["metadata"]["annotations"])


def create_namespaces(kubectl: Kubectl, names: list[str]) -> None:
    for ns in names:
        kubectl("create", "namespace", ns)
    deadline = time.monotonic() + 60
    for ns in names:
        while kubectl.run("get", "serviceaccount", "default", "-n", ns, check=False).returncode != 0:
            assert time.monotonic() < deadline, f"no default ServiceAccount in {ns} after 60s (controller-manager down?)"
            time.sleep(0.5)


def create_workloads(kubectl: Kubectl, namespace: str, manifests: list[dict]) -> None:
    """``kubectl create`` of a List: one request per object."""
    kubectl("create", "-n", namespace, "-f", "-", "-o", "name", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}), timeout=300)


def wait_rolled_out(kubectl: Kubectl, namespaces: list[str], timeout: float = 180) -> None:
    """Until every Deployment's controller has seen its generation (a replicas-0 rollout needs nothing more)."""
    deadline = time.monotonic() + timeout
    for ns in namespaces:
        while True:
            items = kubectl.json("get", "deployments", "-n", ns)["items"]
            behind = [d["metadata"]["name"] for d in items if (d.get("status") or {}).get("observedGeneration") != d["metadata"]["generation"]]
            if not behind:
                break
            assert time.monotonic() < deadline, f"{len(behind)} Deployments in {ns} not observed after {timeout}s: {behind[:5]}"
            time.sleep(1)


def delete_namespaces(kubectl: Kubectl, names: list[str], wait: bool = False) -> None:
    if os.environ.get("SHMFIX_KEEP_NAMESPACES") == "1":
        return
    for ns in names:
        kubectl.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
    if wait:
        deadline = time.monotonic() + 180
        for ns in names:
            while kubectl.run("get", "namespace", ns, check=False).returncode == 0 and time.monotonic() < deadline:
                time.sleep(1)


# --------------------------------------------------------------------------- snapshots and comparison


def snapshot(kubectl: Kubectl, namespaces: list[str], kind: str = "deployments") -> dict:
    """{(namespace, name): object} of every ``kind`` in ``namespaces``."""
    out = {}
    for ns in namespaces:
        for obj in kubectl.json("get", kind, "-n", ns)["items"]:
            out[(ns, obj["metadata"]["name"])] = obj
    return out


def _drop_shm(pod_spec: dict, volume_name: str | None) -> dict:
    """The pod spec without the volume ``volume_name`` and without any regular container's /dev/shm mount
    (a list left empty is dropped: the API server omits empty lists)."""
    spec = copy.deepcopy(pod_spec)
    if volume_name is not None and "volumes" in spec:
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") != volume_name]
        if not spec["volumes"]:
            del spec["volumes"]
    for c in spec.get("containers") or []:
        if "volumeMounts" in c:
            c["volumeMounts"] = [m for m in c["volumeMounts"] if m.get("mountPath") != SHM_PATH]
            if not c["volumeMounts"]:
                del c["volumeMounts"]
    return spec


def shm_volume_name(*objs: dict) -> str | None:
    """The volume shmfix writes: the one its record names, else the one at /dev/shm, else its default dshm."""
    for obj in objs:
        recorded = (obj["metadata"].get("annotations") or {}).get(ANNOTATION_ORIGINAL)
        if recorded:
            return json.loads(recorded)["volume"]["name"]
    for obj in objs:
        for c in obj["spec"]["template"]["spec"].get("containers") or []:
            for m in c.get("volumeMounts") or []:
                if m.get("mountPath") == SHM_PATH:
                    return m["name"]
    return "dshm"


def strip(obj: dict, volume_name: str | None) -> dict:
    """What must be equal before and after: the object without exactly the parts shmfix may change
    (the shm volume, /dev/shm mounts, shmfix.io/original) and those the server and controllers own."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out["metadata"]
    for key in SERVER_OWNED_META:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in (ANNOTATION_ORIGINAL, *CONTROLLER_ANNOTATIONS):
        annotations.pop(key, None)
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    out["spec"]["template"]["spec"] = _drop_shm(out["spec"]["template"]["spec"], volume_name)
    return out


def state_of(before: dict, after: dict) -> str:
    """'untouched' or 'patched' (fully, with a record that restores the snapshot exactly); AssertionError otherwise."""
    key = f"{after['metadata'].get('namespace')}/{after['metadata']['name']}"
    old, new = before["spec"]["template"]["spec"], after["spec"]["template"]["spec"]
    recorded = (after["metadata"].get("annotations") or {}).get(ANNOTATION_ORIGINAL)
    if not recorded:
        assert new == old, f"{key}: pod spec changed without a {ANNOTATION_ORIGINAL} record:\n{json.dumps(old)}\n{json.dumps(new)}"
        return "untouched"
    original = rollback.decode_original(recorded)
    name = original["volume"]["name"]
    volumes = [v for v in new.get("volumes") or [] if v.get("name") == name]
    assert volumes == [{"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": original["size_limit"]}}], f"{key}: shm volume {volumes}"
    for c in new["containers"]:
        mounts = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") == SHM_PATH]
        assert mounts == [{"name": name, "mountPath": SHM_PATH}], f"{key}: container {c['name']} /dev/shm mounts {mounts} (volume {name})"
    restored = rollback.rollback(new, original)
    assert restored == old, f"{key}: {ANNOTATION_ORIGINAL} does not restore what was replaced:\n{json.dumps(old)}\n{json.dumps(restored)}"
    return "patched"


def compare_with_snapshot(before: dict, after: dict) -> dict:
    """Compare every object of ``after`` with ``before`` field by field; return the counts per state."""
    assert set(after) == set(before), f"objects appeared or vanished: {sorted(set(after) ^ set(before))[:10]}"
    counts = {"compared": 0, "untouched": 0, "patched": 0}
    for key, old in before.items():
        new = after[key]
        name = shm_volume_name(new, old)
        old_s, new_s = strip(old, name), strip(new, name)
        assert new_s == old_s, f"{key}: differs beyond the shm volume, the /dev/shm mounts and shmfix's annotations:\n{json.dumps(old_s)}\n{json.dumps(new_s)}"
        counts[state_of(old, new)] += 1
        counts["compared"] += 1
    return counts


# --------------------------------------------------------------------------- playbook runs


def write_inventory(path: Path, hosts: dict, common: dict | None = None) -> Path:
    """An inventory of ``hosts`` ({name: host vars}), connection local, with ``common`` vars for all."""
    inventory = {"all": {"vars": dict({"ansible_connection": "local"}, **(common or {})), "hosts": hosts}}
    path.write_text(json.dumps(inventory, indent=1))
    return path


class PlaybookRun:
    """ansible-playbook of playbooks/<playbook> in the background (its own session), output into ``log``."""

    def __init__(self, playbook: str, inventory: Path, env: dict, log: Path, *args: str):
        self.log = log
        self.started = time.monotonic()
        self._out = log.open("w")
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO_ROOT / "playbooks" / playbook), *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, text: str, count: int = 1, timeout: float = 300) -> None:
        """Until ``text`` appears ``count`` times in the output (AssertionError when the run ends first or on timeout)."""
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            assert self.proc.poll() is None, f"the run ended ({self.proc.returncode}) before {text!r} x{count}:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"{text!r} x{count} not seen after {timeout}s:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def wait(self, timeout: float = 600) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self._out.close()
        self.elapsed = time.monotonic() - self.started
        return rc

    def kill(self) -> None:
        """SIGKILL ansible-playbook itself (only its pid), then wait for the workers it leaves in its session to end
        (they finish the module they run); SIGKILL to the session's processes left after 60 s."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()
        deadline = time.monotonic() + 60
        while _session_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _session_alive(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Clean-up: end the run and its session if still running."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        if not self._out.closed:
            self._out.close()


def _session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def recap_line(output: str, host: str) -> str:
    recap = output[output.rindex("PLAY RECAP") :]
    (line,) = [ln for ln in recap.splitlines() if ln.startswith(host + " ")]
    return line


def conflicts_retried(output: str) -> int:
    """Sum of shm_patch's summary.conflicts_retried over the results of the wave writes printed at -v."""
    writes = [part.split("\nTASK [", 1)[0] for part in output.split("TASK [shmfix.k8s.remediate : Write the wave's changes]")[1:]]
    return sum(int(n) for part in writes for n in re.findall(r'"conflicts_retried": (\d+)', part))


# --------------------------------------------------------------------------- an in-process client (test side)


def api_client(kubeconfig: Path, context: str):
    """A kubernetes ApiClient of the test itself (a real client: watches and the concurrent writer)."""
    return k8s_config.new_client_from_config(config_file=str(kubeconfig), context=context)


class PatchedCounter(threading.Thread):
    """``kubectl get --watch`` of the Deployments with label ``selector`` in all namespaces (kubectl keeps up
    with a burst of writes, a Python watch decoding whole objects lags by seconds): counts those whose spec
    changed since they were created (metadata.generation above 1: only shmfix writes their spec) and sets
    ``reached`` once ``threshold`` of them did."""

    def __init__(self, kubectl: Kubectl, selector: str, threshold: int):
        super().__init__(daemon=True)
        self.threshold = threshold
        self.patched: set = set()
        self.reached = threading.Event()
        self.error: str | None = None
        template = '{.metadata.namespace}/{.metadata.name} {.metadata.generation}{"\\n"}'
        cmd = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--context", kubectl.context, "get", "deployments", "-A", "-l", selector]
        self.proc = subprocess.Popen([*cmd, "--watch", "-o", f"jsonpath={template}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self) -> None:
        for line in self.proc.stdout:
            key, _, generation = line.strip().rpartition(" ")
            if generation.isdigit() and int(generation) > 1:
                self.patched.add(key)
            if len(self.patched) >= self.threshold:
                self.reached.set()
                break
        self.error = self.proc.stderr.read() if self.proc.poll() is not None else None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- fault injectors on loopback


class SilentListener(threading.Thread):
    """127.0.0.1:<port> accepts TCP connections, reads what comes and never answers."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list = []

    def run(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


class ApiFront:
    """A loopback HTTP front of a real API server (127.0.0.1:``port``, reached with the admin certificate in
    ``pki``). ``intercept(command, path, body)`` sees every request first: it may answer it itself by
    returning ``(status, payload, headers)``, or return None to have it forwarded (after whatever it did)."""

    def __init__(self, pki: Path, port: int, intercept=None):
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        front = self
        self.forwarded = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, data: bytes, headers: dict) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = intercept(self.command, self.path, body) if intercept else None
                if answer is not None:
                    status, payload, headers = answer
                    return self._answer(status, json.dumps(payload).encode(), dict(headers, **{"Content-Type": "application/json"}))
                with front.lock:
                    front.forwarded += 1
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept", "user-agent")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self._answer(resp.status, data, {"Content-Type": resp.getheader("Content-Type") or "application/json"})

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FlakyProxy(ApiFront):
    """A front of fleet member ``i``: the first ``faults`` requests get 500 and 429 (Retry-After: 1) in turn,
    every later one is forwarded."""

    def __init__(self, i: int, faults: int):
        self.faults, self.faulted = faults, 0
        super().__init__(FLEET_DIR / f"shmfix-fleet-{i}" / "pki", 17100 + i, self._fault)

    def _fault(self, _command, _path, _body):
        with self.lock:
            if self.faulted >= self.faults:
                return None
            self.faulted += 1
            status = 500 if self.faulted % 2 else 429
        payload = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "injected fault", "code": status}
        return status, payload, {"Retry-After": "1"} if status == 429 else {}


def diff_paths(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ: ['path: a != b', ...] (for assertion messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in diff_paths(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff_paths(x, y, f"{path}/{i}")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}"]


# ---- the hosts and workloads of the fault runs (test_faults.py, test_faults_more.py)

FLEET_NAMESPACES = 4
PER_NAMESPACE = 125  # 500 Deployments on fleet member 1


@pytest.fixture(scope="module")
def fleet1():
    """Fleet member 1 (make fleet-up FLEET=1) for the tests that kill an API server; stopped afterwards if started here."""
    cluster = FleetCluster(1)
    cluster.up()
    yield cluster
    cluster.down()


def main_host(namespaces: list[str], **extra) -> dict:
    """Host vars of the main cluster for a fault run (no canaries: the faults are about the writes)."""
    return dict(
        {
            "shmfix_kubeconfig": str(STATE / "kubeconfig"),
            "shmfix_context": CONTEXT,
            "eviction_verify_enabled": False,
            "remediate_verify_df": False,
            "remediate_namespaces": namespaces,
            "remediate_size_limit": "256Mi",
            "remediate_rollout_soak": 0,
            "remediate_rollout_timeout": 120,
        },
        **extra,
    )


def fleet_host(cluster: FleetCluster, namespaces: list[str], **extra) -> dict:
    return dict(cluster.host_vars(), remediate_namespaces=namespaces, remediate_size_limit="256Mi", remediate_rollout_soak=0, **extra)


def fleet_workloads(cluster: FleetCluster, prefix: str, per_namespace: int) -> tuple[list[str], dict]:
    """FLEET_NAMESPACES namespaces of ``per_namespace`` Deployments each, rolled out; their snapshot."""
    namespaces = [f"{prefix}-{uuid.uuid4().hex[:5]}-{j}" for j in range(FLEET_NAMESPACES)]
    started = time.monotonic()
    create_namespaces(cluster.kubectl, namespaces)
    threads = [threading.Thread(target=create_workloads, args=(cluster.kubectl, ns, workload_set(per_namespace))) for ns in namespaces]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_rolled_out(cluster.kubectl, namespaces)
    print(f"{prefix}: {per_namespace * len(namespaces)} Deployments created and rolled out in {time.monotonic() - started:.1f}s")
    return namespaces, snapshot(cluster.kubectl, namespaces)
