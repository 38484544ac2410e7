# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: assess a pod spec's /dev/shm: the state per container, the tmpfs size the pods get, findings.

``assess(pod_spec, parse=..., node_allocatable_bytes=None, target_bytes=None, pod_metadata=None,
object_metadata=None, node_mode=None, node_capacity_bytes=None)`` returns a dict:

- ``state``: pod-level state: host_ipc for hostIPC pods, runtime_default when no regular
  container mounts anything at /dev/shm, else the state of the volume mounted there (the first
  in ``podspec.STATES`` if containers mount different volumes).
- ``effective_bytes``: what ``df -k /dev/shm`` shows in the containers that mount a volume at
  /dev/shm (in every container when none does; the smallest if they differ), None when unknown;
  ``effective_note`` says how it was computed; ``effective_complete`` is False when a bound (node
  allocatable, a host path) was unknown, in which case ``effective_bytes`` is an upper bound.
  ``eviction_bytes``: in eviction mode, the sizeLimit at which the pod is evicted (else None).
- ``node_mode``, ``node_mode_assumed``.
- ``volume`` (the one volume mounted at /dev/shm by regular containers, or None), ``volumes``
  (all of them, sorted), ``size_limit_bytes`` (that volume's sizeLimit).
- ``pod_memory_limit_bytes``, ``pod_memory_limit_source`` (see ``podspec.pod_memory_limit``).
- ``containers`` / ``init_containers``: [{name, state, volume, read_only, size_limit_bytes,
  memory_limit_bytes, effective_bytes}] (ephemeral containers are ignored); an init container also
  has ``sidecar`` (restartPolicy Always: a native sidecar, running beside the regular containers).
- ``managed_by`` (['helm', 'argocd', 'flux']), ``skip`` (annotation shmfix.io/skip), ``patched``
  (annotation shmfix.io/original present), ``annotation_size_limit`` (raw value),
  ``annotation_size_limit_bytes`` (parsed; None when absent or bad), ``annotation_error``.
- ``findings``: [{severity: error|warning|info, code, message}] (findings.py).

``node_allocatable_bytes``/``node_capacity_bytes`` are the node's ``status.allocatable.memory`` and
``status.capacity.memory`` (or the smallest over candidate nodes). ``node_mode`` says how the node's
kubelet sizes memory emptyDirs (``versions.expected_enforcement``): 'sized' (tmpfs =
min(node allocatable, pod memory limit, sizeLimit)) or 'eviction' (tmpfs = half the node's RAM,
sizeLimit enforced by eviction); None assumes 'sized' (every kubelet >= 1.22 by default).

A bad quantity in the spec itself (a limit the API server would never accept) raises ValueError;
a bad ``shmfix.io/size-limit`` annotation is a finding.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import podspec as ps
from ansible_collections.shmfix.k8s.plugins.module_utils.findings import findings
from ansible_collections.shmfix.k8s.plugins.module_utils.units import human


def assess(
    pod_spec,
    *,
    parse,
    node_allocatable_bytes=None,
    target_bytes=None,
    pod_metadata=None,
    object_metadata=None,
    node_mode=None,
    node_capacity_bytes=None,
    with_findings=True,
):
    """Describe /dev/shm for every container of a pod spec (see the module docstring); ``with_findings=False``: sizes only."""
    if node_mode not in (None, ps.NODE_SIZED, ps.NODE_EVICTION):
        raise ValueError(f"node_mode: {node_mode!r} must be 'sized', 'eviction' or None")
    spec = pod_spec or {}
    host_ipc = bool(spec.get("hostIPC"))
    mode = node_mode or ps.NODE_SIZED
    pod_limit, pod_limit_source = ps.pod_memory_limit(spec, parse=parse)
    containers = [_container_view(c, spec, parse, host_ipc, "container") for c in spec.get("containers") or []]
    inits = [
        dict(_container_view(c, spec, parse, host_ipc, "init container"), sidecar=c.get("restartPolicy") == "Always") for c in spec.get("initContainers") or []
    ]
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
    }
    result.update(_metadata(parse, pod_metadata, object_metadata))
    if result["volume"]:
        result["size_limit_bytes"] = next(c["size_limit_bytes"] for c in containers if c["volume"] == result["volume"])
    result.update(_pod_effective(containers, notes, host_ipc))
    memory_volume = result["volume"] and any(c["state"] in ps.MEMORY_STATES for c in containers)
    result["eviction_bytes"] = result["size_limit_bytes"] if (mode == ps.NODE_EVICTION and memory_volume) else None
    result["findings"] = findings(result, target_bytes, node_allocatable_bytes) if with_findings else []
    return result


