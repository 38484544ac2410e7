# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE logic: assess a pod template's /dev/shm and plan a minimal, reversible patch.

Imports nothing from Ansible nor from the kubernetes client. Every function takes plain dicts:
pod specs in the API's camelCase (``ApiClient().sanitize_for_serialization(obj)`` or a
``DynamicClient`` ``ResourceInstance.to_dict()``; *not* the snake_case ``V1Pod.to_dict()``).
Where quantities are read, a ``parse`` callable is injected: pass ``quantity.parse_bytes``
(signature ``parse(value, what, allow_zero=False) -> int``, ``ValueError`` on bad input).

Public API
----------
assess(pod_spec, *, parse, node_allocatable_bytes=None, target_bytes=None, pod_metadata=None,
       object_metadata=None, node_mode=None, node_capacity_bytes=None) -> dict
    State of /dev/shm per container, effective size, findings. See ``assess``.
pod_memory_limit(pod_spec, *, parse) -> (bytes|None, 'pod'|'containers'|None)
desired_size(pod_spec, *, parse, size_limit=None, size_ratio=None, min_size=None, max_size=None,
             annotation_value=None) -> (bytes, source)
plan(pod_spec, *, parse, size_bytes, existing='keep', volume_name='dshm', containers=None) -> dict
apply_plan(pod_spec, plan) -> new pod spec (deep copy; the input is never modified)
plan_rollback(pod_spec, original) -> dict (same shape as plan(); action 'rollback' or 'none')
rollback(pod_spec, original) -> new pod spec; ``rollback(apply_plan(s, p), p['original']) == s``
encode_original(original) -> str, decode_original(text) -> dict   (annotation shmfix.io/original)
merge_original(recorded, new) -> dict   (re-patching keeps the first, pre-shmfix record)
template_diff(before, after) -> {'before': {...}, 'after': {...}}   (only the changed parts)
gitops_snippet(kind, plan, name=None, api_version=None) -> str   (kustomize patch + Helm values)
pod_spec_path(kind) -> list of keys; prefix_patch(ops, prefix) -> ops rebased on the object
annotation(key, pod_metadata=None, object_metadata=None) -> str|None; is_skipped(...) -> bool

Patches are RFC 6902 JSON patches relative to the pod spec, guarded by ``test`` ops on every
list index they use (container names, replaced volume entries): send them with
``content_type='application/json-patch+json'`` after ``prefix_patch(ops, '/spec/template/spec')``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes, human

SHM_PATH = "/dev/shm"
MIB = 1024**2
GIB = 1024**3
RUNTIME_DEFAULT_BYTES = 64 * MIB
DEFAULT_VOLUME_NAME = "dshm"
FIELD_MANAGER = "shmfix"

ANNOTATION_SKIP = "shmfix.io/skip"
ANNOTATION_SIZE_LIMIT = "shmfix.io/size-limit"
ANNOTATION_ORIGINAL = "shmfix.io/original"
ANNOTATION_PATCHED_BY = "shmfix.io/patched-by"

# States of /dev/shm, per container and for the pod. The pod state is host_ipc for hostIPC pods,
# runtime_default when no regular container mounts anything at /dev/shm, else the state of the
# volume(s) mounted there, the first in STATES winning (what blocks patching first, then the
# risky, then the good). Containers without the mount (sidecars) do not make a pod
# "runtime_default": they are reported by the finding containers_without_mount.
RUNTIME_DEFAULT = "runtime_default"
UNBOUNDED_MEMORY = "unbounded_memory"
SIZED = "sized"
DISK_BACKED = "disk_backed"
HOST_IPC = "host_ipc"
HOST_PATH = "host_path"
OTHER = "other"
STATES = (HOST_IPC, OTHER, HOST_PATH, RUNTIME_DEFAULT, DISK_BACKED, UNBOUNDED_MEMORY, SIZED)
NEVER_PATCHED = (HOST_IPC, HOST_PATH, OTHER)
MEMORY_STATES = (UNBOUNDED_MEMORY, SIZED)

NODE_SIZED = "sized"
NODE_EVICTION = "eviction"
EXISTING_MODES = ("keep", "grow", "replace")
ACTIONS = ("add", "resize", "replace", "none", "skip", "rollback")

DEFAULT_RATIO = 0.5
DEFAULT_MIN_BYTES = RUNTIME_DEFAULT_BYTES
DEFAULT_NO_LIMIT_BYTES = 1 * GIB
ORIGINAL_VERSION = 1

_FALSE = ("false", "no", "0", "off", "")

# (label or annotation, key, expected value or None for "any") -> managed_by name
_MANAGERS = (
    ("labels", "app.kubernetes.io/managed-by", "Helm", "helm"),
    ("annotations", "meta.helm.sh/release-name", None, "helm"),
    ("labels", "argocd.argoproj.io/instance", None, "argocd"),
    ("annotations", "argocd.argoproj.io/tracking-id", None, "argocd"),
    ("labels", "kustomize.toolkit.fluxcd.io/name", None, "flux"),
    ("labels", "helm.toolkit.fluxcd.io/name", None, "flux"),
)
_MANAGER_ADVICE = {
    "helm": "the next `helm upgrade` reverts a live patch; put the volume in the chart values (shm_patch returns the snippet to paste)",
    "argocd": "Argo CD shows a live patch as OutOfSync and self-heal reverts it; put the volume in the Git source (shm_patch returns the snippet to paste)",
    "flux": "Flux reverts a live patch at its next reconcile; put the volume in the Git source or the HelmRelease values "
    "(shm_patch returns the snippet to paste)",
}

_KIND_PATHS = {
    "Pod": ("v1", ["spec"]),
    "PodTemplate": ("v1", ["template", "spec"]),
    "ReplicationController": ("v1", ["spec", "template", "spec"]),
    "Deployment": ("apps/v1", ["spec", "template", "spec"]),
    "StatefulSet": ("apps/v1", ["spec", "template", "spec"]),
    "DaemonSet": ("apps/v1", ["spec", "template", "spec"]),
    "ReplicaSet": ("apps/v1", ["spec", "template", "spec"]),
    "Job": ("batch/v1", ["spec", "template", "spec"]),
    "CronJob": ("batch/v1", ["spec", "jobTemplate", "spec", "template", "spec"]),
    "Rollout": ("argoproj.io/v1alpha1", ["spec", "template", "spec"]),
}


# ----------------------------------------------------------------------------------------------
# small readers


def _norm_path(path):
    path = (path or "").rstrip("/")
    return path or "/"


def _shm_mount(container):
    """(index, mount) of the container's mount at /dev/shm, or (None, None)."""
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if _norm_path(mount.get("mountPath")) == SHM_PATH:
            return index, mount
    return None, None


def _volume_index(pod_spec, name):
    """(index, volume) of the pod volume called ``name``, or (None, None)."""
    for index, volume in enumerate(pod_spec.get("volumes") or []):
        if volume.get("name") == name:
            return index, volume
    return None, None


