# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Geometry of the /dev/shm chart of report.html: one row per workload, a bar before and a bar after.

PURE: a cluster of the fleet report (plugin_utils/report.py build_cluster) in, plain numbers out;
the template (roles/fleet_report/templates/report.html.j2) only writes them into SVG elements.

The axis is logarithmic, from 1 MiB to the smallest power of 4 MiB at or above the largest size
(ticks at 1, 4, 16, 64, 256 MiB, 1, 4, 16 GiB, ...): the runtime's 64 MiB next to a 16 GiB tmpfs of
an eviction-enforced node must both be readable, and on a linear axis the first would be a pixel.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.shmfix.k8s.plugins.module_utils.units import human

MIB = 1024 * 1024
LOW = MIB  # left end of the axis
TICK_FACTOR = 4  # one tick every 4x
MIN_HIGH = 256 * MIB  # the axis always reaches at least 256 MiB

# Layout in SVG user units (1 unit = 1 CSS pixel at 100 %).
LEFT = 64  # gutter for "before" / "after"
PLOT = 640  # width of the plot area
RIGHT = 256  # room for the figures written after the bars
TOP = 26  # tick labels
BOTTOM = 22  # tick labels again under the rows
LABEL_H = 18  # workload name line
BAR_H = 13
BAR_GAP = 3
ROW_GAP = 12
MIN_BAR = 2  # a size at or below the left end still shows as a sliver
ROW_H = LABEL_H + 2 * BAR_H + BAR_GAP + ROW_GAP


def axis_high(max_bytes):
    """Right end of the axis: the smallest LOW * 4^k >= max_bytes, at least MIN_HIGH."""
    high = MIN_HIGH
    while max_bytes and high < max_bytes:
        high *= TICK_FACTOR
    return high


def fraction(value, high, low=LOW):
    """Where ``value`` bytes sits on the log axis [low, high], from 0.0 to 1.0 (None for no value)."""
    if value is None:
        return None
    value = int(value)
    if value <= low:
        return 0.0
    return min(1.0, math.log(value / low) / math.log(high / low))


def bar_width(value, high, plot=PLOT):
    """Length of the bar of ``value`` bytes in SVG units (None for no value)."""
    frac = fraction(value, high)
    if frac is None:
        return None
    return round(max(MIN_BAR, frac * plot), 1)


def ticks(high, low=LOW, plot=PLOT):
    """[{x, label, bytes}] of the axis: low, 4 x low, ... high."""
    out, value = [], low
    while value <= high:
        out.append({"x": round(LEFT + fraction(value, high, low) * plot, 1), "label": human(value), "bytes": value})
        value *= TICK_FACTOR
    return out


def _measured_sizes(entries):
    return sorted({int(e["size_bytes"]) for e in entries or [] if e.get("size_bytes") is not None})


def _before(entry):
    """(bytes, how it is known) of the workload's /dev/shm before the change."""
    before = entry.get("before") or {}
    if before.get("measured_bytes") is not None:
        return before["measured_bytes"], "df"
    if before.get("effective_bytes") is not None:
        return before["effective_bytes"], "effective"
    return None, "unknown"


def _after(entry):
    """(bytes, figures as text, how it is known) of the workload's /dev/shm after the change."""
    sizes = _measured_sizes(entry.get("measured"))
    if sizes:
        return sizes[-1], ", ".join(human(s) for s in sizes), "df"
    expected = (entry.get("after") or {}).get("effective_bytes")
    if expected is not None:
        return expected, human(expected), "expected"
    return None, "unknown", "unknown"


def _series(entry, group):
    """[(series, bytes, text, source, css class)] of one workload: before and after, or 'now' for an audit."""
    if group == "audited":
        sizes = _measured_sizes(entry.get("measured"))
        value, source = (sizes[-1], "df") if sizes else (entry.get("effective_bytes"), "effective")
        text = ", ".join(human(s) for s in sizes) if sizes else human(value)
        return [("now", value, text, source, "now")]
    value, source = _before(entry)
    before = ("before", value, human(value), source, "before")
    value, text, source = _after(entry)
    verdict = "failed" if group == "failed" else entry.get("verdict")
    css = {"ok": "ok", "mismatch": "bad", "failed": "bad"}.get(verdict, "expected")
    return [before, ("after", value, text, source, "after " + css)]


def _bar(series, y, high):
    name, value, text, source, css = series
    width = bar_width(value, high)
    return {
        "series": name,
        "bytes": value,
        "source": source,
        "css": css if width is not None else css + " unknown",
        "x": LEFT,
        "y": y,
        "width": width or 0,
        "height": BAR_H,
        "text": "%s (%s)" % (text, source) if value is not None else "unknown",
        "text_x": round(LEFT + (width or 0) + 6, 1),
        "text_y": y + BAR_H - 2,
    }


def _limit_marker(entry, after_bar, high):
    """A mark at the sizeLimit on the after bar when the bar does not end there (eviction-enforced nodes)."""
    limit = (entry.get("after") or {}).get("size_limit_bytes")
    if limit is None or after_bar["bytes"] is None or after_bar["series"] != "after":
        return None
    x = round(LEFT + bar_width(limit, high), 1)
    if abs(x - (LEFT + after_bar["width"])) < 4:
        return None
    return {"x": x, "y1": after_bar["y"] - 2, "y2": after_bar["y"] + BAR_H + 2, "text": "sizeLimit " + human(limit)}


def _row(entry, group, top, high):
    bars, y = [], top + LABEL_H
    for series in _series(entry, group):
        bars.append(_bar(series, y, high))
        y += BAR_H + BAR_GAP
    limit = _limit_marker(entry, bars[-1], high)
    if limit:
        bars[-1]["text"] = bars[-1]["text"][:-1] + "; " + limit["text"] + ")"
    name = "%s %s/%s" % (entry.get("kind"), entry.get("namespace"), entry.get("name"))
    return {"label": name, "label_y": top + LABEL_H - 5, "group": group, "bars": bars, "limit": limit, "height": y - top}


def chart_rows(cluster):
    """(group, entry) of the workloads the chart shows: changed, failed, then audited ones."""
    return [(group, entry) for group in ("changed", "failed", "audited") for entry in (cluster or {}).get(group) or []]


def shm_chart(cluster):
    """The chart of one cluster: {width, height, high, ticks, rows, plot} (rows empty: nothing to draw)."""
    items = chart_rows(cluster)
    values = []
    for group, entry in items:
        values.extend(s[1] for s in _series(entry, group) if s[1] is not None)
        limit = (entry.get("after") or {}).get("size_limit_bytes")
        if limit is not None and group != "audited":
            values.append(limit)
    high = axis_high(max(values) if values else None)
    rows, top = [], TOP
    for group, entry in items:
        row = _row(entry, group, top, high)
        rows.append(row)
        top += row["height"] + ROW_GAP
    bottom = top - ROW_GAP + 6
    return {
        "width": LEFT + PLOT + RIGHT,
        "height": bottom + BOTTOM,
        "plot": {"x": LEFT, "width": PLOT, "top": TOP - 8, "bottom": bottom, "tick_top_y": TOP - 12, "tick_bottom_y": bottom + 14},
        "high": high,
        "ticks": ticks(high),
        "rows": rows,
    }
