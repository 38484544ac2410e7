# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Canary namespaces that earlier runs left behind: which ones they are, and their deletion.

Every canary namespace carries ``shmfix.io/canary=true`` and, written when it is created, the
annotation ``shmfix.io/expires-at``: the time by which the run that made it has deleted it or
died (start and wait timeouts plus a margin). A run that was killed, or whose namespace got
stuck terminating (a finalizer nobody removes), leaves one behind; the next run deletes it:

- ``delete``: past its expiry (a namespace without the annotation: created more than
  ``UNANNOTATED_AGE`` seconds ago);
- ``terminating``: its deletion was requested already; it is waited for and, when it stays,
  reported with what the namespace controller says holds it;
- ``live``: another run's canaries, still within their expiry: left alone.

PURE: plain dicts in and out; ``canary_runner.sweep_leftovers`` lists, deletes and waits.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.kube_time import parse_timestamp, timestamp

EXPIRES = "shmfix.io/expires-at"
# Seconds after which a canary namespace without the expiry annotation counts as left behind.
UNANNOTATED_AGE = 3600
# Seconds a run's canary namespace outlives its start and wait timeouts (execs, dd, the deletion).
EXPIRY_MARGIN = 600
# The namespace controller's conditions that say what keeps a namespace from going.
HOLDING_CONDITIONS = (
    "NamespaceFinalizersRemaining",
    "NamespaceContentRemaining",
    "NamespaceDeletionContentFailure",
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
)


def expiry_annotation(now, start_timeout, wait_timeout):
    """The annotation a new canary namespace carries: when its run is over, at the latest."""
    return {EXPIRES: timestamp(now + start_timeout + wait_timeout + EXPIRY_MARGIN)}


def verdict(namespace, now):
    """'terminating', 'delete' or 'live' for a canary namespace (see the module docstring)."""
    meta = namespace.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "terminating"
    expires = parse_timestamp((meta.get("annotations") or {}).get(EXPIRES))
    if expires is None:
        created = parse_timestamp(meta.get("creationTimestamp"))
        expires = (created or now) + UNANNOTATED_AGE
    return "delete" if now >= expires else "live"


def holding(namespace):
    """What the namespace controller says keeps a terminating namespace (its conditions' messages), or ''."""
    conditions = (namespace.get("status") or {}).get("conditions") or []
    found = [c.get("message") or c.get("reason") for c in conditions if c.get("type") in HOLDING_CONDITIONS and c.get("status") == "True"]
    return "; ".join(m for m in found if m)


def stuck_message(name, seconds, namespace):
    """Why a canary namespace is still there ``seconds`` after its deletion was requested, and what to do."""
    held = holding(namespace) or "the namespace controller has not finished deleting its content"
    return (
        "canary namespace %s is still terminating %ds after its deletion was requested: %s. Remove what holds it "
        "(kubectl get namespace %s -o yaml shows its conditions); the next run deletes canary namespaces left behind" % (name, seconds, held, name)
    )