def _source_type(volume):
    """The volume source key ('emptyDir', 'configMap', 'persistentVolumeClaim', ...)."""
    keys = [k for k in volume if k != "name" and volume[k] is not None]
    return keys[0] if keys else "emptyDir"  # a volume with no source is an emptyDir for the kubelet


def _memory_limit(container, parse, where):
    limits = (container.get("resources") or {}).get("limits") or {}
    value = limits.get("memory")
    if value is None:
        return None
    return parse(value, f"{where}.resources.limits.memory", allow_zero=True) or None


def volume_state(volume, parse):
    """(state, sizeLimit bytes or None) of a pod volume mounted at /dev/shm; ``volume`` None means missing."""
    if volume is None:
        return OTHER, None
    source = _source_type(volume)
    if source == "hostPath":
        return HOST_PATH, None
    if source != "emptyDir":
        return OTHER, None
    empty_dir = volume.get("emptyDir") or {}
    limit = empty_dir.get("sizeLimit")
    limit_bytes = None
    if limit is not None:
        # the kubelet ignores a zero sizeLimit ("ensure 0 < value"): it means no bound
        limit_bytes = parse(limit, "volume {}: emptyDir.sizeLimit".format(volume.get("name")), allow_zero=True) or None
    medium = empty_dir.get("medium") or ""
    if medium == "Memory":
        return (SIZED if limit_bytes else UNBOUNDED_MEMORY), limit_bytes
    if medium == "":
        return DISK_BACKED, limit_bytes
    return OTHER, None  # HugePages media


def annotation(key, pod_metadata=None, object_metadata=None):
    """Value of annotation ``key`` on the workload object, else on its pod template, else None."""
    for metadata in (object_metadata, pod_metadata):
        value = ((metadata or {}).get("annotations") or {}).get(key)
        if value is not None:
            return value
    return None


def is_skipped(pod_metadata=None, object_metadata=None):
    """True when ``shmfix.io/skip`` is set to anything but false/no/0/off (an unclear value skips: safer)."""
    value = annotation(ANNOTATION_SKIP, pod_metadata, object_metadata)
    return value is not None and str(value).strip().lower() not in _FALSE


def managed_by(pod_metadata=None, object_metadata=None):
    """Sorted list of 'helm', 'argocd', 'flux' from the labels/annotations these tools set.

    Helm: label app.kubernetes.io/managed-by=Helm (any case: some charts write 'helm') or annotation
    meta.helm.sh/release-name. Argo CD: label argocd.argoproj.io/instance or annotation
    argocd.argoproj.io/tracking-id (app.kubernetes.io/instance is not used: Helm charts set it too).
    Flux: label kustomize.toolkit.fluxcd.io/name or helm.toolkit.fluxcd.io/name.
    """
    found = set()
    for metadata in (object_metadata, pod_metadata):
        for where, key, expected, name in _MANAGERS:
            value = ((metadata or {}).get(where) or {}).get(key)
            if value is not None and (expected is None or str(value).lower() == expected.lower()):
                found.add(name)
    return sorted(found)


# ----------------------------------------------------------------------------------------------
# memory limits and effective size


def pod_memory_limit(pod_spec, *, parse):
    """The pod's memory cgroup limit as the kubelet computes it, or None: ``(bytes|None, source)``.

    Follows kubelet ``ResourceConfigForPod`` / ``PodLimits`` (v1.34): ``spec.resources.limits.memory``
    (pod-level resources) wins; otherwise a limit exists only when every regular container declares
    ``limits.memory`` (and every init container, counting the sidecars started before it, has a
    non-zero total); it is max(sum of containers + sidecars, largest init container + sidecars before
    it), plus ``spec.overhead.memory`` (RuntimeClass overhead). ``source`` is 'pod', 'containers' or None.
    """
    overhead_value = (pod_spec.get("overhead") or {}).get("memory")
    overhead = parse(overhead_value, "spec.overhead.memory", allow_zero=True) if overhead_value is not None else 0
    pod_value = ((pod_spec.get("resources") or {}).get("limits") or {}).get("memory")
    if pod_value is not None:
        pod_bytes = parse(pod_value, "spec.resources.limits.memory", allow_zero=True)
        if pod_bytes:
            return pod_bytes + overhead, "pod"
    containers = pod_spec.get("containers") or []
    limits = [_memory_limit(c, parse, "container {}".format(c.get("name"))) for c in containers]
    declared = bool(containers) and all(limits)
    total = sum(x or 0 for x in limits)
    sidecars = 0
    init_peak = 0
    for init in pod_spec.get("initContainers") or []:
        own = _memory_limit(init, parse, "init container {}".format(init.get("name"))) or 0
        if init.get("restartPolicy") == "Always":
            total += own
            sidecars += own
            running = sidecars
        else:
            running = own + sidecars
        declared = declared and running > 0
        init_peak = max(init_peak, running)
    total = max(total, init_peak)
    if not declared or not total:
        return None, None
    return total + overhead, "containers"


def _memory_effective(size_limit, pod_limit, node_allocatable, node_mode, node_capacity):
    """(effective bytes|None, complete, note) of a memory-backed emptyDir."""
    if node_mode == NODE_EVICTION:
        if node_capacity is None:
            return None, False, "eviction mode: the tmpfs is half of the node's RAM (node memory capacity unknown)"
        note = f"eviction mode: the tmpfs is half of the node's RAM ({human(node_capacity // 2)})"
        if size_limit:
            note += f"; the kubelet evicts the pod once usage exceeds sizeLimit {human(size_limit)}"
        return node_capacity // 2, True, note
    bounds = [("sizeLimit", size_limit), ("pod memory limit", pod_limit), ("node allocatable memory", node_allocatable)]
    known = [(value, label) for label, value in bounds if value]
    if not known:
        return None, False, "no sizeLimit, no pod memory limit and node allocatable memory unknown: the tmpfs can grow to the node's allocatable memory"
    value, label = min(known)
    parts = ", ".join(f"{lbl} {human(v)}" for v, lbl in sorted(known))
    note = f"min({parts}) = {human(value)} ({label} is the bound)"
    complete = node_allocatable is not None
    if not complete:
        note += "; node allocatable memory unknown, the true size may be smaller"
    return value, complete, note


# ----------------------------------------------------------------------------------------------
# assess


def _container_view(container, pod_spec, parse, host_ipc, where):
    _index, mount = _shm_mount(container)
    view = {
        "name": container.get("name"),
        "state": RUNTIME_DEFAULT,
        "volume": None,
        "read_only": False,
        "size_limit_bytes": None,
        "memory_limit_bytes": _memory_limit(container, parse, "{} {}".format(where, container.get("name"))),
        "effective_bytes": None,
    }
    if mount is None:
        view["state"] = HOST_IPC if host_ipc else RUNTIME_DEFAULT
        return view
    view["volume"] = mount.get("name")
    view["read_only"] = bool(mount.get("readOnly"))
    volume = _volume_index(pod_spec, mount.get("name"))[1]
    view["state"], view["size_limit_bytes"] = volume_state(volume, parse)
    if volume is None:
        view["missing_volume"] = True
    return view


