# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the words of the module contract (docs/module-contract.md) that modules, filters and the
report share: what shm_patch did to a workload, and how a rollout ended."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# shm_patch ``results[].action``
PATCHED = "patched"
WOULD_PATCH = "would_patch"
RESTORED = "restored"
WOULD_RESTORE = "would_restore"
UNCHANGED = "unchanged"
SKIPPED = "skipped"
IMMUTABLE = "immutable"
FAILED = "failed"
# strategy=inplace: the running pods' /dev/shm resized through the pod resize subresource, no rollout
RESIZED = "resized"
WOULD_RESIZE = "would_resize"
CHANGED_ACTIONS = (PATCHED, WOULD_PATCH, RESTORED, WOULD_RESTORE, RESIZED, WOULD_RESIZE)
SKIPPED_ACTIONS = (SKIPPED, IMMUTABLE)

# rollout_status ``results[].status``
ROLLOUT_COMPLETE = "complete"
ROLLOUT_PROGRESSING = "progressing"
ROLLOUT_FAILED = "failed"
ROLLOUT_MANUAL = "manual"
ROLLOUT_NOT_APPLICABLE = "not_applicable"
ROLLOUT_TIMEOUT = "timeout"
ROLLOUT_BAD_ENDS = (ROLLOUT_FAILED, ROLLOUT_TIMEOUT)
