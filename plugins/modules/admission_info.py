#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: admission_info
short_description: Which admission policy the cluster can run, and which of shmfix's is installed
version_added: 0.2.0
author:
  - shmfix.k8s developers (@shmfix)
description:
  - Reads API discovery for C(MutatingAdmissionPolicy) (C(admissionregistration.k8s.io) v1, v1beta1, v1alpha1) and C(ValidatingAdmissionPolicy) v1, and
    lists the objects M(shmfix.k8s.admission_policy) installed under O(name) (by their labels).
  - Changes nothing.
extends_documentation_fragment:
  - shmfix.k8s.attributes.read_only
  - shmfix.k8s.auth
options:
  name:
    description: Name the policy was installed under (M(shmfix.k8s.admission_policy)'s O(shmfix.k8s.admission_policy#module:name)).
    type: str
    default: shmfix-shm
requirements:
  - kubernetes (Python client)
seealso:
  - module: shmfix.k8s.admission_policy
"""

EXAMPLES = r"""
- name: Read which protection the cluster has
  shmfix.k8s.admission_info:
  register: admission

- name: Say it
  ansible.builtin.debug:
    msg: "{{ admission.active.label }} (the cluster could run: {{ admission.available }})"
"""

RETURN = r"""
served:
  description: What the API server serves, from discovery.
  returned: always
  type: dict
  sample: {mutating: null, validating: admissionregistration.k8s.io/v1}
available:
  description: The protection M(shmfix.k8s.admission_policy) would install with C(mode=auto) - C(mutating vN), C(validating Warn,Audit) or C(none).
  returned: success
  type: str
  sample: validating Warn,Audit
installed:
  description: shmfix's objects of that name on the cluster.
  returned: success
  type: list
  elements: dict
  sample:
    - {kind: ValidatingAdmissionPolicy, api_version: admissionregistration.k8s.io/v1, name: shmfix-shm}
active:
  description: The protection they give, as in M(shmfix.k8s.admission_policy)'s RV(shmfix.k8s.admission_policy#module:active).
  returned: success
  type: dict
  sample: {protection: none, api_version: null, label: none, validation_actions: [], size_policy: null}
api_calls:
  description: Number of API requests made.
  returned: always
  type: int
  sample: 5
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.admission import run_info
from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import ADMISSION_ARG_SPEC, AUTH_ARG_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(copy.deepcopy(ADMISSION_ARG_SPEC))


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run_info(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