def _finding(severity, code, message):
    return {"severity": severity, "code": code, "message": message}


def assess(
    pod_spec, *, parse, node_allocatable_bytes=None, target_bytes=None, pod_metadata=None, object_metadata=None, node_mode=None, node_capacity_bytes=None
):
    """Describe /dev/shm for every container of a pod spec.

    ``node_allocatable_bytes``/``node_capacity_bytes``: the node's ``status.allocatable.memory`` and
    ``status.capacity.memory`` (or the smallest over candidate nodes). ``node_mode``: how the node's
    kubelet sizes memory emptyDirs (``versions.expected_enforcement``): 'sized' (tmpfs =
    min(node allocatable, pod memory limit, sizeLimit)) or 'eviction' (tmpfs = half the node's RAM,
    sizeLimit enforced by eviction); None assumes 'sized' (every kubelet >= 1.22 by default).

    Returns a dict:

    - ``state``: pod-level state: host_ipc for hostIPC pods, runtime_default when no regular
      container mounts anything at /dev/shm, else the state of the volume mounted there (the first
      in STATES if containers mount different volumes).
    - ``effective_bytes``: what ``df -k /dev/shm`` shows in the containers that mount a volume at
      /dev/shm (in every container when none does; the smallest if they differ), None when
      unknown; ``effective_note`` says how it was computed;
      ``effective_complete`` is False when a bound (node allocatable, a host path) was unknown, in
      which case ``effective_bytes`` is an upper bound. ``eviction_bytes``: in eviction mode, the
      sizeLimit at which the pod is evicted (else None).
    - ``node_mode``, ``node_mode_assumed``.
    - ``volume`` (the one volume mounted at /dev/shm by regular containers, or None),
      ``volumes`` (all of them, sorted), ``size_limit_bytes`` (that volume's sizeLimit).
    - ``pod_memory_limit_bytes``, ``pod_memory_limit_source`` (see ``pod_memory_limit``).
    - ``containers`` / ``init_containers``: [{name, state, volume, read_only, size_limit_bytes,
      memory_limit_bytes, effective_bytes}] (ephemeral containers are ignored).
    - ``managed_by`` (['helm', 'argocd', 'flux']), ``skip`` (annotation shmfix.io/skip),
      ``patched`` (annotation shmfix.io/original present), ``annotation_size_limit`` (raw value).
    - ``findings``: [{severity: error|warning|info, code, message}].

    A bad quantity in the spec itself (a limit the API server would never accept) raises ValueError;
    a bad ``shmfix.io/size-limit`` annotation is a finding.
    """
    if node_mode not in (None, NODE_SIZED, NODE_EVICTION):
        raise ValueError(f"node_mode: {node_mode!r} must be 'sized', 'eviction' or None")
    spec = pod_spec or {}
    host_ipc = bool(spec.get("hostIPC"))
    mode = node_mode or NODE_SIZED
    pod_limit, pod_limit_source = pod_memory_limit(spec, parse=parse)
    containers = [_container_view(c, spec, parse, host_ipc, "container") for c in spec.get("containers") or []]
    inits = [_container_view(c, spec, parse, host_ipc, "init container") for c in spec.get("initContainers") or []]

    notes = {}
    for view in containers + inits:
        view["effective_bytes"], complete, note = _effective_for(view, pod_limit, node_allocatable_bytes, mode, node_capacity_bytes)
        notes[view["name"]] = (complete, note)

    volumes = sorted({c["volume"] for c in containers if c["volume"]})
    result = {
        "state": _pod_state(containers, host_ipc),
        "node_mode": mode,
        "node_mode_assumed": node_mode is None,
        "volume": volumes[0] if len(volumes) == 1 else None,
        "volumes": volumes,
        "size_limit_bytes": None,
        "pod_memory_limit_bytes": pod_limit,
        "pod_memory_limit_source": pod_limit_source,
        "containers": containers,
        "init_containers": inits,
        "managed_by": managed_by(pod_metadata, object_metadata),
        "skip": is_skipped(pod_metadata, object_metadata),
        "patched": annotation(ANNOTATION_ORIGINAL, pod_metadata, object_metadata) is not None,
        "annotation_size_limit": annotation(ANNOTATION_SIZE_LIMIT, pod_metadata, object_metadata),
    }
    if result["volume"]:
        result["size_limit_bytes"] = next(c["size_limit_bytes"] for c in containers if c["volume"] == result["volume"])
    result.update(_pod_effective(containers, notes, host_ipc))
    memory_volume = result["volume"] and any(c["state"] in MEMORY_STATES for c in containers)
    result["eviction_bytes"] = result["size_limit_bytes"] if (mode == NODE_EVICTION and memory_volume) else None
    result["findings"] = _findings(result, parse, target_bytes, node_allocatable_bytes)
    return result


def _effective_for(view, pod_limit, node_allocatable, mode, node_capacity):
    state = view["state"]
    if state == RUNTIME_DEFAULT:
        return RUNTIME_DEFAULT_BYTES, True, f"no volume at /dev/shm: the container runtime's default tmpfs ({human(RUNTIME_DEFAULT_BYTES)})"
    if state in MEMORY_STATES:
        return _memory_effective(view["size_limit_bytes"], pod_limit, node_allocatable, mode, node_capacity)
    if state == DISK_BACKED:
        return None, False, "disk-backed emptyDir: bounded by the node's disk, sizeLimit (if any) enforced by eviction"
    if state == HOST_IPC:
        return None, False, "hostIPC: the node's own /dev/shm (usually half of its RAM), shared with the host"
    if state == HOST_PATH:
        return None, False, "hostPath at /dev/shm: the size of that host directory's filesystem"
    return None, False, "volume {} at /dev/shm is not an emptyDir: its size is not set by shm".format(view["volume"])


def _pod_state(containers, host_ipc):
    if host_ipc:
        return HOST_IPC
    states = {c["state"] for c in containers if c["volume"]}
    for state in STATES:
        if state in states:
            return state
    return RUNTIME_DEFAULT


def _pod_effective(containers, notes, host_ipc):
    """The /dev/shm of the containers that mount one (all containers when none does); the smallest if several."""
    if not containers:
        return {"effective_bytes": None, "effective_complete": False, "effective_note": "the pod spec has no containers"}
    relevant = [c for c in containers if c["volume"]] or containers
    known = [(c["effective_bytes"], c["name"]) for c in relevant if c["effective_bytes"] is not None]
    complete = len(known) == len(relevant) and all(notes[c["name"]][0] for c in relevant) and not host_ipc
    if not known:
        return {"effective_bytes": None, "effective_complete": False, "effective_note": notes[relevant[0]["name"]][1]}
    value, name = min(known)
    note = notes[name][1]
    if len({c["volume"] for c in relevant}) > 1:
        note = f"smallest over the containers, {name}: {note}"
    return {"effective_bytes": value, "effective_complete": complete, "effective_note": note}


