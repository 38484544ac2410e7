# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind the fleet report; the logic lives in module_utils/report.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.shmfix.k8s.plugins.module_utils import report as _report


def fleet_report(records, generated_at=None, playbook=None, check_mode=False):
    if not isinstance(records, list):
        raise AnsibleFilterError("fleet_report expects a list of cluster records, got %s" % type(records).__name__)
    return _report.build_report(records, generated_at=generated_at, playbook=playbook, check_mode=check_mode)


def fleet_summary_table(report):
    if not isinstance(report, dict) or "clusters" not in report:
        raise AnsibleFilterError("fleet_summary_table expects the dict returned by shmfix.k8s.fleet_report")
    return _report.summary_table(report)


def human_bytes(value):
    return _report.human_bytes(value)


def shm_size_verdict(measured, expected=None, enforcement="sized", node_memory_bytes=None):
    verdict, note = _report.compare_size(measured, expected, enforcement, node_memory_bytes)
    return {"verdict": verdict, "note": note}


def shm_failure(result, phase):
    return _report.classify_failure(result, phase)


def grade_versions(cluster_info, min_version="1.20", below_min_policy="fail", gated_policy="warn", eviction_policy="warn", enforcement_label=None):
    for name, value in (("below_min_policy", below_min_policy), ("gated_policy", gated_policy), ("eviction_policy", eviction_policy)):
        if value not in ("fail", "warn", "ok"):
            raise AnsibleFilterError("grade_versions: %s must be fail, warn or ok, got %r" % (name, value))
    try:
        return _report.grade_versions(cluster_info, str(min_version), below_min_policy, gated_policy, eviction_policy, enforcement_label or None)
    except ValueError as exc:
        raise AnsibleFilterError("grade_versions: %s" % exc)


def canary_probes(version_check_result, node_selector=None, per="version"):
    if per not in ("version", "mode", "node"):
        raise AnsibleFilterError("canary_probes: per must be version, mode or node, got %r" % per)
    return _report.canary_probes(version_check_result, node_selector, per)


def shm_patch_groups(wave):
    return _report.patch_groups(wave)


def shm_merge_wave(plan_items, patch_results, rollout_results=None, df_before=None, df_after=None, nodes=None, check_mode=False):
    return _report.merge_wave(plan_items, patch_results, rollout_results, df_before, df_after, nodes, check_mode)


def shm_untouched(waves, reason):
    return _report.untouched(waves, reason)


def shm_changed_refs(loop_result):
    return _report.workload_refs(loop_result)


def shm_audit_records(workloads, df_loop=None, nodes=None, verify=False):
    return _report.audit_records(workloads, df_loop, nodes, verify)


def shm_proven_nodes(nodes, eviction_verify_result=None):
    return _report.proven_nodes(nodes, eviction_verify_result)


def shm_failed_names(records):
    return _report.failed_names(records)


class FilterModule(object):
    def filters(self):
        return {
            "fleet_report": fleet_report,
            "fleet_summary_table": fleet_summary_table,
            "human_bytes": human_bytes,
            "shm_size_verdict": shm_size_verdict,
            "shm_failure": shm_failure,
            "grade_versions": grade_versions,
            "canary_probes": canary_probes,
            "shm_patch_groups": shm_patch_groups,
            "shm_merge_wave": shm_merge_wave,
            "shm_untouched": shm_untouched,
            "shm_changed_refs": shm_changed_refs,
            "shm_audit_records": shm_audit_records,
            "shm_proven_nodes": shm_proven_nodes,
            "shm_failed_names": shm_failed_names,
        }
