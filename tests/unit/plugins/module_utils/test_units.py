# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""units.py: the one home of byte formats and tmpfs page rounding."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils.units import PAGE_SIZE, format_bytes, human, page_round

MI = 1024**2


@pytest.mark.parametrize("n", [-1, 1.5, "1Gi", None, True])
def test_format_bytes_rejects_non_counts(n):
    with pytest.raises(ValueError, match="non-negative integer number of bytes"):
        format_bytes(n)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(64 * MI, "64 MiB"), (1536 * MI, "1.5 GiB"), (512, "512 B"), (1024, "1 KiB"), (8196618 * 1024, "7.8 GiB"), (None, "unknown"), (0, "0 B")],
)
def test_human(n, expected):
    assert human(n) == expected


def test_human_missing_value():
    assert human(None, missing="-") == "-"


@pytest.mark.parametrize(("n", "expected"), [(0, 0), (1, PAGE_SIZE), (PAGE_SIZE, PAGE_SIZE), (64 * MI + 1, 64 * MI + PAGE_SIZE), (None, None)])
def test_page_round(n, expected):
    assert page_round(n) == expected


def test_page_round_rounds_up_to_a_page():
    assert page_round(256 * MI) == 256 * MI
    assert page_round(10**9) == 1000001536  # tmpfs size= rounds up to 4 KiB pages
