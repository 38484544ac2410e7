# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the version_check role: grade a cluster's server and kubelets against the policy.

PURE: cluster_info's result in, the ``version_check_result`` the role records out (filter
``shmfix.k8s.grade_versions``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import versions

POLICIES = ("fail", "warn", "ok")
# Where a node's expected enforcement can come from without being an assumption.
AUTHORITATIVE_SOURCES = ("configz", "label")


def _below(version, minimum):
    try:
        return versions.parse_version(version) < versions.parse_version(minimum)
    except ValueError:
        return None


def _expected(node, enforcement_label):
    """(expected enforcement, where it comes from: label, configz or version default)."""
    label_value = (node.get("labels") or {}).get(enforcement_label) if enforcement_label else None
    if label_value in ("sized", "eviction"):
        return label_value, "label"
    if str(node.get("feature_gates_source") or "").startswith("configz"):
        # The kubelet's own configuration was read (a gate it does not set has its version's default).
        return node.get("expected_enforcement"), "configz"
    return node.get("expected_enforcement"), "version default"


def _verdict(version, tier, expected, below, min_version, policy):
    """(verdict, message) of one kubelet under the policy {below_min, gated, eviction}."""
    if below:
        return policy["below_min"], "kubelet %s is below the minimum version %s (tier %s: sizeLimit enforced by eviction only)" % (version, min_version, tier)
    if tier == "gated":
        return policy["gated"], "kubelet %s has SizeMemoryBackedVolumes as an alpha gate (%s): sizeLimit %s" % (
            version,
            "enabled" if expected == "sized" else "disabled",
            "sizes the tmpfs" if expected == "sized" else "is enforced by eviction only",
        )
    if expected == "eviction":
        return policy["eviction"], (
            "kubelet %s has SizeMemoryBackedVolumes disabled: /dev/shm shows half the node's memory and sizeLimit is enforced by eviction" % version
        )
    return "ok", ""


def grade_node(node, min_version, policy, enforcement_label=None):
    """One node of version_check_result (cluster_info's node, graded)."""
    version, tier = node.get("kubelet_version"), node.get("tier")
    expected, source = _expected(node, enforcement_label)
    below = _below(version, min_version) if version else None
    verdict, message = _verdict(version, tier, expected, below, min_version, policy)
    return {
        "name": node.get("name"),
        "kubelet_version": version,
        "tier": tier,
        "expected_enforcement": expected,
        "expected_source": source,
        "feature_gates": node.get("feature_gates") or {},
        "feature_gates_source": node.get("feature_gates_source"),
        "memory_capacity_bytes": node.get("memory_capacity_bytes"),
        "allocatable_memory_bytes": node.get("allocatable_memory_bytes"),
        "hostname": (node.get("labels") or {}).get("kubernetes.io/hostname", node.get("name")),
        "below_min_version": bool(below),
        "verdict": verdict,
        "message": message,
    }


def grade_versions(cluster_info, min_version="1.20", below_min_policy="fail", gated_policy="warn", eviction_policy="warn", enforcement_label=None):
    """Grade the server and every kubelet of one cluster (cluster_info's result) against the policy.

    A kubelet below min_version, or in the gated tier (1.20-1.21, SizeMemoryBackedVolumes alpha), or one
    that will only enforce sizeLimit by eviction, gets verdict ``fail`` or ``warn`` as the matching policy
    says (``ok`` otherwise). Returns the ``version_check_result`` the role records.

    enforcement_label: a node label whose value (sized or eviction) states the node's enforcement
    (when the kubelets' feature gates cannot be read). ``expected_source`` says where each node's
    expected enforcement comes from: configz, label, or the default for its version (an assumption).
    """
    policy = {"below_min": below_min_policy, "gated": gated_policy, "eviction": eviction_policy}
    for name, value in policy.items():
        if value not in POLICIES:
            raise ValueError("%s_policy must be fail, warn or ok, got %r" % (name, value))
    cluster_info = cluster_info or {}
    server = cluster_info.get("server_version") or {}
    server_text = server.get("git_version") if isinstance(server, dict) else server
    server_below = _below(server_text, min_version) if server_text else None
    problems, warnings = [], []
    if server_below:
        (problems if below_min_policy == "fail" else warnings).append("API server %s is below the minimum version %s" % (server_text, min_version))
    nodes = [grade_node(node, min_version, policy, enforcement_label) for node in cluster_info.get("nodes") or []]
    for node in nodes:
        {"fail": problems, "warn": warnings}.get(node["verdict"], []).append("node %s: %s" % (node["name"], node["message"]))
    tiers = cluster_info.get("tiers")
    if not tiers:
        tiers = {}
        for node in nodes:
            tiers[node["tier"]] = tiers.get(node["tier"], 0) + 1
    return {
        "server_version": server_text,
        "server_below_min_version": bool(server_below),
        "min_version": str(min_version),
        "policy": policy,
        "nodes": nodes,
        "tiers": tiers,
        "node_enforcement": {node["name"]: node["expected_enforcement"] for node in nodes},
        "problems": problems,
        "warnings": warnings,
        "ok": not problems,
    }
