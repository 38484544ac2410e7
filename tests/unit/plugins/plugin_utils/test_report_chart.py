# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugin_utils/report_chart.py: the geometry of report.html's /dev/shm chart, plain numbers."""

import itertools

import pytest
from ansible_collections.shmfix.k8s.plugins.plugin_utils import report, report_chart

MI = 1024 * 1024
GI = 1024 * MI


@pytest.mark.parametrize(
    "largest, high",
    [(None, 256 * MI), (64 * MI, 256 * MI), (256 * MI, 256 * MI), (257 * MI, GI), (12637995008, 16 * GI), (16 * GI, 16 * GI), (17 * GI, 64 * GI)],
)
def test_axis_ends_at_a_power_of_4_mib(largest, high):
    assert report_chart.axis_high(largest) == high


def test_ticks_every_4x_evenly_spaced():
    ticks = report_chart.ticks(16 * GI)
    assert [t["label"] for t in ticks] == ["1 MiB", "4 MiB", "16 MiB", "64 MiB", "256 MiB", "1 GiB", "4 GiB", "16 GiB"]
    for a, b in itertools.pairwise(ticks):
        assert b["x"] - a["x"] == pytest.approx(report_chart.PLOT / 7, abs=0.1)
    assert ticks[0]["x"] == report_chart.LEFT and ticks[-1]["x"] == report_chart.LEFT + report_chart.PLOT


def test_bar_widths_are_logarithmic():
    high = 16 * GI
    assert report_chart.bar_width(None, high) is None
    assert report_chart.bar_width(4096, high) == report_chart.MIN_BAR  # below the axis: a sliver, not nothing
    assert report_chart.bar_width(16 * GI, high) == report_chart.PLOT
    assert report_chart.bar_width(64 * GI, high) == report_chart.PLOT  # clamped
    small, large = report_chart.bar_width(64 * MI, high), report_chart.bar_width(16 * GI, high)
    assert large / small == pytest.approx(14 / 6, rel=0.01)  # log2(16 GiB / 1 MiB) = 14, log2(64) = 6


def _entry(name, before, after, measured=(), size_limit=None, verdict="ok"):
    entry = report._workload_entry(
        {
            "kind": "Deployment",
            "namespace": "ns",
            "name": name,
            "action": "patched",
            "before": {"state": "runtime_default", "effective_bytes": 64 * MI, "measured_bytes": before},
            "after": {"state": "sized", "size_limit_bytes": size_limit or after, "effective_bytes": after},
            "measured": [{"pod": name + "-1", "container": c, "size_bytes": s, "verdict": verdict} for c, s in measured],
        }
    )
    return entry


def test_chart_rows_bars_figures_and_the_sizelimit_mark():
    cluster = {
        "counts": {},
        "changed": [
            _entry("web", 64 * MI, 256 * MI, [("app", 256 * MI)]),
            _entry("evicted", 64 * MI, 128 * MI, [("app", 12637995008)], size_limit=256 * MI),
            _entry("cron", None, 256 * MI),
            _entry("two", 64 * MI, 256 * MI, [("a", 256 * MI), ("b", 2 * GI)], verdict="mismatch"),
        ],
        "failed": [],
        "audited": [],
    }
    chart = report_chart.shm_chart(cluster)
    assert chart["high"] == 16 * GI
    assert [r["label"] for r in chart["rows"]] == ["Deployment ns/web", "Deployment ns/evicted", "Deployment ns/cron", "Deployment ns/two"]
    web, evicted, cron, two = chart["rows"]
    assert [(b["series"], b["bytes"], b["text"], b["css"]) for b in web["bars"]] == [
        ("before", 64 * MI, "64 MiB (df)", "before"),
        ("after", 256 * MI, "256 MiB (df)", "after ok"),
    ]
    assert web["limit"] is None  # the bar ends at the sizeLimit
    assert evicted["bars"][1]["text"] == "11.8 GiB (df; sizeLimit 256 MiB)"
    assert evicted["limit"]["x"] == pytest.approx(report_chart.LEFT + report_chart.bar_width(256 * MI, 16 * GI))
    assert [(b["bytes"], b["text"], b["css"]) for b in cron["bars"]] == [
        (64 * MI, "64 MiB (effective)", "before"),
        (256 * MI, "256 MiB (expected)", "after expected"),
    ]
    assert two["bars"][1]["bytes"] == 2 * GI and two["bars"][1]["text"] == "256 MiB, 2 GiB (df; sizeLimit 256 MiB)" and two["bars"][1]["css"] == "after bad"
    # rows stacked without overlap, bars inside the picture, figures after the bars
    tops = [r["bars"][0]["y"] for r in chart["rows"]]
    assert tops == sorted(tops) and len(set(tops)) == 4
    for row in chart["rows"]:
        for bar in row["bars"]:
            assert bar["x"] + bar["width"] <= report_chart.LEFT + report_chart.PLOT
            assert bar["text_x"] > bar["x"] + bar["width"]
            assert bar["y"] + bar["height"] < chart["plot"]["bottom"] < chart["height"]


def test_chart_of_an_audit_and_of_nothing():
    audited = dict(_entry("db", None, None), effective_bytes=GI, measured=[{"pod": "db-0", "size_bytes": None, "note": "forbidden"}])
    chart = report_chart.shm_chart({"counts": {}, "changed": [], "failed": [], "audited": [audited]})
    assert [(b["series"], b["bytes"], b["text"], b["css"]) for b in chart["rows"][0]["bars"]] == [("now", GI, "1 GiB (effective)", "now")]
    assert chart["high"] == GI
    empty = report_chart.shm_chart({"counts": {}})
    assert empty["rows"] == [] and empty["ticks"][-1]["label"] == "256 MiB"


def test_unknown_sizes_draw_no_bar():
    entry = _entry("x", None, None)
    entry["before"]["effective_bytes"] = None
    row = report_chart.shm_chart({"counts": {}, "changed": [entry]})["rows"][0]
    assert [(b["width"], b["text"], b["css"]) for b in row["bars"]] == [(0, "unknown", "before unknown"), (0, "unknown", "after expected unknown")]
