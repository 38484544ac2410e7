# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nodes.py: the node context assess() gets for a pod spec."""

from ansible_collections.shmfix.k8s.plugins.module_utils import nodes as node_utils


def test_node_context_uses_the_node_selector():
    nodes = {
        "allocatable": {"big": 8 << 30, "small": 2 << 30},
        "capacity": {"big": 8 << 30, "small": 2 << 30},
        "labels": {"big": {"size": "big"}, "small": {"size": "small"}},
        "mode": {"big": "sized", "small": "eviction"},
        "error": None,
    }
    assert node_utils.node_context(nodes, {"nodeSelector": {"size": "big"}}) == (8 << 30, 8 << 30, "sized")
    assert node_utils.node_context(nodes, {}) == (2 << 30, 2 << 30, None)
    assert node_utils.node_context(nodes, {"nodeName": "big"}) == (8 << 30, 8 << 30, "sized")


def test_node_memory_of_a_node_object():
    node = {"metadata": {"name": "n"}, "status": {"capacity": {"memory": "16393236Ki"}, "allocatable": {"memory": "bogus"}}}
    assert node_utils.node_memory(node, "capacity") == 16393236 * 1024
    assert node_utils.node_memory(node, "allocatable") is None
    assert node_utils.node_memory({"metadata": {"name": "n"}}, "capacity") is None
