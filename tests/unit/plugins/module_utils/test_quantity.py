# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes, parse_ratio
from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes

MI = 1024**2
GI = 1024**3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256Mi", 256 * MI),
        ("1Gi", GI),
        ("1.5Gi", 1536 * MI),
        ("64Mi", 67108864),
        ("500M", 500_000_000),
        ("1k", 1000),
        ("1Ki", 1024),
        ("1e3", 1000),
        ("16393236Ki", 16393236 * 1024),
        ("  2Gi ", 2 * GI),
        (1073741824, GI),
        ("1073741824", GI),
    ],
)
def test_parse_bytes_accepts_kubernetes_quantities(value, expected):
    assert parse_bytes(value, "size_limit") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("256MB", "'256MB' is not a Kubernetes quantity (use a binary suffix such as 256Mi or 1Gi)"),
        ("1.5.Gi", "'1.5.Gi' is not a Kubernetes quantity"),
        ("-1", "'-1' is negative"),
        ("-1Gi", "'-1Gi' is negative"),
        ("", "'' is empty"),
        ("   ", "is empty"),
        (None, "None is not a Kubernetes quantity"),
        (True, "True is not a Kubernetes quantity"),
        ("100m", "'100m' is not a whole number of bytes"),
        ("0.5", "'0.5' is not a whole number of bytes"),
        ("0", "'0' is zero"),
        ("0Gi", "'0Gi' is zero"),
        ("1K", "Kubernetes has no 'K' suffix: write 1Ki for KiB or 1k for thousands"),
        ("NaN", "is not a finite Kubernetes quantity"),
        ("Infinity", "is not a finite Kubernetes quantity"),
        ("1gi", "'1gi' is not a Kubernetes quantity"),
        ([1], "[1] is not a Kubernetes quantity"),
    ],
)
def test_parse_bytes_rejects_with_message_naming_input_and_fix(value, fragment):
    with pytest.raises(ValueError) as err:
        parse_bytes(value, "size_limit")
    message = str(err.value)
    assert message.startswith("size_limit: ")
    assert fragment in message


def test_parse_bytes_zero_allowed_when_asked():
    assert parse_bytes("0", "emptyDir.sizeLimit", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (256 * MI, "256Mi"),
        (GI, "1Gi"),
        (1536 * MI, "1536Mi"),
        (1000, "1000"),
        (1024, "1Ki"),
        (1025, "1025"),
        (3 * 1024**4, "3Ti"),
        (16393236 * 1024, "16393236Ki"),
        (0, "0"),
    ],
)
def test_format_bytes_shortest_exact(n, expected):
    assert format_bytes(n) == expected
    assert parse_bytes(expected, "roundtrip", allow_zero=True) == n


@pytest.mark.parametrize(("value", "expected"), [(0.5, 0.5), ("0.25", 0.25), (1, 1.0)])
def test_parse_ratio_ok(value, expected):
    assert parse_ratio(value, "size_ratio") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0, "out of range"), (1.5, "out of range"), (-0.1, "out of range"), ("half", "not a number"), (None, "not a ratio"), (True, "not a ratio")],
)
def test_parse_ratio_rejects(value, fragment):
    with pytest.raises(ValueError) as err:
        parse_ratio(value, "size_ratio")
    assert str(err.value).startswith("size_ratio: ")
    assert fragment in str(err.value)
