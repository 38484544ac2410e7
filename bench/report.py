"""The Markdown report of a benchmark run (bench/results/<date>.md), from its raw data (<date>.json).

``write(path, meta, data)`` renders the tables, the cost curve (an ASCII log-log chart) and the targets,
each PASS / FAIL / N/A with its figures, and returns the verdicts. ``rerender(json)`` writes the .md of an
earlier run again (same data, current report code).
"""

import itertools
import json
import math
import os
import statistics

TITLES = {
    "shm_patch": "shmfix.k8s.shm_patch, one task (ansible-playbook)",
    "script_seq": "Python script, kubernetes client, sequential",
    "script_conc": "Python script, kubernetes client, concurrent",
    "kubectl_loop": "bash loop, one `kubectl patch` per Deployment",
    "kcore_loop": "kubernetes.core: k8s_info + loop of k8s state=patched (ansible-playbook)",
    "shm_info": "shmfix.k8s.shm_info audit, one task (ansible-playbook)",
    "noop": "bare ansible-playbook, one debug task",
    "df_module": "shmfix.k8s.shm_df_info, one task (ansible-playbook)",
    "df_kubectl": "bash loop, one `kubectl exec <pod> -- df -Pk /dev/shm` per pod",
    "fleet_1": "fix-shm.yml on 1 fleet cluster",
    "fleet_all": "fix-shm.yml on the whole fleet (clusters in parallel)",
    "fleet_failure": "fix-shm.yml on the whole fleet, one apiserver killed halfway",
}
SENDS = {
    "shm_patch": "1 list of Deployments + 1 list of nodes, then per Deployment to fix one JSON patch (`application/json-patch+json`) "
    "with the precondition `test /metadata/generation` (and `test` guards on the list entries and the annotation it writes), "
    "adding the volume, the mounts and the `shmfix.io/original` annotation; field manager `shmfix`; `parallelism` writes in flight; "
    "`unchanged_results: none` (no record per workload left unchanged, as the scripts print none)",
    "script_seq": "1 list, then per Deployment to fix one strategic-merge patch (volume + mounts) with `patch_namespaced_deployment`, "
    "one after the other; no precondition",
    "script_conc": "the same list and strategic-merge patches from a ThreadPoolExecutor (one shared ApiClient); no precondition",
    "kubectl_loop": "1 `kubectl get deployments` (paged, 500 per request), then one `kubectl patch --type strategic` process "
    "per Deployment to fix; no precondition; kubectl's discovery cache is warm",
    "kcore_loop": "1 `k8s_info` list, then per Deployment to fix one `k8s` module run (GET, then a strategic-merge PATCH); "
    "no precondition; kubernetes.core's discovery cache is warm",
}
LETTERS = {"shm_patch": "S", "script_seq": "q", "script_conc": "c", "kubectl_loop": "k", "kcore_loop": "a", "shm_info": "i"}
WRITERS = ("shm_patch", "script_seq", "script_conc", "kubectl_loop", "kcore_loop")
WRITE_VERBS = ("patch", "update", "create", "delete", "apply")


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_s(x):
    if x is None:
        return "-"
    return "%.2f" % x if x < 100 else "%.0f" % x


def fmt_mb(kb):
    return "-" if not kb else "%.0f" % (kb * 1024 / 1e6)


class Runs:
    def __init__(self, data):
        self.runs = data.get("runs") or []
        self.counts = data.get("counts") or []

    def select(self, phase, contender, n=None, ok=True):
        return [r for r in self.runs if r["phase"] == phase and r["contender"] == contender and (n is None or r["n"] == n) and (r.get("ok") or not ok)]

    def walls(self, phase, contender, n=None):
        return [r["wall"] for r in self.select(phase, contender, n)]

    def wall(self, phase, contender, n=None):
        return median(self.walls(phase, contender, n))

    def failed(self, phase, contender, n=None):
        return [r for r in self.select(phase, contender, n, ok=False) if not r.get("ok")]

    def count(self, phase, contender, n):
        return next((c for c in self.counts if c["phase"] == phase and c["contender"] == contender and c["n"] == n), None)

    def ns(self, phase):
        return sorted({r["n"] for r in self.runs if r["phase"] == phase})


