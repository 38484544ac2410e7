# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""report.html (roles/fleet_report/templates/report.html.j2) rendered with Jinja2 as Ansible does, parsed with html.parser.

The records are built the way the roles build them: the remediate role's wave records by
remediation.merge_wave from shm_patch, rollout_status and shm_df_info shaped results.
"""

import os
import re
from html.parser import HTMLParser

import jinja2
import pytest
from ansible_collections.shmfix.k8s.plugins.filter import canary, remediation, report, versions
from ansible_collections.shmfix.k8s.plugins.plugin_utils import remediation as rem
from shapes import df_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TEMPLATES = os.path.join(ROOT, "roles", "fleet_report", "templates")
MI = 1024 * 1024
GI = 1024 * MI
NODE_MEM = 25276059648
FILTERS = {}
for _plugin in (report, versions, canary, remediation):
    FILTERS.update(_plugin.FilterModule().filters())

NODES = [
    {
        "name": "shmfix-sized",
        "kubelet_version": "v1.34.4",
        "tier": "ga",
        "expected_enforcement": "sized",
        "expected_source": "configz",
        "feature_gates_source": "configz",
        "memory_capacity_bytes": NODE_MEM,
        "verdict": "ok",
        "message": "",
    },
    {
        "name": "shmfix-eviction",
        "kubelet_version": "v1.31.14",
        "tier": "default_on",
        "expected_enforcement": "sized",
        "expected_source": "version default",
        "feature_gates_source": 'default for the kubelet version (configz not readable: nodes "shmfix-eviction" is forbidden: cannot get resource "nodes/proxy")',
        "memory_capacity_bytes": NODE_MEM,
        "verdict": "ok",
        "message": "",
    },
]
PROBES = [
    {
        "name": "v1-31-sized",
        "node": "shmfix-eviction",
        "covers": ["shmfix-eviction"],
        "outcome": "evicted",
        "ok": True,
        "size_limit_bytes": 32 * MI,
        "df_size_bytes": 12637995008,
        "write_message": "48+0 records out",
        "event_message": 'Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".',
        "elapsed_seconds": 18,
    },
    {
        "name": "v1-34-sized",
        "node": "shmfix-sized",
        "covers": ["shmfix-sized"],
        "expected": "sized",
        "outcome": "sized",
        "ok": True,
        "size_limit_bytes": 32 * MI,
        "df_size_bytes": 32 * MI,
        "write_message": "dd: error writing '/dev/shm/shmfix-canary-fill': No space left on device",
        "reason": "df shows 33554432 bytes (the sizeLimit 32Mi) and the write failed with ENOSPC",
        "elapsed_seconds": 4,
    },
]


def _plan(kind, name, before, after, reason="add Memory emptyDir dshm (sizeLimit 256Mi) at /dev/shm in app"):
    return {"kind": kind, "namespace": "shmfix-demo", "name": name, "action": "would_patch", "reason": reason, "before": before, "after": after, "findings": []}


def _df(pod, container, node, size, method="exec", reason=None):
    return {"pod": pod, "container": container, "node": node, "size_bytes": size, "method": method, "reason": reason}


RUNTIME = {"state": "runtime_default", "size_limit_bytes": None, "effective_bytes": 64 * MI}
SIZED_256 = {"state": "sized", "size_limit_bytes": 256 * MI, "effective_bytes": 256 * MI}
# what the remediate role compares with: the nodes with the enforcement the canaries proved
NODES_PROVEN = [dict(n, expected_enforcement="eviction" if n["name"] == "shmfix-eviction" else "sized") for n in NODES]


def _wave(plans, rollout=None, df_before=(), df_after=()):
    """One wave's records as the remediate role records them (remediation.merge_wave of shm_patch, rollout_status, shm_df_info)."""
    patches = {
        "results": [{"item": {"namespace": p["namespace"], "kind": p["kind"], "names": [p["name"]]}, "results": [dict(p, action="patched")]} for p in plans]
    }
    rollouts = {"results": []}
    for p in plans:
        status, message = (rollout or {}).get(p["name"], ("complete", "successfully rolled out (1 replicas)"))
        rollouts["results"].append({"kind": p["kind"], "namespace": p["namespace"], "name": p["name"], "status": status, "message": message, "pods": ["x"]})
    by_name = {p["name"]: p for p in plans}
    before = df_run([(by_name[name], entries) for name, entries in df_before])
    after = df_run([(by_name[name], entries) for name, entries in df_after])
    return rem.merge_wave(plans, patches, rollouts, before, after, NODES_PROVEN)["records"]


