#!/usr/bin/env python3
"""Admission latency the shmfix MutatingAdmissionPolicy adds to a Pod create, on the embedded cluster.

    .venv/bin/python bench/admission_latency.py [--pods 200] [--rounds 3] [--dry-run]

Two namespaces, one bound to the policy (shmfix.k8s.admission_policy's module_utils, default size policy) and
one not. Pods (the local busybox image, a nodeSelector no node has: they stay Pending, no kubelet works)
are created one at a time, alternating between the two namespaces so that any drift of the shared machine
hits both sides alike; each create is timed on the client (one HTTP request, kept-alive connection). Reported:
median, p90, p99 and mean per side, and the median difference. --dry-run sends dryRun=All creates instead
(admission runs, nothing is stored). Then the API server's own timing of its MutatingAdmissionPolicy plugin
(apiserver_admission_controller_admission_duration_seconds from /metrics) over --pods dry-run creates per side. Every pod got the volume on the policy side, none on the other: checked.
Both namespaces and the policy are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from helpers import CONTEXT, import_collection
from localcluster_helpers import BUSYBOX, STATE

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import admission, admission_policy, client

ADMITTED = admission_policy.ANNOTATION_ADMITTED


def pod(i):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"lat-{i:04d}"},
        "spec": {
            "automountServiceAccountToken": False,
            "nodeSelector": {"shmfix.io/node-mode": "none-latency-bench"},
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
        },
    }


def params(name, namespace, state="present"):
    return {
        "name": name,
        "state": state,
        "mode": "mutating",
        "validation_actions": ["Warn", "Audit"],
        "namespaces": [namespace],
        "exclude_namespaces": [],
        "label_selector": None,
        "size_limit": None,
        "size_ratio": None,
        "min_size": None,
        "max_size": None,
        "existing": "grow",
        "volume_name": "dshm",
    }


def create(kube, namespace, obj, dry_run):
    path = client.resource_path("v1", "pods", namespace)
    start = time.perf_counter()
    got = kube.request("POST", path, query={"dryRun": "All"} if dry_run else None, body=obj, verb="create", resource="pods", namespace=namespace)
    return time.perf_counter() - start, got


PLUGIN_METRIC = 'apiserver_admission_controller_admission_duration_seconds_%s{name="MutatingAdmissionPolicy",operation="CREATE",rejected="false",type="admit"}'


def plugin_totals(kube):
    """(sum seconds, count) of the API server's own timing of its MutatingAdmissionPolicy plugin on CREATE."""
    text = kube.get("/metrics", raw=True)
    values = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(PLUGIN_METRIC % part + " "):
                values[part] = float(line.rsplit(" ", 1)[1])
    return values.get("sum", 0.0), values.get("count", 0.0)


def server_side(kube, namespace, n):
    """Mean milliseconds the API server spent in the MutatingAdmissionPolicy plugin per create, over ``n`` creates in
    ``namespace`` (a delta of its metric: creates by others in the same window count too, the count says how many)."""
    s0, c0 = plugin_totals(kube)
    for i in range(n):
        create(kube, namespace, dict(pod(i), metadata={"name": f"srv-{i:04d}"}), True)
    s1, c1 = plugin_totals(kube)
    return {"mean_ms": 1000 * (s1 - s0) / max(1, c1 - c0), "creates_counted": int(c1 - c0), "sent": n}


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100.0 * (len(ordered) - 1)))]


def summary(samples):
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "median_ms": statistics.median(ms), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99), "mean_ms": statistics.mean(ms)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=200, help="pods per side per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    kube = client.Kube(params={"kubeconfig": str(STATE / "kubeconfig"), "context": CONTEXT})
    suffix = uuid.uuid4().hex[:6]
    with_ns, without_ns, name = f"b-lat-with-{suffix}", f"b-lat-without-{suffix}", f"shmfix-b-lat-{suffix}"
    for ns in (with_ns, without_ns):
        kube.request("POST", "/api/v1/namespaces", body=({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    samples = {"with": [], "without": []}
    try:
        installed = admission.run_admission(kube, params(name, with_ns))
        print("policy:", installed["active"]["label"], file=sys.stderr)
        deadline = time.monotonic() + 30
        while ADMITTED not in (create(kube, with_ns, dict(pod(0), metadata={"name": "probe"}), True)[1]["metadata"].get("annotations") or {}):
            assert time.monotonic() < deadline, "policy not effective after 30 s"
            time.sleep(0.5)
        for warm in range(20):  # warm the connection and the policy's compiled CEL on both sides
            for ns in (with_ns, without_ns):
                create(kube, ns, dict(pod(9000 + warm), metadata={"name": f"warm-{warm}"}), True)
        for r in range(args.rounds):
            for i in range(args.pods):
                order = (("with", with_ns), ("without", without_ns)) if (i + r) % 2 == 0 else (("without", without_ns), ("with", with_ns))
                for side, ns in order:
                    obj = pod(r * args.pods + i)
                    took, got = create(kube, ns, obj, args.dry_run)
                    admitted = ADMITTED in (got["metadata"].get("annotations") or {})
                    assert admitted == (side == "with"), (side, got["metadata"])
                    samples[side].append(took)
            if not args.dry_run:  # keep the namespaces small between rounds
                for ns in (with_ns, without_ns):
                    kube.request("DELETE", client.resource_path("v1", "pods", ns), query={"gracePeriodSeconds": "0"})
        plugin = {side: server_side(kube, ns, args.pods) for side, ns in (("with", with_ns), ("without", without_ns))}
    finally:
        admission.run_admission(kube, params(name, with_ns, state="absent"))
        for ns in (with_ns, without_ns):
            kube.request("DELETE", client.resource_path("v1", "namespaces", name=ns))
    out = {side: summary(values) for side, values in samples.items()}
    out["added_median_ms"] = out["with"]["median_ms"] - out["without"]["median_ms"]
    out["ratio_median"] = out["with"]["median_ms"] / out["without"]["median_ms"]
    out["mode"] = "dry-run creates" if args.dry_run else "creates (pods stay Pending)"
    out["server_plugin"] = plugin  # the API server's MutatingAdmissionPolicy plugin time (dry-run creates)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
