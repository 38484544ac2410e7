# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shm_patch: plan each selected workload, write minimal JSON patches, retry on conflicts.

One step per function: ``run_patch`` validates the options (options.size_options, before any
request), selects the workloads, and for each object ``patch_object`` plans (``plan_object``:
assessment, size policy, plan or rollback plan, the full JSON patch) and writes it
(``write_patch``), re-reading and re-planning on a conflict (``after_refusal``), at most
CONFLICT_RETRIES times. Writes carry the resourceVersion that was read, field manager ``shmfix``,
and ``dryRun=All`` in check mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils import resizing, rollback
from ansible_collections.shmfix.k8s.plugins.module_utils.assessment import assess
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kind_path
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ConflictError, ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.gitops import gitops_snippet
from ansible_collections.shmfix.k8s.plugins.module_utils.kinds import pointer
from ansible_collections.shmfix.k8s.plugins.module_utils.nodes import node_context, read_nodes
from ansible_collections.shmfix.k8s.plugins.module_utils.options import at_least_one, size_options
from ansible_collections.shmfix.k8s.plugins.module_utils.outcomes import CHANGED_ACTIONS
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import ANNOTATION_ORIGINAL, ANNOTATION_SIZE_LIMIT, ANNOTATION_SKIP, is_skipped
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from ansible_collections.shmfix.k8s.plugins.module_utils.records import assess_object, brief_record, nodes_warning, pod_template
from ansible_collections.shmfix.k8s.plugins.module_utils.selection import resolve_kinds, select_workloads
from ansible_collections.shmfix.k8s.plugins.module_utils.size_policy import desired_size

CONFLICT_RETRIES = 3
# Writes in flight at once: the API server, not the client, is what a write waits for.
DEFAULT_PARALLELISM = 8

# What the API server answers when a JSON-patch `test` op fails (no details): the object may have
# changed under the plan's guards. Re-read: a new resourceVersion means it was a concurrent edit.
_FAILED_TEST = "the server rejected our request due to an error in our request"


class Step(object):
    """A planned write of one object: the plan, the pod spec before and after, the full JSON patch."""

    def __init__(self, plan, pod_spec, new_spec, ops, done, would):
        self.plan = plan
        self.pod_spec = pod_spec
        self.new_spec = new_spec
        self.ops = ops
        self.done = done
        self.would = would


# --------------------------------------------------------------------------- the JSON patch


def annotation_ops(obj, key, value):
    """JSON patch ops that set (value) or remove (None) one object annotation, guarded by what was read.

    The ``test`` op checks the annotation (or the whole map, when the object had none) still holds what was
    read: a concurrent edit of it makes the write fail and the object is read again. (The API server's
    JSON patch treats ``test`` with ``null`` on a missing member as true.)
    """
    annotations = (obj.get("metadata") or {}).get("annotations")
    path = "/metadata/annotations" + pointer([key])
    if annotations is None:
        if value is None:
            return []
        return [{"op": "test", "path": "/metadata/annotations", "value": None}, {"op": "add", "path": "/metadata/annotations", "value": {key: value}}]
    guard = {"op": "test", "path": path, "value": annotations.get(key)}
    if value is None:
        return [guard, {"op": "remove", "path": path}] if key in annotations else []
    return [guard, {"op": "add", "path": path, "value": value}]


def precondition(obj):
    """The guard that the object did not change where the patch writes, since it was read.

    ``metadata.generation`` moves with every change of the spec, and only then: a status write by a
    controller (every rollout makes several) is not a conflict, a concurrent edit of the pod template is.
    The annotations the patch writes carry their own guards (annotation_ops). An object without a
    generation falls back to its resourceVersion (the API server refuses a stale one with 409 Conflict).
    """
    meta = obj.get("metadata") or {}
    if meta.get("generation") is not None:
        return [{"op": "test", "path": "/metadata/generation", "value": meta["generation"]}]
    return [{"op": "replace", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}] if meta.get("resourceVersion") else []


def build_ops(spec, obj, plan, state):
    """The full JSON patch for an object: resourceVersion test, pod spec ops, annotation ops."""
    ops = precondition(obj) + planner.prefix_patch(plan.get("patch") or [], spec.pod_spec_pointer())
    recorded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ORIGINAL)
    if state != "present":
        return ops + annotation_ops(obj, ANNOTATION_ORIGINAL, None)
    original = plan.get("original")
    if original is None:
        return ops
    if recorded:
        try:
            original = rollback.merge_original(rollback.decode_original(recorded), original)
        except ValueError:
            pass
    return ops + annotation_ops(obj, ANNOTATION_ORIGINAL, rollback.encode_original(original))


# --------------------------------------------------------------------------- planning one object


def _final(record, **fields):
    """Set the record's outcome when there is nothing to write (returns None: no plan, no object)."""
    record.update(fields)


