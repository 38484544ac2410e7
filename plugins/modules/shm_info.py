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
  - With O(evidence) (the default), each record carries C(evidence) - whether its pods hit the /dev/shm limit, from data the cluster
    already has - and its level, C(evidence), C(likely) or C(none). Evidence is a container whose last termination was
    SIGBUS (exit code 135, the "Bus error" of a write through C(mmap) to a full tmpfs) or an OOM kill, a running pod whose
    C(df /dev/shm) is at or above O(evidence_df_threshold) percent of its size (O(evidence_df)), or "No space left on device" /
    "Bus error" in the tail of a container's log (O(evidence_logs)). An image of software known to use shared memory
    (PostgreSQL, Oracle Database, Chrome/Selenium, PyTorch, Ray, vLLM) makes a workload C(likely), never evidence.
  - Read-only. Never changes anything.
author:
  - shmfix.k8s developers (@shmfix)
extends_documentation_fragment:
  - shmfix.k8s.attributes.read_only
  - shmfix.k8s.auth
  - shmfix.k8s.selection
options:
  evidence:
    description:
      - Read the pods of the selected workloads and report SIGBUS and OOM-killed containers as evidence, and images known to need
        shared memory as C(likely).
      - One pod list per namespace of the selection (all namespaces in one call without O(namespaces)); none when the Pod kind is
        listed anyway (O(kinds) has C(Pod) and no O(label_selector)). V(false) reads images only.
    type: bool
    default: true
  evidence_df:
    description:
      - Also run C(df -Pk /dev/shm) in one container per distinct /dev/shm of every running pod of the selected workloads (exec,
        else the kubelet's volume stats, as M(shmfix.k8s.shm_df_info)); a usage at or above O(evidence_df_threshold) percent is evidence.
      - Off by default because it execs in pods (RBAC C(pods/exec)).
    type: bool
    default: false
  evidence_df_threshold:
    description:
      - Percent of /dev/shm used that counts as evidence, from 1 to 100. The bound is the tmpfs size, or the volume's C(sizeLimit)
        where it is smaller (a kubelet that enforces sizeLimit by eviction shows half the node's RAM).
    type: int
    default: 80
  evidence_logs:
    description:
      - Also read the last O(evidence_log_lines) lines of every container's log (and of its previous run after a restart) and count
        "No space left on device" or "Bus error" as evidence. Off by default (one request per container, RBAC C(pods/log)).
    type: bool
    default: false
  evidence_log_lines:
    description: Lines of each log tail read with O(evidence_logs).
    type: int
    default: 200
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

- name: Find the workloads whose pods really hit the 64 MiB wall (df and logs too)
  shmfix.k8s.shm_info:
    namespaces: [ml]
    evidence_df: true
    evidence_logs: true
  register: evidence

- name: Show why
  ansible.builtin.debug:
    msg: "{{ evidence.workloads | selectattr('evidence.level', 'equalto', 'evidence') | map(attribute='evidence.items') | flatten | map(attribute='message') }}"

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
      evidence:
        level: evidence
        items:
          - kind: sigbus
            pod: trainer-7d9c6b9f-x2x4q
            container: trainer
            exit_code: 135
            finished_at: "2026-06-01T10:00:00Z"
            restarts: 3
            message: "pod trainer-7d9c6b9f-x2x4q container trainer was killed by SIGBUS (exit code 135, 'Bus error') ..."
        likely:
          - {container: trainer, image: "nvcr.io/nvidia/pytorch:24.05-py3", software: PyTorch}
        checked: [images, pod statuses]
        pods: 1
        note: ""
  contains:
    evidence:
      description:
        - Whether the workload's pods hit the /dev/shm limit. C(level) is C(evidence) (C(items) is not empty), C(likely) (no evidence, but
          C(likely) names a container running software known to use shared memory) or C(none).
        - Each item has C(kind) (C(sigbus), C(oom_killed), C(df_usage), C(no_space_log)), C(pod), C(container), C(message), and by kind
          C(exit_code), C(finished_at), C(restarts); C(shm_used_bytes), C(shm_size_bytes) (an OOM kill, where df read /dev/shm);
          C(used_bytes), C(size_bytes), C(percent), C(threshold) (df); C(previous), C(count), C(line) (logs).
        - C(checked) lists what was read (C(images), C(pod statuses), the df threshold, the log tail); C(pods) how many pods were looked at;
          C(note) why pod statuses could not be read.
      returned: always
      type: dict
summary:
  description: Counts of workloads per state, of findings per severity, and per evidence level.
  returned: success
  type: dict
  sample: {total: 12, by_state: {runtime_default: 7, sized: 3, immutable: 2}, findings: {warning: 7, info: 2}, evidence: {evidence: 1, likely: 2, none: 9}}
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
argument_spec.update(
    evidence=dict(type="bool", default=True),
    evidence_df=dict(type="bool", default=False),
    evidence_df_threshold=dict(type="int", default=80),
    evidence_logs=dict(type="bool", default=False),
    evidence_log_lines=dict(type="int", default=200),
)


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run_info(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
