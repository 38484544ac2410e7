# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cluster_info: server and kubelet versions, SizeMemoryBackedVolumes tier and enforcement per node.

Feature gates are read from each kubelet's /configz through the API server's node proxy
(`/api/v1/nodes/<node>/proxy/configz`, needs `get` on `nodes/proxy`); when that is not
allowed the default for the kubelet version is assumed and `feature_gates_source` says so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.shmfix.k8s.plugins.module_utils import versions
from ansible_collections.shmfix.k8s.plugins.module_utils.client import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes

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


def _bytes(value, what):
    if not value:
        return None
    try:
        return parse_bytes(value, what, allow_zero=True)
    except ValueError:
        return None


def run_cluster_info(kube, read_gates=True):
    start = kube.calls
    version = kube.server_version()
    try:
        server = versions.parse_version(version, "server version")
    except ValueError:
        server = (None, None, None)
    nodes_data = kube.get("/api/v1/nodes", verb="list", resource="nodes")
    items = nodes_data.get("items") or []

    gates_by_node = {}
    if read_gates and items:
        names = [n["metadata"]["name"] for n in items]
        with ThreadPoolExecutor(max_workers=min(CONFIGZ_PARALLELISM, len(names))) as pool:
            for name, res in zip(names, pool.map(lambda n: read_configz(kube, n), names)):
                gates_by_node[name] = res

    nodes = []
    tiers = {}
    enforcement = {}
    for node in items:
        meta = node.get("metadata") or {}
        status = node.get("status") or {}
        name = meta.get("name")
        kubelet = (status.get("nodeInfo") or {}).get("kubeletVersion")
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
            "allocatable_memory_bytes": _bytes((status.get("allocatable") or {}).get("memory"), "allocatable memory"),
            "memory_capacity_bytes": _bytes((status.get("capacity") or {}).get("memory"), "memory capacity"),
            "labels": meta.get("labels") or {},
        }
        try:
            parsed = versions.parse_version(kubelet, "kubelet version of node %s" % name)
        except ValueError as exc:
            record["error"] = str(exc)
            nodes.append(record)
            continue
        record.update(major=parsed[0], minor=parsed[1], patch=parsed[2], tier=versions.tier(parsed))
        gates, source = gates_by_node.get(name, (None, "default for the kubelet version (configz not requested)"))
        if gates is not None:
            if versions.FEATURE_GATE in gates:
                record["feature_gates"] = {versions.FEATURE_GATE: gates[versions.FEATURE_GATE]}
                record["feature_gates_source"] = "configz"
            else:
                record["feature_gates_source"] = "configz (gate not set: default for the kubelet version)"
        else:
            record["feature_gates_source"] = source
        record["expected_enforcement"] = versions.expected_enforcement(parsed, record["feature_gates"])
        tiers[record["tier"]] = tiers.get(record["tier"], 0) + 1
        enforcement[record["expected_enforcement"]] = enforcement.get(record["expected_enforcement"], 0) + 1
        nodes.append(record)

    return {
        "server_version": {
            "git_version": version.get("gitVersion"),
            "major": server[0],
            "minor": server[1],
            "patch": server[2],
        },
        "nodes": nodes,
        "tiers": tiers,
        "enforcement": enforcement,
        "api_calls": kube.calls - start,
    }