def _metadata(parse, pod_metadata, object_metadata):
    """What the workload's labels and annotations say: managers, skip, patched, the size annotation."""
    raw = ps.annotation(ps.ANNOTATION_SIZE_LIMIT, pod_metadata, object_metadata)
    size, error = None, None
    if raw is not None:
        try:
            size = parse(raw, "annotation " + ps.ANNOTATION_SIZE_LIMIT)
        except ValueError as exc:
            error = str(exc)
    return {
        "managed_by": ps.managed_by(pod_metadata, object_metadata),
        "skip": ps.is_skipped(pod_metadata, object_metadata),
        "patched": ps.annotation(ps.ANNOTATION_ORIGINAL, pod_metadata, object_metadata) is not None,
        "annotation_size_limit": raw,
        "annotation_size_limit_bytes": size,
        "annotation_error": error,
    }


def _container_view(container, pod_spec, parse, host_ipc, where):
    _index, mount = ps.shm_mount(container)
    view = {
        "name": container.get("name"),
        "state": ps.RUNTIME_DEFAULT,
        "volume": None,
        "read_only": False,
        "size_limit_bytes": None,
        "memory_limit_bytes": ps.container_memory_limit(container, parse, "{} {}".format(where, container.get("name"))),
        "effective_bytes": None,
    }
    if mount is None:
        view["state"] = ps.HOST_IPC if host_ipc else ps.RUNTIME_DEFAULT
        return view
    view["volume"] = mount.get("name")
    view["read_only"] = bool(mount.get("readOnly"))
    volume = ps.volume_index(pod_spec, mount.get("name"))[1]
    view["state"], view["size_limit_bytes"] = ps.volume_state(volume, parse)
    if volume is None:
        view["missing_volume"] = True
    return view


def _memory_effective(size_limit, pod_limit, node_allocatable, node_mode, node_capacity):
    """(effective bytes|None, complete, note) of a memory-backed emptyDir."""
    if node_mode == ps.NODE_EVICTION:
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


def _effective_for(view, pod_limit, node_allocatable, mode, node_capacity):
    state = view["state"]
    if state == ps.RUNTIME_DEFAULT:
        return ps.RUNTIME_DEFAULT_BYTES, True, f"no volume at /dev/shm: the container runtime's default tmpfs ({human(ps.RUNTIME_DEFAULT_BYTES)})"
    if state in ps.MEMORY_STATES:
        return _memory_effective(view["size_limit_bytes"], pod_limit, node_allocatable, mode, node_capacity)
    if state == ps.DISK_BACKED:
        return None, False, "disk-backed emptyDir: bounded by the node's disk, sizeLimit (if any) enforced by eviction"
    if state == ps.HOST_IPC:
        return None, False, "hostIPC: the node's own /dev/shm (usually half of its RAM), shared with the host"
    if state == ps.HOST_PATH:
        return None, False, "hostPath at /dev/shm: the size of that host directory's filesystem"
    return None, False, "volume {} at /dev/shm is not an emptyDir: its size is not set by shm".format(view["volume"])


def _pod_state(containers, host_ipc):
    if host_ipc:
        return ps.HOST_IPC
    states = {c["state"] for c in containers if c["volume"]}
    for state in ps.STATES:
        if state in states:
            return state
    return ps.RUNTIME_DEFAULT


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