def _sizes(assessment):
    return {
        "state": assessment.get("state") if assessment else None,
        "size_limit_bytes": assessment.get("size_limit_bytes") if assessment else None,
        "effective_bytes": assessment.get("effective_bytes") if assessment else None,
    }


def _bad_record(record, recorded):
    """True, with a finding, when shmfix.io/original cannot be read: what was there before shmfix is unknown, so
    the workload is left alone (patching would overwrite the record and make a rollback restore the wrong state)."""
    try:
        rollback.decode_original(recorded)
    except ValueError as exc:
        record["findings"].append({"severity": "error", "code": "bad_annotation", "message": "%s: %s" % (ANNOTATION_ORIGINAL, exc)})
        return True
    return False


def _plan_present(record, spec, obj, pod_spec, assessment, request):
    """(plan, new_spec) for state=present, or None with the record's action set (skipped, unchanged, failed)."""
    pod_meta = pod_template(spec, obj)[0]
    if is_skipped(pod_metadata=pod_meta, object_metadata=obj.get("metadata") or {}):
        return _final(record, action="skipped", reason="annotation %s=true" % ANNOTATION_SKIP)
    bad = [f for f in record["findings"] if f.get("code") == "bad_annotation"]
    if bad:
        return _final(record, action="skipped", reason="bad annotation %s: %s" % (ANNOTATION_SIZE_LIMIT, bad[0]["message"]))
    recorded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ORIGINAL)
    if recorded and _bad_record(record, recorded):
        return _final(record, action="skipped", reason="bad annotation %s: %s" % (ANNOTATION_ORIGINAL, record["findings"][-1]["message"]))
    opts = request["options"]
    size, source = desired_size(
        pod_spec,
        parse=parse_bytes,
        size_limit=opts["size_limit"],
        size_ratio=opts["size_ratio"],
        min_size=opts["min_size"],
        max_size=opts["max_size"],
        annotation_bytes=assessment["annotation_size_limit_bytes"],
    )
    plan = planner.plan(pod_spec, parse=parse_bytes, size_bytes=size, existing=opts["existing"], volume_name=opts["volume_name"])
    plan["size_source"] = source
    if plan["action"] == "skip":
        return _final(record, action="skipped", reason=plan["reason"] or "")
    if not plan["patch"]:
        return _final(record, action="unchanged", reason=plan["reason"] or "")
    if record.get("managed_by"):
        record["snippet"] = gitops_snippet(spec, plan, name=record["name"])
        if request["managed"] == "skip":
            return _final(record, action="skipped", reason="managed by %s (managed=skip): apply the snippet in its source" % record["managed_by"])
    return plan, planner.apply_plan(pod_spec, plan)


def _plan_absent(record, obj, pod_spec, request):
    """(plan, new_spec) restoring what shmfix.io/original recorded, or None with the record's action set."""
    recorded = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ORIGINAL)
    if not recorded:
        return _final(record, action="unchanged", reason="no %s annotation: nothing to restore" % ANNOTATION_ORIGINAL)
    try:
        original = rollback.decode_original(recorded)
    except ValueError as exc:
        record["findings"].append({"severity": "error", "code": "bad_annotation", "message": "%s: %s" % (ANNOTATION_ORIGINAL, exc)})
        return _final(record, action="skipped", reason="bad annotation %s" % ANNOTATION_ORIGINAL)
    plan = rollback.plan_rollback(pod_spec, original, force=request["force"], parse=parse_bytes)
    if plan["action"] == "skip":
        return _final(record, action="skipped", reason=plan["reason"])
    return plan, planner.apply_plan(pod_spec, plan)


def plan_object(spec, obj, nodes, request):
    """(record, Step or None): what to write for one object; None when nothing is (the record says why)."""
    record, assessment, pod_spec = assess_object(spec, obj, nodes)
    record.update(action="unchanged", reason="", before=_sizes(assessment), after=_sizes(assessment), snippet=None, error=None)
    if assessment is None:
        record.update(action="failed", reason="no pod template", error=record["findings"][-1]["message"])
        return record, None
    if spec["immutable"]:
        record.update(action="immutable", reason=record["findings"][-1]["message"])
        return record, None
    present = request["state"] == "present"
    try:
        planned = _plan_present(record, spec, obj, pod_spec, assessment, request) if present else _plan_absent(record, obj, pod_spec, request)
    except ValueError as exc:
        record.update(action="failed", reason="cannot plan" if present else "cannot plan the rollback", error=str(exc))
        return record, None
    if planned is None:
        return record, None
    plan, new_spec = planned
    record["reason"] = plan.get("reason") or ""
    alloc, cap, mode = node_context(nodes, new_spec)
    after = assess(new_spec, parse=parse_bytes, node_allocatable_bytes=alloc, node_mode=mode, node_capacity_bytes=cap, with_findings=False)
    record["after"] = _sizes(after)
    done, would = ("patched", "would_patch") if present else ("restored", "would_restore")
    return record, Step(plan, pod_spec, new_spec, build_ops(spec, obj, plan, request["state"]), done, would)


