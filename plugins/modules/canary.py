#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: canary
short_description: Prove with canary pods how nodes enforce a memory emptyDir's sizeLimit
version_added: 0.1.0
author:
  - shmfix.k8s developers (@shmfix)
description:
  - Creates a labelled namespace that enforces the C(restricted) Pod Security level and, per probe, a canary pod
    that mounts a memory-backed C(emptyDir) with a C(sizeLimit) at C(/dev/shm).
  - Measures C(/dev/shm) with C(df) inside the canary, writes past the sizeLimit, and reports the outcome per probe.
    C(sized) when df shows the sizeLimit and the write fails with ENOSPC; C(evicted) when the kubelet evicts the pod with
    C(Usage of EmptyDir volume "dshm" exceeds the limit "<limit>".); C(not_enforced) when neither happens within
    O(wait_timeout); C(unexpected) or C(error) otherwise.
  - With O(state=absent) deletes the canary namespace (only a namespace labelled C(shmfix.io/canary=true)).
  - The probes run concurrently; an eviction typically takes 30 to 120 seconds (the eviction manager runs every
    10 seconds on volume statistics refreshed up to every minute).
extends_documentation_fragment:
  - shmfix.k8s.auth
attributes:
  check_mode:
    support: partial
    description: In check mode nothing is created or deleted.
    details: Every probe reports the outcome C(not_run); nothing is proven in check mode.
  diff_mode:
    support: none
    description: No diff is returned.
  idempotent:
    support: none
    description: O(state=present) creates new canary pods each time; pair it with O(state=absent) in an C(always) section.
