# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the canary's pure parts: manifests that pass the restricted level, and the verdicts."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import canary

MI = 1024 * 1024
MESSAGE = 'Usage of EmptyDir volume "dshm" exceeds the limit "32Mi". '


def test_pod_manifest_passes_the_restricted_level():
    pod = canary.pod_manifest(
        "shm-canary-x", "ns", "localhost/shmfix/busybox:local", "32Mi", image_pull_policy="Never", node_selector={"shmfix.io/node-mode": "sized"}
    )
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 65534
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["imagePullPolicy"] == "Never"
    assert container["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert spec["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}}]
    assert spec["nodeSelector"] == {"shmfix.io/node-mode": "sized"}
    assert spec["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["shmfix.io/canary"] == "true"
    # no hostPath, hostNetwork, hostIPC, privileged: nothing the restricted level refuses
    assert not any(k.startswith("host") for k in spec)


def test_namespace_enforces_restricted():
    ns = canary.namespace_manifest("shmfix-canary-abc", {"team": "x"})
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["labels"]["shmfix.io/canary"] == "true"
    assert ns["metadata"]["labels"]["team"] == "x"


@pytest.mark.parametrize("probe, name", [("sized", "shm-canary-sized"), ("v1.31 eviction", "shm-canary-v1-31-eviction"), ("X" * 80, "shm-canary-" + "x" * 52)])
def test_pod_name(probe, name):
    assert canary.pod_name(probe) == name


def test_fill_command_writes_past_the_limit_in_whole_mib():
    command, written = canary.fill_command(32 * MI, 16 * MI)
    assert written == 48 * MI
    assert command[:2] == ["sh", "-c"]
    assert "bs=1048576 count=48" in command[2]
    _command, written = canary.fill_command(32 * MI + 1, 0)
    assert written == 33 * MI


def test_parse_fill_output():
    out = "dd: error writing '/dev/shm/shmfix-canary-fill': No space left on device\n33+0 records in\n32+0 records out\nshmfix-rc=1\n"
    rc, text = canary.parse_fill_output(out)
    assert rc == 1
    assert text.splitlines()[0].endswith("No space left on device")
    assert canary.parse_fill_output("48+0 records out\n") == (None, "48+0 records out")


@pytest.mark.parametrize(
    "df_size, rc, output, eviction, outcome",
    [
        (32 * MI, 1, "dd: error writing 'x': No space left on device", None, "sized"),
        (12638027776, 0, "48+0 records out", MESSAGE, "evicted"),
        (12638027776, 0, "48+0 records out", None, "not_enforced"),
        (64 * MI, 1, "dd: error writing 'x': No space left on device", None, "unexpected"),
        (32 * MI, 137, "Killed", None, "unexpected"),
        (12638027776, 0, "", 'Usage of EmptyDir volume "other" exceeds the limit "32Mi".', "unexpected"),
        (12638027776, 0, "", "The node was low on resource: memory.", "unexpected"),
    ],
)
def test_decide(df_size, rc, output, eviction, outcome):
    got, reason = canary.decide(32 * MI, df_size, rc, output, eviction, "dshm", "32Mi")
    assert got == outcome
    assert reason


def test_eviction_message_must_name_volume_and_limit():
    assert canary.eviction_message_matches(MESSAGE, "dshm", "32Mi")
    assert not canary.eviction_message_matches(MESSAGE, "dshm", "64Mi")
    assert not canary.eviction_message_matches(MESSAGE, "cache", "32Mi")
    assert not canary.eviction_message_matches(None, "dshm", "32Mi")


@pytest.mark.parametrize(
    "outcome, expected, ok",
    [
        ("sized", "sized", True),
        ("evicted", "eviction", True),
        ("evicted", "evicted", True),
        ("evicted", "sized", False),
        ("sized", None, True),
        ("evicted", None, True),
        ("not_enforced", None, False),
        ("error", "sized", False),
    ],
)
def test_probe_ok(outcome, expected, ok):
    assert canary.probe_ok(outcome, expected) is ok


def test_eviction_from_prefers_the_event():
    pod = {"status": {"phase": "Failed", "reason": "Evicted", "message": MESSAGE}}
    events = [{"reason": "Scheduled", "message": "x"}, {"reason": "Evicted", "message": MESSAGE.strip()}]
    assert canary.eviction_from(pod, events) == (MESSAGE.strip(), "event")
    assert canary.eviction_from(pod, []) == (MESSAGE, "pod_status")
    assert canary.eviction_from({"status": {"phase": "Running"}}, []) == (None, None)


def test_waiting_problem():
    assert canary.waiting_problem({"status": {"phase": "Pending"}}) is None
    pod = {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image not present"}}}]}}
    assert canary.waiting_problem(pod).startswith("ErrImageNeverPull")
    pod = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes"}]}}
    assert canary.waiting_problem(pod) == "unschedulable: 0/2 nodes"
