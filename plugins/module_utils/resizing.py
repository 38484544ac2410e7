# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shm_patch strategy=inplace: resize /dev/shm of running pods through their ``resize`` subresource.

Next to patching.py (which writes pod templates). ``split`` decides per planned workload (inplace.qualify:
its template plan, its running pods, their nodes' declared features) whether it is resized in place or
rolled out; ``resize_workloads`` records the old size on each pod (annotation shmfix.io/resized-from),
patches ``pods/<name>/resize`` (only the volume's sizeLimit, guarded by its name and old value; dryRun=All
in check mode), waits until the kubelet has actuated it (inplace.resize_state) and, when a kubelet refuses
(Infeasible, cgroup v1, an error) or does not finish in time, resizes that workload's pods back and hands it
to the rollout with the kubelet's reason. ``restore_workloads`` (state=absent) resizes back what the
annotations recorded.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils import inplace
from ansible_collections.shmfix.k8s.plugins.module_utils.client import resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.dfexec import select_pods, selector_to_string
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes

DEFAULT_RESIZE_TIMEOUT = 60
POLL_INTERVAL = 0.5


def _pod_path(namespace, name, subresource=None):
    return resource_path("v1", "pods", namespace, name, subresource)


def running_pods(kube, spec, obj):
    """The running, not terminating pods the workload's selector matches."""
    selector = selector_to_string((obj.get("spec") or {}).get("selector"))
    if not selector:
        return []
    return select_pods(kube, obj["metadata"]["namespace"], label_selector=selector)


def split(kube, planned, nodes, request):
    """(planned for the rollout, [(spec, obj, record, step, verdict)] to resize in place).

    Every record gets ``strategy`` and ``strategy_reason``. Only workloads that would be written qualify.
    """
    rollout, resize = [], []
    existing = request["options"]["existing"]
    declared = nodes.get("declared") or {}
    for spec, obj, (record, step) in planned:
        if step is None:
            rollout.append((spec, obj, (record, step)))
            continue
        why = inplace.template_reason(spec["kind"], step.plan)
        pods = [] if why else running_pods(kube, spec, obj)
        verdict = inplace.qualify(spec["kind"], step.plan, pods, declared, parse=parse_bytes, existing=existing)
        record.update(strategy=verdict["strategy"], strategy_reason=verdict["reason"])
        if verdict["strategy"] == inplace.INPLACE:
            resize.append((spec, obj, record, step, verdict))
        else:
            rollout.append((spec, obj, (record, step)))
    return rollout, resize


def _annotate(kube, namespace, entry, value):
    """Set (value) or remove (None) shmfix.io/resized-from on the pod, guarded by what it holds now."""
    path = "/metadata/annotations/" + inplace.ANNOTATION_RESIZED_FROM.replace("~", "~0").replace("/", "~1")
    current = entry.get("annotation")
    if value is None:
        ops = [{"op": "test", "path": path, "value": current}, {"op": "remove", "path": path}]
    elif entry.get("has_annotations"):
        ops = [{"op": "test", "path": path, "value": current}, {"op": "add", "path": path, "value": value}]
    else:
        ops = [
            {"op": "test", "path": "/metadata/annotations", "value": None},
            {"op": "add", "path": "/metadata/annotations", "value": {inplace.ANNOTATION_RESIZED_FROM: value}},
        ]
    kube.patch(_pod_path(namespace, entry["pod"]), ops, verb="patch", resource="pods", namespace=namespace, name=entry["pod"])


def _resize(kube, namespace, entry, old, new, dry_run):
    ops = inplace.resize_patch(entry["index"], entry["volume"], old, new)
    written = kube.patch(
        _pod_path(namespace, entry["pod"], "resize"), ops, dry_run=dry_run, verb="patch", resource="pods/resize", namespace=namespace, name=entry["pod"]
    )
    return (written.get("metadata") or {}).get("generation")


def _with_annotation(kube, namespace, entry):
    """The entry with the pod's current shmfix.io/resized-from (the first size ever recorded is kept)."""
    pod = kube.get(_pod_path(namespace, entry["pod"]), verb="get", resource="pods", namespace=namespace, name=entry["pod"])
    annotations = (pod.get("metadata") or {}).get("annotations")
    return dict(entry, annotation=(annotations or {}).get(inplace.ANNOTATION_RESIZED_FROM), has_annotations=annotations is not None)


def _send(kube, namespace, entries, dry_run, record_original=True):
    """Annotate (record_original) and resize every pod; the entries sent (with generation, sent_at) and the first refusal (or None)."""
    sent = []
    for entry in entries:
        try:
            if record_original and not dry_run:
                entry = _with_annotation(kube, namespace, entry)
                if not entry["annotation"]:
                    _annotate(kube, namespace, entry, inplace.resized_from(entry["volume"], entry["from"]))
            started = time.time()
            generation = _resize(kube, namespace, entry, entry["from"], entry["to"], dry_run)
        except ShmfixError as err:
            if err.status in (401, 403) or err.status is None:
                raise
            return sent, "the API server refused the resize of pod %s: %s" % (entry["pod"], err.msg)
        sent.append(dict(entry, generation=generation, sent_at=started))
    return sent, None


def _wait(kube, namespace, sent, timeout, clock=time.time, sleep=time.sleep):
    """Poll each resized pod until the kubelet actuated the resize; None, or why one was not."""
    deadline = clock() + timeout
    pending = list(sent)
    while pending:
        left = []
        for entry in pending:
            pod = kube.get(_pod_path(namespace, entry["pod"]), verb="get", resource="pods", namespace=namespace, name=entry["pod"])
            state, message = inplace.resize_state(pod, entry["generation"])
            if state == "done":
                entry["actuated_s"] = round(clock() - entry["sent_at"], 2)
                entry["restart_count"] = sum(c.get("restartCount") or 0 for c in (pod.get("status") or {}).get("containerStatuses") or [])
            elif state in ("infeasible", "error"):
                return "the kubelet on node %s did not resize pod %s in place (%s): %s" % (entry["node"], entry["pod"], state, message)
            else:
                entry["waiting_for"] = message
                left.append(entry)
        pending = left
        if pending and clock() >= deadline:
            e = pending[0]
            return "pod %s on node %s not resized within %ss (%s)" % (e["pod"], e["node"], timeout, e.get("waiting_for"))
        if pending:
            sleep(POLL_INTERVAL)
    return None


def _undo(kube, namespace, sent):
    """Resize back and unannotate the pods of a workload whose resize did not complete (best effort: errors noted)."""
    notes = []
    for entry in reversed(sent):
        try:
            _resize(kube, namespace, entry, entry["to"], entry["from"], False)
            _annotate(kube, namespace, _with_annotation(kube, namespace, entry), None)
        except ShmfixError as err:
            notes.append("pod %s: %s" % (entry["pod"], err.msg))
    return "; resized back to %s" % sent[0]["from"] if sent and not notes else ("; resizing back failed: " + "; ".join(notes) if notes else "")


def resize_workloads(kube, items, check_mode, timeout=DEFAULT_RESIZE_TIMEOUT):
    """Resize each item's pods; ([(spec, obj, (record, step))] that fall back to the rollout, [records resized])."""
    fallback, resized = [], []
    for spec, obj, record, step, verdict in items:
        namespace = obj["metadata"]["namespace"]
        sent, refused = _send(kube, namespace, verdict["pods"], check_mode)
        why = refused or (None if check_mode else _wait(kube, namespace, sent, timeout))
        if why:
            why += "" if check_mode else _undo(kube, namespace, sent)
            record.update(strategy=inplace.ROLLOUT, strategy_reason=why)
            fallback.append((spec, obj, (record, step)))
            continue
        record["resized_pods"] = [_public(e) for e in sent]
        record["pods"] = sorted([e["pod"] for e in sent] + verdict["done"])
        if sent:
            record["action"] = "would_resize" if check_mode else "resized"
        else:
            record["action"] = "unchanged"
        record["reason"] = verdict["reason"]
        resized.append(record)
    return fallback, resized


def _public(entry):
    keys = ("pod", "uid", "node", "volume", "from", "to", "generation", "actuated_s", "restart_count")
    return {k: entry.get(k) for k in keys if k in entry}


def _restore_entries(pod):
    """[entry] resizing a pod back to what shmfix.io/resized-from recorded, or ValueError when the annotation is bad."""
    recorded = ((pod.get("metadata") or {}).get("annotations") or {}).get(inplace.ANNOTATION_RESIZED_FROM)
    if not recorded:
        return []
    volume, size = inplace.parse_resized_from(recorded)
    size_bytes = parse_bytes(size, "%s of pod %s" % (inplace.ANNOTATION_RESIZED_FROM, pod["metadata"]["name"]))
    entry, why = inplace.pod_resize(pod, volume, size_bytes, parse=parse_bytes, existing="replace")
    if why:
        raise ValueError(why)
    return [dict(entry, annotation=recorded, has_annotations=True)] if entry else [dict(pod=pod["metadata"]["name"], annotation=recorded, unannotate_only=True)]


def restore_workload(kube, spec, obj, check_mode, timeout=DEFAULT_RESIZE_TIMEOUT):
    """Resize the workload's pods back to shmfix.io/resized-from: (number of pods, reason, error or None)."""
    if spec["kind"] not in inplace.RESIZABLE_KINDS:
        return 0, None, None
    namespace = obj["metadata"]["namespace"]
    try:
        entries = [e for pod in running_pods(kube, spec, obj) for e in _restore_entries(pod)]
    except ValueError as exc:
        return 0, "cannot resize back in place", str(exc)
    if not entries:
        return 0, None, None
    # pod_resize already gives each entry from (the pod's size now) and to (the recorded one)
    back = [e for e in entries if not e.get("unannotate_only")]
    sent, refused = _send(kube, namespace, back, check_mode, record_original=False)
    why = refused or (None if check_mode else _wait(kube, namespace, sent, timeout))
    if why:
        return len(entries), "resizing back in place failed", why
    if not check_mode:
        for entry in entries:
            _annotate(kube, namespace, entry, None)
    sizes = "/".join(sorted({e["to"] for e in back})) or "their recorded size"
    return len(entries), "resize %d pod(s) back to %s in place (%s)" % (len(entries), sizes, inplace.ANNOTATION_RESIZED_FROM), None


def run_in_place(kube, planned, nodes, request, check_mode):
    """shm_patch strategy=inplace, state=present: (planned left for the template writes, records resized in place)."""
    rollout, items = split(kube, planned, nodes, request)
    fallback, resized = resize_workloads(kube, items, check_mode, request["resize_timeout"])
    return rollout + fallback, resized


def restore_in_place(kube, planned, outcomes, check_mode, timeout=DEFAULT_RESIZE_TIMEOUT):
    """shm_patch strategy=inplace, state=absent: resize back the pods of each workload whose template had nothing to restore."""
    for (spec, obj, _first), (record, _diff) in zip(planned, outcomes):
        if record["action"] != "unchanged":
            continue
        count, reason, error = restore_workload(kube, spec, obj, check_mode, timeout)
        if error:
            record.update(action="failed", reason=reason, error=error)
        elif count:
            record.update(action="would_restore" if check_mode else "restored", reason=reason, strategy=inplace.INPLACE, strategy_reason=reason)
