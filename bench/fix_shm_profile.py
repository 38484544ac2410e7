#!/usr/bin/env python3
"""Where one cluster's fix-shm.yml run spends its time: every task's seconds, and the CPU of the Ansible tree.

    bench/.venv/bin/python bench/fix_shm_profile.py [--n 500] [--batch-size 50] [--df] [--checkout DIR] [--py-spy FILE]

On fleet cluster shmfix-fleet-1 (make cluster-up && make fleet-up FLEET=1): makes sure N Deployments
exist in namespace shmfix-bench-fleet, resets them and waits for the controllers, then runs
playbooks/fix-shm.yml for that cluster alone under GNU time with ansible.posix's profile_tasks. Prints
the wall and CPU seconds of the whole run and the tasks' seconds summed by task name (Markdown).
--df turns on remediate_verify_df (the inventory turns it off for the fleet, whose clusters have no
nodes: df then only lists pods, which is what it costs). --checkout runs another checkout's collection
and playbook (e.g. a `git worktree` of an older commit, with .collections/ansible_collections/shmfix/k8s
linking to it and .localcluster linking to this checkout's), to compare two versions on the same objects.
It also prints the CPU seconds the cluster's kube-apiserver, kube-controller-manager and the shared etcd
used during the run (from their pid files), and the API requests the cluster served meanwhile by verb,
resource and code (the API server's apiserver_request_total; the controllers' requests are in it too).
--py-spy FILE samples the run and its module processes with py-spy (50 Hz, raw stacks kept in FILE) and
prints where the sampled CPU went: Ansible's own processes (its strategy loop apart) and each module, its
imports apart from its work.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter, defaultdict

import kube as kubemod
import workload as wl
from machine import control_plane_pidfiles, cpu_since, cpu_snapshot, pid_of

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KUBECONFIG = os.path.join(ROOT, ".localcluster", "fleet", "kubeconfig")
FLEET_INDEX = 1
CONTEXT = "shmfix-fleet-%d" % FLEET_INDEX
NAMESPACE = "shmfix-bench-fleet"
SITE = os.path.join(HERE, ".venv", "lib", "python3.11", "site-packages")  # ansible.posix (profile_tasks), bench/setup.sh
TASK_LINE = re.compile(r"^(?P<name>.+?) -{2,} (?P<seconds>[0-9.]+)s$")
PY_SPY_RATE = 50
REQUEST_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')
PID_FILES = control_plane_pidfiles([FLEET_INDEX])  # its kube-apiserver and kube-controller-manager, and the shared etcd


def run_playbook(checkout, n, batch_size, df, out, py_spy=None):
    ev = {"shmfix_clusters": CONTEXT, "remediate_namespaces": [NAMESPACE], "remediate_size_limit": "256Mi", "remediate_existing": "keep"}
    ev.update(remediate_batch_size=batch_size, **({"remediate_verify_df": True} if df else {}))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(checkout, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(checkout, ".collections") + os.pathsep + SITE,
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
        SHMFIX_REPORT_DIR=tempfile.mkdtemp(prefix="shmfix-profile-"),
    )
    argv = ["/usr/bin/time", "-f", "TIME %e %U %S"]
    if py_spy:
        spy = [os.path.join(HERE, ".venv", "bin", "py-spy"), "record", "--subprocesses", "--nonblocking"]
        argv += spy + ["-r", str(PY_SPY_RATE), "-f", "raw", "-o", py_spy, "--"]
    argv += [os.path.join(HERE, ".venv", "bin", "ansible-playbook")]
    argv += ["-i", os.path.join(ROOT, "inventories", "fleet-local.yml"), os.path.join(checkout, "playbooks", "fix-shm.yml"), "-e", json.dumps(ev)]
    with open(out, "w") as f:
        rc = subprocess.run(argv, env=env, cwd=checkout, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    with open(out) as f:
        return rc, f.read()


def request_counts(kube):
    """Counter {(verb, resource/subresource, code): requests served so far} from the API server's apiserver_request_total."""
    counts = Counter()
    for line in kube.get("/metrics", raw=True).splitlines():
        m = REQUEST_METRIC.match(line)
        if m:
            labels = dict(LABEL.findall(m["labels"]))
            resource = "/".join(x for x in (labels.get("resource"), labels.get("subresource")) if x)
            dry = " (dry run)" if labels.get("dry_run") else ""
            counts[(labels.get("verb", "?") + dry, resource, labels.get("code", "?"))] += int(float(m["value"]))
    return counts


def py_spy_summary(path):
    """[(CPU seconds, where)] of py-spy's raw stacks: Ansible's processes, its strategy loop, each module's imports and work."""
    where = Counter()
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():  # the rest of a command line that held a newline
                continue
            module = re.search(r"AnsiballZ_(\w+)", stack)
            if module:
                key = "module %s: %s" % (module.group(1), "imports" if "_find_and_load" in stack else "work")
            else:
                frames = [fr for fr in stack.split(";") if not fr.startswith("process ")]
                loop = frames and frames[-1].startswith("StrategyModule.run ")
                key = "ansible-playbook: strategy loop (idle polling)" if loop else "ansible-playbook: main process and task workers"
            where[key] += int(count)
    return sorted(((n / float(PY_SPY_RATE), key) for key, n in where.items()), reverse=True)


