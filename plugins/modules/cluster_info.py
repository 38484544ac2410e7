#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_info
short_description: Kubernetes server and kubelet versions, and how each node sizes memory-backed volumes
version_added: 0.1.0
description:
  - Reads the API server version and every node's kubelet version, and places each node in a
    C(SizeMemoryBackedVolumes) tier - V(unsized) (< 1.20), V(gated) (1.20-1.21, alpha), V(default_on) (1.22-1.31, beta)
    or V(ga) (>= 1.32).
  - Reads each kubelet's feature gates from C(/configz) through the API server's node proxy (needs C(get) on
    C(nodes/proxy)); when not allowed, the default for the version is assumed and C(feature_gates_source) says so.
  - C(expected_enforcement) tells how a memory C(emptyDir) C(sizeLimit) is enforced on the node - V(sized) (the tmpfs
    has that size, writes past it fail with ENOSPC) or V(eviction) (the tmpfs is half of the node's RAM, the pod is
    evicted when it uses more than the limit).
author:
  - shmfix.k8s developers (@shmfix)
extends_documentation_fragment:
  - shmfix.k8s.attributes.read_only
  - shmfix.k8s.auth
options:
  feature_gates:
    description:
      - Read the kubelets' feature gates from C(/configz) (one request per node).
    type: bool
    default: true
requirements:
  - kubernetes (Python client)
seealso:
  - module: shmfix.k8s.shm_info
"""

EXAMPLES = r"""
- name: Read versions and tiers
  shmfix.k8s.cluster_info:
    kubeconfig: ~/.kube/config
  register: cluster

- name: Fail when a node only enforces sizeLimit by eviction
  ansible.builtin.assert:
    that: cluster.nodes | selectattr('expected_enforcement', 'equalto', 'eviction') | list | length == 0
"""

RETURN = r"""
server_version:
  description: Version of the API server.
  returned: success
  type: dict
  sample: {git_version: v1.34.4, major: 1, minor: 34, patch: 4}
nodes:
  description: One entry per node.
  returned: success
  type: list
  elements: dict
  sample:
    - name: node-a
      kubelet_version: v1.31.14
      major: 1
      minor: 31
      patch: 14
      tier: default_on
      feature_gates: {SizeMemoryBackedVolumes: false}
      feature_gates_source: configz
      expected_enforcement: eviction
      allocatable_memory_bytes: 16508395520
      memory_capacity_bytes: 16708395520
      labels: {kubernetes.io/hostname: node-a}
tiers:
  description: Number of nodes per tier.
  returned: success
  type: dict
  sample: {ga: 1, default_on: 1}
enforcement:
  description: Number of nodes per expected enforcement.
  returned: success
  type: dict
  sample: {sized: 1, eviction: 1}
api_calls:
  description: Number of Kubernetes API requests the module made.
  returned: success
  type: int
  sample: 4
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.cluster import run_cluster_info
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(feature_gates=dict(type="bool", default=True))


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run_cluster_info(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
