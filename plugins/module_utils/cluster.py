# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cluster_info: server and kubelet versions, SizeMemoryBackedVolumes tier and enforcement per node.

Feature gates are read from each kubelet's /configz through the API server's node proxy
(``/api/v1/nodes/<node>/proxy/configz``, needs ``get`` on ``nodes/proxy``); when that is not
allowed the default for the kubelet version is assumed and ``feature_gates_source`` says so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.shmfix.k8s.plugins.module_utils import versions
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.nodes import node_memory

CONFIGZ_PARALLELISM = 8


def node_proxy_path(node, path):
    return "/api/v1/nodes/%s/proxy/%s" % (node, path.lstrip("/"))


def read_configz(kube, node):
    """(feature_gates {name: bool} as configured, source str). Never raises for API errors."""
    try:
        data = kube.get(node_proxy_path(node, "configz"), verb="get", resource="nodes/proxy", name=node)
    except ShmfixError as err:
        if err.status is None and err.reason in ("Unreachable", "TLSError"):
            raise
        return None, "default for the kubelet version (configz not readable: %s)" % err.msg
    config = data.get("kubeletconfig") or data.get("kubeletConfig") or {}
    try:
        gates = versions.parse_feature_gates(config.get("featureGates") or {})
    except ValueError as exc:
        return None, "default for the kubelet version (configz featureGates unreadable: %s)" % exc
    return gates, "configz"


def _read_all_gates(kube, names):
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=min(CONFIGZ_PARALLELISM, len(names))) as pool:
        return dict(zip(names, pool.map(lambda n: read_configz(kube, n), names)))


def node_record(node, gates_and_source):
    """One node of cluster_info's result (pure): version, tier, feature gate, expected enforcement, memory."""
    meta = node.get("metadata") or {}
    name = meta.get("name")
    kubelet = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
    record = {
        "name": name,
        "kubelet_version": kubelet,
        "major": None,
        "minor": None,
        "patch": None,
        "tier": None,
        "feature_gates": {},
        "feature_gates_source": "not read",
        "expected_enforcement": None,
        "allocatable_memory_bytes": node_memory(node, "allocatable"),
        "memory_capacity_bytes": node_memory(node, "capacity"),
        "labels": meta.get("labels") or {},
    }
    try:
        parsed = versions.parse_version(kubelet, "kubelet version of node %s" % name)
    except ValueError as exc:
        record["error"] = str(exc)
        return record
    record.update(major=parsed[0], minor=parsed[1], patch=parsed[2], tier=versions.tier(parsed))
    gates, source = gates_and_source or (None, "default for the kubelet version (configz not requested)")
    if gates is None:
        record["feature_gates_source"] = source
    elif versions.FEATURE_GATE in gates:
        record["feature_gates"] = {versions.FEATURE_GATE: gates[versions.FEATURE_GATE]}
        record["feature_gates_source"] = "configz"
    else:
        record["feature_gates_source"] = "configz (gate not set: default for the kubelet version)"
    record["expected_enforcement"] = versions.expected_enforcement(parsed, record["feature_gates"])
    return record


def _count(nodes, key):
    out = {}
    for node in nodes:
        if node.get("tier"):
            out[node[key]] = out.get(node[key], 0) + 1
    return out


def run_cluster_info(kube, params):
    """cluster_info: the module result."""
    start = kube.calls
    try:
        version = kube.server_version()
        items = kube.get("/api/v1/nodes", verb="list", resource="nodes").get("items") or []
        gates = _read_all_gates(kube, [n["metadata"]["name"] for n in items]) if params.get("feature_gates", True) else {}
    except ShmfixError as err:
        raise err.with_result(api_calls=kube.calls - start)
    try:
        server = versions.parse_version(version, "server version")
    except ValueError:
        server = (None, None, None)
    nodes = [node_record(node, gates.get(node["metadata"]["name"])) for node in items]
    return {
        "changed": False,
        "server_version": {"git_version": version.get("gitVersion"), "major": server[0], "minor": server[1], "patch": server[2]},
        "nodes": nodes,
        "tiers": _count(nodes, "tier"),
        "enforcement": _count(nodes, "expected_enforcement"),
        "api_calls": kube.calls - start,
    }