WAVE = [
    _plan("Deployment", "hello-world", RUNTIME, SIZED_256),
    _plan("Deployment", "small-worker", RUNTIME, {"state": "sized", "size_limit_bytes": 256 * MI, "effective_bytes": 128 * MI}),
    _plan(
        "StatefulSet",
        "pg",
        {"state": "unbounded_memory", "size_limit_bytes": None, "effective_bytes": 16 * GI},
        {"state": "sized", "size_limit_bytes": 4 * GI, "effective_bytes": 4 * GI},
    ),
    _plan("CronJob", "nightly-report", RUNTIME, SIZED_256),
]
FORBIDDEN_EXEC = 'pods "pg-0" is forbidden: User "audit" cannot create resource "pods/exec" in API group "" in the namespace "shmfix-demo"'
WAVE_RECORDS = _wave(
    WAVE,
    rollout={"nightly-report": ("not_applicable", "a CronJob has no rollout: the next Job it starts gets the new /dev/shm")},
    df_before=[
        ("hello-world", [_df("hello-world-6d9f-abcde", "hello-world", "shmfix-sized", 64 * MI)]),
        ("small-worker", [_df("small-worker-55c-x1", "worker", "shmfix-eviction", 64 * MI)]),
        ("pg", [_df("pg-0", "postgres", "shmfix-sized", None, "unavailable", FORBIDDEN_EXEC)]),
    ],
    df_after=[
        ("hello-world", [_df("hello-world-854f-lvfs7", "hello-world", "shmfix-sized", 256 * MI)]),
        ("small-worker", [_df("small-worker-b7c4-drdbq", "worker", "shmfix-eviction", 12637995008)]),
        ("pg", [_df("pg-0", "postgres", "shmfix-sized", 4 * GI), _df("pg-0", "exporter", "shmfix-sized", 4 * GI)]),
    ],
)
UNCHANGED = [
    {
        "kind": "StatefulSet",
        "namespace": "shmfix-demo",
        "name": "pg-limited",
        "action": "unchanged",
        "reason": "volume dshm is Memory emptyDir without sizeLimit: the pod memory limit already caps its tmpfs and grow never lowers a size; "
        "use existing=replace to set sizeLimit",
        "before": {"state": "unbounded_memory", "size_limit_bytes": None, "effective_bytes": GI},
        "after": {"state": "unbounded_memory", "size_limit_bytes": None, "effective_bytes": GI},
        "findings": [
            {
                "severity": "warning",
                "code": "memory_accounting",
                "message": "container postgres: shared memory pages count against its memory limit (1 GiB), so it is OOM-killed before /dev/shm is full",
            }
        ],
    },
    {
        "kind": "Deployment",
        "namespace": "shmfix-demo",
        "name": "disk-shm",
        "action": "unchanged",
        "reason": "volume dshm is disk-backed emptyDir: grow does not move a disk-backed emptyDir to memory; use existing=replace",
        "before": {"state": "disk_backed", "size_limit_bytes": None, "effective_bytes": None},
        "findings": [{"severity": "warning", "code": "disk_backed", "message": "volume dshm at /dev/shm is an emptyDir without medium: Memory"}],
    },
    {
        "kind": "Deployment",
        "namespace": "shmfix-demo",
        "name": "already-sized",
        "action": "unchanged",
        "reason": "volume dshm sizeLimit 512Mi is already >= 256Mi",
        "before": {"state": "sized", "size_limit_bytes": 512 * MI, "effective_bytes": 512 * MI},
        "findings": [{"severity": "info", "code": "eviction_enforced", "message": "an info finding is no concern"}],
    },
]
EVIL = '<script>alert("x")</script>'
SKIPPED = [
    {
        "kind": "Job",
        "namespace": "shmfix-demo",
        "name": "one-off-migration",
        "action": "immutable",
        "reason": "the pod template of a Job cannot be changed (state runtime_default); fix the manifest that creates it instead",
    },
    {"kind": "Deployment", "namespace": "shmfix-demo", "name": "helm-app", "action": "skipped", "reason": "managed by helm " + EVIL},
]
OK_CLUSTER = {
    "name": "shmfix-local",
    "version_check": {"server_version": "v1.34.4", "min_version": "1.20", "tiers": {"ga": 1, "default_on": 1}, "nodes": NODES},
    "eviction_verify": {"enabled": True, "probes": PROBES},
    "remediate": {"mode": "remediate", "waves": 1, "stopped": False, "untouched": [], "workloads": SKIPPED + UNCHANGED + WAVE_RECORDS},
}
# Five waves of one workload; the second one's rollout failed and remediate_max_failures=1 stopped the run.
FAILED_WAVES = _wave([_plan("Deployment", "steady", RUNTIME, SIZED_256)], df_after=[("steady", [_df("steady-1", "app", "shmfix-sized", 256 * MI)])])
FAILED_WAVES += _wave([_plan("Deployment", "crashy", RUNTIME, SIZED_256)], rollout={"crashy": ("failed", "pod crashy-2: CrashLoopBackOff")})
FAILED_CLUSTER = {
    "name": "b-prod",
    "version_check": {
        "server_version": "v1.30.2",
        "min_version": "1.20",
        "tiers": {"default_on": 1},
        "nodes": [dict(NODES[0], name="b-1", kubelet_version="v1.30.2", tier="default_on")],
    },
    "eviction_verify": {"enabled": False, "probes": []},
    "remediate": {
        "mode": "remediate",
        "waves": 5,
        "waves_run": 2,
        "stopped": True,
        "stopped_reason": "stopped after 1 failed workload(s); 3 left untouched",
        "untouched": [
            {"kind": "Deployment", "namespace": "shmfix-demo", "name": "later-%d" % i, "reason": "not started: remediation stopped"} for i in range(3)
        ],
        "workloads": FAILED_WAVES,
    },
}
DEAD = {"name": "a-dead", "failure": {"phase": "version_check", "message": "cannot reach the Kubernetes API server https://127.0.0.1:1", "unreachable": True}}
RECORDS = [OK_CLUSTER, FAILED_CLUSTER, DEAD]


