#!/usr/bin/env python3
"""shmfix.k8s benchmark on the real embedded cluster: shm_patch against the ways an SRE does it by hand.

Full run (make bench; bench/.venv from bench/setup.sh, for kubernetes.core):
    bench/.venv/bin/python bench/run.py [--n 100,1000,5000] [--repeats 3] [--phases ...]
Quick CI variant (N=100, shm_patch vs the concurrent script vs the kubectl loop; the collection's .venv):
    .venv/bin/python bench/run.py --quick

Phases (--phases, default all): real (each contender's run on freshly reset objects), noop (reruns with
nothing to change, next to a bare ansible-playbook), count (the API requests, through countproxy.py,
separate from the timed runs), audit (shm_info), df (shm_df_info vs a kubectl exec loop over running
pods), fleet (playbooks/fix-shm.yml over the local fleet). Method and commands: bench/README.md.
Every connection goes to the API servers on 127.0.0.1; nothing is mocked.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import kube as kubemod
import report
import workload as wl
from countproxy import CountingProxy
from machine import RUN_DIR, control_plane_pidfiles, cpu_since, cpu_snapshot, fleet_pidfile, machine_busy, pid_of

# The contenders that fix the objects, in their default order; see README "Contenders".
WRITERS = ("shm_patch", "script_seq", "script_conc", "kubectl_loop", "kcore_loop")
QUICK_CONTENDERS = ("shm_patch", "script_conc", "kubectl_loop")
QUIET_BUSY = 0.4  # wait_quiet: the machine's CPU share that counts as quiet ...
QUIET_WAIT = 120  # ... and the most it waits for it (s)
PHASES = ("real", "noop", "count", "audit", "df", "fleet")
N_PHASES = ("real", "noop", "count", "audit")  # the phases measured at each --n
PLAYBOOKS = {"shm_patch": "b_shm_patch.yml", "kcore_loop": "a_kcore_loop.yml", "noop": "noop.yml", "shm_info": "c_shm_info.yml", "df_module": "d_shm_df.yml"}
FLEET_NAMESPACE = "shmfix-bench-fleet"
DF_NAMESPACE = "shmfix-bench-df"
DF_SELECTOR = wl.LABEL + "-df=true"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def rotate(items, k):
    items = list(items)
    if not items:
        return items
    k %= len(items)
    return items[k:] + items[:k]


# ---------------------------------------------------------------- running one contender


class Runner:
    """Builds and runs the contenders' commands; measures wall, CPU, peak RSS."""

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.python = sys.executable
        self.ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        self.collections_path = collections_path()
        self.kubectl_cache = os.path.join(work, "kubectl-cache")
        self.rss_file = os.path.join(work, "module-rss.txt")
        self.time_file = os.path.join(work, "time.txt")

    def ansible_env(self, counting=False, tree_dir=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "ANSIBLE_"))}
        env.update(
            ANSIBLE_CONFIG=os.path.join(HERE, "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=self.collections_path,
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=os.path.join(self.work, "ansible-local"),
            ANSIBLE_PYTHON_INTERPRETER=os.path.join(HERE, "rss-python"),
            SHMFIX_BENCH_PYTHON=self.python,
            SHMFIX_BENCH_RSS_FILE=self.rss_file,
        )
        if tree_dir:  # counting runs: the last task result per host, as JSON (ansible-core's tree callback)
            env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree", ANSIBLE_CALLBACK_TREE_DIR=tree_dir)
        return env

    def command(self, contender, kubeconfig, context, namespace, extra=None):
        """(argv, env) of one run of a contender against kubeconfig/context."""
        a = self.args
        if contender in PLAYBOOKS:
            ev = {"bench_kubeconfig": kubeconfig, "bench_context": context, "bench_namespace": namespace, "bench_size": a.size, "bench_workers": a.workers}
            ev.update(extra or {})
            argv = [
                self.ansible_playbook,
                "-i",
                os.path.join(HERE, "inventory.ini"),
                os.path.join(HERE, "playbooks", PLAYBOOKS[contender]),
                "-e",
                json.dumps(ev),
            ]
            return argv, None
        if contender in ("script_seq", "script_conc"):
            workers = 1 if contender == "script_seq" else a.workers
            return [self.python, os.path.join(HERE, "sre_patch.py"), kubeconfig, context, namespace, a.size, str(workers)], {}
        if contender in ("kubectl_loop", "df_kubectl"):
            env = {"KUBECTL": a.kubectl, "KUBECONFIG": kubeconfig, "KUBE_CONTEXT": context, "KUBECACHEDIR": self.kubectl_cache}
            if contender == "kubectl_loop":
                return ["bash", os.path.join(HERE, "kubectl_loop.sh"), namespace, a.size], env
            return ["bash", os.path.join(HERE, "kubectl_df_loop.sh"), namespace, (extra or {}).get("bench_selector", DF_SELECTOR)], env
        raise ValueError(contender)

    def run(self, contender, kubeconfig, context, namespace, n, extra=None, tree_dir=None, timeout=None):
        argv, env_extra = self.command(contender, kubeconfig, context, namespace, extra)
        if env_extra is None:
            env = self.ansible_env(tree_dir=tree_dir)
        else:
            env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")}
            env.update(env_extra)
        return self.execute(argv, env, timeout or self.args.run_timeout or 900 + 3 * n)

    def execute(self, argv, env, timeout, cwd=HERE):
        for f in (self.rss_file, self.time_file):
            if os.path.exists(f):
                os.unlink(f)
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                ["/usr/bin/time", "-f", "%M %U %S", "-o", self.time_file] + argv, check=False, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
            )
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = "timeout", exc.stdout or "", "timed out after %ss" % timeout
            out = out.decode() if isinstance(out, bytes) else out
        wall = time.monotonic() - t0
        tree_rss = cpu = None
        try:
            with open(self.time_file) as f:
                fields = [line.split() for line in f if re.match(r"^\d+ [\d.]+ [\d.]+$", line.strip())][-1]
            tree_rss, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        except (OSError, IndexError, ValueError):
            pass
        modules = []
        if os.path.exists(self.rss_file):
            with open(self.rss_file) as f:
                for line in f:
                    m = re.match(r"^(\d+) ([\d.]+) .*AnsiballZ_(\w+)\.py", line)
                    if m:
                        modules.append((m.group(3), int(m.group(1)), float(m.group(2))))
        return {
            "wall": wall,
            "cpu": cpu,
            "load1": load,
            "rc": rc,
            "tree_rss_kb": tree_rss,
            "module_rss_kb": max((m[1] for m in modules), default=None),
            "module_runs": len(modules),
            "module_seconds": round(sum(m[2] for m in modules), 2) if modules else None,
            "modules": sorted({m[0] for m in modules}),
            "stdout_tail": out[-2000:],
            "stderr_tail": err[-2000:],
            "_stdout": out,
        }