def summarize(text):
    """(wall, cpu, [(seconds, runs, task name)]) from the run's output."""
    wall = cpu = None
    tasks, recap = defaultdict(lambda: [0.0, 0]), False
    for line in text.splitlines():
        if line.startswith("TIME "):
            e, u, s = (float(v) for v in line.split()[1:4])
            wall, cpu = e, u + s
        recap = recap or line.startswith("TASKS RECAP")
        m = TASK_LINE.match(line) if recap else None
        if m:
            tasks[m["name"]][0] += float(m["seconds"])
            tasks[m["name"]][1] += 1
    return wall, cpu, sorted(((s, c, name) for name, (s, c) in tasks.items()), reverse=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="Deployments (default 500)")
    p.add_argument("--batch-size", type=int, default=50, help="remediate_batch_size (default 50, as the fleet benchmark)")
    p.add_argument("--df", action="store_true", help="remediate_verify_df=true (off for the fleet in the inventory)")
    p.add_argument("--checkout", default=ROOT, help="checkout whose collection and playbook run (default this one)")
    p.add_argument("--top", type=int, default=12, help="task names to print (default 12)")
    p.add_argument("--out", default=None, help="keep the playbook's output in this file")
    p.add_argument("--py-spy", default=None, metavar="FILE", help="sample the run with py-spy, keep its raw stacks in FILE")
    args = p.parse_args()
    if not os.path.isdir(os.path.join(SITE, "ansible_collections", "ansible", "posix")):
        p.error("ansible.posix missing from %s: run bash bench/setup.sh" % SITE)
    if not os.path.isdir(os.path.join(args.checkout, ".collections", "ansible_collections", "shmfix", "k8s")):
        p.error("%s has no .collections/ansible_collections/shmfix/k8s: run make collection there (or link it)" % args.checkout)
    kube = kubemod.Kube(KUBECONFIG, CONTEXT)
    if not kube.ready():
        p.error("%s is not up: make cluster-up && make fleet-up FLEET=1" % CONTEXT)
    missing = [path for path in PID_FILES if not pid_of(path)]
    if missing:
        p.error("no live process in %s: make cluster-up && make fleet-up FLEET=1" % ", ".join(missing))
    wl.ensure(kube, NAMESPACE, args.n, paused=False)
    started = time.monotonic()
    wl.reset(kube, NAMESPACE, args.n, one_rs_each=True, log=print)
    print("reset and settled in %.0f s" % (time.monotonic() - started))
    out = args.out or os.path.join(tempfile.mkdtemp(prefix="shmfix-profile-"), "fix-shm.log")
    cpu_before, requests_before = cpu_snapshot(PID_FILES), request_counts(kube)
    rc, text = run_playbook(os.path.abspath(args.checkout), args.n, args.batch_size, args.df, out, args.py_spy)
    cpu_used, requests = cpu_since(cpu_before), request_counts(kube) - requests_before
    problems = wl.verify_fixed(kube, NAMESPACE, args.n, "256Mi")
    wall, cpu, tasks = summarize(text)
    print(
        "\nfix-shm.yml, %s, %d Deployments, batch %d, df %s: rc %d, wall %.1f s, CPU of the Ansible tree %.1f s%s (output: %s)\n"
        % (CONTEXT, args.n, args.batch_size, "on" if args.df else "off", rc, wall or -1, cpu or -1, "; NOT FIXED: %s" % problems[:2] if problems else "", out)
    )
    print("| task | runs | seconds |\n|---|---:|---:|")
    for seconds, runs, name in tasks[: args.top]:
        print("| %s | %d | %.1f |" % (name, runs, seconds))
    print("\n| control plane process | CPU seconds during the run |\n|---|---:|")
    for path in sorted(cpu_used, key=os.path.basename):
        print("| %s | %.1f |" % (os.path.basename(path)[: -len(".pid")], cpu_used[path]))
    print("\n| API requests to %s during the run (%d in all; the controllers' and the run's) | requests |\n|---|---:|" % (CONTEXT, sum(requests.values())))
    for (verb, resource, code), count in requests.most_common(args.top):
        print("| %s %s, %s | %d |" % (verb, resource, code, count))
    if args.py_spy:
        samples = py_spy_summary(args.py_spy)
        print("\n| py-spy: where the sampled CPU went (%.1f s in all) | CPU seconds |\n|---|---:|" % sum(s for s, _ in samples))
        for seconds, key in samples[: args.top]:
            print("| %s | %.1f |" % (key, seconds))
    return 1 if rc or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
