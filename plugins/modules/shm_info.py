#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: shm_info
short_description: Audit the /dev/shm of every selected Kubernetes workload
version_added: 0.1.0
description:
  - Lists the selected workloads of a cluster (one list call per kind) and reports, for each, how its
    containers get C(/dev/shm) (the runtime's 64 MiB default, an unbounded or sized memory C(emptyDir),
    a disk-backed volume, C(hostIPC), a C(hostPath)), the tmpfs size the pods get, and findings.
  - The effective size is the smallest of the node's allocatable memory (when nodes can be read), the pod's
    memory limit (pod-level, or when every container declares one) and the volume's C(sizeLimit).
  - Jobs and bare Pods are reported with state C(immutable) and their owner; they are never changed.
  - Read-only. Never changes anything.
author:
  - shmfix.k8s developers (@shmfix)
extends_documentation_fragment:
  - shmfix.k8s.attributes.read_only
  - shmfix.k8s.auth
  - shmfix.k8s.selection
requirements:
  - kubernetes (Python client)
seealso:
  - module: shmfix.k8s.shm_patch
  - module: shmfix.k8s.shm_df_info
"""

EXAMPLES = r"""
- name: Audit /dev/shm in every namespace but the system ones
  shmfix.k8s.shm_info:
    kubeconfig: ~/.kube/config
  register: audit

- name: Show the workloads stuck on the runtime's 64 MiB default
  ansible.builtin.debug:
    msg: "{{ audit.workloads | selectattr('state', 'equalto', 'runtime_default') | map(attribute='name') | list }}"

- name: Audit two namespaces, Deployments and Argo Rollouts only
  shmfix.k8s.shm_info:
    context: prod-eu
    namespaces: [shop, ml]
    kinds: [Deployment]
    extra_kinds:
      - api_version: argoproj.io/v1alpha1
        kind: Rollout
        template_path: spec.template
"""

RETURN = r"""
workloads:
  description: One record per selected workload (see docs/module-contract.md).
  returned: success
  type: list
  elements: dict
  sample:
    - kind: Deployment
      api_version: apps/v1
      namespace: ml
      name: trainer
      uid: 5b0c0f0e-8a4e-4c5e-9a53-4d0f5d7a1c11
      resource_version: "48213"
      owner: null
      managed_by: null
      state: runtime_default
      containers:
        - name: trainer
          state: runtime_default
          effective_bytes: 67108864
          mount: null
      volume: null
      pod_memory_limit_bytes: 4294967296
      effective_bytes: 67108864
      effective_note: "no volume at /dev/shm: the container runtime's 64 MiB tmpfs"
      findings:
        - severity: warning
          code: runtime_default
          message: "/dev/shm is the runtime default of 64 MiB"
summary:
  description: Counts of workloads per state and of findings per severity.
  returned: success
  type: dict
  sample: {total: 12, by_state: {runtime_default: 7, sized: 3, immutable: 2}, findings: {warning: 7, info: 2}}
node_allocatable_bytes:
  description: Allocatable memory of every node in bytes; empty when nodes cannot be read.
  returned: success
  type: dict
  sample: {node-a: 16508395520}
api_calls:
  description: Number of Kubernetes API requests the module made.
  returned: always
  type: int
  sample: 9
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_ARG_SPEC, SELECTION_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.records import run_info

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(copy.deepcopy(SELECTION_ARG_SPEC))


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run_info(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
