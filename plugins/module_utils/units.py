# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the one home of byte counts: binary units, tmpfs page rounding, the two byte formats.

- ``format_bytes(n)``: a Kubernetes quantity ('256Mi'), for manifests and option values;
- ``human(n)``: for people ('64 MiB', '1.5 GiB'), in messages, reports and the ``human_bytes`` filter;
- ``page_round(n)``: what ``df`` shows for a tmpfs of ``size=n`` (the kernel rounds up to pages).

Parsing quantities needs the kubernetes client and lives in quantity.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

KI = 1024
MI = 1024**2
GI = 1024**3
PAGE_SIZE = 4096

_BINARY_UNITS = (("Ei", 1024**6), ("Pi", 1024**5), ("Ti", 1024**4), ("Gi", GI), ("Mi", MI), ("Ki", KI))


def format_bytes(n):
    """Shortest exact Kubernetes quantity for ``n`` bytes: 268435456 -> '256Mi', 1610612736 -> '1536Mi'.

    Uses the largest binary suffix that divides ``n`` exactly; plain bytes otherwise ('1000').
    """
    n = _as_byte_count(n)
    for suffix, size in _BINARY_UNITS:
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def human(n, missing="unknown"):
    """Readable size: 67108864 -> '64 MiB', 1610612736 -> '1.5 GiB', 512 -> '512 B'; None -> ``missing``."""
    if n is None:
        return missing
    n = _as_byte_count(n)
    for suffix, size in _BINARY_UNITS:
        if n >= size:
            amount = n / size
            return f"{int(amount)} {suffix}B" if amount == int(amount) else f"{amount:.1f} {suffix}B"
    return f"{n} B"


def page_round(n):
    """``n`` rounded up to whole pages (what df shows for a tmpfs mounted with size=n); None stays None."""
    if n is None:
        return None
    return -(-_as_byte_count(n) // PAGE_SIZE) * PAGE_SIZE


def _as_byte_count(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"expected a non-negative integer number of bytes, got {n!r}")
    return n