# ----------------------------------------------------------------------------------------------
# findings


def _findings(result, parse, target_bytes, node_allocatable):
    findings = []
    findings.extend(_state_findings(result))
    findings.extend(_size_findings(result, target_bytes, node_allocatable))
    findings.extend(_mount_findings(result))
    findings.extend(_memory_accounting_findings(result))
    findings.extend(_metadata_findings(result, parse))
    return findings


def _state_findings(result):
    state = result["state"]
    volume = result["volume"]
    found = []
    if state == HOST_IPC:
        found.append(
            _finding(
                "info",
                "host_ipc",
                "the pod uses hostIPC: /dev/shm is the node's own, shared with the host and every hostIPC pod; "
                "shmfix never patches it. Drop hostIPC and mount a memory emptyDir at /dev/shm if isolation is wanted.",
            )
        )
    for c in result["containers"]:
        if c["state"] == HOST_PATH:
            found.append(
                _finding(
                    "warning",
                    "host_path",
                    "container {} mounts hostPath volume {} at /dev/shm: it shares the node's shared memory and is never patched; "
                    "replace it with an emptyDir {{medium: Memory, sizeLimit}} by hand if the sharing is not intended.".format(c["name"], c["volume"]),
                )
            )
        elif c["state"] == OTHER and c.get("missing_volume"):
            found.append(
                _finding(
                    "error",
                    "missing_volume",
                    "container {} mounts volume {} at /dev/shm but the pod has no such volume; fix the template.".format(c["name"], c["volume"]),
                )
            )
        elif c["state"] == OTHER:
            found.append(
                _finding(
                    "info",
                    "other",
                    "container {} mounts volume {} at /dev/shm and it is not an emptyDir: shmfix never patches it; "
                    "move that volume elsewhere if the container needs shared memory.".format(c["name"], c["volume"]),
                )
            )
    if state == DISK_BACKED or any(c["state"] == DISK_BACKED for c in result["containers"]):
        disk = next(c for c in result["containers"] if c["state"] == DISK_BACKED)
        found.append(
            _finding(
                "warning",
                "disk_backed",
                "volume {} at /dev/shm is an emptyDir without medium: Memory: shared memory lives on the node's disk (slow, counts against "
                "ephemeral storage); set medium: Memory and a sizeLimit (shmfix.k8s.shm_patch existing=replace).".format(disk["volume"]),
            )
        )
    if state == RUNTIME_DEFAULT and not any(c["volume"] for c in result["containers"]):
        found.append(
            _finding(
                "info",
                "runtime_default",
                f"no volume is mounted at /dev/shm: every container gets the container runtime's {human(RUNTIME_DEFAULT_BYTES)} tmpfs; "
                "if the workload uses shared memory (PyTorch DataLoader workers, Chrome, PostgreSQL parallel query) "
                "add a memory emptyDir with shmfix.k8s.shm_patch.",
            )
        )
    if volume and result["node_mode"] == NODE_EVICTION and any(c["state"] in MEMORY_STATES for c in result["containers"]):
        found.append(
            _finding(
                "info",
                "eviction_enforced",
                "this node's kubelet does not size memory emptyDirs (SizeMemoryBackedVolumes off or kubelet < 1.22): /dev/shm shows half of the "
                "node's RAM and sizeLimit is enforced only by eviction (within ~10 s to 1 min); upgrade the kubelet or enable the gate for ENOSPC instead.",
            )
        )
    return found


def _size_findings(result, target_bytes, node_allocatable):
    found = []
    size_limit = result["size_limit_bytes"]
    pod_limit = result["pod_memory_limit_bytes"]
    memory = any(c["state"] in MEMORY_STATES for c in result["containers"])
    if memory and size_limit and pod_limit and size_limit > pod_limit:
        found.append(
            _finding(
                "warning",
                "size_limit_above_memory_limit",
                "sizeLimit {0} of volume {1} is above the pod memory limit {2}: the kubelet silently caps the tmpfs at {2}; "
                "lower sizeLimit to at most {3} or raise limits.memory.".format(human(size_limit), result["volume"], human(pod_limit), format_bytes(pod_limit)),
            )
        )
    if any(c["state"] == UNBOUNDED_MEMORY for c in result["containers"]) and not pod_limit:
        reach = f"node allocatable memory ({human(node_allocatable)})" if node_allocatable else "the node's allocatable memory"
        if result["node_mode"] == NODE_EVICTION:
            reach = "half of the node's RAM" + (f" ({human(result['effective_bytes'])})" if result["effective_bytes"] else "")
        found.append(
            _finding(
                "warning",
                "no_memory_limit_no_size_limit",
                "volume {} at /dev/shm is a Memory emptyDir without sizeLimit and the pod has no memory limit: shared memory can grow to {} "
                "and starve the node; set a sizeLimit (shmfix.k8s.shm_patch existing=replace) or memory limits.".format(result["volume"], reach),
            )
        )
    effective = result["effective_bytes"]
    if target_bytes and effective is not None and effective < target_bytes:
        found.append(_finding("warning", "effective_below_target", _below_target_message(result, target_bytes)))
    return found


def _below_target_message(result, target):
    effective = result["effective_bytes"]
    head = f"/dev/shm is {human(effective)}, below the target {human(target)}: "
    pod_limit = result["pod_memory_limit_bytes"]
    if result["state"] == RUNTIME_DEFAULT:
        return head + "it is the container runtime's default; add a memory emptyDir of {0} (shmfix.k8s.shm_patch size_limit={0}).".format(format_bytes(target))
    if pod_limit and effective == pod_limit:
        return head + f"the tmpfs is capped by the pod memory limit; raise limits.memory above {format_bytes(target)} plus the working set."
    if result["size_limit_bytes"] and effective == result["size_limit_bytes"]:
        return head + "raise sizeLimit to {0} (shmfix.k8s.shm_patch existing=grow size_limit={0}).".format(format_bytes(target))
    return head + "the node's allocatable memory is the bound; schedule the pod on larger nodes."


