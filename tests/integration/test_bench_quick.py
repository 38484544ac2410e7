"""The benchmark's quick variant on the real cluster: `bench/run.py --quick` (a few minutes).

N=100 Deployments (replicas 0) in a namespace of its own, three contenders, medians of 5 runs in
rotated order on objects reset between runs: shmfix.k8s.shm_patch (ansible-playbook, one task), the
kubernetes-client script with as many concurrent workers as shm_patch's parallelism, and the bash
loop of one `kubectl patch` per Deployment. Runs with the collection's .venv (ansible-core and the
kubernetes client; no kubernetes.core needed). The only timings checked are ratios of medians of the
same run, with a wide margin: shm_patch no slower than the kubectl loop, and at most twice the
concurrent script (at N=100 most of shm_patch's time is ansible-playbook's own start-up and task
overhead, about 1 s, so the ratio sits near 1.7x on a quiet machine). The figures are printed either
way. The namespace is deleted afterwards; the results go to pytest's tmp_path.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick(kubectl, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    raws = list(tmp_path.glob("*.json"))
    assert raws, f"bench/run.py --quick wrote no results (exit {proc.returncode}): {proc.stdout[-3000:]} {proc.stderr[-3000:]}"
    result = json.loads(raws[0].read_text())
    data, repeats = result["data"], result["meta"]["args"]["repeats"]
    assert repeats >= 3, f"--quick ran {repeats} repeats; the medians need at least 3"
    assert not data["aborted"], data["aborted"]
    runs = data["runs"]
    failed = [r for r in runs if not r["ok"]]
    assert not failed, "; ".join(f"{r['contender']} repeat {r['repeat']}: {r['problems']}" for r in failed)

    def wall(contender):
        walls = [r["wall"] for r in runs if r["phase"] == "real" and r["contender"] == contender]
        assert len(walls) == repeats, f"{contender}: {len(walls)} timed runs, expected {repeats}"
        return statistics.median(walls)

    shm, conc, kubectl_loop = wall("shm_patch"), wall("script_conc"), wall("kubectl_loop")
    figures = f"medians at N=100: shm_patch {shm:.2f} s, concurrent script {conc:.2f} s ({shm / conc:.2f}x), kubectl loop {kubectl_loop:.2f} s"
    print(figures)
    assert shm <= kubectl_loop, "shm_patch is slower than the kubectl loop: " + figures
    assert shm <= 2 * conc, "shm_patch is slower than 2x the concurrent kubernetes-client script: " + figures
    assert proc.returncode == 0, f"bench/run.py --quick exited {proc.returncode}: {proc.stdout[-2000:]}"
