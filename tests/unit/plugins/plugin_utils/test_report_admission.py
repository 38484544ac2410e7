# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report's admission protection and evidence counts per cluster (report.py, report.md.j2, report.html.j2)."""

import pytest
from ansible_collections.shmfix.k8s.plugins.plugin_utils import report
from test_report_html import render

ADMISSION = {
    "enabled": False,
    "state": "info",
    "changed": False,
    "check_mode": False,
    "label": "mutating v1beta1",
    "protection": "mutating",
    "available": "mutating v1beta1",
    "note": "",
}
UNKNOWN = dict(ADMISSION, label="unknown", protection="unknown", available="unknown", note="API error 403 Forbidden while trying to list ...")
AUDIT = {"total": 3, "by_state": {"runtime_default": 3}, "findings": {"warning": 3}, "evidence": {"evidence": 1, "likely": 1, "none": 1}}


def fleet(admission, audit=None):
    remediate = {"mode": "audit", "state": "audit", "workloads": [], "audit_summary": audit or {}}
    return report.build_report([{"name": "one", "admission": admission, "remediate": remediate}], generated_at="2026-12-02T00:00:00Z", playbook="audit-shm")


def test_each_cluster_carries_its_admission_protection():
    (cluster,) = fleet(ADMISSION)["clusters"]
    assert cluster["admission"]["label"] == "mutating v1beta1"
    assert fleet(None)["clusters"][0]["admission"] is None


@pytest.mark.parametrize("template", ["report.md.j2", "report.html.j2"])
def test_the_report_says_which_protection_is_active_and_the_evidence_counts(template):
    text = render(fleet(ADMISSION, AUDIT), template)
    assert "mutating v1beta1" in text
    assert "1 with evidence" in text or "1 workload(s) with evidence" in text
    unknown = render(fleet(UNKNOWN), template)
    assert "unknown" in unknown and "403 Forbidden" in unknown
    bare = render(fleet(None), template)
    assert "could run" not in bare and "with evidence" not in bare


@pytest.mark.parametrize("template", ["report.md.j2", "report.html.j2"])
def test_the_report_says_why_remediate_target_chose_each_changed_workload(template):
    why = "evidence of shm pressure: pod trainer-x container main was killed by SIGBUS (exit code 135, 'Bus error')"
    chosen = {
        "kind": "Deployment",
        "namespace": "ml",
        "name": "trainer",
        "action": "patched",
        "target": {"target": "evidence", "level": "evidence", "selected": True, "why": why},
    }
    left = {"kind": "Deployment", "namespace": "ml", "name": "web", "action": "unchanged", "reason": "remediate_target=evidence: no evidence of shm pressure"}
    remediate = {"mode": "remediate", "state": "present", "workloads": [chosen, left]}
    text = render(report.build_report([{"name": "one", "remediate": remediate}], playbook="fix-shm"), template)
    assert "remediate_target evidence" in text and why.replace("'", "&#39;" if template.endswith("html.j2") else "'") in text
    assert "remediate_target=evidence: no evidence of shm pressure" in text
    everything = dict(chosen, target={"target": "all", "level": "none", "selected": True, "why": "remediate_target=all"})
    plain = render(report.build_report([{"name": "one", "remediate": dict(remediate, workloads=[everything])}], playbook="fix-shm"), template)
    assert "Why these were changed" not in plain
