# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nodes a workload's pods may land on: their memory and how their kubelets size a memory emptyDir.

``read_nodes(kube)`` makes one list call; ``node_context(nodes, pod_spec)`` is pure and gives
assess() the smallest candidate node's allocatable and capacity memory and its enforcement mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import versions
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes


def _node_mode(node):
    """Expected enforcement of a node from its kubelet version (gate default assumed)."""
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
    if not version:
        return None
    try:
        return versions.expected_enforcement(versions.parse_version(version), None)
    except ValueError:
        return None


def node_memory(node, field):
    """A node's status.<field>.memory in bytes, None when absent or unreadable."""
    mem = ((node.get("status") or {}).get(field) or {}).get("memory")
    if not mem:
        return None
    try:
        return parse_bytes(mem, "node %s %s memory" % (node["metadata"]["name"], field))
    except ValueError:
        return None


def read_nodes(kube):
    """One list of nodes -> {'allocatable': {node: bytes}, 'capacity': {...}, 'labels': {...}, 'mode': {...}, 'declared': {...}, 'error': str|None}.

    ``declared``: each node's status.declaredFeatures (NodeDeclaredFeatures, GA in 1.37), [] when it has none.
    """
    out = dict(allocatable={}, capacity={}, labels={}, mode={}, declared={}, error=None)
    try:
        data = kube.get("/api/v1/nodes", verb="list", resource="nodes")
    except ShmfixError as err:
        if err.status in (401, 403):
            out["error"] = err.msg
            return out
        raise
    for node in data.get("items") or []:
        name = node["metadata"]["name"]
        for key in ("allocatable", "capacity"):
            value = node_memory(node, key)
            if value is not None:
                out[key][name] = value
        out["labels"][name] = (node.get("metadata") or {}).get("labels") or {}
        out["mode"][name] = _node_mode(node)
        out["declared"][name] = list((node.get("status") or {}).get("declaredFeatures") or [])
    return out


def _candidate_nodes(nodes, pod_spec):
    """Nodes a pod could land on, judged by its plain nodeSelector only."""
    selector = (pod_spec or {}).get("nodeSelector") or {}
    if pod_spec and pod_spec.get("nodeName") and pod_spec["nodeName"] in nodes["labels"]:
        return [pod_spec["nodeName"]]
    return [n for n, labels in nodes["labels"].items() if all(labels.get(k) == v for k, v in selector.items())]


def node_context(nodes, pod_spec):
    """(allocatable_bytes, capacity_bytes, node_mode) for assess(): the smallest candidate node; mode when all agree."""
    candidates = _candidate_nodes(nodes, pod_spec)
    alloc = [nodes["allocatable"][n] for n in candidates if n in nodes["allocatable"]]
    cap = [nodes["capacity"][n] for n in candidates if n in nodes["capacity"]]
    modes = {nodes["mode"].get(n) for n in candidates}
    mode = modes.pop() if len(modes) == 1 else None
    return (min(alloc) if alloc else None, min(cap) if cap else None, mode)