def _mount_findings(result):
    found = []
    with_mount = [c for c in result["containers"] if c["volume"]]
    without = [c["name"] for c in result["containers"] if not c["volume"]]
    if with_mount and without and result["state"] != HOST_IPC:
        found.append(
            _finding(
                "info",
                "containers_without_mount",
                "containers {0} have no /dev/shm mount while {1} mount{2} {3}: they see the runtime's {4} tmpfs, a different /dev/shm, so shared "
                "memory is not shared with them; mount {3} at /dev/shm in them too (shmfix.k8s.shm_patch existing=replace).".format(
                    ", ".join(without),
                    ", ".join(c["name"] for c in with_mount),
                    "s" if len(with_mount) == 1 else "",
                    ", ".join(result["volumes"]),
                    human(RUNTIME_DEFAULT_BYTES),
                ),
            )
        )
    if len(result["volumes"]) > 1:
        found.append(
            _finding(
                "warning",
                "several_shm_volumes",
                "containers mount different volumes at /dev/shm ({}): shmfix does not patch this; mount one volume in every container by hand.".format(
                    ", ".join(result["volumes"])
                ),
            )
        )
    for c in with_mount:
        if c["read_only"]:
            found.append(
                _finding(
                    "warning",
                    "read_only_mount",
                    "container {} mounts /dev/shm read-only: shm_open() for writing fails with EROFS; drop readOnly from that volumeMount.".format(c["name"]),
                )
            )
    return found


def _memory_accounting_findings(result):
    found = []
    for c in result["containers"]:
        limit = c["memory_limit_bytes"] or result["pod_memory_limit_bytes"]
        if c["state"] not in MEMORY_STATES or not limit:
            continue
        shm = min([x for x in (c["effective_bytes"], c["size_limit_bytes"]) if x] or [0])
        if shm and shm >= limit:
            found.append(
                _finding(
                    "warning",
                    "memory_accounting",
                    f"container {c['name']}: shared memory pages count against its memory limit ({human(limit)}), so it is OOM-killed before "
                    f"/dev/shm ({human(shm)}) is full; raise limits.memory above {format_bytes(shm)} plus the working set, or lower sizeLimit "
                    "(half of the limit is a sound default).",
                )
            )
    return found


def _metadata_findings(result, parse):
    found = []
    for name in result["managed_by"]:
        found.append(
            _finding(
                "warning",
                "managed_by_" + name,
                "the workload is managed by {}: {}.".format({"helm": "Helm", "argocd": "Argo CD", "flux": "Flux"}[name], _MANAGER_ADVICE[name]),
            )
        )
    raw = result["annotation_size_limit"]
    if raw is not None:
        try:
            parse(raw, "annotation " + ANNOTATION_SIZE_LIMIT)
        except ValueError as exc:
            found.append(
                _finding(
                    "error",
                    "bad_annotation",
                    f"{exc}; shmfix does not patch this workload until it is fixed: kubectl annotate <kind>/<name> {ANNOTATION_SIZE_LIMIT}=1Gi --overwrite.",
                )
            )
    if result["skip"]:
        found.append(
            _finding(
                "info",
                "skip_annotation",
                f"annotation {ANNOTATION_SKIP} is set: shmfix reports but never patches this workload; remove it to allow patching.",
            )
        )
    return found


# ----------------------------------------------------------------------------------------------
# sizing policy


def desired_size(pod_spec, *, parse, size_limit=None, size_ratio=None, min_size=None, max_size=None, annotation_value=None):
    """Size to give /dev/shm: ``(bytes, source)``.

    Precedence: the ``shmfix.io/size-limit`` annotation (the app owner's word; source 'annotation'),
    then an explicit ``size_limit`` ('size_limit'); both are used as given. Otherwise a ratio of
    the pod memory limit: ``size_ratio`` ('ratio') or 0.5 ('default_ratio'), rounded down to whole MiB,
    then clamped to [min_size (default 64Mi), max_size (default none)] (source 'min_size'/'max_size'
    when the clamp decided). A pod without a memory limit gets 1Gi ('default_no_memory_limit'),
    clamped the same way.

    Why a ratio of the pod limit: the kubelet caps the tmpfs at the pod memory limit anyway (a larger
    sizeLimit is a lie), and shm pages count against the writing container's memory cgroup, so a
    /dev/shm as large as the limit leaves nothing for the process: filling it OOM-kills the container.
    Half leaves the other half for the working set. 64Mi is the floor because less than the runtime
    default would be a regression. Without a limit there is nothing to take a ratio of; 1Gi covers
    typical PyTorch DataLoader, Chrome and PostgreSQL needs without letting shared memory take
    the node.

    An invalid annotation raises ``ValueError`` (naming the annotation and the fix): never patch
    with a size the owner did not ask for. assess() reports the same as finding 'bad_annotation'.
    """
    if annotation_value is not None:
        return parse(annotation_value, "annotation " + ANNOTATION_SIZE_LIMIT), "annotation"
    if size_limit is not None:
        return parse(size_limit, "size_limit"), "size_limit"
    low = parse(min_size, "min_size") if min_size is not None else DEFAULT_MIN_BYTES
    high = parse(max_size, "max_size") if max_size is not None else None
    if high is not None and low > high:
        raise ValueError(f"min_size {format_bytes(low)} is above max_size {format_bytes(high)}: give min_size <= max_size")
    pod_limit = pod_memory_limit(pod_spec or {}, parse=parse)[0]
    if pod_limit is None:
        size, source = DEFAULT_NO_LIMIT_BYTES, "default_no_memory_limit"
    else:
        ratio = _check_ratio(size_ratio) if size_ratio is not None else DEFAULT_RATIO
        size = max(MIB, int(pod_limit * ratio) // MIB * MIB)
        source = "ratio" if size_ratio is not None else "default_ratio"
    if size < low:
        return low, "min_size"
    if high is not None and size > high:
        return high, "max_size"
    return size, source


def _check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"size_ratio: {ratio!r} must be a number with 0 < ratio <= 1 (e.g. 0.5 for half of the pod memory limit)")
    return ratio


# ----------------------------------------------------------------------------------------------
# planning


def _validate_volume_name(name):
    ok = isinstance(name, str) and 0 < len(name) <= 63 and name[0].isalnum() and name[-1].isalnum()
    ok = ok and all(ch.islower() or ch.isdigit() or ch == "-" for ch in name)
    if not ok:
        raise ValueError(f"volume_name: {name!r} is not a valid volume name (lower-case letters, digits and '-', at most 63, e.g. dshm)")


def _pick_volume_name(pod_spec, wanted):
    """``wanted`` if no volume has that name, else wanted-1, wanted-2, ... (never touching the other volume)."""
    taken = {v.get("name") for v in pod_spec.get("volumes") or []}
    if wanted not in taken:
        return wanted
    n = 1
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def _target_indexes(pod_spec, containers):
    regular = pod_spec.get("containers") or []
    names = [c.get("name") for c in regular]
    if containers is None:
        return list(range(len(regular)))
    if isinstance(containers, str):
        containers = [containers]
    unknown = [n for n in containers if n not in names]
    if unknown:
        raise ValueError("containers: {} not in the pod template (its containers: {})".format(", ".join(map(str, unknown)), ", ".join(names)))
    return [i for i, n in enumerate(names) if n in containers]


def _list_state(parent, key):
    if key not in parent:
        return "absent"
    return "null" if parent[key] is None else "list"


def _memory_volume(name, size_bytes):
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": format_bytes(size_bytes)}}