def build():
    return FILTERS["fleet_report"](RECORDS, generated_at="2026-12-01T23:36:33Z", playbook="fix-shm")


def render(report, name="report.html.j2"):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, undefined=jinja2.StrictUndefined)
    for filter_name, func in FILTERS.items():
        env.filters["shmfix.k8s." + filter_name] = func
    return env.get_template(name).render(fleet_report_result=report, fleet_report_title="shmfix fleet report")


class Page(HTMLParser):
    """The parts of report.html the tests look at: every start tag, the text of each element, the SVG bars."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.stack, self.texts, self.sections = [], [], [], []
        self.bars, self.svg_texts, self.cells, self.divs = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag not in ("br", "line", "rect", "meta", "i"):
            self.stack.append([tag, attrs, []])
        elif tag == "br" and self.stack:
            self.stack[-1][2].append(" ")
        if tag == "section":
            self.sections.append({"id": attrs.get("id"), "class": attrs.get("class"), "h2": "", "cells": [], "bars": [], "svg_texts": []})
        if tag == "rect":
            self.bars.append(attrs)
            if self.sections:
                self.sections[-1]["bars"].append(attrs)

    def handle_endtag(self, tag):
        if tag in ("br", "line", "rect", "meta", "i"):
            return
        while self.stack:
            name, _attrs, parts = self.stack.pop()
            text = " ".join("".join(parts).split())
            if self.stack:
                self.stack[-1][2].append("".join(parts))
            if name == "div":
                self.divs.append(text)
            if name == "td":
                self.cells.append(text)
                if self.sections:
                    self.sections[-1]["cells"].append(text)
            elif name == "h2" and self.sections:
                self.sections[-1]["h2"] = text
            elif name == "text":
                self.svg_texts.append(text)
                if self.sections:
                    self.sections[-1]["svg_texts"].append(text)
            if name == tag:
                break

    def handle_data(self, data):
        self.texts.append(data)
        if self.stack:
            self.stack[-1][2].append(data)


def parse(html):
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_html_lists_the_clusters_failed_first_with_their_status():
    page = parse(render(build()))
    assert [s["h2"] for s in page.sections] == ["a-dead unreachable", "b-prod failed", "shmfix-local ok"]
    assert "bad" in page.sections[0]["class"] and "bad" in page.sections[1]["class"] and "bad" not in page.sections[2]["class"]
    summary = page.cells[: 3 * 12]
    assert [summary[i] for i in (0, 12, 24)] == ["a-dead", "b-prod", "shmfix-local"]
    assert [summary[i] for i in (1, 13, 25)] == ["unreachable", "failed", "ok"]
    assert summary[12 + 10] == "2/5"  # waves run of planned
    assert "Unreachable (version_check): cannot reach the Kubernetes API server https://127.0.0.1:1" in " ".join("".join(page.texts).split())


def test_html_has_every_workload_row_with_its_reason():
    page = parse(render(build()))
    local, failed = page.sections[2]["cells"], page.sections[1]["cells"]
    for name in ("hello-world", "small-worker", "pg", "nightly-report", "one-off-migration", "helm-app", "pg-limited", "disk-shm", "already-sized"):
        assert any(cell.endswith("shmfix-demo/" + name) for cell in local), name
    for name in ("steady", "crashy", "later-0", "later-1", "later-2"):
        assert any(cell.endswith("shmfix-demo/" + name) for cell in failed), name
    # two containers of one pod: one line each, named pod/container
    at = page.divs.index("pg-0/postgres: 4 GiB (sized)")
    assert page.divs[at + 1] == "pg-0/exporter: 4 GiB (sized)"
    # the df before that could not be taken says why
    assert "unbounded_memory, 16 GiB df: not measured (%s)" % FORBIDDEN_EXEC in local
    # left as is: the reason, the concern, and the fine one recognisable
    row = local.index("StatefulSet shmfix-demo/pg-limited")
    assert local[row + 2] == "needs a look"
    assert "use existing=replace to set sizeLimit" in local[row + 3] and "OOM-killed" in local[row + 3]
    row = local.index("Deployment shmfix-demo/already-sized")
    assert local[row + 1 : row + 4] == ["sized, 512 MiB", "fine", "volume dshm sizeLimit 512Mi is already >= 256Mi"]
    assert "rollout failed: pod crashy-2: CrashLoopBackOff" in failed


def test_html_says_why_a_nodes_enforcement_is_assumed():
    local = parse(render(build())).sections[2]["cells"]
    row = local.index("shmfix-eviction")
    assert local[row + 3] == "sized assumed"
    assert local[row + 4].startswith("assumed from the default of kubelet v1.31.14, feature gates not read: configz not readable:")
    assert 'cannot get resource "nodes/proxy"' in local[row + 4]
    assert local[row + 4].endswith("canary v1-31-sized proved eviction, not sized")
    assert local[row + 5] == "eviction not as expected"


def _bar_widths(section, series=None):
    """{bytes: width} of the section's chart bars (of one series when given)."""
    out = {}
    for bar in section["bars"]:
        if bar.get("data-bytes") and (series is None or series in bar["class"].split()):
            out[int(bar["data-bytes"])] = float(bar["width"])
    return out


