#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: shm_df_info
short_description: Measure /dev/shm from inside running Kubernetes pods
version_added: 0.1.0
description:
  - Runs C(df -Pk /dev/shm) in the running containers of the selected pods (through the API server's exec, with
    bounded parallelism) and returns the size, used and available bytes in RV(shm_df), plain data about the
    cluster's pods (this module was called C(shm_df_info) and returned C(ansible_facts.shm_df) before 0.2.0;
    the old name is a deprecated redirect).
  - Where exec is impossible (no C(df) in the image, exec forbidden), the figures of a memory-backed C(emptyDir)
    mounted at C(/dev/shm) are read from the kubelet's C(/stats/summary) through the API server's node proxy
    (method C(kubelet_stats)). Otherwise the method is C(unavailable) and C(reason) says why.
  - Only running pods that are not terminating are measured.
  - With O(impersonate_user) or O(impersonate_groups) no exec is made (the kubernetes client's websocket
    transport does not send the impersonation headers, so the exec would run with the credentials' own rights);
    the figures come from the kubelet's stats as above.
author:
  - shmfix.k8s developers (@shmfix)
extends_documentation_fragment:
  - shmfix.k8s.attributes.read_only
  - shmfix.k8s.auth
options:
  namespace:
    description:
      - Namespace of the pods. Required with O(owner) or O(pods); without it pods of every namespace are selected
        by O(label_selector).
    type: str
  label_selector:
    description:
      - Label selector of the pods, for example C(app=web).
    type: str
  owner:
    description:
      - Measure the pods of this workload (its C(spec.selector); the pods of its Jobs for a CronJob).
    type: dict
    suboptions:
      kind:
        description: Kind of the workload, for example C(Deployment).
        type: str
        required: true
      name:
        description: Name of the workload.
        type: str
        required: true
      api_version:
        description: API version, needed only for custom resources.
        type: str
      plural:
        description: Resource name (plural), needed only for custom resources.
        type: str
  pods:
    description:
      - Names of the pods to measure.
    type: list
    elements: str
  workloads:
    description:
      - Measure the pods of each of these workloads in one run (one list of pods per namespace and one list per
        kind and namespace, however many workloads), instead of one run per workload with O(owner). Each entry
        of RV(shm_df) then names its RV(shm_df[].workload).
      - A workload whose pods cannot be found (missing, no selector, a list forbidden) has one entry with
        method C(unavailable) and the reason; the others are measured. An empty list measures nothing.
      - Mutually exclusive with O(owner), O(pods) and O(label_selector).
    type: list
    elements: dict
    suboptions:
      kind:
        description: Kind of the workload, for example C(Deployment); C(Pod) for a bare pod.
        type: str
        required: true
      name:
        description: Name of the workload.
        type: str
        required: true
      namespace:
        description: Namespace of the workload; default O(namespace).
        type: str
      pods:
        description: Measure only these pods of the workload (by name), for example the new pods of a rollout.
        type: list
        elements: str
      api_version:
        description: API version, needed only for custom resources.
        type: str
      plural:
        description: Resource name (plural), needed only for custom resources.
        type: str
  container:
    description:
      - Measure only this container. Default is every running regular container.
    type: str
  parallelism:
    description:
      - How many execs run at the same time.
    type: int
    default: 8
  timeout:
    description:
      - Seconds an exec may take.
    type: int
    default: 30
attributes:
  facts:
    support: full
    description: Returns the fact C(shm_df).
requirements:
  - kubernetes (Python client)
seealso:
  - module: shmfix.k8s.shm_patch
"""

EXAMPLES = r"""
- name: Measure /dev/shm in the pods of a Deployment
  shmfix.k8s.shm_df_info:
    namespace: ml
    owner:
      kind: Deployment
      name: trainer

- name: Measure the pods of a whole wave of workloads in one run
  shmfix.k8s.shm_df_info:
    workloads:
      - {kind: Deployment, namespace: ml, name: trainer}
      - {kind: StatefulSet, namespace: ml, name: db, pods: [db-0]}

- name: Check that every pod got 256Mi
  ansible.builtin.assert:
    that:
      - shm_df | length > 0
      - shm_df | map(attribute='size_bytes') | unique == [268435456]
"""

RETURN = r"""
shm_df:
  description:
    - One entry per measured container.
    - C(method) is C(exec), C(kubelet_stats) or C(unavailable); C(reason) says why exec was not used.
  returned: always
  type: list
  elements: dict
  sample:
    - namespace: ml
      pod: trainer-7d9c6b9f-x2x4q
      container: trainer
      node: node-a
      size_bytes: 268435456
      used_bytes: 0
      available_bytes: 268435456
      filesystem: tmpfs
      method: exec
      reason: ""
  contains:
    workload:
      description: The entry of O(workloads) whose pod this is ({kind, namespace, name}).
      returned: with O(workloads)
      type: dict
api_calls:
  description: Number of Kubernetes API requests the module made (lists, execs, kubelet stats reads).
  returned: always
  type: int
  sample: 5
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.dfexec import run_df_info
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

OWNER_OPTIONS = dict(
    kind=dict(type="str", required=True),
    name=dict(type="str", required=True),
    api_version=dict(type="str"),
    plural=dict(type="str"),
)

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(
    namespace=dict(type="str"),
    label_selector=dict(type="str"),
    owner=dict(type="dict", options=copy.deepcopy(OWNER_OPTIONS)),
    pods=dict(type="list", elements="str"),
    workloads=dict(
        type="list", elements="dict", options=dict(copy.deepcopy(OWNER_OPTIONS), namespace=dict(type="str"), pods=dict(type="list", elements="str"))
    ),
    container=dict(type="str"),
    parallelism=dict(type="int", default=8),
    timeout=dict(type="int", default=30),
)


def main():
    module = ShmfixModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("workloads", "owner"), ("workloads", "pods"), ("workloads", "label_selector")],
        supports_check_mode=True,
    )
    try:
        result = run_df_info(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
