# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the fleet report (roles/fleet_report, the playbooks' rescue); the logic is plugin_utils/report.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.shmfix.k8s.plugins.module_utils.units import human
from ansible_collections.shmfix.k8s.plugins.plugin_utils import report as _report
from ansible_collections.shmfix.k8s.plugins.plugin_utils import report_chart as _chart


def fleet_report(records, generated_at=None, playbook=None, check_mode=False):
    if not isinstance(records, list):
        raise AnsibleFilterError("fleet_report expects a list of cluster records, got %s" % type(records).__name__)
    return _report.build_report(records, generated_at=generated_at, playbook=playbook, check_mode=check_mode)


def fleet_summary_table(report):
    if not isinstance(report, dict) or "clusters" not in report:
        raise AnsibleFilterError("fleet_summary_table expects the dict returned by shmfix.k8s.fleet_report")
    return _report.summary_table(report)


def human_bytes(value):
    """67108864 -> '64 MiB'; None or '' -> '-'; anything that is not a byte count is shown as it is."""
    if value is None or value == "":
        return "-"
    try:
        return human(int(value))
    except (TypeError, ValueError):
        return str(value)


def shm_chart(cluster):
    if not isinstance(cluster, dict) or "counts" not in cluster:
        raise AnsibleFilterError("shm_chart expects one cluster of the dict returned by shmfix.k8s.fleet_report")
    return _chart.shm_chart(cluster)


def shm_failure(result, phase):
    return _report.classify_failure(result, phase)


class FilterModule(object):
    def filters(self):
        return {
            "fleet_report": fleet_report,
            "fleet_summary_table": fleet_summary_table,
            "human_bytes": human_bytes,
            "shm_chart": shm_chart,
            "shm_failure": shm_failure,
        }