def _view(pod_spec, volume_name):
    """The parts a plan touches: the volume and each regular container's /dev/shm mount."""
    return {
        "volume": copy.deepcopy(_volume_index(pod_spec, volume_name)[1]) if volume_name else None,
        "mounts": {c.get("name"): copy.deepcopy(_shm_mount(c)[1]) for c in pod_spec.get("containers") or []},
    }


def _result(pod_spec, action, reason, volume_name, size_bytes, ops=None, original=None):
    ops = ops or []
    after_spec = _apply_ops(pod_spec, ops) if ops else pod_spec
    return {
        "action": action,
        "reason": reason,
        "volume_name": volume_name,
        "size_bytes": size_bytes,
        "size_limit": format_bytes(size_bytes) if size_bytes else None,
        "patch": ops,
        "before": _view(pod_spec, volume_name),
        "after": _view(after_spec, volume_name),
        "original": original,
        "changed": bool(ops),
    }


def _mount_ops(pod_spec, indexes, volume_name):
    """Ops adding ``volume_name`` at /dev/shm to the given containers, and their rollback records."""
    ops, records = [], []
    regular = pod_spec.get("containers") or []
    for i in indexes:
        container = regular[i]
        if _shm_mount(container)[1] is not None:
            continue
        mount = {"name": volume_name, "mountPath": SHM_PATH}
        state = _list_state(container, "volumeMounts")
        ops.append({"op": "test", "path": f"/containers/{i}/name", "value": container.get("name")})
        if state == "list":
            ops.append({"op": "add", "path": f"/containers/{i}/volumeMounts/-", "value": mount})
        else:
            ops.append({"op": "add", "path": f"/containers/{i}/volumeMounts", "value": [mount]})
        records.append({"container": container.get("name"), "volumeMounts": state})
    return ops, records


def _original(volume_name, entry, volumes_state, mount_records, size_bytes):
    return {
        "v": ORIGINAL_VERSION,
        "volume": {"name": volume_name, "entry": copy.deepcopy(entry), "volumes": volumes_state},
        "mounts": mount_records,
        "size_limit": format_bytes(size_bytes),
    }


def plan(pod_spec, *, parse, size_bytes, existing="keep", volume_name=DEFAULT_VOLUME_NAME, containers=None):
    """Plan the minimal change giving the pod's regular containers a /dev/shm of ``size_bytes``.

    ``existing`` says what to do when a regular container already mounts something at /dev/shm:

    - 'keep': leave it alone (action 'none').
    - 'grow' (the default of shm_patch and the remediate role): raise the sizeLimit of a sized Memory
      emptyDir, never lower it. An unbounded Memory emptyDir is bounded at ``size_bytes`` only when the
      pod has no memory limit: its tmpfs is then sized by the node (the seed's 14.7G on a 29G node) and
      any pod can fill the node's memory through it, which is the hazard this tool exists to fix. Under
      a pod memory limit the tmpfs is already capped by that limit, and a sizeLimit below it could
      shrink what the workload relies on, so grow leaves it ('none'; assess() reports it); use
      'replace' to set it anyway. A disk-backed emptyDir is left too (moving it to RAM is not growing).
    - 'replace': set that volume to exactly ``emptyDir {medium: Memory, sizeLimit}`` (a sizeLimit that
      is already equal in bytes, e.g. 1024Mi for 1Gi, is left as written) and mount it in every target
      container that lacks a /dev/shm mount.

    Without any /dev/shm mount a new volume ``volume_name`` is added (renamed volume_name-1, -2, ... if a
    different volume already has that name) and mounted in the target containers (``containers``:
    names of regular containers, default all; init and ephemeral containers are never touched). With
    keep/grow, adding a volume no larger than the runtime's 64 MiB is pointless: 'none'.
    hostIPC pods, hostPath or other non-emptyDir volumes at /dev/shm and containers mounting different
    volumes at /dev/shm are 'skip'ped with the reason.

    Returns {action: add|resize|replace|none|skip, reason, volume_name, size_bytes, size_limit,
    patch: [RFC 6902 ops relative to the pod spec], before/after: {volume, mounts: {container: mount}},
    original: record for annotation shmfix.io/original (None when nothing changes), changed: bool}.
    """
    if existing not in EXISTING_MODES:
        raise ValueError("existing: {!r} must be one of {}".format(existing, ", ".join(EXISTING_MODES)))
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes <= 0:
        raise ValueError(f"size_bytes: {size_bytes!r} must be a positive number of bytes")
    _validate_volume_name(volume_name)
    spec = pod_spec or {}
    targets = _target_indexes(spec, containers)
    if spec.get("hostIPC"):
        return _result(spec, "skip", "the pod uses hostIPC: /dev/shm is the node's own; shmfix never patches hostIPC pods", None, size_bytes)
    if not targets:
        return _result(spec, "skip", "the pod template has no regular containers", None, size_bytes)
    mounted = sorted({_shm_mount(c)[1]["name"] for c in spec.get("containers") or [] if _shm_mount(c)[1] is not None})
    if len(mounted) > 1:
        return _result(spec, "skip", "containers mount different volumes at /dev/shm ({}); fix by hand".format(", ".join(mounted)), None, size_bytes)
    if mounted:
        return _plan_existing(spec, parse, size_bytes, existing, mounted[0], targets)
    return _plan_add(spec, size_bytes, existing, volume_name, targets)


def _plan_add(spec, size_bytes, existing, volume_name, targets):
    if existing != "replace" and size_bytes <= RUNTIME_DEFAULT_BYTES:
        return _result(
            spec,
            "none",
            f"the runtime's /dev/shm is already {human(RUNTIME_DEFAULT_BYTES)} and {human(size_bytes)} is not larger; "
            "raise the memory limit or size_limit to get more",
            None,
            size_bytes,
        )
    name = _pick_volume_name(spec, volume_name)
    volumes_state = _list_state(spec, "volumes")
    volume = _memory_volume(name, size_bytes)
    if volumes_state == "list":
        ops = [{"op": "add", "path": "/volumes/-", "value": volume}]
    else:
        ops = [{"op": "add", "path": "/volumes", "value": [volume]}]
    mount_ops, records = _mount_ops(spec, targets, name)
    reason = "add Memory emptyDir {} (sizeLimit {}) at /dev/shm in {}".format(name, format_bytes(size_bytes), ", ".join(r["container"] for r in records))
    if name != volume_name:
        reason += f" (volume name {volume_name} is taken by another volume)"
    return _result(spec, "add", reason, name, size_bytes, ops + mount_ops, _original(name, None, volumes_state, records, size_bytes))


