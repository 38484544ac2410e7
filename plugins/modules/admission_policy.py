#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: admission_policy
short_description: Install or remove the admission policy that gives new pods a sized /dev/shm
version_added: 0.2.0
author:
  - shmfix.k8s developers (@shmfix)
description:
  - Turns the size policy of M(shmfix.k8s.shm_patch) into a Kubernetes admission policy, with no controller or webhook to run.
  - Where the API server serves C(MutatingAdmissionPolicy) (C(admissionregistration.k8s.io/v1) from 1.36; C(v1beta1) in 1.34-1.35 and C(v1alpha1)
    in 1.32-1.33 only with the feature gate C(MutatingAdmissionPolicy) and C(--runtime-config)), installs a C(MutatingAdmissionPolicy) and its binding.
    On every new Pod without a C(/dev/shm) it adds an C(emptyDir) with C(medium=Memory) and the C(sizeLimit) the size options give, mounted at C(/dev/shm)
    in every regular container, and the annotation C(shmfix.io/admitted-by). An existing C(/dev/shm) volume is handled as O(existing) says.
    Pods are mutated, not their owners, so GitOps tools see no drift in the objects they manage.
  - The size is computed at admission, in CEL, from the pod itself - the C(shmfix.io/size-limit) annotation, O(size_limit), or O(size_ratio) of the pod
    memory limit kept within O(min_size) and O(max_size) (1Gi without a limit) - exactly as M(shmfix.k8s.shm_patch) computes it. A pod with the annotation
    C(shmfix.io/skip) (anything but false, no, 0, off), a hostIPC pod, and a pod with a bad C(shmfix.io/size-limit) are left alone.
  - Where it is not served, installs a C(ValidatingAdmissionPolicy) (C(admissionregistration.k8s.io/v1), Kubernetes 1.30+) and its binding with
    O(validation_actions) (default C(Warn) and C(Audit)) on the workload kinds (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
    CronJob, Job, Pod) that shmfix would change. C(kubectl apply) of such a workload then prints a warning naming the size and the fix, and the audit log
    records it. Objects owned by a controller are not warned about (their owner is). Nothing is denied unless O(validation_actions) has C(Deny).
  - Both policies use C(failurePolicy=Ignore), so an error in the policy never blocks a pod, and the mutating one C(reinvocationPolicy=IfNeeded), so a pod
    that a later webhook changes (a sidecar injector, new memory limits) is looked at again; the mutation is idempotent.
  - The objects carry the labels C(app.kubernetes.io/managed-by=shmfix) and C(shmfix.io/admission=<name>) and the annotation C(shmfix.io/size-policy) (the
    options they encode). O(state=absent) deletes exactly the objects carrying these labels; an object of the same name without them is never touched.
extends_documentation_fragment:
  - shmfix.k8s.auth
attributes:
  check_mode:
    support: full
    description: Applies and deletes with C(dryRun=All); the API server validates and compiles the policy, nothing is persisted.
  diff_mode:
    support: full
    description: Shows each policy object before and after (as the API server returns it from the dry-run or the write).
  idempotent:
    support: full
    description: A second run with the same options reports C(changed=false) (the server-side apply changes nothing).
