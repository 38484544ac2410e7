# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugin_utils/version_grading.py: plain dicts, no cluster."""

from ansible_collections.shmfix.k8s.plugins.plugin_utils import canary_probes, version_grading
from shapes import cluster_info as _cluster_info
from shapes import node as _node


def test_grade_versions_policies():
    info = _cluster_info(
        [
            _node("old", "v1.19.16", "unsized", "eviction"),
            _node("alpha", "v1.21.14", "gated", "eviction"),
            _node("off", "v1.31.14", "default_on", "eviction"),
            _node("new", "v1.34.4", "ga", "sized"),
        ]
    )
    graded = version_grading.grade_versions(info, "1.20", below_min_policy="fail", gated_policy="warn", eviction_policy="warn")
    verdicts = {n["name"]: n["verdict"] for n in graded["nodes"]}
    assert verdicts == {"old": "fail", "alpha": "warn", "off": "warn", "new": "ok"}
    assert graded["ok"] is False
    assert len(graded["problems"]) == 1 and "old" in graded["problems"][0] and "below the minimum version 1.20" in graded["problems"][0]
    assert len(graded["warnings"]) == 2
    assert graded["node_enforcement"] == {"old": "eviction", "alpha": "eviction", "off": "eviction", "new": "sized"}
    assert graded["tiers"] == {"unsized": 1, "gated": 1, "default_on": 1, "ga": 1}


def test_grade_versions_warn_policy_and_old_server():
    graded = version_grading.grade_versions(
        _cluster_info([_node("old", "v1.19.16", "unsized", "eviction")], server="v1.19.16"), "1.20", below_min_policy="warn"
    )
    assert graded["ok"] is True
    assert graded["server_below_min_version"] is True
    assert any("API server v1.19.16" in w for w in graded["warnings"])


def test_grade_versions_label_states_enforcement():
    info = _cluster_info(
        [
            _node(
                "e",
                "v1.31.14",
                "default_on",
                "sized",
                source="default for the kubelet version (configz not readable)",
                labels={"shmfix.io/node-mode": "eviction"},
            )
        ]
    )
    plain = version_grading.grade_versions(info)
    assert plain["nodes"][0]["expected_enforcement"] == "sized"
    assert plain["nodes"][0]["expected_source"] == "version default"
    labelled = version_grading.grade_versions(info, enforcement_label="shmfix.io/node-mode")
    assert labelled["nodes"][0]["expected_enforcement"] == "eviction"
    assert labelled["nodes"][0]["expected_source"] == "label"
    assert labelled["nodes"][0]["verdict"] == "warn"


def test_grade_versions_configz_without_the_gate_is_known():
    node = _node("s", "v1.34.4", "ga", "sized", source="configz (gate not set: default for the kubelet version)")
    graded = version_grading.grade_versions(_cluster_info([node]))
    assert graded["nodes"][0]["expected_source"] == "configz"
    assert canary_probes.canary_probes(graded)[0]["expect"] == "sized"
