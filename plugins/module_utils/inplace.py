# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: in-place resize of /dev/shm (KEP-6030): which workloads qualify, why the others roll out,
the pod ``resize`` patch, and what the pod's status says about it.

Kubernetes v1.37 (alpha gate ``InPlacePodVerticalScalingMemoryBackedVolumes``, on the API server and
the kubelet) lets the ``resize`` subresource of a running pod change the ``sizeLimit`` of a
memory-backed emptyDir; the kubelet then resizes the tmpfs in place. The API server's rules
(pkg/apis/core/validation/validation.go, ValidatePodResize): volumes may not be added, removed,
renamed or reordered; only the ``sizeLimit`` of a ``medium: Memory`` emptyDir may change; adding or
removing a ``sizeLimit`` is forbidden. The kubelet (pkg/kubelet/allocation/handlers.go) marks such a
resize ``Infeasible`` when the gate is off or the node runs cgroup v1, and actuates it otherwise
(pkg/kubelet/kuberuntime/kuberuntime_manager.go: volume downsizes first, memory cgroups, then upsizes).
A node with the gate on lists it in ``status.declaredFeatures``.

So a workload is resized in place when its pod template's plan (plan.plan, the size policy of
size_policy.py) only raises (or, with existing=replace, sets) the ``sizeLimit`` of a sized Memory
emptyDir at /dev/shm, and every running pod has that volume sized, on a node that declares the
feature. Everything else rolls out (a new pod template), and ``qualify`` says why.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.shmfix.k8s.plugins.module_utils.outcomes import ROLLOUT_NOT_APPLICABLE
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import SIZED, volume_index, volume_state
from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes

FEATURE = "InPlacePodVerticalScalingMemoryBackedVolumes"
STRATEGIES = ("rollout", "inplace")
INPLACE = "inplace"
ROLLOUT = "rollout"
# On each resized pod: "<volume>=<sizeLimit before>" (what rollback resizes back to).
ANNOTATION_RESIZED_FROM = "shmfix.io/resized-from"
# The kinds whose running pods can be found by the workload's selector and are replaced by nothing
# but a rollout (or a resize).
RESIZABLE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController")
RESIZED_NOTE = "resized in place"
ROLLED_OUT_NOTE = "rolled out"
# A kind with no rollout (a CronJob: its next Job gets the new template; a custom resource's own controller)
TEMPLATE_NOTE = "pod template patched"

# Plan ops that only touch a volume entry (no container mount): /volumes/<i>
_VOLUME_OP = re.compile(r"^/volumes/\d+$")


def template_reason(kind, plan):
    """None when the workload's template plan can be done in place, else why not (a sentence)."""
    if kind not in RESIZABLE_KINDS:
        return "a %s's pods are not resized in place (only %s)" % (kind, ", ".join(RESIZABLE_KINDS))
    volume = (plan.get("before") or {}).get("volume")
    if plan.get("action") != "resize" or not volume:
        return "no sized Memory emptyDir at /dev/shm to resize (%s): a running pod cannot get a new volume" % (plan.get("reason") or plan.get("action"))
    empty_dir = volume.get("emptyDir") or {}
    if empty_dir.get("medium") != "Memory" or not empty_dir.get("sizeLimit"):
        return "volume %s at /dev/shm is not a Memory emptyDir with a sizeLimit: adding or removing a sizeLimit is not allowed on resize" % volume.get("name")
    if not all(_VOLUME_OP.match(op.get("path", "")) for op in plan.get("patch") or []):
        return "the fix also mounts /dev/shm in a container: volume mounts cannot change on resize"
    return None


def _pod_name(pod):
    return (pod.get("metadata") or {}).get("name")


def pod_resize(pod, volume_name, size_bytes, *, parse, existing="grow"):
    """(entry, None) for a pod to resize, (None, None) when it already has the size, (None, why) when it cannot.

    entry: {pod, uid, node, volume, index, from, to, from_bytes, to_bytes}.
    """
    name = _pod_name(pod)
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return None, "pod %s is not running (phase %s)" % (name, status.get("phase"))
    spec = pod.get("spec") or {}
    index, volume = volume_index(spec, volume_name)
    if volume is None:
        return None, "pod %s has no volume %s (it runs an older template): it needs a new pod" % (name, volume_name)
    state, current = volume_state(volume, parse)
    if state != SIZED:
        return None, "pod %s: volume %s is not a Memory emptyDir with a sizeLimit" % (name, volume_name)
    if current == size_bytes or (existing != "replace" and current > size_bytes):
        return None, None
    entry = {
        "pod": name,
        "uid": meta.get("uid"),
        "node": spec.get("nodeName"),
        "volume": volume_name,
        "index": index,
        "from": volume["emptyDir"]["sizeLimit"],
        "to": format_bytes(size_bytes),
        "from_bytes": current,
        "to_bytes": size_bytes,
    }
    return entry, None


