# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of which canary namespaces earlier runs left behind, and what the message says of a stuck one.

The terminating namespace is the API server's own (v1.34, a ConfigMap with a finalizer nobody removes).
"""

import copy
import json
import os

from ansible_collections.shmfix.k8s.plugins.module_utils import canary, kube_time
from ansible_collections.shmfix.k8s.plugins.module_utils import canary_leftovers as leftovers

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "namespaces", "canary-terminating.json")
NOW = kube_time.parse_timestamp("2026-12-02T05:00:00Z")


def terminating():
    with open(FIXTURE) as f:
        return json.load(f)


def created(name, annotations=None, created_at="2026-12-02T04:59:00Z"):
    ns = canary.namespace_manifest(name, annotations=annotations)
    ns["metadata"]["creationTimestamp"] = created_at
    return ns


def test_timestamps_round_trip_in_the_api_servers_format():
    assert kube_time.timestamp(NOW) == "2026-12-02T05:00:00Z"
    assert kube_time.parse_timestamp(kube_time.timestamp(NOW + 61)) == NOW + 61
    assert kube_time.parse_timestamp("soon") is None
    assert kube_time.parse_timestamp(None) is None


def test_a_new_canary_namespace_expires_after_its_timeouts_and_a_margin():
    ns = canary.namespace_manifest("shmfix-canary-a", annotations=leftovers.expiry_annotation(NOW, 120, 180))
    expires = ns["metadata"]["annotations"][leftovers.EXPIRES]
    assert kube_time.parse_timestamp(expires) == NOW + 120 + 180 + leftovers.EXPIRY_MARGIN
    assert canary.is_canary_namespace(ns)
    assert "annotations" not in canary.namespace_manifest("shmfix-canary-b")["metadata"]


def test_verdicts_delete_expired_wait_for_terminating_and_leave_another_runs_alone():
    past = {leftovers.EXPIRES: "2026-12-02T04:59:59Z"}
    future = {leftovers.EXPIRES: "2026-12-02T05:10:00Z"}
    assert leftovers.verdict(created("a", past), NOW) == "delete"
    assert leftovers.verdict(created("b", future), NOW) == "live"
    assert leftovers.verdict(terminating(), NOW) == "terminating"
    # without the annotation (an older shmfix): left behind once it is an hour old
    assert leftovers.verdict(created("c"), NOW) == "live"
    assert leftovers.verdict(created("d", created_at="2026-12-02T03:59:59Z"), NOW) == "delete"
    # an unreadable annotation falls back to the age, it never deletes a young namespace
    assert leftovers.verdict(created("e", {leftovers.EXPIRES: "tomorrow"}), NOW) == "live"


def test_stuck_message_names_the_namespace_what_holds_it_and_what_to_do():
    ns = terminating()
    message = leftovers.stuck_message("shmfix-canary-fixture", 20, ns)
    assert "canary namespace shmfix-canary-fixture is still terminating 20s after its deletion was requested" in message
    assert "Some content in the namespace has finalizers remaining: shmfix.io/test-hold in 1 resource instances" in message
    assert "Some resources are remaining: configmaps" in message
    # the conditions that are False (discovery and parsing went fine) are not repeated
    assert "successfully" not in message
    assert "the next run deletes canary namespaces left behind" in message


def test_stuck_message_without_conditions_says_the_controller_is_not_done():
    ns = copy.deepcopy(terminating())
    del ns["status"]["conditions"]
    assert "the namespace controller has not finished deleting its content" in leftovers.stuck_message("x", 5, ns)
