#!/usr/bin/env python3
"""shmfix.k8s benchmark: shm_patch vs a loop of kubernetes.core tasks, on the real embedded cluster.

Run with bench/.venv/bin/python (made by bench/setup.sh); `make bench` does both.
See bench/README.md for the method. Everything talks to the real API server on loopback;
the counting proxy (countproxy.py) only forwards and records.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from countproxy import CountingProxy

CONTENDERS = {
    "A": ("a_kcore_loop.yml", "kubernetes.core: k8s_info + loop of k8s (state: patched)"),
    "A2": ("a2_kcore_batch.yml", "kubernetes.core: k8s_info + ONE k8s task with a list of patches"),
    "B": ("b_shm_patch.yml", "shmfix.k8s.shm_patch (one task)"),
}
PHASES = ("check", "real", "rerun")
PHASE_TEXT = {"check": "check mode (--check, server dry-run)", "real": "real run (writes)", "rerun": "rerun (idempotent, nothing to change)"}
LABEL = "shmfix-bench"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------- cluster helpers


class Kubectl:
    def __init__(self, binary, kubeconfig, context):
        self.base = [binary, "--kubeconfig", kubeconfig, "--context", context, "--request-timeout=60s"]

    def __call__(self, *args, stdin=None, check=True):
        proc = subprocess.run(self.base + list(args), check=False, input=stdin, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise RuntimeError("kubectl %s: %s" % (" ".join(args), proc.stderr.strip()))
        return proc.stdout

    def json(self, *args):
        return json.loads(self(*args, "-o", "json"))


METRIC_RE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL_RE = re.compile(r'(\w+)="([^"]*)"')


def deployment_metrics(kubectl):
    """apiserver_request_total for apps/v1 deployments (no subresource), by verb(+dryRun).
    Key "_start" holds the API server's process_start_time_seconds (a restart resets counters)."""
    out = Counter()
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if line.startswith("process_start_time_seconds "):
            out["_start"] = int(float(line.split()[1]))
        m = METRIC_RE.match(line)
        if not m:
            continue
        labels = dict(LABEL_RE.findall(m.group("labels")))
        if labels.get("resource") != "deployments" or labels.get("group") != "apps" or labels.get("subresource"):
            continue
        verb = labels["verb"]
        if labels.get("dry_run"):
            verb += "(dryRun)"
        out[verb] += int(float(m.group("value")))
    return out


def metric_delta(before, after):
    if before.get("_start") != after.get("_start"):
        raise ApiRestarted("the API server restarted during the run (metrics were reset)")
    return {k: after[k] - before.get(k, 0) for k in sorted(after) if k != "_start" and after[k] - before.get(k, 0)}


class ApiRestarted(RuntimeError):
    pass


TRANSIENT = (
    "refused",
    "unable to connect",
    "timeout",
    "timed out",
    "serviceunavailable",
    "shutting down",
    "eof",
    "connection reset",
    "did not settle",
    "etcdserver",
)


def transient(err):
    """An error of a shared cluster being restarted, not of the contender."""
    return isinstance(err, ApiRestarted) or any(t in str(err).lower() for t in TRANSIENT)


def wait_api(kubectl, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kubectl("get", "--raw", "/readyz", check=False).strip() == "ok":
            return True
        time.sleep(3)
    return False


# ---------------------------------------------------------------- workload


def make_deployments(n, namespace):
    """N Deployments, replicas 0, realistic shapes. Every 5th already mounts a sized /dev/shm.

    i % 5 == 0,1,2: one container, memory limit 512Mi / 1Gi / 2Gi, no /dev/shm volume (to patch)
    i % 5 == 3:     app + sidecar, both with limits, no /dev/shm volume (to patch, both mounts)
    i % 5 == 4:     already has emptyDir dshm (Memory, 1Gi) at /dev/shm (left alone by both)
    """
    items = []
    limits = ["512Mi", "1Gi", "2Gi"]
    for i in range(n):
        name = "bench-%03d" % i
        shape = i % 5

        def container(cname, limit, mounts=None):
            c = {
                "name": cname,
                "image": "localhost/shmfix/busybox:local",
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
                "env": [{"name": "ROLE", "value": cname}],
                "ports": [{"containerPort": 8080, "name": "http"}] if cname == "app" else [],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": limit}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}] + (mounts or []),
            }
            if not c["ports"]:
                del c["ports"]
            return c

        volumes = [{"name": "config", "emptyDir": {}}]
        if shape in (0, 1, 2):
            containers = [container("app", limits[shape])]
        elif shape == 3:
            containers = [container("app", "1Gi"), container("sidecar", "128Mi")]
        else:
            containers = [container("app", "2Gi", [{"name": "dshm", "mountPath": "/dev/shm"}])]
            volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}})
        items.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name, LABEL: "true"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name, LABEL: "true"}},
                        "spec": {"containers": containers, "volumes": volumes, "terminationGracePeriodSeconds": 5},
                    },
                },
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def expected_to_patch(n):
    return sum(1 for i in range(n) if i % 5 != 4)


