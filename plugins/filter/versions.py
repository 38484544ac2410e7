# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the version_check role; the logic is plugin_utils/version_grading.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.shmfix.k8s.plugins.plugin_utils.version_grading import grade_versions as _grade


def grade_versions(cluster_info, min_version="1.20", below_min_policy="fail", gated_policy="warn", eviction_policy="warn", enforcement_label=None):
    try:
        return _grade(cluster_info, str(min_version), below_min_policy, gated_policy, eviction_policy, enforcement_label or None)
    except ValueError as exc:
        raise AnsibleFilterError("grade_versions: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"grade_versions": grade_versions}
