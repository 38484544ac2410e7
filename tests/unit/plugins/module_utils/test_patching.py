# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""patching.py steps that need no API server: the full JSON patch, conflict detection, planning one object."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import kinds, patching, podspec, rollback
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ConflictError, ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.options import size_options
from ansible_collections.shmfix.k8s.plugins.module_utils.records import BRIEF_FIELDS

NO_NODES = {"allocatable": {}, "capacity": {}, "labels": {}, "mode": {}, "error": None}


def _deployment(annotations=None, containers=None):
    meta = {"name": "web", "namespace": "a", "resourceVersion": "41"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"template": {"spec": {"containers": containers or [{"name": "c", "image": "x"}]}}}}


def _request(state="present", **params):
    return {"state": state, "options": size_options(params), "managed": params.get("managed", "warn")}


def test_patch_is_guarded_and_records_the_original():
    obj = _deployment()
    plan = planner.plan(obj["spec"]["template"]["spec"], parse=lambda v, w=None, allow_zero=False: 268435456, size_bytes=268435456)
    ops = patching.build_ops(kinds.builtin("Deployment"), obj, plan, "present")
    # without a generation the resourceVersion is the precondition
    assert ops[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "41"}
    assert all(op["path"].startswith("/spec/template/spec/") or op["path"].startswith("/metadata/") for op in ops)
    # the object had no annotations: the whole map is added, guarded by its absence
    assert ops[-2:-1] == [{"op": "test", "path": "/metadata/annotations", "value": None}]
    assert ops[-1]["path"] == "/metadata/annotations"
    assert rollback.decode_original(ops[-1]["value"][podspec.ANNOTATION_ORIGINAL])["volume"]["name"] == "dshm"


def test_generation_is_the_precondition_when_the_object_has_one():
    # a controller's status write bumps the resourceVersion, not the generation: it is no conflict
    obj = _deployment({"team": "payments"})
    obj["metadata"]["generation"] = 7
    plan = planner.plan(obj["spec"]["template"]["spec"], parse=lambda v, w=None, allow_zero=False: 268435456, size_bytes=268435456)
    ops = patching.build_ops(kinds.builtin("Deployment"), obj, plan, "present")
    assert ops[0] == {"op": "test", "path": "/metadata/generation", "value": 7}
    assert not [op for op in ops if op["path"] == "/metadata/resourceVersion"]
    # the map exists: only our key is added, guarded by its value when read (absent: null)
    assert ops[-2] == {"op": "test", "path": "/metadata/annotations/shmfix.io~1original", "value": None}
    assert ops[-1]["op"] == "add" and ops[-1]["path"] == "/metadata/annotations/shmfix.io~1original"


def test_rollback_removes_the_annotation_only():
    obj = _deployment({"keep": "me", podspec.ANNOTATION_ORIGINAL: "{}"})
    ops = patching.build_ops(kinds.builtin("Deployment"), obj, {"patch": []}, "absent")
    assert ops == [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "test", "path": "/metadata/annotations/shmfix.io~1original", "value": "{}"},
        {"op": "remove", "path": "/metadata/annotations/shmfix.io~1original"},
    ]


@pytest.mark.parametrize(
    "err, conflict, maybe",
    [
        (ConflictError("conflict", status=409), True, False),
        (
            ShmfixError(
                "API error 422 Unprocessable Entity while trying to patch x: the server rejected our request due to an error in our request", status=422
            ),
            False,
            True,
        ),
        (ShmfixError("spec.template.spec.volumes[1].name: Duplicate value", status=422), False, False),
        (ShmfixError("forbidden", status=403), False, False),
    ],
)
def test_conflict_detection(err, conflict, maybe):
    assert patching.is_conflict(err) is conflict
    assert patching.maybe_conflict(err) is maybe


def test_plan_object_present_then_nothing_to_do():
    spec = kinds.builtin("Deployment")
    record, step = patching.plan_object(spec, _deployment(), NO_NODES, _request(size_limit="1Gi"))
    assert (step.done, step.would, record["reason"]) == ("patched", "would_patch", "add Memory emptyDir dshm (sizeLimit 1Gi) at /dev/shm in c")
    assert record["before"]["effective_bytes"] == 64 * 1024**2 and record["after"]["size_limit_bytes"] == 1024**3
    patched = _deployment(containers=step.new_spec["containers"])
    patched["spec"]["template"]["spec"] = step.new_spec
    record, step = patching.plan_object(spec, patched, NO_NODES, _request(size_limit="1Gi"))
    assert step is None and record["action"] == "unchanged"


