# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""size_policy.py: the size /dev/shm should get, over the fixtures and the options."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import size_policy
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from shm_fixtures import EXPECTED, FIXTURES, GI, MI, load


@pytest.mark.parametrize("name", FIXTURES)
def test_desired_size_default_policy(name):
    spec = load(name)[2]
    assert size_policy.desired_size(spec, parse=parse_bytes) == EXPECTED[name]["desired"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"size_limit": 2 * GI}, (2 * GI, "size_limit")),
        ({"size_limit": 2 * GI, "annotation_bytes": 3 * GI}, (3 * GI, "annotation")),
        ({"size_ratio": 0.25}, (1536 * MI, "ratio")),
        ({"size_ratio": 0.3}, (1843 * MI, "ratio")),  # 1843.2Mi rounded down to whole MiB
        ({"size_ratio": 0.25, "max_size": GI}, (GI, "max_size")),
        ({"size_ratio": 0.01, "min_size": 256 * MI}, (256 * MI, "min_size")),
        ({"size_ratio": 0.001}, (64 * MI, "min_size")),
    ],
)
def test_desired_size_options(kwargs, expected):
    spec = load("cronjob-batch-inference")[2]  # pod limit 6Gi
    assert size_policy.desired_size(spec, parse=parse_bytes, **kwargs) == expected


def test_desired_size_without_limit_is_clamped_too():
    spec = {"containers": [{"name": "a"}]}
    assert size_policy.desired_size(spec, parse=parse_bytes) == (GI, "default_no_memory_limit")
    assert size_policy.desired_size(spec, parse=parse_bytes, max_size=512 * MI) == (512 * MI, "max_size")
