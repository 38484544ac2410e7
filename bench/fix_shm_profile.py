#!/usr/bin/env python3
"""Where one cluster's fix-shm.yml run spends its time: every task's seconds, and the CPU of the Ansible tree.

    bench/.venv/bin/python bench/fix_shm_profile.py [--n 500] [--batch-size 50] [--df] [--checkout DIR]

On fleet cluster shmfix-fleet-1 (make cluster-up && make fleet-up FLEET=1): makes sure N Deployments
exist in namespace shmfix-bench-fleet, resets them and waits for the controllers, then runs
playbooks/fix-shm.yml for that cluster alone under GNU time with ansible.posix's profile_tasks. Prints
the wall and CPU seconds of the whole run and the tasks' seconds summed by task name (Markdown).
--df turns on remediate_verify_df (the inventory turns it off for the fleet, whose clusters have no
nodes: df then only lists pods, which is what it costs). --checkout runs another checkout's collection
and playbook (e.g. a `git worktree` of an older commit, with .collections/ansible_collections/shmfix/k8s
linking to it and .localcluster linking to this checkout's), to compare two versions on the same objects.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from collections import defaultdict

import kube as kubemod
import workload as wl

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KUBECONFIG = os.path.join(ROOT, ".localcluster", "fleet", "kubeconfig")
CONTEXT = "shmfix-fleet-1"
NAMESPACE = "shmfix-bench-fleet"
SITE = os.path.join(HERE, ".venv", "lib", "python3.11", "site-packages")  # ansible.posix (profile_tasks), bench/setup.sh
TASK_LINE = re.compile(r"^(?P<name>.+?) -{2,} (?P<seconds>[0-9.]+)s$")


def run_playbook(checkout, n, batch_size, df, out):
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
    argv = ["/usr/bin/time", "-f", "TIME %e %U %S", os.path.join(HERE, ".venv", "bin", "ansible-playbook")]
    argv += ["-i", os.path.join(ROOT, "inventories", "fleet-local.yml"), os.path.join(checkout, "playbooks", "fix-shm.yml"), "-e", json.dumps(ev)]
    with open(out, "w") as f:
        rc = subprocess.run(argv, env=env, cwd=checkout, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    with open(out) as f:
        return rc, f.read()


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
    args = p.parse_args()
    if not os.path.isdir(os.path.join(SITE, "ansible_collections", "ansible", "posix")):
        p.error("ansible.posix missing from %s: run bash bench/setup.sh" % SITE)
    if not os.path.isdir(os.path.join(args.checkout, ".collections", "ansible_collections", "shmfix", "k8s")):
        p.error("%s has no .collections/ansible_collections/shmfix/k8s: run make collection there (or link it)" % args.checkout)
    kube = kubemod.Kube(KUBECONFIG, CONTEXT)
    if not kube.ready():
        p.error("%s is not up: make cluster-up && make fleet-up FLEET=1" % CONTEXT)
    wl.ensure(kube, NAMESPACE, args.n, paused=False)
    started = time.monotonic()
    wl.reset(kube, NAMESPACE, args.n, one_rs_each=True, log=print)
    print("reset and settled in %.0f s" % (time.monotonic() - started))
    out = args.out or os.path.join(tempfile.mkdtemp(prefix="shmfix-profile-"), "fix-shm.log")
    rc, text = run_playbook(os.path.abspath(args.checkout), args.n, args.batch_size, args.df, out)
    problems = wl.verify_fixed(kube, NAMESPACE, args.n, "256Mi")
    wall, cpu, tasks = summarize(text)
    print(
        "\nfix-shm.yml, %s, %d Deployments, batch %d, df %s: rc %d, wall %.1f s, CPU of the Ansible tree %.1f s%s (output: %s)\n"
        % (CONTEXT, args.n, args.batch_size, "on" if args.df else "off", rc, wall or -1, cpu or -1, "; NOT FIXED: %s" % problems[:2] if problems else "", out)
    )
    print("| task | runs | seconds |\n|---|---:|---:|")
    for seconds, runs, name in tasks[: args.top]:
        print("| %s | %d | %.1f |" % (name, runs, seconds))
    return 1 if rc or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
