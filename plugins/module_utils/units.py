# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: byte-count formatting shared by quantity.py (which needs the kubernetes client to parse)
and shm.py (which must not import it). ``quantity`` re-exports these names."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

KI = 1024
MI = 1024**2
GI = 1024**3

_BINARY_UNITS = (("Ei", 1024**6), ("Pi", 1024**5), ("Ti", 1024**4), ("Gi", GI), ("Mi", MI), ("Ki", KI))
_HUMAN_UNITS = (("EiB", 1024**6), ("PiB", 1024**5), ("TiB", 1024**4), ("GiB", GI), ("MiB", MI), ("KiB", KI))


def format_bytes(n):
    """Shortest exact Kubernetes quantity for ``n`` bytes: 268435456 -> '256Mi', 1610612736 -> '1536Mi'.

    Uses the largest binary suffix that divides ``n`` exactly; plain bytes otherwise ('1000').
    """
    n = _as_byte_count(n)
    for suffix, size in _BINARY_UNITS:
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def human(n):
    """Readable size for messages: 67108864 -> '64.0 MiB', 1610612736 -> '1.5 GiB', 512 -> '512 B'; None -> 'unknown'."""
    if n is None:
        return "unknown"
    n = _as_byte_count(n)
    for suffix, size in _HUMAN_UNITS:
        if n >= size:
            return f"{n / size:.1f} {suffix}"
    return f"{n} B"


def _as_byte_count(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"expected a non-negative integer number of bytes, got {n!r}")
    return n