def reset(kubectl, namespace, manifest_path, n, timeout=180):
    """Delete the bench Deployments and create them anew from the generated List, then settle."""
    kubectl("delete", "deployments", "-n", namespace, "-l", LABEL + "=true", "--wait=true", "--ignore-not-found")
    kubectl("create", "-f", manifest_path)
    settle(kubectl, namespace, n, timeout)


def settle(kubectl, namespace, n, timeout=180):
    """Wait until the controllers are done with the namespace: every Deployment observed, RS GC'd."""
    deadline = time.monotonic() + timeout
    while True:
        deps = kubectl.json("get", "deployments", "-n", namespace)["items"]
        rss = kubectl.json("get", "replicasets", "-n", namespace)["items"]
        observed = all((d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"] for d in deps)
        orphans = [r for r in rss if not r["metadata"].get("ownerReferences") or r["metadata"].get("deletionTimestamp")]
        if len(deps) == n and observed and not orphans:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("namespace %s did not settle in %ss (%d deployments, %d orphan RS)" % (namespace, timeout, len(deps), len(orphans)))
        time.sleep(1)
    time.sleep(2)  # let the controller-manager's last status writes land before a timed run


def verify(kubectl, namespace, size, phase):
    """After a real run: every container mounts /dev/shm from a Memory emptyDir with a sizeLimit.
    After a check run: nothing changed (generation 1, no dshm where there was none)."""
    problems = []
    for d in kubectl.json("get", "deployments", "-n", namespace)["items"]:
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        preexisting = int(name.split("-")[1]) % 5 == 4
        if phase == "check":
            if d["metadata"]["generation"] != 1:
                problems.append("%s changed by a check-mode run (generation %s)" % (name, d["metadata"]["generation"]))
            continue
        for c in spec["containers"]:
            mount = next((m for m in c.get("volumeMounts") or [] if m["mountPath"] == "/dev/shm"), None)
            vol = vols.get(mount["name"]) if mount else None
            ed = (vol or {}).get("emptyDir")
            want = "1Gi" if preexisting else size
            if not ed or ed.get("medium") != "Memory" or ed.get("sizeLimit") != want:
                problems.append("%s/%s: /dev/shm %s" % (name, c["name"], json.dumps(vol)))
    return problems


# ---------------------------------------------------------------- ansible runs


def timed_sequence(kubectl, args, manifest, extra, env, c, rep):
    """reset, then check, real, rerun of one contender; returns [(phase, run)]."""
    out = []
    reset(kubectl, args.namespace, manifest, args.n)
    for phase in PHASES:
        settle(kubectl, args.namespace, args.n)
        m0 = deployment_metrics(kubectl)
        r = run_playbook(CONTENDERS[c][0], extra, env, check=(phase == "check"))
        m1 = deployment_metrics(kubectl)
        r["metrics"] = metric_delta(m0, m1)
        r["repeat"] = rep
        r["problems"] = []
        if phase in ("check", "real"):
            r["problems"] = ["%s repeat %d: %s" % (phase, rep, x) for x in verify(kubectl, args.namespace, args.size, phase)]
        out.append((phase, r))
        log(
            "repeat %d %s %-5s wall %.2fs cpu %.2fs changed %d metrics %s" % (rep, c, phase, r["wall"], r["cpu"], r["summary"]["changed_objects"], r["metrics"])
        )
    return out


def ansible_env(collections_path):
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=os.path.join(HERE, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=os.path.join(tempfile.gettempdir(), "shmfix-bench-ansible"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    for var in list(env):
        if var.startswith("K8S_AUTH_"):
            del env[var]
    return env


def run_playbook(playbook, extra, env, check=False, timeout=900):
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
        "-i",
        os.path.join(HERE, "inventory.ini"),
        os.path.join(HERE, "playbooks", playbook),
        "-e",
        json.dumps(extra),
    ]
    if check:
        cmd.append("--check")
    load = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    try:
        out = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        out = None
    if proc.returncode != 0 or out is None:
        raise RuntimeError("%s failed (rc=%s): %s %s" % (playbook, proc.returncode, failure_messages(out) if out else proc.stdout[-3000:], proc.stderr[-1500:]))
    return {"wall": wall, "cpu": cpu, "load1": load, "summary": summarize_playbook(out)}


def failure_messages(out):
    msgs = []
    for play in out.get("plays", []):
        for task in play.get("tasks", []):
            res = task["hosts"].get("localhost", {})
            looped = isinstance(res.get("results"), list) and any(isinstance(x, dict) and "ansible_loop_var" in x for x in res["results"])
            for it in res["results"] if looped else [res]:
                if it.get("failed"):
                    msgs.append("%s: %s" % (task["task"]["name"], str(it.get("msg"))[:1500]))
    return "; ".join(msgs) or "no failed task in the output"


def summarize_playbook(out):
    """Changed objects and module runs, from the json callback; shm_patch's own api_calls."""
    module_runs = 0
    changed_items = 0
    api_calls = None
    shm_summary = None
    for play in out.get("plays", []):
        for task in play.get("tasks", []):
            res = task["hosts"].get("localhost", {})
            looped = isinstance(res.get("results"), list) and any(isinstance(x, dict) and "ansible_loop_var" in x for x in res["results"])
            items = res["results"] if looped else [res]
            for it in items:
                if it.get("skipped"):
                    continue
                module_runs += 1
                if "api_calls" in it:
                    api_calls = it["api_calls"]
                    shm_summary = it.get("summary")
                    changed_items += (it.get("summary") or {}).get("patched", 0)
                elif it.get("changed"):
                    inner = (it.get("result") or {}).get("results")
                    if isinstance(inner, list):  # k8s with a list definition
                        changed_items += sum(1 for r in inner if r.get("changed"))
                    else:
                        changed_items += 1
    stats = out.get("stats", {}).get("localhost", {})
    tasks = []
    for play in out.get("plays", []):
        for task in play.get("tasks", []):
            d = task["task"].get("duration") or {}
            try:
                secs = (datetime.datetime.fromisoformat(d["end"]) - datetime.datetime.fromisoformat(d["start"])).total_seconds()
            except (KeyError, ValueError, AttributeError):
                secs = None
            tasks.append({"name": task["task"]["name"], "seconds": secs})
    return {
        "tasks": tasks,
        "module_runs": module_runs,
        "changed_objects": changed_items,
        "shm_patch_api_calls": api_calls,
        "shm_patch_summary": shm_summary,
        "stats": stats,
    }


# ---------------------------------------------------------------- reporting


def fmt_counts(counter, keys=None):
    if not counter:
        return "0"
    keys = keys or sorted(counter)
    return ", ".join("%s %d" % (k, counter[k]) for k in keys if counter.get(k))


def proxy_breakdown(records):
    """(deployments by verb, other by resource:verb, total, failed-status count)."""
    dep = Counter()
    other = Counter()
    bad = 0
    for r in records:
        if r["resource"] == "deployments":
            dep[r["verb"]] += 1
        else:
            other["%s %s" % (r["verb"], r["resource"])] += 1
        if r["status"] >= 400:
            bad += 1
    return dep, other, len(records), bad


def versions(kubectl):
    import ansible.release
    import kubernetes

    def collection_version(name):
        import importlib.util

        spec = importlib.util.find_spec("ansible_collections." + name)
        if spec is None:
            return "missing"
        path = next(iter(spec.submodule_search_locations))
        for fname in ("MANIFEST.json", "galaxy.yml"):
            p = os.path.join(path, fname)
            if os.path.exists(p):
                with open(p) as fh:
                    text = fh.read()
                if fname.endswith(".json"):
                    return json.loads(text)["collection_info"]["version"]
                m = re.search(r"^version:\s*(\S+)", text, re.MULTILINE)
                return m.group(1) if m else "?"
        return "?"

    try:
        from importlib.metadata import version as dist_version

        ansible_pkg = dist_version("ansible")
    except ImportError:
        ansible_pkg = "?"
    server = kubectl.json("version")["serverVersion"]["gitVersion"]
    nodes = kubectl.json("get", "nodes")["items"]
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "plugins"], capture_output=True, text=True, check=False).stdout.strip()
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = "%.1f GiB" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible_core": ansible.release.__version__,
        "ansible_package": ansible_pkg,
        "kubernetes_core": collection_version("kubernetes.core"),
        "shmfix_k8s": "%s (git %s%s)" % (collection_version("shmfix.k8s"), git, ", plugins/ has uncommitted changes" if dirty else ""),
        "kubernetes_client": kubernetes.__version__,
        "server": server,
        "kubelets": ", ".join("%s %s" % (n["metadata"]["name"], n["status"]["nodeInfo"]["kubeletVersion"]) for n in nodes),
    }


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def write_report(path, args, ver, data, notes, argv):
    n = args.n
    lines = []
    w = lines.append
    w("# shmfix.k8s benchmark: shm_patch vs kubernetes.core (%s)" % data["started"])
    w("")
    w("Written by `bench/run.py`; do not edit by hand. Method: bench/README.md.")
    w("")
    w("Command: `%s`" % " ".join(argv))
    w("")
    w("## Machine and versions")
    w("")
    w("| item | value |")
    w("|---|---|")
    for k in (
        "nproc",
        "cpu",
        "memory",
        "kernel",
        "python",
        "ansible_core",
        "ansible_package",
        "kubernetes_core",
        "kubernetes_client",
        "shmfix_k8s",
        "server",
        "kubelets",
    ):
        w("| %s | %s |" % (k, ver[k]))
    w("")
    w("## Workload")
    w("")
    w(
        "N = %d Deployments (replicas 0) in namespace `%s`; %d need a /dev/shm volume (1 or 2 containers each), "
        "%d already mount a sized memory-backed /dev/shm and must be left alone. Size: %s. "
        "Timed repeats per contender and phase: %d (median, min-max shown); "
        "the namespace is reset (Deployments deleted and re-created, controllers settled) before each check+real+rerun sequence."
        % (n, args.namespace, expected_to_patch(n), n - expected_to_patch(n), args.size, data["repeats_done"])
    )
    w("")
    w("Contenders:")
    w("")
    for c in args.contenders:
        w("- **%s**: %s (`bench/playbooks/%s`)" % (c, CONTENDERS[c][1], CONTENDERS[c][0]))
    w("- **noop**: `ansible-playbook` with one debug task: the fixed start-up cost inside every wall time below.")
    w("")
    w("## Wall time (seconds, whole `ansible-playbook` process)")
    w("")
    w("| contender | phase | wall median | min-max | CPU s (median) | module runs | objects changed | load1 before (max) | vs A |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    noop = data["noop"]
    if noop:
        w(
            "| noop | - | %.2f | %.2f-%.2f | %.2f | 0 | 0 | %.2f | |"
            % (median(noop["wall"]), min(noop["wall"]), max(noop["wall"]), median(noop["cpu"]), max(noop["load1"]))
        )
    for phase in PHASES:
        base = median([r["wall"] for r in data["timed"].get("A", {}).get(phase, [])]) if "A" in data["timed"] else None
        for c in args.contenders:
            runs = data["timed"].get(c, {}).get(phase, [])
            if not runs:
                continue
            walls = [r["wall"] for r in runs]
            cpus = [r["cpu"] for r in runs]
            s = runs[-1]["summary"]
            ratio = ""
            if base and c != "A":
                ratio = "%.1fx faster" % (base / median(walls)) if median(walls) <= base else "%.1fx SLOWER" % (median(walls) / base)
            w(
                "| %s | %s | **%.2f** | %.2f-%.2f | %.2f | %d | %d | %.2f | %s |"
                % (c, phase, median(walls), min(walls), max(walls), median(cpus), s["module_runs"], s["changed_objects"], max(r["load1"] for r in runs), ratio)
            )
    w("")
    w("`module runs`: Ansible module executions (one Python process each; skipped loop items not counted). ")
    w("`objects changed`: Deployments reported changed (check mode: would change). ")
    w("`CPU s`: user+system CPU of ansible-playbook and every process it started (not the API server's). ")
    w("`load1 before`: the machine's 1-minute load average when the run started (2 cores; the API server, etcd, the controllers and the kubelets share them).")
    w("")
    w("### Where the time goes (median seconds per task, from the json callback)")
    w("")
    w("| contender | phase | tasks |")
    w("|---|---|---|")
    for phase in PHASES:
        for c in args.contenders:
            runs = data["timed"].get(c, {}).get(phase, [])
            if not runs or "tasks" not in runs[0]["summary"]:
                continue
            names = [tk["name"] for tk in runs[0]["summary"]["tasks"]]
            cells = []
            for i, name in enumerate(names):
                secs = [r["summary"]["tasks"][i]["seconds"] for r in runs if len(r["summary"]["tasks"]) > i and r["summary"]["tasks"][i]["seconds"] is not None]
                cells.append("%s: %.2f" % (name, median(secs)) if secs else name)
            w("| %s | %s | %s |" % (c, phase, "; ".join(cells)))
    w("")
    w("## API requests made by each contender (exact, from the counting proxy)")
    w("")
    w(
        "One extra run per contender and phase through `bench/countproxy.py`, a pass-through on 127.0.0.1 that "
        "forwards every request to the real API server and records it. These runs are not timed. "
        "Discovery = GET /api, /apis, /apis/<group>/<version> and /version (kubernetes.core's discovery cache was warm, as on any machine that ran it before)."
    )
    w("")
    w("| contender | phase | total requests | deployments by verb | other requests | HTTP errors | shm_patch's own `api_calls` |")
    w("|---|---|---:|---|---|---:|---:|")
    for phase in PHASES:
        for c in args.contenders:
            rec = data["counted"].get(c, {}).get(phase)
            if rec is None:
                continue
            dep, other, total, bad = proxy_breakdown(rec["requests"])
            own = rec["summary"]["shm_patch_api_calls"]
            w("| %s | %s | **%d** | %s | %s | %d | %s |" % (c, phase, total, fmt_counts(dep), fmt_counts(other), bad, "" if own is None else own))
    if data.get("cold"):
        w("")
        dep, other, total, bad = proxy_breakdown(data["cold"])
        w(
            "Cold start (first kubernetes.core run against a new API server URL, empty discovery cache): a single k8s_info made %d requests (%s; %s)."
            % (total, fmt_counts(dep), fmt_counts(other))
        )
    w("")
    w('## Server-side cross-check: `apiserver_request_total{resource="deployments"}` deltas')
    w("")
    w(
        "From the API server's own `/metrics`, before/after each timed run, verbs of apps/v1 deployments without subresource "
        "(the controllers' status writes are excluded). These counters are cluster-wide: anything else touching Deployments at "
        "the same time (another test, the deployment controller's own updates) shows up too. Median over the timed repeats."
    )
    w("")
    w("| contender | phase | deployments requests by verb (median) | timed runs whose deltas equal the proxy count |")
    w("|---|---|---|---:|")
    for phase in PHASES:
        for c in args.contenders:
            runs = data["timed"].get(c, {}).get(phase, [])
            if not runs:
                continue
            verbs = sorted({v for r in runs for v in r["metrics"]})
            med = {v: median([r["metrics"].get(v, 0) for r in runs]) for v in verbs}
            rec = data["counted"].get(c, {}).get(phase)
            agree = ""
            if rec is not None:
                dep = proxy_breakdown(rec["requests"])[0]
                want = {k.upper().replace("(DRYRUN)", "(dryRun)"): v for k, v in dep.items()}
                agree = "%d/%d" % (sum(1 for r in runs if r["metrics"] == want), len(runs))
            w("| %s | %s | %s | %s |" % (c, phase, ", ".join("%s %g" % (v, med[v]) for v in verbs if med[v]) or "0", agree))
    w("")
    w("## Findings")
    w("")
    for note in notes:
        w("- " + note)
    w("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def findings(args, data):
    notes = []
    t = data["timed"]
    for phase in PHASES:
        if "A" in t and "B" in t and t["A"].get(phase) and t["B"].get(phase):
            a = median([r["wall"] for r in t["A"][phase]])
            b = median([r["wall"] for r in t["B"][phase]])
            if b < a:
                notes.append("%s: shm_patch %.2f s vs the kubernetes.core loop %.2f s (%.1fx faster)." % (PHASE_TEXT[phase], b, a, a / b))
            else:
                notes.append("%s: shm_patch is NOT faster: %.2f s vs the kubernetes.core loop %.2f s." % (PHASE_TEXT[phase], b, a))
        if "A2" in t and "B" in t and t["A2"].get(phase) and t["B"].get(phase):
            a2 = median([r["wall"] for r in t["A2"][phase]])
            b = median([r["wall"] for r in t["B"][phase]])
            notes.append(
                "%s: against the batched kubernetes.core task (A2, %.2f s) shm_patch (%.2f s) is %s."
                % (PHASE_TEXT[phase], a2, b, ("%.1fx faster" % (a2 / b)) if b < a2 else ("%.1fx slower" % (b / a2)))
            )
    if data["noop"]:
        notes.append("Fixed ansible-playbook start-up (noop): %.2f s, included in every wall time." % median(data["noop"]["wall"]))
    to_patch = expected_to_patch(args.n)
    per_object = []
    for c in args.contenders:
        real, rerun = t.get(c, {}).get("real"), t.get(c, {}).get("rerun")
        if real and rerun and to_patch:
            cost = (median([r["wall"] for r in real]) - median([r["wall"] for r in rerun])) / to_patch
            cpu = median([r["cpu"] for r in real]) / max(median([r["wall"] for r in real]), 1e-9)
            per_object.append("%s %.0f ms (CPU/wall of the real run %.0f%%)" % (c, cost * 1000, cpu * 100))
    if per_object:
        notes.append(
            "Marginal cost per patched Deployment, (real - rerun) / %d: %s. A CPU/wall near 100%% means the run is bound by the Ansible side's CPU, not by the API server."
            % (to_patch, "; ".join(per_object))
        )
    for c, phases in data["counted"].items():
        for phase, rec in phases.items():
            dep, other, total, bad = proxy_breakdown(rec["requests"])
            own = rec["summary"]["shm_patch_api_calls"]
            if own is not None and own != total:
                notes.append("%s %s: shm_patch reports api_calls=%s but %d requests went over the wire." % (c, phase, own, total))
            if bad:
                errs = Counter("%s %s -> %s" % (r["method"], r["path"], r["status"]) for r in rec["requests"] if r["status"] >= 400)
                notes.append("%s %s: %d requests failed: %s" % (c, phase, bad, "; ".join("%s (x%d)" % kv for kv in errs.most_common(5))))
            if c == "B":
                to_patch = expected_to_patch(args.n) if phase != "rerun" else 0
                writes = sum(v for k, v in dep.items() if k.startswith(("patch", "update", "apply")))
                reads = sum(v for k, v in dep.items() if k.startswith("get"))
                lists = sum(v for k, v in dep.items() if k.startswith("list"))
                minimum = 1 + to_patch
                if writes + reads + lists > minimum:
                    notes.append(
                        "B %s: %d Deployment requests where 1 list + %d writes = %d would do (%s)."
                        % (phase, writes + reads + lists, to_patch, minimum, fmt_counts(dep))
                    )
                if other:
                    notes.append(
                        "B %s: besides the Deployment list and writes it made %s (%d request(s) above the minimum of %d)."
                        % (phase, fmt_counts(other), sum(other.values()), minimum)
                    )
    for c, probs in data["verify"].items():
        if probs:
            notes.append("VERIFY FAILED for %s: %s" % (c, "; ".join(probs[:5])))
        else:
            notes.append(
                "%s: outcome verified after every real run (every container of every Deployment mounts a Memory emptyDir with the expected sizeLimit; check mode left generation at 1)."
                % c
            )
    for r in data.get("retries") or []:
        notes.append("Retried (shared cluster; the sequence was redone from a reset): %s" % r)
    if data.get("aborted"):
        notes.append("INCOMPLETE: %s" % data["aborted"])
    return notes


# ---------------------------------------------------------------- main


def equivalent_argv(args):
    argv = ["bench/.venv/bin/python", "bench/run.py", "--n", str(args.n), "--repeats", str(args.repeats)]
    if list(args.contenders) != ["A", "A2", "B"]:
        argv += ["--contenders", ",".join(args.contenders)]
    if args.size != "256Mi":
        argv += ["--size", args.size]
    return argv


def rerender(path):
    """Write <stem>.md again from <stem>.json (same data, current report code)."""
    with open(path) as f:
        saved = json.load(f)
    args = argparse.Namespace(**saved["args"])
    data = saved["data"]
    for key in ("timed", "counted", "verify"):
        data[key] = data.get(key) or {}
    md = os.path.splitext(path)[0] + ".md"
    write_report(md, args, saved["versions"], data, findings(args, data), saved.get("argv") or equivalent_argv(args))
    log("re-rendered %s from %s" % (md, path))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="number of Deployments (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per contender and phase (default 3)")
    p.add_argument("--contenders", default="A,A2,B", help="comma list of A, A2, B (default A,A2,B)")
    p.add_argument("--size", default="256Mi", help="sizeLimit to set (default 256Mi)")
    p.add_argument("--namespace", default="shmfix-bench")
    p.add_argument("--kubeconfig", default=os.path.join(ROOT, ".localcluster", "kubeconfig"))
    p.add_argument("--context", default="shmfix-local")
    p.add_argument("--kubectl", default=os.path.join(ROOT, ".localcluster", "bin", "kubectl"))
    p.add_argument("--no-count", action="store_true", help="skip the counting (proxied) runs")
    p.add_argument("--max-minutes", type=float, default=45, help="stop starting new repeats after this (default 45)")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--keep", action="store_true", help="keep the namespace afterwards")
    p.add_argument("--report-from", metavar="JSON", help="only re-render the .md of an earlier run from its raw .json")
    args = p.parse_args()
    if args.report_from:
        return rerender(args.report_from)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for c in args.contenders:
        if c not in CONTENDERS:
            p.error("unknown contender %s" % c)
    if not 1 <= args.n <= 500 or not 1 <= args.repeats <= 10:
        p.error("--n must be 1..500 and --repeats 1..10")

    deadline = time.monotonic() + args.max_minutes * 60
    if not os.path.exists(args.kubeconfig):
        sys.exit("bench: %s missing: start the cluster (make cluster-up)" % args.kubeconfig)
    kubectl = Kubectl(args.kubectl, args.kubeconfig, args.context)
    shmfix_link = os.path.join(ROOT, ".collections", "ansible_collections", "shmfix", "k8s")
    if not os.path.exists(os.path.join(shmfix_link, "plugins", "modules", "shm_patch.py")):
        sys.exit("bench: %s is not the shmfix collection: run `make collection`" % shmfix_link)
    import site

    bundled = [s for s in site.getsitepackages() if os.path.isdir(os.path.join(s, "ansible_collections", "kubernetes", "core"))]
    if not bundled:
        sys.exit("bench: kubernetes.core not found in %s: run bench/setup.sh" % sys.executable)
    collections_path = ":".join([os.path.join(ROOT, ".collections")] + bundled)
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    env = ansible_env(collections_path)

    ver = versions(kubectl)
    log("machine/versions: %s" % json.dumps(ver))
    started = datetime.datetime.now(datetime.UTC)
    data = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "timed": defaultdict(lambda: defaultdict(list)),
        "counted": defaultdict(dict),
        "verify": defaultdict(list),
        "noop": None,
        "repeats_done": 0,
        "cold": None,
        "aborted": None,
        "retries": [],
    }

    work = tempfile.mkdtemp(prefix="shmfix-bench-")
    manifest = os.path.join(work, "deployments.json")
    with open(manifest, "w") as f:
        json.dump(make_deployments(args.n, args.namespace), f)
    if kubectl("get", "namespace", args.namespace, "--ignore-not-found").strip() == "":
        kubectl("create", "namespace", args.namespace)
    kubectl("label", "namespace", args.namespace, LABEL + "=true", "--overwrite")
    extra = {"bench_kubeconfig": args.kubeconfig, "bench_context": args.context, "bench_namespace": args.namespace, "bench_size": args.size}

    proxy = None
    try:
        log("reset namespace %s with %d Deployments" % (args.namespace, args.n))
        reset(kubectl, args.namespace, manifest, args.n)
        # warm-up (not measured): kubernetes.core discovery cache, ansible's own caches
        run_playbook("warm.yml", extra, env)
        noop = [run_playbook("noop.yml", extra, env) for _ in range(3)]
        data["noop"] = {"wall": [r["wall"] for r in noop], "cpu": [r["cpu"] for r in noop], "load1": [r["load1"] for r in noop]}

        for rep in range(args.repeats):
            if time.monotonic() > deadline:
                data["aborted"] = "stopped after %d of %d repeats (--max-minutes %s)" % (rep, args.repeats, args.max_minutes)
                break
            order = args.contenders[rep % len(args.contenders) :] + args.contenders[: rep % len(args.contenders)]
            for c in order:
                for attempt in (1, 2, 3):
                    try:
                        runs = timed_sequence(kubectl, args, manifest, extra, env, c, rep)
                        break
                    except Exception as err:  # the cluster is shared: a restart of the API server mid-run voids the sequence
                        if attempt == 3 or not transient(err):
                            raise
                        data["retries"].append("repeat %d %s: %s" % (rep, c, str(err)[:300]))
                        log("retrying repeat %d %s after: %s" % (rep, c, str(err)[:300]))
                        if not wait_api(kubectl):
                            raise
                for phase, r in runs:
                    data["timed"][c][phase].append(r)
                    data["verify"][c] += r["problems"]
            data["repeats_done"] = rep + 1

        if not args.no_count and not data["aborted"]:
            proxy = CountingProxy(args.kubeconfig, args.context).start()
            pk = proxy.write_kubeconfig(os.path.join(work, "proxy-kubeconfig"), args.context)
            pextra = dict(extra, bench_kubeconfig=pk)
            run_playbook("warm.yml", pextra, env)
            data["cold"] = proxy.take()
            for c in args.contenders:
                for attempt in (1, 2, 3):
                    try:
                        reset(kubectl, args.namespace, manifest, args.n)
                        counted = {}
                        for phase in PHASES:
                            settle(kubectl, args.namespace, args.n)
                            proxy.take()
                            r = run_playbook(CONTENDERS[c][0], pextra, env, check=(phase == "check"))
                            r["requests"] = proxy.take()
                            if any(x["status"] >= 500 for x in r["requests"]):
                                raise ApiRestarted("5xx from the API server during a counting run")
                            counted[phase] = r
                            log(
                                "counted %s %-5s %d requests %s"
                                % (c, phase, len(r["requests"]), dict(Counter("%s %s" % (x["verb"], x["resource"]) for x in r["requests"])))
                            )
                        data["counted"][c] = counted
                        break
                    except Exception as err:
                        if attempt == 3 or not transient(err):
                            raise
                        data["retries"].append("counting %s: %s" % (c, str(err)[:300]))
                        log("retrying counting %s after: %s" % (c, str(err)[:300]))
                        if not wait_api(kubectl):
                            raise
    except Exception as err:  # noqa: BLE001 - write what we have, say why it stopped
        data["aborted"] = "%s: %s" % (type(err).__name__, str(err)[:2000])
        log("ABORTED: %s" % data["aborted"])
    finally:
        if proxy:
            proxy.stop()
        if not args.keep:
            kubectl("delete", "namespace", args.namespace, "--wait=false", "--ignore-not-found", check=False)
        shutil.rmtree(work, ignore_errors=True)

    os.makedirs(args.out, exist_ok=True)
    stem = started.strftime("%Y-%m-%d") + ("" if args.n == 50 else "-n%d" % args.n)
    notes = findings(args, data)
    md = os.path.join(args.out, stem + ".md")
    argv = ["bench/.venv/bin/python", "bench/run.py"] + sys.argv[1:]
    write_report(md, args, ver, data, notes, argv)
    with open(os.path.join(args.out, stem + ".json"), "w") as f:
        json.dump({"args": vars(args), "versions": ver, "data": data, "argv": argv}, f, indent=1, default=str)
    log("wrote %s" % md)
    with open(md) as f:
        print(f.read())
    return 1 if data["aborted"] else 0


if __name__ == "__main__":
    sys.exit(main())