# --------------------------------------------------------------------------- writing one object


def write_patch(kube, spec, obj, ops, dry_run):
    meta = obj["metadata"]
    return kube.patch(
        kind_path(spec, meta.get("namespace"), meta["name"]),
        ops,
        patch_type="json",
        dry_run=dry_run,
        resource=spec.resource,
        namespace=meta.get("namespace"),
        name=meta["name"],
    )


def is_conflict(err):
    return isinstance(err, ConflictError) or err.status == 409


def maybe_conflict(err):
    return err.status == 422 and _FAILED_TEST in (err.msg or "")


def is_fatal(err):
    """Errors that would repeat for every object: credentials, RBAC, transport."""
    return err.status in (401, 403) or err.status is None


def reread(kube, spec, obj):
    meta = obj["metadata"]
    fresh = kube.get(
        kind_path(spec, meta.get("namespace"), meta["name"]), verb="get", resource=spec.resource, namespace=meta.get("namespace"), name=meta["name"]
    )
    fresh.setdefault("apiVersion", spec["api_version"])
    fresh.setdefault("kind", spec["kind"])
    return fresh


def refusal(err, attempt):
    """What a refused write means (pure): 'fatal' (propagate), 'refused', 'exhausted' (retries used up) or 'reread'."""
    if is_fatal(err):
        return "fatal"
    if not (is_conflict(err) or maybe_conflict(err)):
        return "refused"
    return "exhausted" if attempt >= CONFLICT_RETRIES else "reread"


def concurrent_edit(err, obj, fresh):
    """True when the object changed since it was read (a 409, or a failed guard on a new resourceVersion)."""
    return is_conflict(err) or fresh["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion")


def after_refusal(kube, spec, obj, err, record, attempt):
    """The object to plan again after a refused write, or None with the record failed. Fatal errors propagate."""
    verdict = refusal(err, attempt)
    if verdict == "fatal":
        raise err
    if verdict == "refused":
        return _final(record, action="failed", error=err.msg, reason="write refused")
    if verdict == "exhausted":
        return _final(record, action="failed", error=err.msg, reason="still conflicting after %d re-reads" % attempt)
    try:
        fresh = reread(kube, spec, obj)
    except ShmfixError as err2:
        if is_fatal(err2):
            raise
        return _final(record, action="failed", error=err2.msg, reason="re-read after a conflict failed")
    if not concurrent_edit(err, obj, fresh):
        return _final(record, action="failed", error=err.msg, reason="write refused (a guard of the patch failed on an unchanged object)")
    return fresh


def _diff_entry(record, before_spec, after_spec):
    d = planner.template_diff(before_spec, after_spec)
    header = "%s %s/%s" % (record["kind"], record["namespace"] or "-", record["name"])
    return {"before_header": header, "after_header": header, "before": d.get("before"), "after": d.get("after")}


def patch_object(kube, spec, obj, nodes, request, check_mode=False, want_diff=False, planned=None):
    """Plan (unless ``planned`` is plan_object's result) and (dry-)write one object: (record, diff entry or None).

    A refused write re-reads the object and plans again (after_refusal); fatal API errors propagate as ShmfixError.
    """
    record, step = planned or plan_object(spec, obj, nodes, request)
    attempt = 0
    while step is not None:
        try:
            written = write_patch(kube, spec, obj, step.ops, dry_run=check_mode)
        except ShmfixError as err:
            obj = after_refusal(kube, spec, obj, err, record, attempt)
            if obj is None:
                return record, None
            attempt += 1
            record, step = plan_object(spec, obj, nodes, request)
            record["conflict_retries"] = attempt
            continue
        record["action"] = step.would if check_mode else step.done
        if not check_mode and written.get("metadata", {}).get("resourceVersion"):
            record["resource_version"] = written["metadata"]["resourceVersion"]
        return record, (_diff_entry(record, step.pod_spec, step.new_spec) if want_diff else None)
    return record, None


def write_all(kube, planned, nodes, request, check_mode=False, want_diff=False, parallelism=DEFAULT_PARALLELISM):
    """[(record, diff)] in the order of ``planned`` ([(spec, obj, plan_object result)]), the writes ``parallelism`` at a time.

    On a fatal error the writes not yet started are cancelled and the error carries the records that finished.
    """
    outcomes = [None if step is not None else (record, None) for _spec, _obj, (record, step) in planned]
    writes = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if not writes:
        return outcomes
    error = None
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(writes)))) as pool:
        futures = {
            i: pool.submit(patch_object, kube, spec, obj, nodes, request, check_mode, want_diff, first) for i, (spec, obj, first) in _at(planned, writes)
        }
        for i in writes:
            try:
                outcomes[i] = futures[i].result()
            except ShmfixError as err:
                error = err
                for future in futures.values():
                    future.cancel()
                break
    if error is not None:  # the writes already running have finished: report every record that did
        finished = [o or futures[i].result() for i, o in enumerate(outcomes) if o or _succeeded(futures.get(i))]
        raise error.with_result(results=[record for record, _diff in finished])
    return outcomes


