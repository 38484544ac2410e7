# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: read the size of /dev/shm from ``df`` output or from the kubelet's ``/stats/summary``.

API:

- ``parse_df(output, mountpoint='/dev/shm') -> dict`` with ``filesystem``, ``mountpoint``,
  ``size_bytes``, ``used_bytes``, ``available_bytes``, ``block_size``. Handles ``df -Pk`` and
  ``df -k`` from GNU coreutils and busybox (``1K-blocks``/``1024-blocks``/``512-blocks`` headers,
  long filesystem names wrapped onto a second line, mount points with spaces). With several rows
  the one mounted at ``mountpoint`` is returned. ``ValueError`` with the reason otherwise.
- ``parse_df_rows(output) -> [dict]``: every row.
- ``volume_stats_from_summary(summary, namespace, pod, volume_name) -> dict|None``: the
  ``pods[].volume[]`` entry of the kubelet ``/stats/summary`` (a dict or its JSON text) as
  ``{'volume', 'size_bytes', 'used_bytes', 'available_bytes'}``; None when the pod or the volume is
  not in the summary (not on that node, or stats not collected yet); ``ValueError`` on garbage.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

_BLOCK_HEADERS = {"1k-blocks": 1024, "1024-blocks": 1024, "512-blocks": 512, "1m-blocks": 1024**2, "4k-blocks": 4096}
_FIX = "run `df -Pk /dev/shm` inside the container"


def _excerpt(text, limit=200):
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _block_size(header):
    tokens = header.split()
    if len(tokens) < 2:
        raise ValueError(f"df output: header {header!r} has no size column; {_FIX}")
    size_column = tokens[1].lower()
    if size_column in _BLOCK_HEADERS:
        return _BLOCK_HEADERS[size_column]
    if size_column == "size":
        raise ValueError(f"df output: sizes are human-readable (df -h), they cannot be read exactly; {_FIX}")
    raise ValueError(f"df output: unknown size column {tokens[1]!r} in header {header!r}; {_FIX}")


def _split_row(tokens, line):
    """Find the 'NN%' capacity column; the three integers before it are blocks/used/available."""
    for i in range(len(tokens) - 1, 3, -1):
        tok = tokens[i]
        if tok.endswith("%") or tok == "-":
            numbers = tokens[i - 3 : i]
            if all(n.isdigit() for n in numbers):
                filesystem = " ".join(tokens[: i - 3])
                mountpoint = " ".join(tokens[i + 1 :])
                if filesystem and mountpoint:
                    return filesystem, [int(n) for n in numbers], mountpoint
    raise ValueError(f"df output: cannot read the line {line!r} (expected: filesystem blocks used available capacity% mountpoint); {_FIX}")


def parse_df_rows(output):
    """Every filesystem row of ``df -k``/``df -Pk`` output, as dicts (see ``parse_df``)."""
    if not isinstance(output, str) or not output.strip():
        raise ValueError(f"df output is empty; {_FIX}")
    # skip blank lines and df's own complaints about other mounts ("df: /proc/x: Permission denied") mixed in by 2>&1
    lines = [line.rstrip() for line in output.splitlines() if line.strip() and not line.lstrip().startswith("df: ")]
    header_at = next((i for i, line in enumerate(lines) if line.split()[0] == "Filesystem"), None)
    if header_at is None:
        raise ValueError(f"df output has no 'Filesystem ...' header: {_excerpt(output)!r}; {_FIX}")
    block = _block_size(lines[header_at])
    rows = []
    pending = None  # a long filesystem name that df wrapped onto its own line
    for line in lines[header_at + 1 :]:
        tokens = line.split()
        if len(tokens) == 1 and pending is None:
            pending = tokens[0]
            continue
        if pending is not None:
            tokens = [pending] + tokens
            pending = None
        filesystem, (blocks, used, available), mountpoint = _split_row(tokens, line)
        rows.append(
            {
                "filesystem": filesystem,
                "mountpoint": mountpoint,
                "size_bytes": blocks * block,
                "used_bytes": used * block,
                "available_bytes": available * block,
                "block_size": block,
            }
        )
    if pending is not None:
        raise ValueError(f"df output: the filesystem {pending!r} has no figures after it; {_FIX}")
    if not rows:
        raise ValueError(f"df output has a header but no filesystem row: {_excerpt(output)!r}; {_FIX}")
    return rows


def parse_df(output, mountpoint="/dev/shm"):
    """The row of ``df`` output for ``mountpoint`` (or the only row): filesystem, mountpoint, size/used/available bytes."""
    rows = parse_df_rows(output)
    if len(rows) == 1:
        return rows[0]
    matching = [row for row in rows if row["mountpoint"] == mountpoint]
    if not matching:
        raise ValueError(
            "df output lists {} filesystems and none is mounted at {} ({}); {}".format(len(rows), mountpoint, ", ".join(r["mountpoint"] for r in rows), _FIX)
        )
    return matching[-1]


def _summary_int(entry, key, where):
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"kubelet stats summary: {where}.{key} is {value!r}, not a byte count")
    return value


def volume_stats_from_summary(summary, namespace, pod, volume_name):
    """Stats of ``volume_name`` in pod ``namespace/pod`` from the kubelet ``/stats/summary`` (dict or JSON text)."""
    if isinstance(summary, (str, bytes)):
        try:
            summary = json.loads(summary)
        except ValueError as exc:
            raise ValueError(f"kubelet stats summary is not JSON ({exc}); read it with `kubectl get --raw /api/v1/nodes/NODE/proxy/stats/summary`")
    if not isinstance(summary, dict) or not isinstance(summary.get("pods", []), list):
        # ValueError, not TypeError: callers catch ValueError for every bad input
        raise ValueError("kubelet stats summary has no 'pods' list; read it with `kubectl get --raw /api/v1/nodes/NODE/proxy/stats/summary`")  # noqa: TRY004
    for entry in summary.get("pods") or []:
        ref = entry.get("podRef") or {}
        if ref.get("namespace") != namespace or ref.get("name") != pod:
            continue
        for volume in entry.get("volume") or []:
            if volume.get("name") != volume_name:
                continue
            where = f"{namespace}/{pod} volume {volume_name}"
            return {
                "volume": volume_name,
                "size_bytes": _summary_int(volume, "capacityBytes", where),
                "used_bytes": _summary_int(volume, "usedBytes", where),
                "available_bytes": _summary_int(volume, "availableBytes", where),
            }
        return None
    return None
