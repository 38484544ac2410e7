# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of ``remediate_target``: which of the planned changes the remediate role makes.

``all`` (the default) changes every workload the plan would change; ``evidence`` only those whose pods
hit the /dev/shm limit (shm_info's ``evidence`` level); ``likely`` those and the ones running software
known to need shared memory. Each planned change gets ``target`` {target, level, selected, why}; one
the target leaves becomes ``unchanged`` with the why as its reason, so the report's "Left as is, and
why" says it. The rules are module_utils/evidence.py's (``selected``, ``why``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import evidence as ev
from ansible_collections.shmfix.k8s.plugins.module_utils.outcomes import CHANGED_ACTIONS, UNCHANGED, WOULD_RESTORE

# What a shm_patch plan (check mode) would change: would_patch, and would_resize with strategy=inplace.
PLANNED = tuple(a for a in CHANGED_ACTIONS if a.startswith("would_") and a != WOULD_RESTORE)


def _key(item):
    return (item.get("kind"), item.get("namespace"), item.get("name"))


def choose(plan_results, audit_workloads, target):
    """The plan's records with ``target`` applied: planned changes chosen (``target.selected``) or left as ``unchanged``."""
    if target not in ev.TARGETS:
        raise ValueError("remediate_target: %r must be one of %s" % (target, ", ".join(ev.TARGETS)))
    evidence = {_key(w): w.get("evidence") for w in audit_workloads or []}
    out = []
    for record in plan_results or []:
        if record.get("action") not in PLANNED:
            out.append(record)
            continue
        found = evidence.get(_key(record)) or {}
        chosen = ev.selected(found, target)
        why = ev.why(found, target)
        entry = dict(record, target={"target": target, "level": found.get("level") or ev.NONE, "selected": chosen, "why": why})
        if not chosen:
            entry.update(action=UNCHANGED, reason="remediate_target=%s: %s" % (target, why), planned_action=record.get("action"))
        out.append(entry)
    return out