def _plan_existing(spec, parse, size_bytes, existing, name, targets):
    index, volume = _volume_index(spec, name)
    state, current = volume_state(volume, parse)
    if volume is None:
        return _result(spec, "skip", f"/dev/shm is mounted from volume {name}, which the pod does not define; fix the template", name, size_bytes)
    if state in NEVER_PATCHED:
        return _result(spec, "skip", f"volume {name} at /dev/shm is a {_source_type(volume)} volume; shmfix only patches emptyDir volumes", name, size_bytes)
    if existing == "keep":
        return _result(
            spec,
            "none",
            f"volume {name} ({_describe(state, current)}) is already mounted at /dev/shm and existing=keep leaves it alone",
            name,
            size_bytes,
        )
    if existing == "grow":
        if state == UNBOUNDED_MEMORY and pod_memory_limit(spec, parse=parse)[0] is None:
            reason = (
                f"bound {name} (Memory emptyDir without sizeLimit, no pod memory limit: its tmpfs is sized by the node) "
                f"with sizeLimit {format_bytes(size_bytes)}"
            )
        elif state != SIZED:
            why = (
                "the pod memory limit already caps its tmpfs and grow never lowers a size; use existing=replace to set sizeLimit"
                if state == UNBOUNDED_MEMORY
                else "grow does not move a disk-backed emptyDir to memory; use existing=replace"
            )
            return _result(spec, "none", f"volume {name} is {_describe(state, current)}: {why}", name, size_bytes)
        elif current >= size_bytes:
            return _result(spec, "none", f"volume {name} sizeLimit {format_bytes(current)} is already >= {format_bytes(size_bytes)}", name, size_bytes)
        else:
            reason = f"raise sizeLimit of {name} from {format_bytes(current)} to {format_bytes(size_bytes)}"
        return _replace_volume(spec, index, volume, size_bytes, [], "resize", reason)
    mount_ops, records = _mount_ops(spec, targets, name)
    if state == SIZED and current == size_bytes:
        if not mount_ops:
            return _result(
                spec, "none", "volume {} is already a Memory emptyDir with sizeLimit {}".format(name, volume["emptyDir"]["sizeLimit"]), name, size_bytes
            )
        reason = "mount existing volume {} at /dev/shm in {}".format(name, ", ".join(r["container"] for r in records))
        return _result(spec, "add", reason, name, size_bytes, mount_ops, _original(name, volume, _list_state(spec, "volumes"), records, size_bytes))
    action = "replace" if state == DISK_BACKED else "resize"
    reason = f"set volume {name} ({_describe(state, current)}) to a Memory emptyDir with sizeLimit {format_bytes(size_bytes)}"
    if records:
        reason += " and mount it at /dev/shm in {}".format(", ".join(r["container"] for r in records))
    return _replace_volume(spec, index, volume, size_bytes, (mount_ops, records), action, reason)


def _replace_volume(spec, index, volume, size_bytes, mounts, action, reason):
    mount_ops, records = mounts if mounts else ([], [])
    name = volume["name"]
    new = _memory_volume(name, size_bytes)
    ops = [
        {"op": "test", "path": f"/volumes/{index}", "value": copy.deepcopy(volume)},
        {"op": "replace", "path": f"/volumes/{index}", "value": new},
    ]
    return _result(spec, action, reason, name, size_bytes, ops + mount_ops, _original(name, volume, "list", records, size_bytes))


def _describe(state, size_limit):
    if state == SIZED:
        return f"Memory emptyDir, sizeLimit {format_bytes(size_limit)}"
    if state == UNBOUNDED_MEMORY:
        return "Memory emptyDir without sizeLimit"
    if state == DISK_BACKED:
        return "disk-backed emptyDir" + (f", sizeLimit {format_bytes(size_limit)}" if size_limit else "")
    return state


# ----------------------------------------------------------------------------------------------
# applying JSON patches (the same ops the API server applies)


def _pointer(path):
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc, parts):
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _apply_op(doc, op):
    parts = _pointer(op["path"])
    try:
        parent = _parent(doc, parts)
        key = parts[-1]
        if isinstance(parent, list):
            if op["op"] == "add" and key == "-":
                parent.append(copy.deepcopy(op["value"]))
                return
            key = int(key)
            if op["op"] == "add":
                parent.insert(key, copy.deepcopy(op["value"]))
                return
        if op["op"] == "test":
            if parent[key] != op["value"]:
                raise ValueError("test failed at {}: found {!r}, expected {!r}".format(op["path"], parent[key], op["value"]))
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace":
                parent[key]
            parent[key] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[key]
        else:
            raise ValueError("unsupported JSON patch op {!r}".format(op["op"]))
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError("JSON patch op {} {} does not apply to this pod spec ({!r}); re-read the object and plan again".format(op["op"], op["path"], exc))


def _apply_ops(pod_spec, ops):
    doc = copy.deepcopy(pod_spec)
    for op in ops:
        _apply_op(doc, op)
    return doc


def apply_plan(pod_spec, plan):
    """Pod spec after ``plan`` (a deep copy); ``ValueError`` if the spec changed since it was planned."""
    return _apply_ops(pod_spec or {}, plan.get("patch") or [])


# ----------------------------------------------------------------------------------------------
# rollback


def encode_original(original):
    """Compact, stable JSON for annotation shmfix.io/original."""
    return json.dumps(original, sort_keys=True, separators=(",", ":"))


def decode_original(text):
    """The record stored in annotation shmfix.io/original; ``ValueError`` when it is not one shmfix wrote."""
    hint = f"annotation {ANNOTATION_ORIGINAL} was not written by shmfix or was edited; restore the volume by hand and remove the annotation"
    try:
        original = json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError as exc:
        raise ValueError(f"{hint} ({exc})")
    ok = isinstance(original, dict) and original.get("v") == ORIGINAL_VERSION and isinstance(original.get("volume"), dict)
    ok = ok and isinstance(original["volume"].get("name"), str) and isinstance(original.get("mounts"), list)
    ok = ok and all(isinstance(m, dict) and isinstance(m.get("container"), str) for m in original["mounts"])
    if not ok:
        raise ValueError(hint)
    return original


def merge_original(recorded, new):
    """Record to keep after re-patching: the first (pre-shmfix) record, plus mounts the new change added."""
    if not recorded:
        return new
    if not new:
        return recorded
    merged = copy.deepcopy(recorded)
    if new["volume"]["name"] == recorded["volume"]["name"]:
        known = {m["container"] for m in merged["mounts"]}
        merged["mounts"].extend(copy.deepcopy(m) for m in new["mounts"] if m["container"] not in known)
    merged["size_limit"] = new.get("size_limit")
    return merged


def _restore_list(path, state):
    return {"op": "remove", "path": path} if state == "absent" else {"op": "replace", "path": path, "value": None}


