#!/usr/bin/env python3
"""Where the time of shm_df_info goes: the machine's CPU per exec of df.

    bench/.venv/bin/python bench/df_cpu.py [--pods 60] [--parallelism 1,8,16] [--keep]

On the main embedded cluster (make cluster-up): makes sure --pods running pods exist in the df
namespace of the benchmark (half on each node, as `bench/run.py --phases df`), then runs the df
execs of shm_df_info (module_utils.dfexec.run_df, the kubernetes client already imported) at each
parallelism, and prints the wall time, how busy the machine's cores were (/proc/stat) and the CPU
each exec costs the whole machine (API server, kubelet, containerd, runc) and this process.
"""

import argparse
import os
import sys
import time

import kube as kubemod
import workload as wl
from machine import machine_jiffies

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.shmfix.k8s.plugins.module_utils import dfexec, pod_exec
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params

KUBECONFIG = os.path.join(ROOT, ".localcluster", "kubeconfig")
CONTEXT = "shmfix-local"
NAMESPACE = "shmfix-bench-df"
SELECTOR = wl.LABEL + "-df=true"


def measure(kube, parallelism):
    busy0, total0 = machine_jiffies()
    cpu0, t0 = time.process_time(), time.monotonic()
    entries = dfexec.run_df(kube, NAMESPACE, label_selector=SELECTOR, parallelism=parallelism)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    busy1, total1 = machine_jiffies()
    execs = max(1, len(entries))
    methods = sorted({e.get("method") for e in entries})
    busy_cpu_s = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    return "| %d | %d | %.2f | %.0f%% | %.1f | %.1f | %s |" % (
        parallelism,
        len(entries),
        wall,
        100.0 * (busy1 - busy0) / max(1, total1 - total0),
        1000 * busy_cpu_s / execs,
        1000 * cpu / execs,
        ",".join(methods),
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", type=int, default=60, help="running pods, half on each node (default 60)")
    p.add_argument("--parallelism", default="1,8,16", help="comma list of exec parallelism (default 1,8,16; shm_df_info's default is 8)")
    p.add_argument("--keep", action="store_true", help="keep the pods afterwards")
    args = p.parse_args()
    try:
        levels = [int(v) for v in args.parallelism.split(",")]
    except ValueError:
        p.error("--parallelism: give a comma list of integers, e.g. 1,8,16 (got %r)" % args.parallelism)
    if args.pods < 2 or any(v < 1 for v in levels):
        p.error("--pods must be >= 2 and every --parallelism >= 1")
    bench_kube = kubemod.Kube(KUBECONFIG, CONTEXT)
    wl.ensure_df_pods(bench_kube, NAMESPACE, args.pods // 2)
    kube = kube_from_params({"kubeconfig": KUBECONFIG, "context": CONTEXT})
    pod_exec._websocket_call()  # the import of kubernetes.stream is not part of what is measured
    print("| parallelism | execs | wall s | machine busy (%d cores) | machine CPU ms per exec | this process ms per exec | method |" % os.cpu_count())
    print("|---:|---:|---:|---:|---:|---:|---|")
    try:
        for level in levels:
            print(measure(kube, level), flush=True)
    finally:
        if not args.keep:
            bench_kube.delete_namespace(NAMESPACE)


if __name__ == "__main__":
    main()