def breakdown(requests):
    by = {}
    for r in requests:
        key = "%s %s" % (r["verb"], r["resource"])
        by[key] = by.get(key, 0) + 1
    return by


def writes(requests):
    return sum(1 for r in requests if r["verb"].split("(")[0] in WRITE_VERBS)


def fmt_breakdown(requests, limit=4):
    by = sorted(breakdown(requests).items(), key=lambda kv: -kv[1])
    text = ", ".join("%s %d" % kv for kv in by[:limit])
    if len(by) > limit:
        text += ", +%d other" % sum(v for _k, v in by[limit:])
    return text


def target_n(ns, want=1000):
    if not ns:
        return None
    if want in ns:
        return want
    below = [n for n in ns if n <= want]
    return max(below) if below else min(ns)


def at_note(n, want):
    return "" if n == want else " (at N=%s: N=%d not measured)" % (n, want)


def verdict(name, ok, figures, target, quick=False):
    return {"name": name, "verdict": "N/A" if ok is None else ("PASS" if ok else "FAIL"), "figures": figures, "target": target, "quick": quick}


# ---------------------------------------------------------------- targets


def targets(meta, data):
    R = Runs(data)
    args = meta.get("args") or {}
    out = []
    real_ns = R.ns("real")
    tn = target_n(real_ns)

    def ratio_check(name, other, limit, faster_than=False, quick=False, n=tn, want=1000):
        o = R.wall("real", other, n) if n else None
        s = R.wall("real", "shm_patch", n) if n else None
        wanted = (">= %gx" if faster_than else "<= %gx") % limit
        if s is None or o is None:
            return verdict(
                name, None, "not measured" if n is None else "shm_patch %s s, %s %s s%s" % (fmt_s(s), other, fmt_s(o), at_note(n, want)), wanted, quick
            )
        if faster_than:
            x = o / s
            return verdict(name, x >= limit, "%s %.2f s / shm_patch %.2f s = %.1fx%s" % (other, o, s, x, at_note(n, want)), wanted, quick)
        x = s / o
        return verdict(name, x <= limit, "shm_patch %.2f s / %s %.2f s = %.2fx%s" % (s, other, o, x, at_note(n, want)), wanted, quick)

    if args.get("quick"):
        qn = target_n(real_ns, 100)
        out.append(ratio_check("quick: shm_patch not slower than the kubectl loop", "kubectl_loop", 1.0, quick=True, n=qn, want=qn))
        out.append(ratio_check("quick: shm_patch at most 2x the concurrent script", "script_conc", 2.0, quick=True, n=qn, want=qn))
        return out
    out.append(ratio_check("shm_patch vs the sequential script", "script_seq", 1.0))
    out.append(ratio_check("shm_patch vs the concurrent script", "script_conc", 1.5))
    out.append(ratio_check("faster than the kubernetes.core loop", "kcore_loop", 20, faster_than=True))
    out.append(ratio_check("faster than the kubectl loop", "kubectl_loop", 10, faster_than=True))

    # no-op rerun
    nn = target_n(R.ns("rerun"))
    rerun = R.wall("rerun", "shm_patch", nn) if nn else None
    bare = R.wall("rerun", "noop", nn) if nn else None
    cnt = R.count("rerun", "shm_patch", nn) if nn else None
    if rerun is None or bare is None:
        out.append(verdict("no-op rerun of shm_patch", None, "no data", "<= bare + 1.5 s, 0 writes, 2 requests"))
    else:
        over = rerun - bare
        ok = over <= 1.5
        fig = "rerun %.2f s - bare ansible-playbook %.2f s = %+.2f s%s" % (rerun, bare, over, at_note(nn, 1000))
        if cnt is not None:
            req = cnt["requests"]
            lists = breakdown(req)
            ok = ok and writes(req) == 0 and len(req) == 2 and lists.get("list deployments") == 1 and lists.get("list nodes") == 1 and cnt.get("api_calls") == 2
            fig += "; %d requests (%s), %d writes, module api_calls %s" % (len(req), fmt_breakdown(req), writes(req), cnt.get("api_calls"))
        else:
            fig += "; requests not counted"
        out.append(verdict("no-op rerun of shm_patch", ok, fig, "<= bare + 1.5 s; 0 writes; 2 requests (list deployments, list nodes); api_calls 2"))

    # linear cost
    pts = [(n, R.wall("real", "shm_patch", n)) for n in real_ns]
    pts = [(n, w) for n, w in pts if w is not None]
    if len(pts) >= 3:
        (n0, w0), (n1, w1) = pts[0], pts[1]
        (m0, v0), (m1, v1) = pts[-2], pts[-1]
        s_lo = (w1 - w0) / (n1 - n0)
        s_hi = (v1 - v0) / (m1 - m0)
        ok = s_hi <= 1.5 * max(s_lo, 1e-4)
        out.append(
            verdict(
                "linear cost up to N=%d" % m1,
                ok,
                "marginal cost %d->%d: %.2f ms/object; %d->%d: %.2f ms/object (%.2fx)" % (n0, n1, s_lo * 1000, m0, m1, s_hi * 1000, s_hi / max(s_lo, 1e-9)),
                "marginal cost at the largest N <= 1.5x that at the smallest",
            )
        )
    else:
        out.append(
            verdict("linear cost", None, "needs 3 values of N, got %s" % [n for n, _w in pts], "marginal cost at the largest N <= 1.5x that at the smallest")
        )

    # memory
    if not real_ns:
        out.append(verdict("peak RSS of the shm_patch module", None, "not measured", "< 300 MB at N=5000"))
    else:
        top = max(real_ns)
        rss = [r["module_rss_kb"] for r in R.select("real", "shm_patch", top) if r.get("module_rss_kb")]
        if rss:
            mb = max(rss) * 1024 / 1e6
            out.append(verdict("peak RSS of the shm_patch module", mb < 300, "%.0f MB at N=%d%s" % (mb, top, at_note(top, 5000)), "< 300 MB at N=5000"))
        else:
            out.append(verdict("peak RSS of the shm_patch module", None, "not measured", "< 300 MB at N=5000"))

    # df
    dm, dk = R.wall("df", "df_module"), R.wall("df", "df_kubectl")
    if dm and dk:
        pods = (data.get("df") or {}).get("pods")
        out.append(verdict("df in %s pods" % pods, dk / dm >= 5, "kubectl exec loop %.2f s / shm_df_info %.2f s = %.1fx" % (dk, dm, dk / dm), ">= 5x"))
    else:
        out.append(verdict("df in running pods", None, "not measured", ">= 5x"))

    # fleet
    f1, fa = R.wall("fleet", "fleet_1"), R.wall("fleet", "fleet_all")
    fl = data.get("fleet") or {}
    if f1 and fa:
        out.append(
            verdict(
                "fleet: %s x %s vs 1 x %s" % (fl.get("clusters"), fl.get("workloads"), fl.get("workloads")),
                fa <= 2 * f1,
                "%.1f s / %.1f s = %.2fx" % (fa, f1, fa / f1),
                "<= 2x",
            )
        )
    else:
        out.append(verdict("fleet", None, "not measured", "<= 2x"))
    fr = R.select("fleet_failure", "fleet_failure", ok=False)
    if fr:
        r = fr[-1]
        others = {k: v for k, v in (r.get("statuses") or {}).items() if k != r.get("victim")}
        out.append(
            verdict(
                "fleet: one cluster stopped halfway",
                bool(r.get("ok")),
                "%s reported %s, exit code %s; the others: %s%s"
                % (
                    r.get("victim"),
                    (r.get("statuses") or {}).get(r.get("victim")),
                    r.get("rc_expected_nonzero"),
                    ", ".join("%s" % v for v in sorted(set(others.values()))) or "-",
                    "" if r.get("ok") else "; " + "; ".join(r.get("problems") or []),
                ),
                "the stopped cluster failed/unreachable, exit code non-zero, every other cluster ok and fixed",
            )
        )
    return out


