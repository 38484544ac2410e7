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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.shmfix.k8s.plugins.module_utils import manifest as manifest_utils
from ansible_collections.shmfix.k8s.plugins.module_utils.client import AUTH_ARG_SPEC, ShmfixError, fail_from_error, kube_from_module

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

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


def load_documents(module):
    p = module.params
    raw = p["definition"]
    if p["src"]:
        try:
            with open(p["src"]) as handle:
                raw = handle.read()
        except OSError as exc:
            module.fail_json(msg="src %s cannot be read: %s" % (p["src"], exc))
    if isinstance(raw, str):
        if not HAS_YAML:  # pragma: no cover
            module.fail_json(msg="PyYAML is needed to read YAML manifests")
        try:
            raw = list(yaml.safe_load_all(raw))
        except yaml.YAMLError as exc:
            module.fail_json(msg="the manifests are not valid YAML: %s" % exc)
    if isinstance(raw, dict):
        raw = [raw]
    return manifest_utils.split_documents(raw)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec, supports_check_mode=True, required_one_of=[("definition", "src")], mutually_exclusive=[("definition", "src")]
    )
    p = module.params
    try:
        docs = load_documents(module)
    except ShmfixError as err:
        fail_from_error(module, err)
    kube = kube_from_module(module)
    resources = manifest_utils.Resources(kube)
    results = []
    try:
        if p["state"] == "present":
            for doc in docs:
                results.append(manifest_utils.apply(kube, resources, doc, p["namespace"], p["field_manager"], dry_run=module.check_mode))
        else:
            for doc in reversed(docs):
                results.append(
                    manifest_utils.delete(kube, resources, doc, p["namespace"], dry_run=module.check_mode, wait=p["wait"], timeout=p["wait_timeout"])
                )
            results.reverse()
    except ShmfixError as err:
        fail_from_error(module, err, results=results, api_calls=kube.calls)
    changed = any(r["action"] in ("created", "configured", "deleted") for r in results)
    module.exit_json(changed=changed, results=results, api_calls=kube.calls)


if __name__ == "__main__":
    main()
