# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""remediate_target (plugin_utils/targeting.py): which planned changes are made, and the why of each, on the
evidence records shm_info builds from pods captured on the embedded cluster (tests/fixtures/evidence)."""

import json
import os

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import evidence as ev
from ansible_collections.shmfix.k8s.plugins.plugin_utils import targeting

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "evidence")


def pod(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


def workload(name, items=(), likely=()):
    return {"kind": "Deployment", "namespace": "ml", "name": name, "evidence": ev.evidence_record(list(likely), list(items), ["images", "pod statuses"], 1)}


SIGBUS = ev.terminations(pod("pod-mmap-writer.json"))
PG = [{"container": "db", "image": "postgres:16", "software": "PostgreSQL"}]
AUDIT = [workload("trainer", SIGBUS), workload("db", likely=PG), workload("web"), workload("sized")]
PLAN = [
    {"kind": "Deployment", "namespace": "ml", "name": "trainer", "action": "would_patch", "reason": ""},
    {"kind": "Deployment", "namespace": "ml", "name": "db", "action": "would_patch", "reason": ""},
    {"kind": "Deployment", "namespace": "ml", "name": "web", "action": "would_patch", "reason": ""},
    {"kind": "Deployment", "namespace": "ml", "name": "sized", "action": "unchanged", "reason": "already sized"},
]


def actions(records):
    return {r["name"]: r["action"] for r in records}


@pytest.mark.parametrize(
    "target,expected",
    [
        ("all", {"trainer": "would_patch", "db": "would_patch", "web": "would_patch", "sized": "unchanged"}),
        ("evidence", {"trainer": "would_patch", "db": "unchanged", "web": "unchanged", "sized": "unchanged"}),
        ("likely", {"trainer": "would_patch", "db": "would_patch", "web": "unchanged", "sized": "unchanged"}),
    ],
)
def test_each_target_keeps_its_planned_changes(target, expected):
    assert actions(targeting.choose(PLAN, AUDIT, target)) == expected


def test_every_planned_change_says_why_it_was_chosen_or_left():
    out = {r["name"]: r for r in targeting.choose(PLAN, AUDIT, "evidence")}
    assert out["trainer"]["target"]["selected"] is True and out["trainer"]["target"]["level"] == "evidence"
    assert "SIGBUS (exit code 135" in out["trainer"]["target"]["why"]
    assert out["db"]["reason"].startswith("remediate_target=evidence: no evidence of shm pressure")
    assert out["db"]["reason"].endswith("remediate_target=likely would change it")
    assert out["web"]["planned_action"] == "would_patch"
    # what the plan did not change is as the plan said, with no target verdict
    assert out["sized"] == PLAN[3]


def test_a_workload_the_audit_did_not_see_has_no_evidence_and_a_bad_target_is_refused():
    (left,) = targeting.choose([dict(PLAN[0], name="new")], AUDIT, "likely")
    assert left["action"] == "unchanged" and left["target"]["level"] == "none"
    with pytest.raises(ValueError, match="remediate_target: 'some'"):
        targeting.choose(PLAN, AUDIT, "some")