def collections_path():
    """.collections (the shmfix.k8s checkout, `make collection`) plus the collections bundled with this venv's ansible."""
    import site

    paths = [os.path.join(ROOT, ".collections")]
    paths += [s for s in site.getsitepackages() if os.path.isdir(os.path.join(s, "ansible_collections"))]
    return ":".join(paths)


def has_kcore():
    import site

    return any(os.path.isdir(os.path.join(s, "ansible_collections", "kubernetes", "core")) for s in site.getsitepackages())


def patched_from_stdout(out):
    try:
        return json.loads(out.strip().splitlines()[-1])["patched"]
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def tree_result(tree_dir):
    try:
        with open(os.path.join(tree_dir, "localhost")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="shmfix-bench-")
        self.runner = Runner(args, self.work)
        self.kube = kubemod.Kube(args.kubeconfig, args.context)
        self.proxy = None
        self.proxy_kubeconfig = None
        self.deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
        self.data = {"runs": [], "counts": [], "fleet": {}, "df": {}, "notes": [], "aborted": None, "settle_seconds": 0.0}
        self.data["quiet"] = {"max_busy": QUIET_BUSY, "max_wait": QUIET_WAIT, "seconds": 0.0}
        self.fleet_started = False

    # ---- helpers

    def out_of_time(self):
        return self.deadline is not None and time.monotonic() > self.deadline

    def contenders_at(self, n):
        out = [c for c in self.args.contenders if c != "kcore_loop" or n <= self.args.kcore_max_n]
        return out

    def repeats_of(self, c, n):
        if c == "kcore_loop" and n >= 1000 and self.args.kcore_repeats:
            return self.args.kcore_repeats
        return self.args.repeats

    def reset(self, n):
        restored, secs = wl.reset(self.kube, self.args.namespace, n, workers=8, one_rs_each=not self.args.paused, log=log)
        self.data["settle_seconds"] += secs
        if restored:
            log("  reset: %d Deployments restored, settled in %.1fs" % (restored, secs))
        return restored

    def terminating_namespaces(self):
        return [ns["metadata"]["name"] for ns in self.kube.list("/api/v1/namespaces") if (ns.get("status") or {}).get("phase") == "Terminating"]

    def wait_quiet(self):
        """Before a timed run, untimed: no namespace still terminating (its pods torn down by the kubelets, an
        earlier phase's or test's), then the machine's CPU under QUIET_BUSY over a second; at most QUIET_WAIT s
        in all, then the run starts anyway. Returns the busy share it starts at (recorded with the run).

        The contenders do not load the machine alike (ansible-playbook is CPU-bound, the scripts wait on the
        API server), so background work skews their ratio; this keeps it out where it ends by itself."""
        t0 = time.monotonic()
        while self.terminating_namespaces() and time.monotonic() - t0 < QUIET_WAIT:
            time.sleep(2)
        busy = machine_busy()
        while busy > QUIET_BUSY and time.monotonic() - t0 < QUIET_WAIT:
            busy = machine_busy()
        self.data["quiet"]["seconds"] += time.monotonic() - t0
        return busy

    def timed_run(self, c, namespace, n, extra=None):
        """One timed run of contender c once the machine is quiet, with the busy share it started at."""
        busy = self.wait_quiet()
        return dict(self.runner.run(c, self.args.kubeconfig, self.args.context, namespace, n, extra=extra), busy=busy)

    def record(self, phase, contender, n, rep, r, problems=(), **extra):
        r = dict(r)
        stdout = r.pop("_stdout", "")
        rec = dict(phase=phase, contender=contender, n=n, repeat=rep, problems=list(problems), **extra)
        rec.update(r)
        if r["rc"] != 0:
            rec["problems"].append("exit %s: %s %s" % (r["rc"], stdout[-800:], r["stderr_tail"][-800:]))
        rec["ok"] = not rec["problems"]
        self.data["runs"].append(rec)
        log(
            "  %-6s %-13s N=%-5d rep %d: %7.2fs  cpu %s  rss module %s tree %s  %s"
            % (
                phase,
                contender,
                n,
                rep,
                r["wall"],
                "%.1fs" % r["cpu"] if r["cpu"] is not None else "?",
                "%dM" % (r["module_rss_kb"] // 1024) if r["module_rss_kb"] else "-",
                "%dM" % (r["tree_rss_kb"] // 1024) if r["tree_rss_kb"] else "-",
                "ok" if rec["ok"] else "PROBLEMS: " + "; ".join(rec["problems"])[:600],
            )
        )
        return rec

    def generations(self):
        return {d["metadata"]["name"]: (d["metadata"]["generation"]) for d in wl.list_deployments(self.kube, self.args.namespace)}

    # ---- phases on the main cluster

    def warm_up(self, n):
        """Untimed: page cache, kubernetes.core's and kubectl's discovery caches (direct and through the proxy)."""
        a = self.args
        self.runner.run("noop", a.kubeconfig, a.context, a.namespace, n)
        self.runner.run("shm_info", a.kubeconfig, a.context, a.namespace, n)
        kcs = [(a.kubeconfig, a.context)] + ([(self.proxy_kubeconfig, a.context)] if self.proxy_kubeconfig else [])
        for kc, ctx in kcs:
            env = dict(os.environ, KUBECONFIG=kc, KUBECACHEDIR=self.runner.kubectl_cache)
            subprocess.run([a.kubectl, "--context", ctx, "-n", a.namespace, "get", "deployments", "-o", "name"], env=env, capture_output=True, check=False)
            if "kcore_loop" in a.contenders and has_kcore():
                r = self.runner.execute(
                    [self.runner.ansible_playbook, "-i", os.path.join(HERE, "inventory.ini"), os.path.join(HERE, "playbooks", "warm.yml"), "-e",
                     json.dumps({"bench_kubeconfig": kc, "bench_context": ctx, "bench_namespace": a.namespace})],
                    self.runner.ansible_env(), 300)  # fmt: skip
                if r["rc"] != 0:
                    raise RuntimeError("warm.yml failed: %s %s" % (r["stdout_tail"], r["stderr_tail"]))
        if self.proxy:
            self.proxy.take()

    def measure(self, phase, c, n, rep, before=None, check=None):
        """One timed run of contender c (after ``before()``, checked by ``check(r)`` -> problems), recorded.

        The cluster is shared: when its API server restarts during the run (another session's lifecycle test),
        the run is void and done again from ``before()``, at most twice; the retry is listed in the report.
        """
        a = self.args
        for attempt in range(3):
            pid0 = apiserver_pid()
            try:
                if before:
                    before()
                r = self.timed_run(c, a.namespace, n)
                problems = check(r) if check else []
            except Exception as err:
                if attempt == 2 or (self.kube.ready() and apiserver_pid() == pid0):
                    raise
                self.retry("%s %s N=%d repeat %d: %s" % (phase, c, n, rep, str(err)[:300]))
                continue
            if (apiserver_pid() != pid0 or (r["rc"] != 0 and not self.kube.ready())) and attempt < 2:
                self.retry("%s %s N=%d repeat %d: the API server restarted or went away during the run" % (phase, c, n, rep))
                continue
            return self.record(phase, c, n, rep, r, problems)

    def retry(self, what):
        self.data["notes"].append("voided and redone (shared cluster): " + what)
        log("  RETRY " + what)
        if not self.kube.wait_ready(600):
            raise RuntimeError("the API server did not come back within 10 min")

    def phase_real(self, n):
        a = self.args
        order = self.contenders_at(n) + (["shm_info"] if "audit" in a.phases else [])
        reps = max(self.repeats_of(c, n) for c in order)

        def fixed(c):
            def check(r):
                problems = wl.verify_fixed(self.kube, a.namespace, n, a.size)[:5]
                patched = patched_from_stdout(r["_stdout"]) if c not in PLAYBOOKS else None
                if patched is not None and patched != wl.to_patch(n):
                    problems.append("reported %d patched, expected %d" % (patched, wl.to_patch(n)))
                return problems

            return check

        for rep in range(reps):
            if self.out_of_time():
                self.data["aborted"] = "--max-minutes reached at N=%d, real repeat %d" % (n, rep)
                return
            for c in rotate(order, rep):
                if rep >= self.repeats_of(c, n):
                    continue
                if c == "shm_info":
                    self.measure("audit", c, n, rep, before=lambda: self.reset(n), check=lambda _r: wl.verify_original(self.kube, a.namespace, n))
                else:
                    self.measure("real", c, n, rep, before=lambda: self.reset(n), check=fixed(c))

    def fix_all(self, n):
        """Untimed: every object fixed by shm_patch (the state of the no-op reruns), then settled."""
        a = self.args
        self.reset(n)
        r = self.runner.run("shm_patch", a.kubeconfig, a.context, a.namespace, n)
        problems = wl.verify_fixed(self.kube, a.namespace, n, a.size)
        if r["rc"] != 0 or problems:
            raise RuntimeError("could not fix the objects for the no-op phase: rc %s %s %s" % (r["rc"], problems[:3], r["stdout_tail"]))
        self.data["settle_seconds"] += wl.settle(self.kube, a.namespace, n, one_rs_each=not a.paused, log=log)

    def phase_noop(self, n):
        self.fix_all(n)
        state = {"generations": self.generations()}
        order = self.contenders_at(n) + ["noop"]
        reps = max(self.repeats_of(c, n) for c in order)

        def unchanged(c):
            def check(r):
                problems = []
                after = self.generations()
                changed = [k for k in state["generations"] if after.get(k) != state["generations"][k]]
                if changed:
                    problems.append("%d Deployments written by a no-op rerun (e.g. %s)" % (len(changed), changed[:3]))
                    state["generations"] = after
                patched = patched_from_stdout(r["_stdout"]) if c not in PLAYBOOKS else None
                if patched:
                    problems.append("reported %d patched on a no-op rerun" % patched)
                return problems

            return check

        for rep in range(reps):
            if self.out_of_time():
                self.data["aborted"] = "--max-minutes reached at N=%d, no-op repeat %d" % (n, rep)
                return
            for c in rotate(order, rep):
                if rep >= self.repeats_of(c, n):
                    continue
                self.measure("rerun", c, n, rep, check=None if c == "noop" else unchanged(c))

    def count(self, phase, c, n, extra=None):
        a = self.args
        tree = os.path.join(self.work, "tree")
        shutil.rmtree(tree, ignore_errors=True)
        self.proxy.take()
        r = self.runner.run(c, self.proxy_kubeconfig, a.context, a.namespace, n, extra=extra, tree_dir=tree if c in PLAYBOOKS else None)
        requests = self.proxy.take()
        res = tree_result(tree) if c in PLAYBOOKS else {}
        rec = {
            "phase": phase,
            "contender": c,
            "n": n,
            "rc": r["rc"],
            "requests": requests,
            "api_calls": res.get("api_calls"),
            "summary": res.get("summary"),
            "wall_through_proxy": r["wall"],
        }
        if r["rc"] != 0:
            rec["problem"] = "exit %s: %s %s" % (r["rc"], r["stdout_tail"][-600:], r["stderr_tail"][-600:])
        self.data["counts"].append(rec)
        verbs = {}
        for x in requests:
            key = "%s %s" % (x["verb"], x["resource"])
            verbs[key] = verbs.get(key, 0) + 1
        log(
            "  count  %-13s N=%-5d %-5s %5d requests %s%s"
            % (c, n, phase, len(requests), verbs, "" if rec["api_calls"] is None else " (api_calls %s)" % rec["api_calls"])
        )
        return rec

    def phase_count(self, n):
        """One counted run per contender and phase through the proxy (not timed). No settle wait before these:
        the controllers' state changes no contender's requests (none of them sends a resourceVersion precondition)."""
        a = self.args
        writers = self.contenders_at(n)
        for c in [w for w in writers if w != "shm_patch"] + (["shm_patch"] if "shm_patch" in writers else []):
            self.restore_only(n)
            self.count("real", c, n)
            problems = wl.verify_fixed(self.kube, a.namespace, n, a.size)
            if problems:
                self.data["notes"].append("counting run %s N=%d did not fix everything: %s" % (c, n, problems[:3]))
        if "shm_patch" not in writers:
            return
        for c in writers:  # the objects are now fixed (last real count was shm_patch's)
            self.count("rerun", c, n)
        if "audit" in a.phases:
            self.restore_only(n)
            self.count("audit", "shm_info", n)
        self.reset(n)

    def restore_only(self, n):
        """The objects back to their original template, without waiting for the controllers."""
        return wl.restore(self.kube, self.args.namespace)

    # ---- df

    def phase_df(self):
        a = self.args
        per_node = a.df_pods // 2
        log("df: %d running pods (%d per node) in %s" % (2 * per_node, per_node, DF_NAMESPACE))
        t0 = time.monotonic()
        pods = wl.ensure_df_pods(self.kube, DF_NAMESPACE, per_node, log=log)
        self.data["df"] = {"pods": sum(len(v) for v in pods.values()), "per_node": per_node, "start_seconds": time.monotonic() - t0}
        extra = {"bench_selector": DF_SELECTOR, "bench_expected": 2 * per_node}
        # untimed: warm-up, and the two must measure the same sizes
        dump = os.path.join(self.work, "df.json")
        rm = self.runner.run("df_module", a.kubeconfig, a.context, DF_NAMESPACE, 60, extra=dict(extra, bench_dump=dump))
        rk = self.runner.run("df_kubectl", a.kubeconfig, a.context, DF_NAMESPACE, 60, extra=extra)
        kubectl_sizes = {}
        for line in rk["_stdout"].splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                kubectl_sizes[parts[0]] = int(parts[2]) * 1024
        module_sizes = {}
        try:
            with open(dump) as f:
                res = json.load(f)
            for e in res.get("shm_df") or (res.get("ansible_facts") or {}).get("shm_df") or []:
                module_sizes[e["pod"]] = e.get("size_bytes")
        except (OSError, ValueError, KeyError):
            pass
        differ = sorted(p for p in set(kubectl_sizes) | set(module_sizes) if kubectl_sizes.get(p) != module_sizes.get(p))
        self.data["df"].update(
            module_measured=len(module_sizes), kubectl_measured=len(kubectl_sizes), differ=differ[:10], sizes=sorted(set(module_sizes.values()), key=str)
        )
        if rm["rc"] != 0 or differ or len(module_sizes) != 2 * per_node:
            self.data["notes"].append(
                "df check: module rc %s measured %d pods, the kubectl loop %d; sizes differ for %s %s"
                % (rm["rc"], len(module_sizes), len(kubectl_sizes), differ[:5], rm["stdout_tail"][-400:])
            )
        for rep in range(a.repeats):
            for c in rotate(["df_module", "df_kubectl"], rep):
                r = self.timed_run(c, DF_NAMESPACE, 60, extra=extra)
                problems = []
                if c == "df_kubectl":
                    got = sum(1 for line in r["_stdout"].splitlines() if "/dev/shm" in line)
                    if got != 2 * per_node:
                        problems.append("measured %d pods, expected %d" % (got, 2 * per_node))
                self.record("df", c, 2 * per_node, rep, r, problems)
        if not a.keep:  # the pods go now, not after the fleet phase
            self.kube.delete_namespace(DF_NAMESPACE)

    # ---- fleet

    def fleet_kube(self, i):
        return kubemod.Kube(os.path.join(ROOT, ".localcluster", "fleet", "kubeconfig"), "shmfix-fleet-%d" % i)

    def fleet_ready(self, i):
        try:
            return self.fleet_kube(i).ready()
        except Exception:  # noqa: BLE001 - no kubeconfig / context yet
            return False

    def fleet_up(self):
        a = self.args
        before = [i for i in range(1, 100) if os.path.exists(fleet_pidfile(i)) and pid_of(fleet_pidfile(i))]
        if all(self.fleet_ready(i) for i in range(1, a.fleet + 1)):
            return
        self.fleet_started = not before
        log("fleet: make fleet-up FLEET=%d (running before: %s)" % (a.fleet, before or "none"))
        proc = subprocess.run(["make", "-C", ROOT, "fleet-up", "FLEET=%d" % a.fleet], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("make fleet-up FLEET=%d failed: %s %s" % (a.fleet, proc.stdout[-1500:], proc.stderr[-1500:]))

    def fleet_reset(self, clusters):
        a = self.args

        def one(i):
            k = self.fleet_kube(i)
            wl.ensure(k, FLEET_NAMESPACE, a.fleet_workloads, log=lambda m: log("  shmfix-fleet-%d: %s" % (i, m)), paused=False)
            return wl.reset(k, FLEET_NAMESPACE, a.fleet_workloads, one_rs_each=True, log=log)

        t0 = time.monotonic()
        kubemod.pmap(one, clusters, workers=len(clusters))
        log("  fleet reset of %s: %.1fs" % (clusters, time.monotonic() - t0))

    def fleet_command(self, clusters, report_dir):
        a = self.args
        ev = {
            "shmfix_clusters": ":".join("shmfix-fleet-%d" % i for i in clusters),
            "remediate_namespaces": [FLEET_NAMESPACE],
            "remediate_size_limit": a.size,
            "remediate_existing": "keep",
        }
        if a.fleet_batch_size:
            ev["remediate_batch_size"] = a.fleet_batch_size
        argv = [
            self.runner.ansible_playbook,
            "-i",
            os.path.join(ROOT, "inventories", "fleet-local.yml"),
            os.path.join(ROOT, "playbooks", "fix-shm.yml"),
            "-e",
            json.dumps(ev),
        ]
        env = self.runner.ansible_env()
        env.update(ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), SHMFIX_REPORT_DIR=report_dir)
        env.pop("ANSIBLE_PYTHON_INTERPRETER")  # fix_shm.yml sets the interpreter (ansible_playbook_python)
        return argv, env

    def fleet_verify(self, clusters):
        a = self.args
        out = {}
        for i in clusters:
            try:
                out[i] = wl.verify_fixed(self.fleet_kube(i), FLEET_NAMESPACE, a.fleet_workloads, a.size)
            except Exception as err:  # noqa: BLE001
                out[i] = ["cannot verify: %s" % err]
        return out

    def fleet_run(self, label, clusters, rep, victim=None):
        a = self.args
        report_dir = os.path.join(self.work, "reports-%s-%d" % (label, rep))
        os.makedirs(report_dir, exist_ok=True)
        argv, env = self.fleet_command(clusters, report_dir)
        killed = {}
        stop = threading.Event()
        busy = self.wait_quiet()
        if victim is not None:
            threading.Thread(target=self.kill_halfway, args=(victim, stop, killed), daemon=True).start()
        cpu_before = cpu_snapshot(control_plane_pidfiles(clusters))
        r = dict(self.runner.execute(argv, env, a.run_timeout or 3600, cwd=ROOT), busy=busy)
        r["control_plane_cpu"] = round(sum(cpu_since(cpu_before).values()), 1)
        stop.set()
        rep_json = {}
        found = sorted(os.listdir(report_dir))
        if found:
            try:
                with open(os.path.join(report_dir, found[-1], "report.json")) as f:
                    rep_json = json.load(f)
            except (OSError, ValueError):
                pass
        statuses = {c["name"]: c["status"] for c in rep_json.get("clusters", [])}
        verified = self.fleet_verify([i for i in clusters if i != victim])
        problems = []
        for i, probs in verified.items():
            if probs:
                problems.append("shmfix-fleet-%d not fixed: %s" % (i, probs[:2]))
        for i in clusters:
            if i != victim and statuses.get("shmfix-fleet-%d" % i) != "ok":
                problems.append("shmfix-fleet-%d reported %s" % (i, statuses.get("shmfix-fleet-%d" % i)))
        if victim is None:
            return self.record("fleet", label, a.fleet_workloads, rep, r, problems, clusters=len(clusters), statuses=statuses)
        # the failure run: a non-zero exit and the victim reported failed/unreachable are what is expected
        vname = "shmfix-fleet-%d" % victim
        if not killed.get("pid"):
            problems.append("the apiserver of %s was not killed (%s)" % (vname, killed.get("why", "?")))
        if statuses.get(vname) not in ("failed", "unreachable"):
            problems.append("%s reported %r, expected failed or unreachable" % (vname, statuses.get(vname)))
        if r["rc"] == 0:
            problems.append("exit code 0 although %s was stopped" % vname)
        r["rc_expected_nonzero"] = r["rc"]
        r["rc"] = 0  # do not count the expected failure as a problem
        failure = next((c.get("failure") for c in rep_json.get("clusters", []) if c["name"] == vname), None)
        return self.record(
            "fleet_failure",
            label,
            a.fleet_workloads,
            rep,
            r,
            problems,
            clusters=len(clusters),
            statuses=statuses,
            victim=vname,
            killed=killed,
            victim_failure=failure,
        )

    def kill_halfway(self, victim, stop, killed):
        """Kill the victim's kube-apiserver (by its pid file) once half of its Deployments are fixed."""
        a = self.args
        k = self.fleet_kube(victim)
        t0 = time.monotonic()
        while not stop.is_set():
            try:
                fixed = sum(1 for d in wl.list_deployments(k, FLEET_NAMESPACE) if not wl.is_original(d))
            except Exception:  # noqa: BLE001 - not reachable yet
                fixed = 0
            if fixed >= wl.to_patch(a.fleet_workloads) / 2:  # half of what the run has to fix
                break
            stop.wait(0.5)
        if stop.is_set():
            killed["why"] = "the run ended before the victim was half done"
            return
        pidfile = fleet_pidfile(victim)
        pid = pid_of(pidfile)
        if not pid:
            killed["why"] = "no live pid in %s" % pidfile
            return
        os.kill(pid, signal.SIGKILL)
        killed.update(pid=pid, pidfile=pidfile, after_seconds=round(time.monotonic() - t0, 1), fixed_before_kill=fixed)
        log(
            "  fleet: killed kube-apiserver of shmfix-fleet-%d (pid %d from %s) after %.1fs, %d Deployments fixed"
            % (victim, pid, pidfile, killed["after_seconds"], fixed)
        )

    def phase_fleet(self):
        a = self.args
        clusters = list(range(1, a.fleet + 1))
        self.fleet_up()
        log("fleet: %d clusters x %d workloads (namespace %s)" % (a.fleet, a.fleet_workloads, FLEET_NAMESPACE))
        self.data["fleet"] = {"clusters": a.fleet, "workloads": a.fleet_workloads, "batch_size": a.fleet_batch_size}
        runs = [("fleet_1", [1]), ("fleet_all", clusters)]
        for rep in range(a.repeats):
            for label, cl in rotate(runs, rep):
                self.fleet_reset(cl)
                self.fleet_run(label, cl, rep)
        if a.fleet_failure:
            victim = clusters[-1]
            self.fleet_reset(clusters)
            self.fleet_run("fleet_failure", clusters, 0, victim=victim)
            log("fleet: restarting shmfix-fleet-%d: make fleet-up FLEET=%d" % (victim, a.fleet))
            t0 = time.monotonic()
            proc = subprocess.run(["make", "-C", ROOT, "fleet-up", "FLEET=%d" % a.fleet], capture_output=True, text=True, check=False)
            back = proc.returncode == 0 and self.fleet_kube(victim).wait_ready(120)
            self.data["fleet"]["restart"] = {
                "rc": proc.returncode,
                "ready": back,
                "seconds": round(time.monotonic() - t0, 1),
                "tail": proc.stdout[-600:] + proc.stderr[-600:],
            }
            if back:  # the restarted cluster has its objects and can be fixed again
                self.fleet_reset([victim])

    def fleet_cleanup(self):
        a = self.args
        for i in range(1, a.fleet + 1):
            try:
                self.fleet_kube(i).delete_namespace(FLEET_NAMESPACE)
            except Exception as err:  # noqa: BLE001
                log("fleet cleanup shmfix-fleet-%d: %s" % (i, err))
        if self.fleet_started and not a.keep_fleet:
            others = [i for i in range(a.fleet + 1, 100) if pid_of(fleet_pidfile(i))]
            if others:
                log("fleet: left running: clusters %s were started by someone else meanwhile (make fleet-down would stop them too)" % others)
                return
            # the fleet's namespace controllers finish the deletions before they stop (no leftovers in etcd)
            kubemod.pmap(lambda i: self.fleet_gone(i), range(1, a.fleet + 1), workers=a.fleet)
            log("fleet: make fleet-down (the bench started the fleet)")
            subprocess.run(["make", "-C", ROOT, "fleet-down"], capture_output=True, text=True, check=False)

    def fleet_gone(self, i):
        try:
            self.fleet_kube(i).delete_namespace(FLEET_NAMESPACE, wait=True, timeout=300)
        except Exception as err:  # noqa: BLE001 - reported, the fleet is stopped anyway
            log("fleet cleanup shmfix-fleet-%d: %s" % (i, err))

    # ---- main

    def run(self):
        a = self.args
        if set(a.phases) & set(N_PHASES):
            if "count" in a.phases:
                self.proxy = CountingProxy(a.kubeconfig, a.context).start()
                self.proxy_kubeconfig = self.proxy.write_kubeconfig(os.path.join(self.work, "proxy-kubeconfig"), a.context)
            for n in a.n:
                if self.out_of_time():
                    self.data["aborted"] = "--max-minutes reached before N=%d" % n
                    break
                log("N=%d: %d Deployments in %s (%d to patch)" % (n, n, a.namespace, wl.to_patch(n)))
                t0 = time.monotonic()
                wl.ensure(self.kube, a.namespace, n, log=log, paused=a.paused)
                self.reset(n)
                log("  objects ready in %.1fs" % (time.monotonic() - t0))
                self.warm_up(n)
                if "real" in a.phases or "audit" in a.phases:
                    self.phase_real(n)
                if "noop" in a.phases:
                    self.phase_noop(n)
                if "count" in a.phases and n in a.count_n:
                    self.phase_count(n)
        if "df" in a.phases and not self.out_of_time():
            self.phase_df()
        if "fleet" in a.phases and not self.out_of_time():
            self.phase_fleet()

    def cleanup(self):
        a = self.args
        if self.proxy:
            self.proxy.stop()
        if not a.keep:
            for ns in (a.namespace, DF_NAMESPACE):
                try:
                    self.kube.delete_namespace(ns)
                except Exception as err:  # noqa: BLE001
                    log("cleanup %s: %s" % (ns, err))
            if "fleet" in a.phases:
                self.fleet_cleanup()
        shutil.rmtree(self.work, ignore_errors=True)


def apiserver_pid():
    return pid_of(os.path.join(RUN_DIR, "kube-apiserver.pid"))


# ---------------------------------------------------------------- versions, arguments


def versions(args, kube):
    import ansible.release
    import kubernetes

    def coll_version(name):
        import importlib.util

        try:
            spec = importlib.util.find_spec("ansible_collections." + name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            return None
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

    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", ROOT, "status", "--porcelain", "--", "plugins", "roles", "playbooks"], capture_output=True, text=True, check=False
    ).stdout.strip()
    kubectl = subprocess.run([args.kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False).stdout
    try:
        kubectl = json.loads(kubectl)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        kubectl = "?"
    server = kube.get("/version").get("gitVersion")
    nodes = kube.list("/api/v1/nodes")
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        from importlib.metadata import version as dist_version

        ansible_pkg = dist_version("ansible")
    except Exception:  # noqa: BLE001 - not installed in the collection's .venv
        ansible_pkg = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": "%s (%s)" % (platform.python_version(), sys.executable),
        "ansible_core": ansible.release.__version__,
        "ansible_package": ansible_pkg,
        "kubernetes_core": coll_version("kubernetes.core"),
        "kubernetes_client": kubernetes.__version__,
        "kubectl": kubectl,
        "shmfix_k8s": "%s (git %s%s)" % (coll_version("shmfix.k8s"), git, "; plugins/roles/playbooks have uncommitted changes" if dirty else ""),
        "server": server,
        "kubelets": ", ".join("%s %s" % (n["metadata"]["name"], n["status"]["nodeInfo"]["kubeletVersion"]) for n in nodes),
    }


def int_list(text):
    return sorted({int(x) for x in str(text).split(",") if x.strip()})


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="the CI variant: N=100, shm_patch vs script_conc vs kubectl_loop, real runs only; exit 1 when shm_patch is slower than the kubectl loop or than 2x the concurrent script",
    )
    p.add_argument("--n", type=int_list, default=None, help="comma list of N (default 100,1000,5000; --quick: 100)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats of every figure, median reported (default 3; --quick: 5)")
    p.add_argument("--kcore-repeats", type=int, default=None, help="repeats of the kubernetes.core loop at N >= 1000 (default: --repeats)")
    p.add_argument("--kcore-max-n", type=int, default=1000, help="largest N for the kubernetes.core loop (default 1000)")
    p.add_argument("--contenders", default=None, help="comma list of %s (default: all; --quick: %s)" % (",".join(WRITERS), ",".join(QUICK_CONTENDERS)))
    p.add_argument("--phases", default=None, help="comma list of %s (default: all; --quick: real)" % ",".join(PHASES))
    p.add_argument("--count-n", type=int_list, default=None, help="the N at which API requests are counted (default: every N)")
    p.add_argument("--workers", type=int, default=8, help="shm_patch's parallelism and the concurrent script's threads (default 8, the module's default)")
    p.add_argument("--size", default="256Mi", help="sizeLimit every contender sets (default 256Mi)")
    p.add_argument(
        "--unpaused",
        dest="paused",
        action="store_false",
        help="main-cluster Deployments not paused (every patch then makes a ReplicaSet; settling takes ~4x longer)",
    )
    p.add_argument("--df-pods", type=int, default=60, help="running pods for the df phase, half on each node (default 60)")
    p.add_argument("--fleet", type=int, default=8, help="fleet clusters for the fleet phase (default 8; make fleet-up FLEET=<this> if they are not running)")
    p.add_argument("--fleet-workloads", type=int, default=500, help="Deployments per fleet cluster (default 500)")
    p.add_argument("--fleet-batch-size", type=int, default=50, help="remediate_batch_size of the fleet runs (default 50; 0: the role's default)")
    p.add_argument("--no-fleet-failure", dest="fleet_failure", action="store_false", help="skip the run that kills one fleet apiserver halfway")
    p.add_argument("--keep-fleet", action="store_true", help="leave a fleet the bench started running")
    p.add_argument("--namespace", default=None, help="namespace of the main-cluster objects (default shmfix-bench; --quick: shmfix-bench-quick-<pid>)")
    p.add_argument("--kubeconfig", default=os.path.join(ROOT, ".localcluster", "kubeconfig"))
    p.add_argument("--context", default="shmfix-local")
    p.add_argument("--kubectl", default=os.path.join(ROOT, ".localcluster", "bin", "kubectl"))
    p.add_argument("--run-timeout", type=int, default=None, help="seconds one contender run may take (default 900 + 3 s per object)")
    p.add_argument("--max-minutes", type=float, default=0, help="stop starting new repeats after this many minutes (default: no limit)")
    p.add_argument("--out", default=None, help="directory of <date>.md/.json (default bench/results; --quick: a temporary directory)")
    p.add_argument("--tag", default=None, help="suffix of the result files (default: none for a default run, else from the options)")
    p.add_argument("--keep", action="store_true", help="keep the namespaces afterwards")
    p.add_argument("--report-from", metavar="JSON", help="only re-render the .md of an earlier run from its .json")
    args = p.parse_args(argv)
    args.argv = ["bench/run.py"] + (argv if argv is not None else sys.argv[1:])
    if args.report_from:
        return args
    if args.quick:
        args.n = args.n or [100]
        args.contenders = args.contenders or ",".join(QUICK_CONTENDERS)
        args.phases = args.phases or "real"
        args.repeats = args.repeats or 5
        args.namespace = args.namespace or "shmfix-bench-quick-%d" % os.getpid()
    args.n = args.n or [100, 1000, 5000]
    args.repeats = args.repeats or 3
    args.contenders = [c.strip() for c in (args.contenders or ",".join(WRITERS)).split(",") if c.strip()]
    args.phases = [x.strip() for x in (args.phases or ",".join(PHASES)).split(",") if x.strip()]
    args.namespace = args.namespace or "shmfix-bench"
    args.count_n = args.count_n or args.n
    for c in args.contenders:
        if c not in WRITERS:
            p.error("unknown contender %s (one of %s)" % (c, ", ".join(WRITERS)))
    for x in args.phases:
        if x not in PHASES:
            p.error("unknown phase %s (one of %s)" % (x, ", ".join(PHASES)))
    if "kcore_loop" in args.contenders and not has_kcore():
        if "--contenders" in " ".join(args.argv):
            p.error("kcore_loop needs kubernetes.core: run with bench/.venv/bin/python (bench/setup.sh)")
        args.contenders.remove("kcore_loop")
        print("bench: kubernetes.core not installed for %s: the kcore_loop contender is skipped (bench/setup.sh)" % sys.executable, file=sys.stderr)
    if args.repeats < 1 or any(n < 1 for n in args.n) or args.fleet < 1 or args.df_pods < 2:
        p.error("--repeats, --n, --fleet must be >= 1, --df-pods >= 2")
    return args


def result_stem(args, started):
    stem = started.strftime("%Y-%m-%d")
    if args.tag:
        return stem + "-" + args.tag
    default = args.n == [100, 1000, 5000] and args.repeats == 3 and list(args.contenders) == list(WRITERS) and list(args.phases) == list(PHASES)
    if args.quick:
        return stem + "-quick"
    if default:
        return stem
    parts = ["n" + "-".join(str(n) for n in args.n)] if set(args.phases) & set(N_PHASES) else []
    parts += [x for x in args.phases if x not in N_PHASES]  # df and fleet do not depend on --n
    return "-".join([stem] + parts + ["r%d" % args.repeats])


def main(argv=None):
    args = parse_args(argv)
    if args.report_from:
        return report.rerender(args.report_from)
    if not os.path.exists(args.kubeconfig):
        sys.exit("bench: %s missing: start the cluster (make cluster-up)" % args.kubeconfig)
    if not os.path.exists(os.path.join(ROOT, ".collections", "ansible_collections", "shmfix", "k8s", "plugins", "modules", "shm_patch.py")):
        sys.exit("bench: .collections/ansible_collections/shmfix/k8s is not this checkout: run `make collection`")
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("bench: /usr/bin/time (GNU time) is needed for the peak RSS figures: apt-get install time")
    bench = Bench(args)
    if not bench.kube.ready():
        sys.exit("bench: the API server of %s/%s is not ready: make cluster-up" % (args.kubeconfig, args.context))
    started = datetime.datetime.now(datetime.UTC)
    ver = versions(args, bench.kube)
    log("versions: %s" % json.dumps(ver))
    log("N=%s repeats=%d contenders=%s phases=%s namespace=%s" % (args.n, args.repeats, ",".join(args.contenders), ",".join(args.phases), args.namespace))
    t0 = time.monotonic()
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.data["aborted"] = "interrupted"
    except Exception as err:  # noqa: BLE001 - write what we have, say why it stopped
        import traceback

        traceback.print_exc()
        bench.data["aborted"] = "%s: %s" % (type(err).__name__, str(err)[:2000])
        log("ABORTED: %s" % bench.data["aborted"])
    finally:
        bench.cleanup()
    bench.data["elapsed_seconds"] = time.monotonic() - t0
    meta = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_seconds": bench.data["elapsed_seconds"],
        "argv": args.argv,
        "args": {k: v for k, v in vars(args).items() if k != "argv"},
        "versions": ver,
    }
    out = args.out or (tempfile.mkdtemp(prefix="shmfix-bench-quick-") if args.quick else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    stem = result_stem(args, started)
    raw = os.path.join(out, stem + ".json")
    with open(raw, "w") as f:
        json.dump({"meta": meta, "data": bench.data}, f, indent=1, default=str)
    md = os.path.join(out, stem + ".md")
    verdicts = report.write(md, meta, bench.data)
    log("wrote %s and %s (%.0f s)" % (md, raw, bench.data["elapsed_seconds"]))
    with open(md) as f:
        print(f.read())
    if bench.data["aborted"]:
        return 2
    if args.quick:
        failed = [v for v in verdicts if v["quick"] and v["verdict"] != "PASS"]
        for v in failed:
            log("QUICK CHECK FAILED: %s: %s" % (v["name"], v["figures"]))
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
