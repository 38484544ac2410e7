# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rollback.py: the shmfix.io/original record and exact, idempotent rollbacks."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils import rollback
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from shm_fixtures import GI, load


def test_rollback_is_idempotent_and_keeps_later_unrelated_edits():
    spec = load("cronjob-batch-inference")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=3 * GI)
    after = planner.apply_plan(spec, p)
    after["volumes"].append({"name": "scratch", "emptyDir": {}})
    after["containers"][0]["volumeMounts"].append({"name": "scratch", "mountPath": "/scratch"})
    back = rollback.rollback(after, p["original"])
    assert back["volumes"] == spec["volumes"] + [{"name": "scratch", "emptyDir": {}}]
    assert back["containers"][0]["volumeMounts"] == spec["containers"][0]["volumeMounts"] + [{"name": "scratch", "mountPath": "/scratch"}]
    assert rollback.rollback(back, p["original"]) == back
    assert rollback.plan_rollback(back, p["original"])["action"] == "none"


def test_repatch_keeps_the_first_original():
    spec = load("cronjob-batch-inference")[2]
    first = planner.plan(spec, parse=parse_bytes, size_bytes=GI)
    once = planner.apply_plan(spec, first)
    second = planner.plan(once, parse=parse_bytes, size_bytes=2 * GI, existing="replace")
    assert second["action"] == "resize"
    merged = rollback.merge_original(first["original"], second["original"])
    assert merged["volume"]["entry"] is None  # shmfix added the volume: rollback removes it
    assert merged["size_limit"] == "2Gi"
    assert rollback.rollback(planner.apply_plan(once, second), merged) == spec
    assert rollback.merge_original(None, second["original"]) == second["original"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"v": 2, "volume": {"name": "dshm"}, "mounts": []}',
        '{"v": 1, "volume": {}, "mounts": []}',
        '{"v": 1, "volume": {"name": "d"}, "mounts": [1]}',
    ],
)
def test_decode_original_rejects_foreign_annotations(text):
    with pytest.raises(ValueError, match="annotation shmfix.io/original was not written by shmfix or was edited"):
        rollback.decode_original(text)


def test_a_size_limit_raised_by_hand_is_drift_and_not_thrown_away():
    # the trial: fixed at 512Mi, raised by hand to 700Mi, then rolled back
    spec = load("cronjob-batch-inference")[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=512 * 1024**2)
    after = planner.apply_plan(spec, p)
    assert rollback.plan_rollback(after, p["original"], parse=parse_bytes)["action"] == "rollback"
    after["volumes"][-1]["emptyDir"]["sizeLimit"] = "700Mi"
    drift = rollback.plan_rollback(after, p["original"], parse=parse_bytes)
    assert drift["action"] == "skip" and not drift["patch"]
    assert drift["reason"].startswith("drift since shmfix patched it: volume dshm is now ")
    assert '"sizeLimit": "700Mi"' in drift["reason"] and '"sizeLimit": "512Mi"' in drift["reason"]
    assert drift["reason"].endswith("restore it by hand, or roll back with force to put back what was there before shmfix")
    forced = rollback.plan_rollback(after, p["original"], force=True, parse=parse_bytes)
    assert forced["action"] == "rollback" and planner.apply_plan(after, forced) == spec
    # the same size written another way is no drift
    after["volumes"][-1]["emptyDir"]["sizeLimit"] = "536870912"
    assert rollback.plan_rollback(after, p["original"], parse=parse_bytes)["action"] == "rollback"


def test_a_volume_another_mount_uses_is_never_removed():
    # the trial: a rollback the API server refused with 422 volumeMounts[0].name: Not found: "dshm"
    spec = {"containers": [{"name": "app"}], "initContainers": [{"name": "warm"}]}
    p = planner.plan(spec, parse=parse_bytes, size_bytes=GI)
    after = planner.apply_plan(spec, p)
    after["initContainers"][0]["volumeMounts"] = [{"name": "dshm", "mountPath": "/warm"}]
    for force in (False, True):
        plan = rollback.plan_rollback(after, p["original"], force=force, parse=parse_bytes)
        assert plan["action"] == "skip"
        assert "volume dshm, which shmfix added, is also mounted by init container warm at /warm: removing it would break that mount" in plan["reason"]
        assert plan["reason"].endswith("restore it by hand")
