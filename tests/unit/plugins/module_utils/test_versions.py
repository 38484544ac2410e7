# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import versions as v


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.29.3-eks-4f4795d", (1, 29, 3)),
        ("v1.30.1+k3s1", (1, 30, 1)),
        ("v1.28.9-gke.1000", (1, 28, 9)),
        ("v1.34.4", (1, 34, 4)),
        ("1.22", (1, 22, 0)),
        ("v1.33.0-rc.1", (1, 33, 0)),
        ("v1.27.16-gke.1148001", (1, 27, 16)),
        ("v1.31.14", (1, 31, 14)),
        (" v1.19.16 ", (1, 19, 16)),
        ({"major": "1", "minor": "29+", "gitVersion": "v1.29.10-eks-7f9249a"}, (1, 29, 10)),
        ({"major": "1", "minor": "28+"}, (1, 28, 0)),
        ((1, 32), (1, 32, 0)),
        ((1, 32, 2), (1, 32, 2)),
    ],
)
def test_parse_version(text, expected):
    assert v.parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "latest", "1", "v1.x.3", "1.29.3.4.5x", None, 129, {"major": "1"}, (1, "29")])
def test_parse_version_rejects(text):
    with pytest.raises(ValueError) as err:
        v.parse_version(text, "kubeletVersion")
    assert str(err.value).startswith("kubeletVersion: ")
    assert "is not a Kubernetes version" in str(err.value)


@pytest.mark.parametrize(
    ("version", "tier"),
    [
        ("v1.19.16", "unsized"),
        ("v1.20.0", "gated"),
        ("v1.21.14-eks-1", "gated"),
        ("v1.22.0", "default_on"),
        ("v1.31.14", "default_on"),
        ("v1.32.0", "ga"),
        ("v1.35.0", "ga"),
    ],
)
def test_tier_boundaries(version, tier):
    assert v.tier(version) == tier


@pytest.mark.parametrize(
    ("version", "gates", "expected"),
    [
        ("v1.19.16", None, "eviction"),
        ("v1.19.16", {"SizeMemoryBackedVolumes": True}, "eviction"),
        ("v1.20.15", None, "eviction"),
        ("v1.21.14", {"SizeMemoryBackedVolumes": True}, "sized"),
        ("v1.21.14", "SizeMemoryBackedVolumes=true", "sized"),
        ("v1.21.14", "SizeMemoryBackedVolumes=false", "eviction"),
        ("v1.22.17", None, "sized"),
        ("v1.29.3-eks-4f4795d", {"SizeMemoryBackedVolumes": False}, "eviction"),
        ("v1.29.3-eks-4f4795d", {"SizeMemoryBackedVolumes": "false"}, "eviction"),
        ("v1.30.1+k3s1", "SizeMemoryBackedVolumes=false,GracefulNodeShutdown=true", "eviction"),
        ("v1.31.14", {"OtherGate": False}, "sized"),
        ("v1.32.0", {"SizeMemoryBackedVolumes": False}, "sized"),
        ("v1.34.4", None, "sized"),
    ],
)
def test_expected_enforcement(version, gates, expected):
    assert v.expected_enforcement(version, gates) == expected


@pytest.mark.parametrize("gates", ["SizeMemoryBackedVolumes", "SizeMemoryBackedVolumes=maybe", 42])
def test_feature_gates_rejects_garbage(gates):
    with pytest.raises(ValueError, match="feature_gates"):
        v.expected_enforcement("v1.29.0", gates)


def test_compare_and_at_least_ignore_vendor_suffixes():
    assert v.compare("v1.29.3-eks-4f4795d", "1.29.3") == 0
    assert v.compare("v1.30.1+k3s1", "v1.29.15") == 1
    assert v.compare("v1.9.0", "v1.10.0") == -1  # numeric, not string order
    assert v.at_least("v1.22.0", "1.22")
    assert not v.at_least("v1.21.14", "1.22")
    assert v.format_version("v1.30.1+k3s1") == "v1.30.1"
