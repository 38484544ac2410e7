# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report filters and the report.md template, rendered with Jinja2 as Ansible does (trim_blocks)."""

import os

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.shmfix.k8s.plugins.filter import canary, remediation, report, versions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TEMPLATES = os.path.join(ROOT, "roles", "fleet_report", "templates")
MI = 1024 * 1024
FILTERS = {}
for _plugin in (report, versions, canary, remediation):
    FILTERS.update(_plugin.FilterModule().filters())

RECORDS = [
    {
        "name": "shmfix-local",
        "version_check": {
            "server_version": "v1.34.4",
            "min_version": "1.20",
            "tiers": {"ga": 1, "default_on": 1},
            "nodes": [
                {"name": "shmfix-sized", "kubelet_version": "v1.34.4", "tier": "ga", "expected_enforcement": "sized", "verdict": "ok"},
                {
                    "name": "shmfix-eviction",
                    "kubelet_version": "v1.31.14",
                    "tier": "default_on",
                    "expected_enforcement": "eviction",
                    "verdict": "warn",
                    "message": "gate off",
                },
            ],
        },
        "eviction_verify": {
            "enabled": True,
            "probes": [
                {
                    "name": "v1-31-eviction",
                    "node": "shmfix-eviction",
                    "expected": "eviction",
                    "outcome": "evicted",
                    "ok": True,
                    "size_limit_bytes": 32 * MI,
                    "df_size_bytes": 12638027776,
                    "event_message": 'Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".',
                    "elapsed_seconds": 40,
                },
                {
                    "name": "v1-34-sized",
                    "node": "shmfix-sized",
                    "expected": "sized",
                    "outcome": "sized",
                    "ok": True,
                    "size_limit_bytes": 32 * MI,
                    "df_size_bytes": 32 * MI,
                    "write_message": "No space left on device",
                    "elapsed_seconds": 2,
                },
            ],
        },
        "remediate": {
            "mode": "remediate",
            "workloads": [
                {
                    "kind": "Deployment",
                    "namespace": "shmfix-demo",
                    "name": "hello-world",
                    "action": "patched",
                    "before": {"state": "runtime_default", "effective_bytes": 64 * MI, "measured_bytes": 64 * MI},
                    "after": {"state": "sized", "size_limit_bytes": 256 * MI, "effective_bytes": 256 * MI, "measured_bytes": 256 * MI},
                    "rollout": {"status": "complete", "message": "ok"},
                    "measured": [
                        {
                            "pod": "hello-world-1",
                            "node": "shmfix-sized",
                            "enforcement": "sized",
                            "size_bytes": 256 * MI,
                            "verdict": "ok",
                            "note": "df shows the expected 256 MiB",
                        }
                    ],
                },
                {
                    "kind": "Job",
                    "namespace": "shmfix-demo",
                    "name": "one-off-migration",
                    "action": "immutable",
                    "reason": "a Job's pod template cannot be changed",
                },
            ],
        },
    },
    {"name": "dead", "failure": {"phase": "version_check", "message": "cannot reach the Kubernetes API server https://127.0.0.1:1", "unreachable": True}},
]


def render(report):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, undefined=jinja2.StrictUndefined)
    for name, func in FILTERS.items():
        env.filters["shmfix.k8s." + name] = func
    return env.get_template("report.md.j2").render(fleet_report_result=report, fleet_report_title="shmfix fleet report")


def test_report_markdown_shows_before_after_enforcement_and_failures():
    report = FILTERS["fleet_report"](RECORDS, generated_at="2026-11-29T13:00:00Z", playbook="fix-shm")
    text = render(report)
    assert "| shmfix-local | **ok** | v1.34.4 |" in text
    assert "| dead | **unreachable** |" in text
    assert "> **Unreachable** (version_check): cannot reach the Kubernetes API server https://127.0.0.1:1" in text
    row = next(line for line in text.splitlines() if line.startswith("| Deployment shmfix-demo/hello-world"))
    assert "runtime_default, 64 MiB (df 64 MiB)" in row
    assert "sized, 256 MiB / 256 MiB" in row
    assert "hello-world-1: 256 MiB (268435456 B, sized)" in row
    assert "**ok**" in row
    assert "| v1-31-eviction | shmfix-eviction | eviction | **evicted** | 32 MiB | 11.8 GiB (12638027776 B) |" in text
    assert 'Usage of EmptyDir volume "dshm" exceeds the limit "32Mi".' in text
    assert "| Job shmfix-demo/one-off-migration | immutable | a Job's pod template cannot be changed |" in text


def test_summary_table_filter():
    report = FILTERS["fleet_report"](RECORDS)
    lines = FILTERS["fleet_summary_table"](report)
    assert lines[2].split()[:2] == ["dead", "unreachable"]
    assert lines[3].split()[:2] == ["shmfix-local", "ok"]


def test_filters_refuse_wrong_input():
    with pytest.raises(AnsibleFilterError):
        FILTERS["fleet_report"]({"not": "a list"})
    with pytest.raises(AnsibleFilterError):
        FILTERS["fleet_summary_table"]([])
    with pytest.raises(AnsibleFilterError):
        FILTERS["grade_versions"]({}, below_min_policy="explode")
    with pytest.raises(AnsibleFilterError):
        FILTERS["canary_probes"]({}, per="rack")


def test_size_verdict_filter():
    assert FILTERS["shm_size_verdict"](256 * MI, expected=256 * MI) == {"verdict": "ok", "note": "df shows the expected 256 MiB"}
    assert FILTERS["shm_size_verdict"](64 * MI, expected=256 * MI)["verdict"] == "mismatch"


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "-"),
        ("", "-"),
        (0, "0 B"),
        (512, "512 B"),
        (64 * MI, "64 MiB"),
        (256 * MI, "256 MiB"),
        (1536 * MI, "1.5 GiB"),
        (12638027776, "11.8 GiB"),
        ("67108864", "64 MiB"),
        ("n/a", "n/a"),
    ],
)
def test_human_bytes(value, text):
    assert FILTERS["human_bytes"](value) == text


def test_with_kind_follows_the_kinds_registry():
    wave = [{"kind": k, "name": k.lower()} for k in ("Deployment", "CronJob", "Pod", "ReplicaSet", "Rollout")]
    assert [i["kind"] for i in FILTERS["shm_with_kind"](wave, "pods")] == ["Deployment", "CronJob", "Pod", "ReplicaSet"]
    assert [i["kind"] for i in FILTERS["shm_with_kind"](wave, "rollout")] == ["Deployment"]
    assert FILTERS["shm_ref"]({"kind": "Deployment", "namespace": "a", "name": "w", "extra": 1}) == {"kind": "Deployment", "namespace": "a", "name": "w"}