options:
  state:
    description: Run the probes (V(present)) or delete the canary namespace (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  namespace:
    description:
      - Name of the canary namespace. It is created if missing; an existing namespace must carry the label
        C(shmfix.io/canary=true).
    type: str
    required: true
  namespace_labels:
    description: Extra labels of the canary namespace and pods.
    type: dict
    default: {}
  probes:
    description: One canary per probe. Required with O(state=present).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the probe (the pod is C(shm-canary-<name>)).
        type: str
        required: true
      node_selector:
        description: Node selector of the canary.
        type: dict
      node_name:
        description: Node to run the canary on (bypasses the scheduler).
        type: str
      expect:
        description: Enforcement expected on that node; the probe fails when another one is observed.
        type: str
        choices: [sized, eviction, evicted]
      assumed:
        description:
          - Enforcement assumed from the kubelet version when the feature gates could not be read. Only reported;
            a different outcome does not fail the probe.
        type: str
        choices: [sized, eviction]
      covers:
        description: Names of the nodes this probe stands for; returned as is.
        type: list
        elements: str
        default: []
  image:
    description: Image of the canary; it needs C(sh), C(df) and C(dd) (busybox). Required with O(state=present).
    type: str
  image_pull_policy:
    description: Image pull policy of the canary.
    type: str
    choices: [Always, IfNotPresent, Never]
    default: IfNotPresent
  size_limit:
    description: C(sizeLimit) of the canary's memory emptyDir.
    type: str
    default: 32Mi
  overfill:
    description: How much more than O(size_limit) the canary writes.
    type: str
    default: 16Mi
  memory_limit:
    description: Memory limit of the canary container; keep it above O(size_limit) + O(overfill).
    type: str
    default: 256Mi
  run_as_user:
    description: Non-root user id of the canary.
    type: int
    default: 65534
  volume_name:
    description: Name of the emptyDir volume (appears in the eviction message).
    type: str
    default: dshm
  tolerations:
    description: Tolerations of the canary pods.
    type: list
    elements: dict
    default: []
  start_timeout:
    description: Seconds to wait for the canaries to run.
    type: int
    default: 120
  wait:
    description: With O(state=absent), wait until the namespace is gone.
    type: bool
    default: true
  leftovers:
    description:
      - With O(state=absent), also delete the canary namespaces that earlier runs left behind (a run that was killed,
        or a namespace that stayed terminating), and wait up to O(wait_timeout) for them to go.
      - A canary namespace is left behind when it is labelled C(shmfix.io/canary=true) and past the time in its
        C(shmfix.io/expires-at) annotation (written when it is created; without it, when it is more than an hour old),
        or when its deletion was requested already. Another run's canary namespace within its expiry is left alone.
      - One still terminating after O(wait_timeout) is returned as C(terminating) with a warning that says what holds it;
        it does not fail the task. Needs C(list) on namespaces; without it the task warns and sweeps nothing.
    type: bool
    default: false
  wait_timeout:
    description:
      - With O(state=present), seconds to wait for an eviction after the write went through; with O(state=absent),
        for the namespace to be gone. kubernetes.core's name; O(timeout) is the old one.
    type: int
    default: 180
    aliases: [timeout]
  wait_sleep:
    description: Seconds between two looks at the canaries (kubernetes.core's name; O(poll_interval) is the old one).
    type: int
    default: 2
    aliases: [poll_interval]
notes:
  - The canary pods pass the C(restricted) Pod Security level (non-root user, RuntimeDefault seccomp profile, no
    privilege escalation, every capability dropped, read-only root filesystem).
  - The probes exec in the canary pods, which cannot impersonate (the kubernetes client's websocket transport does
    not send the impersonation headers); with O(impersonate_user) or O(impersonate_groups) each probe fails and
    says so, and the credentials of that identity are needed instead.
"""

EXAMPLES = r"""
- name: Prove how sized and eviction nodes enforce sizeLimit
  shmfix.k8s.canary:
    kubeconfig: ~/.kube/config
    namespace: shmfix-canary-x1y2z3
    image: busybox:1.36
    probes:
      - name: sized
        node_selector:
          shmfix.io/node-mode: sized
        expect: sized
      - name: eviction
        node_selector:
          shmfix.io/node-mode: eviction
        expect: eviction
  register: proof

- name: Delete the canary namespace
  shmfix.k8s.canary:
    namespace: shmfix-canary-x1y2z3
    state: absent

- name: Delete the canary namespaces earlier runs left behind (before creating a new one)
  shmfix.k8s.canary:
    namespace: shmfix-canary-a4b5c6d7
    state: absent
    leftovers: true
    wait_timeout: 60
"""

RETURN = r"""
namespace:
  description: The canary namespace.
  returned: always
  type: str
  sample: shmfix-canary-x1y2z3
ok:
  description: Whether every probe showed the enforcement it expected (or some enforcement when nothing was expected).
  returned: state=present
  type: bool
  sample: true
probes:
  description: One result per probe.
  returned: state=present
  type: list
  elements: dict
  sample:
    - name: eviction
      pod: shm-canary-eviction
      namespace: shmfix-canary-x1y2z3
      node: node-b
      expected: eviction
      outcome: evicted
      ok: true
      reason: 'the kubelet evicted the pod: Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".'
      size_limit: 32Mi
      size_limit_bytes: 33554432
      df_size_bytes: 12582912000
      df_used_bytes: 0
      df_filesystem: tmpfs
      write_bytes: 50331648
      write_exit_code: 0
      write_message: 48+0 records out
      event_message: Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".
      evidence: event
      elapsed_seconds: 74
leftovers:
  description:
    - With O(leftovers=true), each canary namespace found from earlier runs and what became of it, C(deleted),
      C(terminating) (still there after O(wait_timeout), see the warnings) or C(live) (another run's, left alone).
  returned: state=absent and leftovers=true
  type: dict
  sample:
    shmfix-canary-k3v9x0qa: deleted
    shmfix-canary-p2m8d1zz: terminating
api_calls:
  description: Number of API requests made.
  returned: always
  type: int
  sample: 42
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.canary_runner import run_canary
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    namespace=dict(type="str", required=True),
    namespace_labels=dict(type="dict", default={}),
    probes=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            name=dict(type="str", required=True),
            node_selector=dict(type="dict"),
            node_name=dict(type="str"),
            expect=dict(type="str", choices=["sized", "eviction", "evicted"]),
            assumed=dict(type="str", choices=["sized", "eviction"]),
            covers=dict(type="list", elements="str", default=[]),
        ),
    ),
    image=dict(type="str"),
    image_pull_policy=dict(type="str", choices=["Always", "IfNotPresent", "Never"], default="IfNotPresent"),
    size_limit=dict(type="str", default="32Mi"),
    overfill=dict(type="str", default="16Mi"),
    memory_limit=dict(type="str", default="256Mi"),
    run_as_user=dict(type="int", default=65534),
    volume_name=dict(type="str", default="dshm"),
    tolerations=dict(type="list", elements="dict", default=[]),
    start_timeout=dict(type="int", default=120),
    wait=dict(type="bool", default=True),
    leftovers=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=180, aliases=["timeout"]),
    wait_sleep=dict(type="int", default=2, aliases=["poll_interval"]),
)


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True, required_if=[("state", "present", ("image", "probes"))])
    try:
        result = run_canary(kube_from_params(module.params), module.params, check_mode=module.check_mode)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