options:
  state:
    description: Install (V(present)) or remove (V(absent)) the policy and its binding.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the policy and of its binding.
    type: str
    default: shmfix-shm
  mode:
    description:
      - V(auto) installs the C(MutatingAdmissionPolicy) where served, else the C(ValidatingAdmissionPolicy).
      - V(mutating) fails where C(MutatingAdmissionPolicy) is not served; V(validating) always installs the warning policy.
      - With V(state=present), shmfix's objects of the other kind (left by an earlier run, before an upgrade) are deleted.
    type: str
    choices: [auto, mutating, validating]
    default: auto
  validation_actions:
    description:
      - C(validationActions) of the C(ValidatingAdmissionPolicyBinding). C(Deny) refuses the workload; C(Deny) and C(Warn) cannot be combined.
    type: list
    elements: str
    choices: [Warn, Audit, Deny]
    default: [Warn, Audit]
  namespaces:
    description: Only pods (workloads) in these namespaces; default every namespace.
    type: list
    elements: str
  exclude_namespaces:
    description: Namespaces never matched (by the label C(kubernetes.io/metadata.name)).
    type: list
    elements: str
    default: [kube-system, kube-public, kube-node-lease]
  label_selector:
    description:
      - Only objects with these labels, a label selector such as C(app=web,tier!=cache) or C(gpu in (a100,h100)), turned into the binding's C(objectSelector).
    type: str
  size_limit:
    description:
      - C(sizeLimit) of the volume, for example C(2Gi). Mutually exclusive with O(size_ratio).
      - The annotation C(shmfix.io/size-limit) on a pod overrides it.
    type: str
  size_ratio:
    description:
      - Size as a fraction (0 < ratio <= 1) of the pod's memory limit, computed at admission.
      - 0.5 when neither O(size_limit) nor O(size_ratio) is given.
    type: float
  min_size:
    description: Smallest computed size. Default 64Mi (the runtime's default).
    type: str
  max_size:
    description: Largest computed size.
    type: str
  existing:
    description:
      - What to do with a new pod that already mounts a volume at C(/dev/shm), as in M(shmfix.k8s.shm_patch).
      - V(keep) leaves it; V(grow) raises a smaller C(sizeLimit) and bounds a C(medium=Memory) emptyDir without C(sizeLimit) when the pod has no memory
        limit; V(replace) sets exactly the computed size.
    type: str
    choices: [keep, grow, replace]
    default: grow
  volume_name:
    description: Name of the volume added (C(-1), C(-2), ... appended when a pod already has a different volume of that name).
    type: str
    default: dshm
requirements:
  - kubernetes (Python client)
seealso:
  - module: shmfix.k8s.admission_info
  - module: shmfix.k8s.shm_patch
"""

EXAMPLES = r"""
- name: Give every new pod half its memory limit as /dev/shm, 256Mi to 8Gi (warn where the cluster cannot mutate)
  shmfix.k8s.admission_policy:
    size_ratio: 0.5
    min_size: 256Mi
    max_size: 8Gi

- name: Preview the policy objects without writing
  shmfix.k8s.admission_policy:
    namespaces: [ml]
  check_mode: true
  diff: true

- name: Refuse workloads without a sized /dev/shm in ml
  shmfix.k8s.admission_policy:
    mode: validating
    namespaces: [ml]
    validation_actions: [Deny, Audit]

- name: Remove what shmfix installed
  shmfix.k8s.admission_policy:
    state: absent
"""

RETURN = r"""
served:
  description: What the API server serves, from discovery.
  returned: always
  type: dict
  sample: {mutating: admissionregistration.k8s.io/v1beta1, validating: admissionregistration.k8s.io/v1}
objects:
  description: One entry per object applied or deleted, with C(action) created, configured, unchanged or deleted (check mode - would be).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: MutatingAdmissionPolicy, api_version: admissionregistration.k8s.io/v1beta1, name: shmfix-shm, action: created}
active:
  description:
    - The protection shmfix's objects give after the run - C(protection) (mutating, validating, none), C(api_version), C(label) (what the fleet report
      shows, for example C(mutating v1beta1) or C(validating Warn,Audit)), C(validation_actions), C(size_policy) (the options the policy encodes).
  returned: success
  type: dict
  sample:
    {protection: mutating, api_version: admissionregistration.k8s.io/v1beta1, label: mutating v1beta1, validation_actions: [], size_policy: {existing: grow}}
available:
  description: What O(mode=auto) installs on this cluster - C(mutating vN), C(validating Warn,Audit) or C(none).
  returned: success
  type: str
  sample: mutating v1beta1
diff:
  description: Before and after of each created, configured or deleted object.
  returned: when diff mode is on
  type: list
  elements: dict
api_calls:
  description: Number of API requests made.
  returned: always
  type: int
  sample: 7
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.admission import run_admission
from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import (
    ADMISSION_ARG_SPEC,
    AUTH_ARG_SPEC,
    DEFAULT_EXCLUDE_NAMESPACES,
    SIZE_POLICY_ARG_SPEC,
    SIZE_POLICY_MUTUALLY_EXCLUSIVE,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(copy.deepcopy(SIZE_POLICY_ARG_SPEC))
argument_spec.update(copy.deepcopy(ADMISSION_ARG_SPEC))
argument_spec.update(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    mode=dict(type="str", choices=["auto", "mutating", "validating"], default="auto"),
    validation_actions=dict(type="list", elements="str", choices=["Warn", "Audit", "Deny"], default=["Warn", "Audit"]),
    namespaces=dict(type="list", elements="str"),
    exclude_namespaces=dict(type="list", elements="str", default=list(DEFAULT_EXCLUDE_NAMESPACES)),
    label_selector=dict(type="str"),
)


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True, mutually_exclusive=SIZE_POLICY_MUTUALLY_EXCLUSIVE)
    try:
        result = run_admission(kube_from_params(module.params), module.params, check_mode=module.check_mode, want_diff=module._diff)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
