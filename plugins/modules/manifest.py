#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: manifest
short_description: Apply or delete plain Kubernetes manifests (server-side apply)
version_added: 0.1.0
author:
  - shmfix.k8s developers (@shmfix)
description:
  - A small stand-in for C(kubernetes.core.k8s) used by the demo and the tests - applies manifests with server-side
    apply (field manager O(field_manager), conflicts forced) or deletes them.
  - Kinds are resolved with API discovery, so any kind the API server serves works.
  - Reports C(created), C(configured) or C(unchanged) per object; an apply that changes nothing does not report a change.
extends_documentation_fragment:
  - shmfix.k8s.auth
attributes:
  check_mode:
    support: full
    description: Writes are sent with C(dryRun=All).
  diff_mode:
    support: none
    description: No diff is returned.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  state:
    description: Apply (V(present)) or delete (V(absent)) the objects.
    type: str
    choices: [present, absent]
    default: present
  definition:
    description: Manifests - a dict, a list of dicts, or YAML text with one or more documents.
    type: raw
  src:
    description: Path of a YAML file with one or more manifests (on the controller, where the module runs).
    type: path
  namespace:
    description: Namespace of namespaced objects that do not set one.
    type: str
  field_manager:
    description: Field manager of the server-side apply.
    type: str
    default: shmfix-manifest
  wait:
    description: With O(state=absent), wait until each object is gone.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait per object.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: Apply the demo workloads
  shmfix.k8s.manifest:
    src: files/demo-workloads.yml

- name: Delete a namespace and wait for it to be gone
  shmfix.k8s.manifest:
    state: absent
    definition:
      apiVersion: v1
      kind: Namespace
      metadata:
        name: shmfix-demo
    wait: true
"""

RETURN = r"""
results:
  description: One entry per object, in order.
  returned: success
  type: list
  elements: dict
  sample:
    - {kind: Deployment, namespace: shmfix-demo, name: hello-world, action: created}
api_calls:
  description: Number of API requests made.
  returned: always
  type: int
  sample: 9
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.manifest import run_manifest

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    definition=dict(type="raw"),
    src=dict(type="path"),
    namespace=dict(type="str"),
    field_manager=dict(type="str", default="shmfix-manifest"),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=120),
)


def main():
    module = ShmfixModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("definition", "src")],
        mutually_exclusive=[("definition", "src")],
    )
    try:
        result = run_manifest(kube_from_params(module.params), module.params, check_mode=module.check_mode)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