def _at(items, indexes):
    return [(i, items[i]) for i in indexes]


def _succeeded(future):
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


# --------------------------------------------------------------------------- the run


def summarize_patch(records):
    """Counts per action (check mode's would_* as their action), and the conflicts that were re-read and re-planned."""
    summary = {"patched": 0, "restored": 0, "resized": 0, "unchanged": 0, "skipped": 0, "immutable": 0, "failed": 0, "conflicts_retried": 0}
    for rec in records:
        key = {"would_patch": "patched", "would_restore": "restored", "would_resize": "resized"}.get(rec["action"], rec["action"])
        summary[key] = summary.get(key, 0) + 1
        summary["conflicts_retried"] += rec.get("conflict_retries") or 0
    return summary


def patch_request(params):
    """The validated request: state, size options (options.size_options), managed. ShmfixError before any request."""
    if not planner.HAS_JSONPATCH:
        raise ShmfixError(missing_required_lib("jsonpatch"), result={"exception": planner.JSONPATCH_IMPORT_ERROR})
    at_least_one(params, "parallelism", "resize_timeout")
    return {
        "state": params.get("state") or "present",
        "options": size_options(params),
        "managed": params.get("managed") or "warn",
        "force": bool(params.get("force")),
        "strategy": params.get("strategy") or "rollout",
        "resize_timeout": params.get("resize_timeout") or resizing.DEFAULT_RESIZE_TIMEOUT,
    }


def shown_records(records, unchanged="full"):
    """The records the result carries: those of unchanged workloads in full, brief (records.brief_record) or
    not at all ("none"; the summary still counts them). Every other record is always in full."""
    if unchanged == "full":
        return records
    return [r if r["action"] != "unchanged" else brief_record(r) for r in records if unchanged == "brief" or r["action"] != "unchanged"]


def _failure_message(records):
    failed = [r for r in records if r["action"] == "failed"]
    names = ", ".join("%s %s/%s: %s" % (r["kind"], r["namespace"], r["name"], r.get("error")) for r in failed)
    return "%d workload(s) could not be written: %s" % (len(failed), names) if failed else None


def run_patch(kube, params, check_mode=False, want_diff=False):
    """shm_patch: the module result. ShmfixError before any write on bad input; any failed record fails it (result kept).

    Every object is planned first (no request), then only the objects that change are written, ``parallelism``
    writes at a time: a run with nothing to change makes only its list calls.
    """
    start = kube.calls
    request = patch_request(params)
    warnings = []
    try:
        specs = resolve_kinds(kube, params.get("kinds"), params.get("extra_kinds"))
        selected = select_workloads(kube, params, specs, warnings)
        nodes = read_nodes(kube)
        planned = [(spec, obj, plan_object(spec, obj, nodes, request)) for spec, obj in selected]
        in_place, resized = request["strategy"] == "inplace", []
        if in_place and request["state"] == "present":
            planned, resized = resizing.run_in_place(kube, planned, nodes, request, check_mode)
        outcomes = write_all(kube, planned, nodes, request, check_mode, want_diff, params.get("parallelism") or DEFAULT_PARALLELISM)
        if in_place and request["state"] != "present":
            resizing.restore_in_place(kube, planned, outcomes, check_mode, request["resize_timeout"])
    except ShmfixError as err:
        records = err.result.get("results") or []
        raise err.with_result(results=records, changed=any(r["action"] in CHANGED_ACTIONS for r in records), api_calls=kube.calls - start)
    records = [record for record, _diff in outcomes] + resized
    result = {
        "changed": any(r["action"] in CHANGED_ACTIONS for r in records),
        "results": shown_records(records, params.get("unchanged_results") or "full"),
        "summary": summarize_patch(records),
        "api_calls": kube.calls - start,
        "api_retries": kube.retried,
    }
    warnings += [w for w in [nodes_warning(nodes)] if w]
    if warnings:
        result["warnings"] = warnings
    if want_diff:
        result["diff"] = [diff for _record, diff in outcomes if diff]
        for record, diff in outcomes:
            # Ansible's callbacks show the diff of a looped task item by item, and take a result with a
            # ``results`` key (this module's) for a loop: each changed record carries its own diff.
            if diff:
                record.update(diff=diff, changed=True)
    message = _failure_message(records)
    if message:
        raise ShmfixError(message, result=result)
    return result