@pytest.mark.parametrize(
    "annotations, action, reason",
    [
        ({podspec.ANNOTATION_SKIP: "true"}, "skipped", "annotation shmfix.io/skip=true"),
        ({podspec.ANNOTATION_SIZE_LIMIT: "2GB"}, "skipped", "bad annotation shmfix.io/size-limit: annotation shmfix.io/size-limit: '2GB' is not"),
    ],
)
def test_plan_object_skips_on_annotations(annotations, action, reason):
    record, step = patching.plan_object(kinds.builtin("Deployment"), _deployment(annotations), NO_NODES, _request())
    assert step is None and record["action"] == action and record["reason"].startswith(reason)


def test_a_corrupted_original_record_leaves_the_workload_alone():
    record, step = patching.plan_object(
        kinds.builtin("Deployment"), _deployment({podspec.ANNOTATION_ORIGINAL: '{"v": 1'}), NO_NODES, _request(size_limit="1Gi")
    )
    assert step is None and record["action"] == "skipped"
    assert record["reason"].startswith("bad annotation shmfix.io/original: shmfix.io/original: annotation shmfix.io/original was not written by shmfix")
    assert record["findings"][-1]["code"] == "bad_annotation"


def test_plan_object_immutable_and_bad_rollback_record():
    record, step = patching.plan_object(kinds.builtin("Job"), _deployment(), NO_NODES, _request())
    assert step is None and record["action"] == "immutable"
    record, step = patching.plan_object(kinds.builtin("Deployment"), _deployment({podspec.ANNOTATION_ORIGINAL: "not json"}), NO_NODES, _request("absent"))
    assert step is None and (record["action"], record["reason"]) == ("skipped", "bad annotation shmfix.io/original")


@pytest.mark.parametrize(
    "err, attempt, verdict",
    [
        (ShmfixError("unauthorized", status=401), 0, "fatal"),
        (ShmfixError("forbidden", status=403), 0, "fatal"),
        (ShmfixError("cannot reach the API server", reason="Unreachable"), 0, "fatal"),
        (ShmfixError("volumes[0].name: Duplicate value", status=422), 0, "refused"),
        (ConflictError("conflict", status=409), 0, "reread"),
        (ConflictError("conflict", status=409), patching.CONFLICT_RETRIES, "exhausted"),
        (ShmfixError(patching._FAILED_TEST, status=422), 1, "reread"),
    ],
)
def test_refusal(err, attempt, verdict):
    assert patching.refusal(err, attempt) == verdict


def test_a_failed_guard_is_a_concurrent_edit_only_when_the_object_changed():
    guard = ShmfixError(patching._FAILED_TEST, status=422)
    obj = _deployment()
    assert not patching.concurrent_edit(guard, obj, _deployment())
    moved = _deployment()
    moved["metadata"]["resourceVersion"] = "42"
    assert patching.concurrent_edit(guard, obj, moved)
    assert patching.concurrent_edit(ConflictError("conflict", status=409), obj, _deployment())


def _written_records():
    """Records of three workloads after a run: one patched, one already fixed (unchanged), one skipped."""
    spec = kinds.builtin("Deployment")
    request = _request(size_limit="1Gi")
    patched, step = patching.plan_object(spec, _deployment(), NO_NODES, request)
    patched["action"] = step.done  # as the write sets it
    fixed = _deployment()
    fixed["spec"]["template"]["spec"] = step.new_spec
    unchanged, _none = patching.plan_object(spec, fixed, NO_NODES, request)
    skipped, _none = patching.plan_object(spec, _deployment({podspec.ANNOTATION_SKIP: "true"}), NO_NODES, request)
    return [patched, unchanged, skipped]


def test_unchanged_records_full_brief_or_none():
    records = _written_records()
    assert [r["action"] for r in records] == ["patched", "unchanged", "skipped"]
    assert patching.shown_records(records, "full") is records
    brief = patching.shown_records(records, "brief")
    assert brief[0] is records[0] and brief[2] is records[2]  # every other outcome in full
    assert set(brief[1]) == set(BRIEF_FIELDS) | {"findings"}
    assert (brief[1]["name"], brief[1]["state"], brief[1]["after"]) == ("web", "sized", records[1]["after"])
    assert [f["severity"] for f in brief[1]["findings"]] == [f["severity"] for f in records[1]["findings"] if f["severity"] != "info"]
    assert len(repr(brief[1])) < len(repr(records[1])) / 2
    assert patching.shown_records(records, "none") == [records[0], records[2]]
    # the summary counts every record, whichever are shown
    assert patching.summarize_patch(records)["unchanged"] == 1
