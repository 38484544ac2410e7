# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Module attributes shared by several modules (as community.general.attributes does).
    DOCUMENTATION = r"""
options: {}
"""

    # Read-only modules: shmfix.k8s.cluster_info, shmfix.k8s.shm_info, shmfix.k8s.shm_df_info.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Read-only.
"""
