# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter of the remediate role's remediate_target; the logic is plugin_utils/targeting.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.shmfix.k8s.plugins.plugin_utils import targeting as _t


def shm_target(plan_results, audit_workloads, target="all"):
    try:
        return _t.choose(plan_results, audit_workloads, target)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"shm_target": shm_target}
