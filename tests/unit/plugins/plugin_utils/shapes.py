# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shapes the filters receive, as the modules and roles record them: cluster_info's result and its nodes,
version_check_result.nodes, a registered run of shm_df_info."""

from ansible_collections.shmfix.k8s.plugins.plugin_utils.remediation import workload_ref

NODE_MEM = 25276059648  # memory capacity of a node of the embedded cluster
NODES = [
    {"name": "n-sized", "expected_enforcement": "sized", "memory_capacity_bytes": NODE_MEM},
    {"name": "n-evict", "expected_enforcement": "eviction", "memory_capacity_bytes": NODE_MEM},
]


def df_run(entries_by_workload):
    """What one shm_df_info run with ``workloads`` registers: [(workload, [df entries])], each entry naming its workload."""
    return {"changed": False, "shm_df": [dict(e, workload=workload_ref(item)) for item, entries in entries_by_workload for e in entries], "api_calls": 2}


def cluster_info(nodes, server="v1.34.4"):
    """cluster_info's result with these nodes."""
    return {"server_version": {"git_version": server}, "nodes": nodes}


def node(name, version, tier, expected, source="configz", labels=None):
    """One node of cluster_info's result."""
    return {
        "name": name,
        "kubelet_version": version,
        "tier": tier,
        "expected_enforcement": expected,
        "feature_gates_source": source,
        "labels": labels or {"kubernetes.io/hostname": name},
        "memory_capacity_bytes": NODE_MEM,
    }
