# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the playbooks' first step; the logic is plugin_utils/role_inputs.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.plugin_utils import role_inputs


def shm_unknown_inputs(names):
    return role_inputs.unknown_inputs(names, role_inputs.load_specs())


class FilterModule(object):
    def filters(self):
        return {"shm_unknown_inputs": shm_unknown_inputs}
