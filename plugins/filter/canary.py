# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the eviction_verify role; the logic is plugin_utils/canary_probes.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.shmfix.k8s.plugins.plugin_utils import canary_probes as _probes


def canary_probes(version_check_result, node_selector=None, per="version"):
    if per not in _probes.PER:
        raise AnsibleFilterError("canary_probes: per must be %s, got %r" % (", ".join(_probes.PER), per))
    return _probes.canary_probes(version_check_result, node_selector, per)


def shm_proven_nodes(nodes, eviction_verify_result=None):
    return _probes.proven_nodes(nodes, eviction_verify_result)


class FilterModule(object):
    def filters(self):
        return {"canary_probes": canary_probes, "shm_proven_nodes": shm_proven_nodes}
