# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""options.py: the one validator of the size policy options, one wording per rule."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import options
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

MI = 1024**2
GI = 1024**3


def _error(params):
    with pytest.raises(ShmfixError) as err:
        options.size_options(params)
    return err.value.msg


@pytest.mark.parametrize("value", ["256MB", "-1", "1.5.Gi", ""])
def test_bad_size_limit_names_the_option(value):
    msg = _error({"size_limit": value})
    assert msg.startswith("size_limit: ")
    assert repr(value) in msg


@pytest.mark.parametrize(
    "params, message",
    [
        ({"size_limit": "1.5.Gi"}, "size_limit: '1.5.Gi' is not a Kubernetes quantity (use a binary suffix such as 256Mi or 1Gi)"),
        ({"size_limit": "0"}, "size_limit: '0' is zero; a size must be positive (use a binary suffix such as 256Mi or 1Gi)"),
        ({"min_size": "2Gi", "max_size": "1Gi"}, "min_size 2Gi is above max_size 1Gi: give min_size <= max_size"),
        ({"size_ratio": 1.5}, "size_ratio: 1.5 is out of range (give a ratio with 0 < ratio <= 1, e.g. 0.5 for half of the pod memory limit)"),
        ({"size_limit": "1Gi", "size_ratio": 0.5}, "size_limit and size_ratio are mutually exclusive; give one"),
        ({"existing": "shrink"}, "existing: 'shrink' must be one of keep, grow, replace"),
        ({"volume_name": "Dshm"}, "volume_name: 'Dshm' is not a valid volume name (lower-case letters, digits and '-', at most 63, e.g. dshm)"),
    ],
)
def test_one_wording_per_rule(params, message):
    assert _error(params) == message


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5])
def test_ratio_outside_0_1(ratio):
    assert _error({"size_ratio": ratio}).startswith("size_ratio: ")


@pytest.mark.parametrize("name", ["Bad_Name", "-dshm", "dshm-", "a" * 64, "d.shm", ""])
def test_bad_volume_name(name):
    assert _error({"volume_name": name}) == "volume_name: %r is not a valid volume name (lower-case letters, digits and '-', at most 63, e.g. dshm)" % name


def test_good_options_parse_to_bytes():
    opts = options.size_options({"size_limit": "256Mi", "min_size": "64Mi", "max_size": "1Gi", "volume_name": "dshm"})
    assert opts == {"size_limit": 256 * MI, "min_size": 64 * MI, "max_size": GI, "size_ratio": None, "existing": "grow", "volume_name": "dshm"}
    assert options.size_options({"size_ratio": 0.25, "existing": "replace", "volume_name": "a" * 63})["size_ratio"] == 0.25
