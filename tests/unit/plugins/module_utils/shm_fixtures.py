# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real-shaped manifests of tests/fixtures/manifests and what the pure shm logic must say of each.

Shared by the tests of assessment, size_policy, plan, rollback and gitops.
"""

import os

import yaml
from ansible_collections.shmfix.k8s.plugins.module_utils import assessment, kinds
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes

MANIFESTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "manifests")
MI = 1024**2
GI = 1024**3
# a 16 GB node as the API reports it: capacity 16393236Ki, allocatable 15241236Ki
NODE_CAPACITY = 16393236 * 1024
NODE_ALLOCATABLE = 15241236 * 1024


# fixture -> expected assessment (node: allocatable 15241236Ki, mode sized) and policy results.
EXPECTED = {
    "postgresql-bitnami-statefulset": {
        "state": "unbounded_memory",
        "volume": "dshm",
        "pod_limit": (768 * MI, "containers"),
        "effective": 768 * MI,
        "codes": {"managed_by_helm", "memory_accounting"},
        "desired": (384 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "ray-head-kuberay-pod": {
        "state": "sized",
        "volume": "shared-mem",
        "pod_limit": (8 * GI, "containers"),
        "effective": 8 * GI,
        "codes": {"memory_accounting"},
        "desired": (4 * GI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "cronjob-batch-inference": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (6 * GI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (3 * GI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-init-sidecar": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (1408 * MI, "containers"),  # max(1Gi + 128Mi + sidecar 256Mi, init 64Mi, 256Mi)
        "effective": 64 * MI,
        # the native sidecar cloud-sql-proxy keeps the runtime's 64 MiB, also after a fix: said so
        "codes": {"runtime_default", "sidecars_without_mount"},
        "desired": (704 * MI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "daemonset-hostipc-mps": {
        "state": "host_ipc",
        "volume": None,
        "pod_limit": (None, None),
        "effective": None,
        "codes": {"host_ipc", "managed_by_helm"},
        "desired": (GI, "default_no_memory_limit"),
        "actions": {"keep": "skip", "grow": "skip", "replace": "skip"},
    },
    "deployment-configmap-named-dshm": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (2 * GI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (GI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-small-limit": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (128 * MI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default"},
        "desired": (64 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "add"},
    },
    "pod-level-resources": {
        "state": "sized",
        "volume": "dshm",
        "pod_limit": (2 * GI, "pod"),
        "effective": 2 * GI,
        "codes": {"size_limit_above_memory_limit", "containers_without_mount", "memory_accounting"},
        "desired": (GI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "deployment-triton-flux-helm": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (16 * GI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default", "managed_by_flux", "managed_by_helm"},
        "desired": (8 * GI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-argocd-gunicorn": {
        "state": "runtime_default",
        "volume": None,
        "pod_limit": (512 * MI, "containers"),
        "effective": 64 * MI,
        "codes": {"runtime_default", "managed_by_argocd"},
        "desired": (256 * MI, "default_ratio"),
        "actions": {"keep": "add", "grow": "add", "replace": "add"},
    },
    "deployment-selenium-chrome": {
        "state": "sized",
        "volume": "dshm",
        "pod_limit": (GI, "containers"),
        "effective": GI,
        "codes": {"managed_by_helm", "memory_accounting"},
        "desired": (512 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "resize"},
    },
    "statefulset-oracle-disk-shm": {
        "state": "disk_backed",
        "volume": "dshm",
        "pod_limit": (4 * GI, "containers"),
        "effective": None,
        "codes": {"disk_backed"},
        "desired": (2 * GI, "default_ratio"),
        "actions": {"keep": "none", "grow": "none", "replace": "replace"},
    },
    "deployment-pytorch-mixed-mounts": {
        "state": "sized",
        "volume": "dshm",
        "pod_limit": (32 * GI + 256 * MI, "containers"),
        "effective": 8 * GI,
        "codes": {"containers_without_mount"},
        "desired": (16512 * MI, "default_ratio"),
        "actions": {"keep": "none", "grow": "resize", "replace": "resize"},
    },
    "daemonset-hostpath-shm": {
        "state": "host_path",
        "volume": "host-shm",
        "pod_limit": (GI, "containers"),
        "effective": None,
        "codes": {"host_path"},
        "desired": (512 * MI, "default_ratio"),
        "actions": {"keep": "skip", "grow": "skip", "replace": "skip"},
    },
}
FIXTURES = sorted(EXPECTED)
MODES = ("keep", "grow", "replace")


def load(name):
    """(object, pod template metadata, pod spec) of a fixture manifest."""
    with open(os.path.join(MANIFESTS, name + ".yaml")) as f:
        obj = yaml.safe_load(f)
    path = kinds.builtin(obj["kind"]).pod_spec_keys()
    template = obj
    for key in path[:-1]:
        template = template[key]
    return obj, template.get("metadata") or {}, template[path[-1]]


def assess_fixture(name, **kwargs):
    obj, pod_meta, spec = load(name)
    kwargs.setdefault("node_allocatable_bytes", NODE_ALLOCATABLE)
    return assessment.assess(spec, parse=parse_bytes, pod_metadata=pod_meta, object_metadata=obj["metadata"], **kwargs)
