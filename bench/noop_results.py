#!/usr/bin/env python3
"""What the records of unchanged workloads cost a no-op rerun of shm_patch.

    bench/.venv/bin/python bench/noop_results.py [--n 1000] [--repeats 5]

On the main embedded cluster (make cluster-up): makes sure the benchmark's N Deployments exist in
namespace shmfix-bench and are all fixed, then times in one rotation, --repeats times each: a bare
ansible-playbook (bench/playbooks/noop.yml, one debug task) and the no-op rerun of
bench/playbooks/b_shm_patch.yml with unchanged_results full, brief and none. Prints the medians and
what each adds to the bare run, and the size of each result (Markdown).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import kube as kubemod
import workload as wl

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KUBECONFIG = os.path.join(ROOT, ".localcluster", "kubeconfig")
CONTEXT = "shmfix-local"
NAMESPACE = "shmfix-bench"
VARIANTS = ("bare", "full", "brief", "none")


def playbook(name, work, unchanged=None):
    """Seconds of one ansible-playbook run, and the size in bytes of its task's result (tree callback)."""
    ev = {"bench_kubeconfig": KUBECONFIG, "bench_context": CONTEXT, "bench_namespace": NAMESPACE, "bench_size": "256Mi", "bench_workers": 8}
    if unchanged:
        ev["bench_unchanged_results"] = unchanged
    tree = os.path.join(work, unchanged or "bare")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(HERE, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
        ANSIBLE_CALLBACK_TREE_DIR=tree,
    )
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", os.path.join(HERE, "inventory.ini"), os.path.join(HERE, "playbooks", name)]
    started = time.monotonic()
    proc = subprocess.run(argv + ["-e", json.dumps(ev)], env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed (rc %d): %s" % (name, proc.returncode, proc.stdout[-2000:]))
    result = os.path.join(tree, "localhost")
    return seconds, os.path.getsize(result) if os.path.exists(result) else 0


def run_once(variant, work):
    if variant == "bare":
        return playbook("noop.yml", work)
    return playbook("b_shm_patch.yml", work, variant)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    kube = kubemod.Kube(KUBECONFIG, CONTEXT)
    work = tempfile.mkdtemp(prefix="shmfix-noop-results-")
    wl.ensure(kube, NAMESPACE, args.n)
    wl.settle(kube, NAMESPACE, args.n)
    playbook("b_shm_patch.yml", work, "none")  # fix them all: every later run is a no-op
    wl.settle(kube, NAMESPACE, args.n)
    times = {v: [] for v in VARIANTS}
    sizes = {}
    for _rep in range(args.repeats):
        for variant in VARIANTS:
            seconds, sizes[variant] = run_once(variant, work)
            times[variant].append(seconds)
    unfixed = [
        d["metadata"]["name"] for d in wl.list_deployments(kube, NAMESPACE) if wl.is_original(d) and not wl.preexisting(wl.index_of(d["metadata"]["name"]))
    ]
    if unfixed:
        raise SystemExit("not a no-op: %d Deployments unfixed, e.g. %s" % (len(unfixed), unfixed[:3]))
    medians = {v: sorted(t)[len(t) // 2] for v, t in times.items()}
    print("No-op rerun of shm_patch over %d Deployments, medians of %d (%s):\n" % (args.n, args.repeats, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("| run | wall s (median) | min-max | over bare s | result bytes |")
    print("|---|---:|---:|---:|---:|")
    for v in VARIANTS:
        over = "" if v == "bare" else "+%.2f" % (medians[v] - medians["bare"])
        label = "bare ansible-playbook, one debug task" if v == "bare" else "shm_patch unchanged_results=%s" % v
        print("| %s | %.2f | %.2f-%.2f | %s | %d |" % (label, medians[v], min(times[v]), max(times[v]), over, sizes[v]))


if __name__ == "__main__":
    main()