# ---------------------------------------------------------------- chart


def ascii_chart(series, width=60, height=16):
    """Log-log scatter of (N, seconds) per contender letter; '*' where two meet."""
    pts = [(c, n, w) for c, xs in series.items() for n, w in xs if w and w > 0]
    ns = sorted({n for _c, n, _w in pts})
    if len(ns) < 2:
        return []
    x0, x1 = math.log10(ns[0]), math.log10(ns[-1])
    ys = [w for _c, _n, w in pts]
    y0, y1 = math.log10(min(ys)), math.log10(max(ys))
    if y1 - y0 < 1e-9:
        y1 = y0 + 1
    grid = [[" "] * width for _ in range(height)]
    for c, n, w in pts:
        x = round((math.log10(n) - x0) / (x1 - x0) * (width - 1))
        y = height - 1 - round((math.log10(w) - y0) / (y1 - y0) * (height - 1))
        ch = LETTERS.get(c, "?")
        grid[y][x] = ch if grid[y][x] in (" ", ch) else "*"
    lines = []
    for row, cells in enumerate(grid):
        val = 10 ** (y1 - row / (height - 1) * (y1 - y0))
        label = ("%8s s |" % fmt_s(val)) if row in (0, height // 2, height - 1) else "           |"
        lines.append(label + "".join(cells))
    lines.append("           +" + "-" * width)
    axis = [" "] * (width + 12)
    for n in ns:
        x = 12 + round((math.log10(n) - x0) / (x1 - x0) * (width - 1))
        text = str(n)
        x = min(x, len(axis) - len(text))
        axis[x : x + len(text)] = list(text)
    lines.append("".join(axis).rstrip() + "   N (log)")
    return lines


# ---------------------------------------------------------------- the document


def quiet_sentence(quiet):
    """What run.py's wait_quiet did before the timed runs, from its own bounds ('' for a run made before it)."""
    if not quiet:
        return ""
    return (
        " Then, untimed, each run waits (at most %.0f s) for no namespace to be terminating and the machine's CPU to be under %.0f%% busy"
        " over a second; waiting took %.0f s in all." % (quiet["max_wait"], 100 * quiet["max_busy"], quiet["seconds"])
    )


def write(path, meta, data):
    R = Runs(data)
    args = meta.get("args") or {}
    verdicts = targets(meta, data)
    lines = []
    w = lines.append
    w("# shmfix.k8s benchmark (%s)" % meta["started"])
    w("")
    w("Written by `bench/run.py` (do not edit by hand); method: [bench/README.md](../README.md). Command: `%s`. " % " ".join(meta["argv"]))
    w("Whole run: %.0f min." % (meta.get("elapsed_seconds", 0) / 60))
    w("")
    if data.get("aborted"):
        w("**INCOMPLETE: %s**" % data["aborted"])
        w("")
    w("## Targets")
    w("")
    w("| target | verdict | figures | wanted |")
    w("|---|---|---|---|")
    for v in verdicts:
        w("| %s | **%s** | %s | %s |" % (v["name"], v["verdict"], v["figures"], v["target"]))
    w("")
    w("Ratios are of medians of the same run. PASS/FAIL at the figures above; N/A: not measured in this run.")
    w("")

    real_ns = R.ns("real")
    contenders = [c for c in WRITERS if R.select("real", c, ok=False)]
    if real_ns:
        w("## Fixing N Deployments (real runs on freshly reset objects)")
        w("")
        w(
            "Wall: median of the timed repeats (min-max), whole process. Requests: one separate run through the counting proxy. "
            "Peak RSS: of the process doing the work - the Ansible module process for the Ansible contenders (largest of its module runs), "
            "the script, the largest process of the kubectl loop - and of the largest process of the whole tree (ansible-playbook included). "
            "CPU: user+system of the whole process tree."
        )
        w("")
        w("| N | contender | wall s (median) | min-max | runs | CPU s | requests | of which | peak RSS MB (worker) | peak RSS MB (tree) | x shm_patch |")
        w("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
        for n in real_ns:
            base = R.wall("real", "shm_patch", n)
            for c in contenders + ["shm_info"]:
                phase = "audit" if c == "shm_info" else "real"
                runs = R.select(phase, c, n)
                bad = R.failed(phase, c, n)
                if not runs and not bad:
                    continue
                walls = [r["wall"] for r in runs]
                cpus = [r["cpu"] for r in runs if r.get("cpu") is not None]
                worker = (
                    max((r.get("module_rss_kb") or (r.get("tree_rss_kb") if c not in ("shm_patch", "kcore_loop", "shm_info") else None) or 0) for r in runs)
                    if runs
                    else None
                )
                tree = max((r.get("tree_rss_kb") or 0) for r in runs) if runs else None
                cnt = R.count(phase, c, n)
                req = cnt["requests"] if cnt else None
                ratio = ""
                if base and walls and c not in ("shm_patch", "shm_info"):
                    ratio = "%.2f" % (median(walls) / base)
                w(
                    "| %d | %s | **%s** | %s | %d%s | %s | %s | %s | %s | %s | %s |"
                    % (
                        n,
                        c,
                        fmt_s(median(walls)),
                        "%s-%s" % (fmt_s(min(walls)), fmt_s(max(walls))) if walls else "-",
                        len(runs),
                        " (+%d failed)" % len(bad) if bad else "",
                        fmt_s(median(cpus)),
                        len(req) if req is not None else "-",
                        fmt_breakdown(req) if req else "",
                        fmt_mb(worker),
                        fmt_mb(tree),
                        ratio,
                    )
                )
        w("")
        w("`x shm_patch`: the contender's median wall divided by shm_patch's at the same N (above 1: shm_patch is faster).")
        w("")
        w("### Cost against N")
        w("")
        series = {c: [(n, R.wall("real", c, n)) for n in real_ns] for c in contenders}
        w("| contender | " + " | ".join("N=%d" % n for n in real_ns) + " | marginal ms per object (first -> last N) |")
        w("|---|" + "---:|" * len(real_ns) + "---:|")
        for c in contenders:
            pts = [(n, x) for n, x in series[c] if x is not None]
            marg = "-"
            if len(pts) >= 2:
                slopes = ["%.1f" % ((b[1] - a[1]) / (b[0] - a[0]) * 1000) for a, b in itertools.pairwise(pts)]
                marg = " -> ".join(slopes)
            w("| %s | %s | %s |" % (c, " | ".join(fmt_s(x) for _n, x in series[c]), marg))
        w("")
        chart = ascii_chart(series)
        if chart:
            w("Wall time against N, log-log (a straight line of slope 1 is linear cost; %s):" % ", ".join("%s %s" % (LETTERS[c], c) for c in contenders))
            w("")
            w("```")
            lines.extend(chart)
            w("```")
            w("")

    rerun_ns = R.ns("rerun")
    if rerun_ns:
        w("## No-op reruns (every object already fixed)")
        w("")
        w(
            "Same objects, all already fixed by shm_patch and settled; nothing may be written. `bare` is `ansible-playbook` with one debug task "
            "(bench/playbooks/noop.yml), timed in the same rotation. `module processes s`: wall time of the Ansible module processes "
            "themselves (from bench/rss-python); the rest of `over bare` is the controller's side of the task (templating, building and starting the module)."
        )
        w("")
        w("| N | contender | wall s (median) | min-max | over bare s | module processes s | requests | writes | module api_calls |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for n in rerun_ns:
            bare = R.wall("rerun", "noop", n)
            for c in ["noop"] + contenders:
                runs = R.walls("rerun", c, n)
                if not runs:
                    continue
                cnt = R.count("rerun", c, n)
                mods = [r["module_seconds"] for r in R.select("rerun", c, n) if r.get("module_seconds") is not None]
                w(
                    "| %d | %s | **%s** | %s-%s | %s | %s | %s | %s | %s |"
                    % (
                        n,
                        "bare" if c == "noop" else c,
                        fmt_s(median(runs)),
                        fmt_s(min(runs)),
                        fmt_s(max(runs)),
                        "" if c == "noop" or bare is None else "%+.2f" % (median(runs) - bare),
                        fmt_s(median(mods)) if mods else "",
                        "" if not cnt else "%d (%s)" % (len(cnt["requests"]), fmt_breakdown(cnt["requests"])),
                        "" if not cnt else writes(cnt["requests"]),
                        "" if not cnt or cnt.get("api_calls") is None else cnt["api_calls"],
                    )
                )
        w("")

    df = data.get("df") or {}
    if R.select("df", "df_module", ok=False) or R.select("df", "df_kubectl", ok=False):
        w("## df of /dev/shm inside %s running pods" % df.get("pods"))
        w("")
        w(
            "%s pods per node (`shmfix.io/node-mode: sized` and `eviction`), busybox, `sleep`. API requests are not counted here: exec is a "
            "websocket/SPDY upgrade, which the counting proxy does not relay." % df.get("per_node")
        )
        w("")
        w("| contender | wall s (median) | min-max | runs | CPU s | peak RSS MB (worker) | peak RSS MB (tree) |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for c in ("df_module", "df_kubectl"):
            runs = R.select("df", c)
            walls = [r["wall"] for r in runs]
            if not walls:
                w("| %s | failed | | %d failed | | | |" % (c, len(R.failed("df", c))))
                continue
            worker = max((r.get("module_rss_kb") or r.get("tree_rss_kb") or 0) for r in runs)
            w(
                "| %s: %s | **%s** | %s-%s | %d | %s | %s | %s |"
                % (
                    c,
                    TITLES[c],
                    fmt_s(median(walls)),
                    fmt_s(min(walls)),
                    fmt_s(max(walls)),
                    len(walls),
                    fmt_s(median([r["cpu"] for r in runs if r.get("cpu") is not None])),
                    fmt_mb(worker),
                    fmt_mb(max(r.get("tree_rss_kb") or 0 for r in runs)),
                )
            )
        w("")

    fl = data.get("fleet") or {}
    if fl:
        w("## Fleet: playbooks/fix-shm.yml over the local fleet")
        w("")
        w(
            "`inventories/fleet-local.yml` limited to the fleet clusters (`-e shmfix_clusters=...`), %s Deployments (replicas 0, not paused: every patch "
            "rolls out a new ReplicaSet) per cluster in `%s`, `remediate_batch_size` %s, size %s. Each run starts from reset objects with the controllers settled%s. "
            "CPU s is the Ansible tree's; control planes CPU s is what the run's clusters' kube-apiservers and kube-controller-managers and "
            "the etcd they share used meanwhile (from their pid files)."
            % (
                fl.get("workloads"),
                "shmfix-bench-fleet",
                fl.get("batch_size") or "(role default)",
                args.get("size"),
                ", after the same quiet wait as the other timed runs" if any("busy" in r for r in R.select("fleet", "fleet_all")) else "",
            )
        )
        w("")
        w("| run | clusters | wall s (median) | min-max | runs | CPU s | control planes CPU s | peak RSS MB (tree) | clusters ok |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for c in ("fleet_1", "fleet_all"):
            runs = R.select("fleet", c)
            bad = R.failed("fleet", c)
            walls = [r["wall"] for r in runs]
            if not walls and not bad:
                continue
            last = (runs or bad)[-1]
            w(
                "| %s | %d | **%s** | %s | %d%s | %s | %s | %s | %s |"
                % (
                    TITLES[c],
                    last.get("clusters") or 0,
                    fmt_s(median(walls)),
                    "%s-%s" % (fmt_s(min(walls)), fmt_s(max(walls))) if walls else "-",
                    len(walls),
                    " (+%d failed: %s)" % (len(bad), "; ".join(bad[-1]["problems"])[:300]) if bad else "",
                    fmt_s(median([r["cpu"] for r in runs if r.get("cpu") is not None])),
                    fmt_s(median([r["control_plane_cpu"] for r in runs if r.get("control_plane_cpu") is not None])),
                    fmt_mb(max((r.get("tree_rss_kb") or 0) for r in runs) if runs else None),
                    "%d/%d" % (sum(1 for s in last.get("statuses", {}).values() if s == "ok"), len(last.get("statuses", {}))),
                )
            )
        for r in R.select("fleet_failure", "fleet_failure", ok=False):
            k = r.get("killed") or {}
            w(
                "| %s (1 run) | %d | %s | | 1 | %s | %s | %s | %s |"
                % (
                    TITLES["fleet_failure"],
                    r.get("clusters") or 0,
                    fmt_s(r["wall"]),
                    fmt_s(r.get("cpu")),
                    fmt_s(r.get("control_plane_cpu")),
                    fmt_mb(r.get("tree_rss_kb")),
                    ", ".join("%s %s" % kv for kv in sorted((r.get("statuses") or {}).items())),
                )
            )
            w("")
            w(
                "Failure run: the kube-apiserver of %s (pid %s, from `%s`) was killed (SIGKILL) %s s into the run, when %s of its Deployments were fixed; "
                "exit code %s; its failure in the report: %s."
                % (
                    r.get("victim"),
                    k.get("pid"),
                    os.path.relpath(k["pidfile"], os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) if k.get("pidfile") else "-",
                    k.get("after_seconds"),
                    k.get("fixed_before_kill"),
                    r.get("rc_expected_nonzero"),
                    describe_failure(r.get("victim_failure")),
                )
            )
            rs = fl.get("restart") or {}
            if rs:
                w("Restarted with `make fleet-up FLEET=%s`: exit %s, ready %s, %s s." % (fl.get("clusters"), rs.get("rc"), rs.get("ready"), rs.get("seconds")))
        w("")

    n_list = real_ns or R.ns("rerun")
    if n_list:
        w("## What each contender sends")
        w("")
        for c in contenders:
            w("- **%s** (%s): %s." % (c, TITLES[c], SENDS[c]))
        w("")
        w("## Workload")
        w("")
        w(
            "N Deployments (N = %s) with `replicas: 0`%s and `revisionHistoryLimit: 0` in namespace `%s`, 4 of 5 to fix (one container with a memory "
            "limit of 512Mi/1Gi/2Gi, or app + sidecar), 1 of 5 already mounting a 1Gi memory-backed /dev/shm (left alone by every contender). "
            "Size %s, %s workers for shm_patch's `parallelism` and the concurrent script. Before every timed run the objects are reset to their "
            "original template and the deployment controller has settled (observedGeneration == generation for all); contenders' order rotates "
            "between repeats. Settling took %.0f s in all.%s"
            % (
                ", ".join(str(n) for n in n_list),
                ", `paused: true`" if args.get("paused", True) else "",
                args.get("namespace"),
                args.get("size"),
                args.get("workers"),
                data.get("settle_seconds", 0),
                quiet_sentence(data.get("quiet")),
            )
        )
        w("")
    w("## Machine and versions")
    w("")
    w("| item | value |")
    w("|---|---|")
    for k, v in (meta.get("versions") or {}).items():
        w("| %s | %s |" % (k, v))
    w("")
    loads = [r["load1"] for r in R.runs if r.get("load1") is not None]
    if loads:
        w(
            "1-minute load average at the start of the timed runs: median %.2f, max %.2f (2 cores shared with the API server, etcd, the controllers and the kubelets)."
            % (median(loads), max(loads))
        )
        busy = [r["busy"] for r in R.runs if r.get("busy") is not None]
        if busy:
            w("")
            w("Machine CPU busy in the second before the timed runs: median %.0f%%, max %.0f%%." % (100 * median(busy), 100 * max(busy)))
        w("")
    problems = [r for r in R.runs if not r.get("ok")]
    notes = list(data.get("notes") or [])
    for r in problems:
        if r["phase"] != "fleet_failure":
            notes.append("%s %s N=%s repeat %s: %s" % (r["phase"], r["contender"], r["n"], r["repeat"], "; ".join(r["problems"])[:500]))
    for c in R.counts:
        if c.get("problem"):
            notes.append("count %s %s N=%s: %s" % (c["phase"], c["contender"], c["n"], c["problem"][:400]))
        own = c.get("api_calls")
        if own is not None and own != len(c["requests"]):
            notes.append(
                "%s %s N=%s: the module says api_calls=%s, %d requests went over the wire" % (c["contender"], c["phase"], c["n"], own, len(c["requests"]))
            )
        bad = [r for r in c["requests"] if r["status"] >= 400]
        if bad:
            notes.append(
                "%s %s N=%s: %d requests failed (%s)"
                % (c["contender"], c["phase"], c["n"], len(bad), ", ".join(sorted({"%s %s" % (r["method"], r["status"]) for r in bad})))
            )
    if notes:
        w("## Notes")
        w("")
        for note in notes:
            w("- " + note.replace("\n", " "))
        w("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return verdicts


def describe_failure(failure):
    if not failure:
        return "none recorded"
    msg = str(failure.get("message") or "")
    return 'phase `%s`, "%s"' % (failure.get("phase"), msg if len(msg) <= 300 else msg[:300] + " ...")


def rerender(path):
    with open(path) as f:
        saved = json.load(f)
    md = os.path.splitext(path)[0] + ".md"
    write(md, saved["meta"], saved["data"])
    print("re-rendered %s from %s" % (md, path))
    return 0