def test_html_chart_bars_follow_the_sizes_on_a_log_scale():
    page = parse(render(build()))
    local = page.sections[2]
    widths = _bar_widths(local)
    assert sorted(widths) == [64 * MI, 256 * MI, 4 * GI, 12637995008, 16 * GI]
    ordered = [widths[size] for size in sorted(widths)]
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    # log scale: 16 GiB is 256 times 64 MiB, its bar is not (log2: 14 MiB-doublings against 6)
    assert widths[16 * GI] / widths[64 * MI] == pytest.approx(14 / 6, rel=0.01)
    # equal steps per factor: 64 MiB -> 256 MiB is one step of 4x, 256 MiB -> 4 GiB two
    assert widths[4 * GI] - widths[256 * MI] == pytest.approx(2 * (widths[256 * MI] - widths[64 * MI]), rel=0.01)
    ticks = [t for t in local["svg_texts"] if t.endswith("iB")]
    for label in ("64 MiB", "256 MiB", "1 GiB", "4 GiB", "16 GiB"):
        assert label in ticks
    for figure in ("64 MiB (df)", "256 MiB (df)", "11.8 GiB (df; sizeLimit 256 MiB)", "16 GiB (effective)", "4 GiB (df)", "256 MiB (expected)"):
        assert figure in local["svg_texts"], figure
    # before and after bars of each changed workload, and the failed one drawn red
    assert len([t for t in local["svg_texts"] if t == "before"]) == 4
    crashy = [b for b in page.sections[1]["bars"] if "bad" in b["class"].split()]
    assert len(crashy) == 1 and int(crashy[0]["data-bytes"]) == 256 * MI


