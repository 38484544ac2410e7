#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rollout_status
short_description: Wait for the rollouts of several workloads and list their new pods
version_added: 0.1.0
author:
  - shmfix.k8s developers (@shmfix)
description:
  - Waits, concurrently, until each Deployment, StatefulSet and DaemonSet has rolled out its current pod template,
    with the rules of C(kubectl rollout status), and returns the names of the live pods of the current revision.
  - A rollout is C(complete) only when the controller says so and then the new pods stay Ready, with no restart, for
    O(soak) seconds (a crash-looping container is Ready for a moment after each start, long enough for the
    controller to call the rollout done and scale the old pods away).
  - A rollout fails when its Deployment exceeds its progress deadline, when a new pod does not survive the soak, or
    (with O(fail_fast)) when a pod of the new revision is stuck (CrashLoopBackOff, image pull errors, OOM-killed,
    unschedulable); it times out after O(wait_timeout).
  - With O(wait=false) each workload is looked at once and reported with C(healthy) and
    C(problems), whether all its desired replicas are available and none of its pods is stuck.
  - Kinds without a rollout (ReplicaSet, ReplicationController, CronJob, Job, Pod) are reported C(not_applicable)
    with what that means for their pods. A paused Deployment or an C(OnDelete) update strategy is reported C(manual).
  - Read-only; never reports a change.
extends_documentation_fragment:
  - shmfix.k8s.auth
attributes:
  check_mode:
    support: full
    description: Runs the same in check mode; writes are not made.
  diff_mode:
    support: none
    description: No diff is returned.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  workloads:
    description: Workloads to wait for.
    type: list
    elements: dict
    required: true
    suboptions:
      kind:
        description: Kind of the workload.
        type: str
        required: true
      namespace:
        description: Namespace of the workload.
        type: str
        required: true
      name:
        description: Name of the workload.
        type: str
        required: true
  wait:
    description:
      - Wait for the rollouts. V(false) looks at each workload once and reports its state (C(progressing) included)
        and its health.
    type: bool
    default: true
  soak:
    description:
      - Seconds the new pods must stay Ready, with no restart, after the controller reports the rollout complete.
        V(0) trusts the controller, as C(kubectl rollout status) does.
    type: int
    default: 10
  wait_timeout:
    description: Seconds to wait for all rollouts together (kubernetes.core's name; O(timeout) is the old one).
    type: int
    default: 300
    aliases: [timeout]
  wait_sleep:
    description: Seconds between two polls (kubernetes.core's name; O(poll_interval) is the old one).
    type: int
    default: 2
    aliases: [poll_interval]
  fail_fast:
    description: Fail a rollout as soon as a pod of the new revision is stuck, instead of waiting for the timeout.
    type: bool
    default: true
  fail_fast_after:
    description: Seconds after which O(fail_fast) starts looking at the new pods.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Wait for the patched workloads to roll out
  shmfix.k8s.rollout_status:
    workloads:
      - kind: Deployment
        namespace: shop
        name: web
      - kind: StatefulSet
        namespace: shop
        name: db
    timeout: 300
  register: rollouts
"""

RETURN = r"""
results:
  description:
    - One entry per workload, in the order given. C(status) is C(complete), C(failed), C(timeout), C(manual) or
      C(not_applicable) (and C(progressing) with O(wait=false)).
    - With O(wait=false), also C(healthy) (bool) and C(problems) (list of str).
  returned: always
  type: list
  elements: dict
  sample:
    - kind: Deployment
      namespace: shop
      name: web
      status: complete
      message: successfully rolled out (2 replicas); the new pods stayed Ready with no restart for 10s
      pods: [web-7d9c8b6f5-abcde, web-7d9c8b6f5-fghij]
      elapsed_seconds: 14
failures:
  description: Number of workloads whose rollout failed or timed out.
  returned: always
  type: int
  sample: 0
api_calls:
  description: Number of API requests made.
  returned: always
  type: int
  sample: 12
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.rollout_waiter import run_rollout_status

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(
    workloads=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(kind=dict(type="str", required=True), namespace=dict(type="str", required=True), name=dict(type="str", required=True)),
    ),
    wait=dict(type="bool", default=True),
    soak=dict(type="int", default=10),
    wait_timeout=dict(type="int", default=300, aliases=["timeout"]),
    wait_sleep=dict(type="int", default=2, aliases=["poll_interval"]),
    fail_fast=dict(type="bool", default=True),
    fail_fast_after=dict(type="int", default=20),
)


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run_rollout_status(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