def qualify(kind, plan, pods, declared, *, parse, existing="grow"):
    """How one workload is fixed: {strategy: inplace|rollout, reason, pods: [entries to resize], done: [pods already sized]}.

    ``plan``: plan.plan() of its pod template; ``pods``: its running pods; ``declared``: {node: [declared features]}.
    """
    why = template_reason(kind, plan)
    if why:
        return _verdict(ROLLOUT, why)
    if not pods:
        return _verdict(ROLLOUT, "no running pod to resize: the new pods come from the pod template")
    entries, done = [], []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if FEATURE not in (declared.get(node) or []):
            return _verdict(ROLLOUT, "node %s does not declare %s (status.declaredFeatures)" % (node, FEATURE))
        entry, why = pod_resize(pod, plan["volume_name"], plan["size_bytes"], parse=parse, existing=existing)
        if why:
            return _verdict(ROLLOUT, why)
        if entry is None:
            done.append(_pod_name(pod))
        else:
            entries.append(entry)
    reason = "resize %s of %d running pod(s) from %s to %s in place" % (plan["volume_name"], len(entries), _froms(entries), plan["size_limit"])
    if not entries:
        reason = "every running pod already has %s of %s (resized in place); the pod template is left as it is" % (plan["volume_name"], plan["size_limit"])
    return _verdict(INPLACE, reason, entries, done)


def _froms(entries):
    return "/".join(sorted({e["from"] for e in entries}))


def _verdict(strategy, reason, pods=None, done=None):
    return {"strategy": strategy, "reason": reason, "pods": pods or [], "done": done or []}


def resize_patch(index, volume_name, old, new):
    """JSON patch of the pod's ``resize`` subresource: only that volume's sizeLimit, guarded by its name and old value."""
    base = "/spec/volumes/%d" % index
    return [
        {"op": "test", "path": base + "/name", "value": volume_name},
        {"op": "test", "path": base + "/emptyDir/sizeLimit", "value": old},
        {"op": "replace", "path": base + "/emptyDir/sizeLimit", "value": new},
    ]


def resized_from(volume_name, size_limit):
    return "%s=%s" % (volume_name, size_limit)


def parse_resized_from(value):
    """(volume, sizeLimit) from the annotation; ValueError when it is not '<volume>=<sizeLimit>'."""
    volume, sep, size = (value or "").partition("=")
    if not sep or not volume or not size:
        raise ValueError("%s must be '<volume>=<sizeLimit>', got %r" % (ANNOTATION_RESIZED_FROM, value))
    return volume, size


def resize_state(pod, generation):
    """('done' | 'pending' | 'infeasible' | 'error', message) of a resize written at metadata.generation ``generation``.

    Done: the kubelet observed that generation (status.observedGeneration) and reports neither
    PodResizePending nor PodResizeInProgress. PodResizePending with reason Infeasible is final; Deferred waits.
    """
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    pending = conditions.get("PodResizePending")
    if pending and pending.get("reason") == "Infeasible":
        return "infeasible", pending.get("message") or "the kubelet found the resize infeasible"
    progress = conditions.get("PodResizeInProgress")
    if progress and progress.get("reason") == "Error":
        return "error", progress.get("message") or "the kubelet failed to actuate the resize"
    observed = status.get("observedGeneration") or 0
    if observed >= (generation or 0) and not pending and not progress:
        return "done", None
    what = pending or progress
    return "pending", (what or {}).get("message") or "the kubelet has not observed generation %s yet" % generation


def strategy_note(record):
    """What the report says about how a workload was fixed: 'resized in place', 'rolled out (why)', or
    'pod template patched (why)' for a kind nothing rolls out (its rollout status is not_applicable)."""
    if record.get("strategy") == INPLACE:
        return RESIZED_NOTE
    how = TEMPLATE_NOTE if (record.get("rollout") or {}).get("status") == ROLLOUT_NOT_APPLICABLE else ROLLED_OUT_NOTE
    why = record.get("strategy_reason")
    return "%s (%s)" % (how, why) if why else how