def test_html_is_self_contained():
    html = render(build())
    page = parse(html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed"), tag
        for key in ("src", "href", "xlink:href", "action"):
            value = attrs.get(key) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, key, value)
            assert not value or value.startswith("#"), (tag, key, value)
    style = html[html.index("<style>") : html.index("</style>")]
    assert "@import" not in style and "url(" not in style


def test_html_escapes_what_comes_from_the_cluster():
    records = [dict(OK_CLUSTER, name="evil<b>cluster</b>")]
    report = FILTERS["fleet_report"](records, generated_at="2026-12-01T00:00:00Z", playbook="fix-shm")
    html = render(report)
    page = parse(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "b")]
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html or "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "managed by helm " + EVIL in page.cells
    assert page.sections[0]["h2"] == "evil<b>cluster</b> ok"


def test_markdown_shows_what_users_asked_for():
    text = render(build(), "report.md.j2")
    assert "| b-prod | **failed** | v1.30.2 | default_on: 1 | not checked | 1 | 0 | 1 | 1/1 | 2/5 |" in text
    assert "Waves: 2 of 5 ran; stopped after 1 failed workload(s); 3 left untouched." in text
    assert "Waves: 1 of 1 ran." in text
    assert "pg-0/postgres: 4 GiB (4294967296 B, sized)<br>pg-0/exporter: 4 GiB (4294967296 B, sized)" in text
    assert "unbounded_memory, 16 GiB (df: not measured, %s)" % FORBIDDEN_EXEC in text
    assert "### Already fine" not in text
    assert "### Left as is, and why" in text
    assert "- **needs a look**: StatefulSet shmfix-demo/pg-limited (unbounded_memory, 1 GiB): volume dshm is Memory emptyDir" in text
    assert "  - container postgres: shared memory pages count against its memory limit" in text
    assert "- fine: Deployment shmfix-demo/already-sized (sized, 512 MiB): volume dshm sizeLimit 512Mi is already >= 256Mi" in text
    node = next(line for line in text.splitlines() if line.startswith("| shmfix-eviction |"))
    assert "| sized (assumed) | assumed from the default of kubelet v1.31.14, feature gates not read: configz not readable" in node
