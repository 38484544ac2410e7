# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the eviction_verify role: which canaries to run, and what they proved.

PURE: version_check_result in, canary probes out (filter ``shmfix.k8s.canary_probes``); the
canaries' outcomes in, nodes with their proven enforcement out (``shmfix.k8s.shm_proven_nodes``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import versions
from ansible_collections.shmfix.k8s.plugins.module_utils.canary import slug
from ansible_collections.shmfix.k8s.plugins.plugin_utils.version_grading import AUTHORITATIVE_SOURCES

PER = ("version", "mode", "node")


def _probe_key(node, per):
    if per == "node":
        return node["name"]
    mode = node.get("expected_enforcement")
    if per == "mode":
        return mode
    # per == "version": nodes alike (same kubelet minor version, same expected enforcement and
    # where it comes from) behave alike; one canary stands for each such group.
    try:
        major, minor, _patch = versions.parse_version(node.get("kubelet_version"))
        version = "v%d.%d" % (major, minor)
    except (ValueError, TypeError):
        version = str(node.get("kubelet_version"))
    return "%s-%s" % (version, mode)


def canary_probes(version_check_result, node_selector=None, per="version"):
    """Canary probes for the nodes of one cluster.

    per='version': one probe per group of nodes with the same kubelet minor version and expected
    enforcement; per='mode': one per expected enforcement; per='node': one per node. Each probe is
    pinned to the first node of its group by the kubernetes.io/hostname label (plus node_selector)
    and lists the nodes it stands for in ``covers``. ``expect`` is there only when the expected
    enforcement is known (feature gates read from configz, or stated by a node label); for a
    version default it is an assumption the canary checks, not a requirement.
    """
    probes = []
    index = {}
    for node in (version_check_result or {}).get("nodes") or []:
        mode = node.get("expected_enforcement")
        if not mode:
            continue
        key = _probe_key(node, per)
        if key in index:
            index[key]["covers"].append(node["name"])
            continue
        selector = dict(node_selector or {})
        selector["kubernetes.io/hostname"] = node.get("hostname") or node["name"]
        name = slug(key)
        probe = {"name": name, "node_selector": selector, "assumed": mode, "covers": [node["name"]]}
        if node.get("expected_source") in AUTHORITATIVE_SOURCES:
            # known, not assumed: the canary must show it. (No key at all otherwise: the canary
            # module's 'expect' takes a choice, and an explicit null is none of them.)
            probe["expect"] = mode
        index[key] = probe
        probes.append(probe)
    return probes


def proven_nodes(nodes, eviction_verify_result):
    """nodes (version_check_result.nodes) with expected_enforcement replaced by what the canaries proved.

    A probe that showed ``sized`` or ``evicted`` sets the enforcement of every node it covers
    (``expected_source: canary``).
    """
    proven = {}
    for probe in (eviction_verify_result or {}).get("probes") or []:
        mode = {"sized": "sized", "evicted": "eviction"}.get(probe.get("outcome"))
        if not mode:
            continue
        for name in probe.get("covers") or ([probe.get("node")] if probe.get("node") else []):
            proven[name] = mode
    out = []
    for node in nodes or []:
        node = dict(node)
        if node.get("name") in proven:
            node["expected_enforcement"] = proven[node["name"]]
            node["expected_source"] = "canary"
        out.append(node)
    return out