def _rollback_mount_ops(pod_spec, original, name):
    ops = []
    regular = pod_spec.get("containers") or []
    for record in original["mounts"]:
        i = next((k for k, c in enumerate(regular) if c.get("name") == record["container"]), None)
        if i is None:
            continue
        mounts = regular[i].get("volumeMounts") or []
        k = next((k for k, m in enumerate(mounts) if m.get("name") == name and _norm_path(m.get("mountPath")) == SHM_PATH), None)
        if k is None:
            continue
        ops.append({"op": "test", "path": f"/containers/{i}/name", "value": record["container"]})
        if len(mounts) == 1 and record.get("volumeMounts") in ("absent", "null"):
            ops.append(_restore_list(f"/containers/{i}/volumeMounts", record["volumeMounts"]))
        else:
            ops.append({"op": "remove", "path": f"/containers/{i}/volumeMounts/{k}"})
    return ops


def _rollback_volume_ops(pod_spec, original, name):
    index, current = _volume_index(pod_spec, name)
    entry = original["volume"].get("entry")
    if index is None:
        return []
    test = {"op": "test", "path": f"/volumes/{index}/name", "value": name}
    if entry is not None:
        return [] if current == entry else [test, {"op": "replace", "path": f"/volumes/{index}", "value": copy.deepcopy(entry)}]
    volumes = pod_spec.get("volumes") or []
    if len(volumes) == 1 and original["volume"].get("volumes") in ("absent", "null"):
        return [test, _restore_list("/volumes", original["volume"]["volumes"])]
    return [test, {"op": "remove", "path": f"/volumes/{index}"}]


def plan_rollback(pod_spec, original):
    """Plan restoring what ``original`` (from annotation shmfix.io/original) recorded.

    Mounts shmfix added are removed, the volume is removed (if shmfix added it) or put back as it
    was, in place. Idempotent: a spec already restored gives action 'none'. Same shape as plan().
    """
    spec = pod_spec or {}
    original = decode_original(original)
    name = original["volume"]["name"]
    ops = _rollback_mount_ops(spec, original, name) + _rollback_volume_ops(spec, original, name)
    result = _result(spec, "rollback" if ops else "none", "", name, None, ops)
    result["reason"] = f"restore /dev/shm as it was before shmfix (volume {name})" if ops else f"nothing to roll back: volume {name} is as it was before shmfix"
    return result


def rollback(pod_spec, original):
    """Pod spec with the change recorded in ``original`` undone (a deep copy)."""
    return apply_plan(pod_spec, plan_rollback(pod_spec, original))


# ----------------------------------------------------------------------------------------------
# diff, object paths, GitOps snippet


def template_diff(before, after):
    """Only the changed parts of two pod specs: {'before': {...}, 'after': {...}} for Ansible --diff.

    Volumes are compared by name, containers/initContainers by name (their ``volumeMounts`` only).
    Equal specs give two empty dicts.
    """
    out = {"before": {}, "after": {}}
    _diff_named(out, "volumes", before.get("volumes") or [], after.get("volumes") or [], lambda v: v)
    for key in ("containers", "initContainers"):
        _diff_named(out, key, before.get(key) or [], after.get(key) or [], lambda c: {"name": c.get("name"), "volumeMounts": c.get("volumeMounts") or []})
    return out


def _diff_named(out, key, old_list, new_list, project):
    old = {item.get("name"): project(item) for item in old_list}
    new = {item.get("name"): project(item) for item in new_list}
    names = [n for n in list(old) + [n for n in new if n not in old] if old.get(n) != new.get(n)]
    if names:
        out["before"][key] = [old[n] for n in names if n in old]
        out["after"][key] = [new[n] for n in names if n in new]


def pod_spec_path(kind):
    """Keys leading to the pod spec in an object of ``kind`` (CronJob: spec.jobTemplate.spec.template.spec)."""
    if kind not in _KIND_PATHS:
        raise ValueError("kind {!r} has no pod template shmfix knows (supported: {})".format(kind, ", ".join(sorted(_KIND_PATHS))))
    return list(_KIND_PATHS[kind][1])


def prefix_patch(ops, prefix):
    """``ops`` with paths rebased under ``prefix`` (a '/spec/template/spec' pointer or a list of keys)."""
    if isinstance(prefix, (list, tuple)):
        prefix = "".join("/" + str(k).replace("~", "~0").replace("/", "~1") for k in prefix)
    prefix = prefix.rstrip("/")
    return [dict(op, path=prefix + op["path"]) for op in ops]


def _yaml_scalar(value):
    text = str(value)
    safe = text and all(ch.isalnum() or ch in "-./_" for ch in text) and text.lower() not in ("true", "false", "yes", "no", "null", "on", "off", "~")
    try:
        float(text)
        safe = False
    except ValueError:
        pass
    return text if safe else json.dumps(text)


def _yaml(value, indent=0):
    """Minimal block YAML for dicts/lists of strings (enough for volumes and mounts)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    else:
        for item in value:
            sub = _yaml(item, indent + 2)
            lines.append(f"{pad}- {sub[0].lstrip()}")
            lines.extend(sub[1:])
    return lines


def gitops_snippet(kind, plan, name=None, api_version=None):
    """YAML to paste into the source of a Helm/Argo CD/Flux-managed workload instead of a live patch.

    Two documents: a kustomize strategic-merge patch (``patches: - path: shm-patch.yaml``) for
    ``kind``/``name``, and the usual Helm chart values (``extraVolumes``/``extraVolumeMounts``; key
    names vary by chart). Built from ``plan['after']``; a plan that changes nothing gives a comment.
    """
    path = pod_spec_path(kind)
    volume = (plan.get("after") or {}).get("volume")
    if not plan.get("changed") or not volume:
        return "# shmfix: nothing to change for {}/{}: {}\n".format(kind, name or "NAME", plan.get("reason", ""))
    mount_names = [c for c, m in sorted((plan["after"].get("mounts") or {}).items()) if m and m.get("name") == volume["name"]]
    mount = {"name": volume["name"], "mountPath": SHM_PATH}
    pod_part = {"containers": [{"name": c, "volumeMounts": [mount]} for c in mount_names], "volumes": [volume]}
    for key in reversed(path):
        pod_part = {key: pod_part}
    patch = {"apiVersion": api_version or _KIND_PATHS[kind][0], "kind": kind, "metadata": {"name": name or "NAME"}}
    patch.update(pod_part)
    values = {"extraVolumes": [volume], "extraVolumeMounts": [mount]}
    header = [
        "# shmfix: /dev/shm for {}/{}: Memory emptyDir {}, sizeLimit {}.".format(kind, name or "NAME", volume["name"], volume["emptyDir"].get("sizeLimit")),
        "# This workload is deployed from a source (Helm, Argo CD, Flux): change the source, a live patch would be reverted.",
        "# 1) kustomize: save as shm-patch.yaml and add `patches: [{path: shm-patch.yaml}]` to kustomization.yaml",
    ]
    helm = [
        "# 2) Helm: most charts take these values (names vary: Bitnami uses primary.extraVolumes/extraVolumeMounts,",
        "#    and its PostgreSQL chart has shmVolume.sizeLimit; check `helm show values`)",
    ]
    return "\n".join(header + _yaml(patch) + ["---"] + helm + _yaml(values)) + "\n"
