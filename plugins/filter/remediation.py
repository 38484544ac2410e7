# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the remediate role; the logic is plugin_utils/remediation.py and module_utils/kinds.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import kinds
from ansible_collections.shmfix.k8s.plugins.plugin_utils import remediation as _r


def shm_size_verdict(measured, expected=None, enforcement="sized", node_memory_bytes=None):
    verdict, note = _r.compare_size(measured, expected, enforcement, node_memory_bytes)
    return {"verdict": verdict, "note": note}


def shm_with_kind(items, attribute):
    """The items (workload records) whose kind's registry entry has ``attribute`` set: 'rollout', 'pods', 'immutable'..."""
    return [item for item in items or [] if (kinds.BUILTIN.get(item.get("kind")) or {}).get(attribute)]


def shm_merge_wave(plan_items, patch_results, rollout_results=None, df_before=None, df_after=None, nodes=None, check_mode=False, health=None):
    return _r.merge_wave(plan_items, patch_results, rollout_results, df_before, df_after, nodes, check_mode, health)


class FilterModule(object):
    def filters(self):
        return {
            "shm_size_verdict": shm_size_verdict,
            "shm_with_kind": shm_with_kind,
            "shm_healthy_items": _r.healthy_items,
            "shm_patch_groups": _r.patch_groups,
            "shm_merge_wave": shm_merge_wave,
            "shm_untouched": _r.untouched,
            "shm_changed_refs": _r.workload_refs,
            "shm_resized_refs": _r.resized_refs,
            "shm_ref": _r.workload_ref,
            "shm_df_targets": _r.df_targets,
            "shm_audit_records": _r.audit_records,
            "shm_failed_names": _r.failed_names,
        }
