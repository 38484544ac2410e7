# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugin_utils/canary_probes.py: plain dicts, no cluster."""

from ansible_collections.shmfix.k8s.plugins.plugin_utils import canary_probes, version_grading
from shapes import cluster_info as _cluster_info
from shapes import node as _node


def test_canary_probes_one_per_alike_group():
    graded = version_grading.grade_versions(
        _cluster_info(
            [
                _node("a1", "v1.34.4", "ga", "sized"),
                _node("a2", "v1.34.2", "ga", "sized"),
                _node("b1", "v1.31.14", "default_on", "eviction", source="version default"),
            ]
        )
    )
    probes = canary_probes.canary_probes(graded, node_selector={"pool": "x"})
    assert probes == [
        {"name": "v1-34-sized", "node_selector": {"pool": "x", "kubernetes.io/hostname": "a1"}, "expect": "sized", "assumed": "sized", "covers": ["a1", "a2"]},
        # a version default is an assumption: the canary decides
        {"name": "v1-31-eviction", "node_selector": {"pool": "x", "kubernetes.io/hostname": "b1"}, "assumed": "eviction", "covers": ["b1"]},
    ]
    assert [p["name"] for p in canary_probes.canary_probes(graded, per="mode")] == ["sized", "eviction"]
    assert [p["covers"] for p in canary_probes.canary_probes(graded, per="node")] == [["a1"], ["a2"], ["b1"]]


def test_proven_nodes_take_the_canary_outcome():
    nodes = [{"name": "a1", "expected_enforcement": "sized"}, {"name": "b1", "expected_enforcement": "sized"}, {"name": "c1", "expected_enforcement": "sized"}]
    proof = {"probes": [{"outcome": "evicted", "covers": ["b1"]}, {"outcome": "not_enforced", "covers": ["c1"]}]}
    out = canary_probes.proven_nodes(nodes, proof)
    assert [(n["name"], n["expected_enforcement"], n.get("expected_source")) for n in out] == [
        ("a1", "sized", None),
        ("b1", "eviction", "canary"),
        ("c1", "sized", None),
    ]
    assert canary_probes.proven_nodes(nodes, None) == nodes
