# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: plan the minimal, reversible change giving a pod spec a sized memory-backed /dev/shm.

- ``plan(pod_spec, parse=..., size_bytes, existing, volume_name, containers=None) -> dict``;
- ``apply_plan(pod_spec, plan)`` / ``apply_ops(pod_spec, ops)``: the spec after the plan's RFC 6902
  ops, applied by ``jsonpatch`` as the API server applies them (a deep copy; ValueError when a
  guard fails because the spec changed since it was planned);
- ``template_diff(before, after)``: only the changed parts, for Ansible's --diff;
- ``prefix_patch(ops, prefix)``: ops rebased from the pod spec onto the object.

Patches are relative to the pod spec, guarded by ``test`` ops on every list index they use
(container names, replaced volume entries): send them with ``application/json-patch+json``
after ``prefix_patch(ops, kind.pod_spec_pointer())``. Inputs are validated by options.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re
import traceback

from ansible_collections.shmfix.k8s.plugins.module_utils.kinds import pointer
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import (
    DEFAULT_VOLUME_NAME,
    DISK_BACKED,
    NEVER_PATCHED,
    ORIGINAL_VERSION,
    RUNTIME_DEFAULT_BYTES,
    SHM_PATH,
    SIZED,
    UNBOUNDED_MEMORY,
    pod_memory_limit,
    shm_mount,
    source_type,
    volume_index,
    volume_state,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes, human

try:
    import jsonpatch

    HAS_JSONPATCH = True
    JSONPATCH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only without jsonpatch
    HAS_JSONPATCH = False
    JSONPATCH_IMPORT_ERROR = traceback.format_exc()


# The paths plans and rollbacks write: list entries of volumes, and a container's name or volumeMounts entries.
_SHALLOW_PATHS = re.compile(r"^/(volumes(/(\d+|-))?|containers/\d+/(name|volumeMounts(/(\d+|-))?))$")


def _writable_copy(pod_spec, ops):
    """A copy of ``pod_spec`` that ``ops`` may change in place and leave ``pod_spec`` as it was.

    When every op writes a path of _SHALLOW_PATHS only the lists and containers those paths reach are
    copied (the rest is shared, read-only); anything else gets a deep copy. A plan is applied once for
    each of thousands of workloads: a deep copy of each pod spec was most of the planning time.
    """
    if not all(_SHALLOW_PATHS.match(op.get("path", "")) for op in ops):
        return copy.deepcopy(pod_spec)
    doc = dict(pod_spec)
    if isinstance(doc.get("volumes"), list):
        doc["volumes"] = list(doc["volumes"])
    if isinstance(doc.get("containers"), list):
        doc["containers"] = [dict(c, volumeMounts=list(c["volumeMounts"])) if isinstance(c.get("volumeMounts"), list) else dict(c) for c in doc["containers"]]
    return doc


def apply_ops(pod_spec, ops):
    """``pod_spec`` after the RFC 6902 ``ops`` (a copy: the input is never modified); ValueError when an op does not apply."""
    try:
        return jsonpatch.apply_patch(_writable_copy(pod_spec, ops), ops, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise ValueError(f"the JSON patch does not apply to this pod spec ({exc}); re-read the object and plan again")


def apply_plan(pod_spec, plan):
    """Pod spec after ``plan`` (a deep copy); ``ValueError`` if the spec changed since it was planned."""
    return apply_ops(pod_spec or {}, plan.get("patch") or [])


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
        "volume": copy.deepcopy(volume_index(pod_spec, volume_name)[1]) if volume_name else None,
        "mounts": {c.get("name"): copy.deepcopy(shm_mount(c)[1]) for c in pod_spec.get("containers") or []},
    }


def plan_result(pod_spec, action, reason, volume_name, size_bytes, ops=None, original=None):
    """A plan: {action, reason, volume_name, size_bytes, size_limit, patch, before, after, original, changed}."""
    ops = ops or []
    before = _view(pod_spec, volume_name)
    return {
        "action": action,
        "reason": reason,
        "volume_name": volume_name,
        "size_bytes": size_bytes,
        "size_limit": format_bytes(size_bytes) if size_bytes else None,
        "patch": ops,
        "before": before,
        "after": _view(apply_ops(pod_spec, ops), volume_name) if ops else copy.deepcopy(before),
        "original": original,
        "changed": bool(ops),
    }


def _mount_ops(pod_spec, indexes, volume_name):
    """Ops adding ``volume_name`` at /dev/shm to the given containers, and their rollback records."""
    ops, records = [], []
    regular = pod_spec.get("containers") or []
    for i in indexes:
        container = regular[i]
        if shm_mount(container)[1] is not None:
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
    spec = pod_spec or {}
    targets = _target_indexes(spec, containers)
    if spec.get("hostIPC"):
        return plan_result(spec, "skip", "the pod uses hostIPC: /dev/shm is the node's own; shmfix never patches hostIPC pods", None, size_bytes)
    if not targets:
        return plan_result(spec, "skip", "the pod template has no regular containers", None, size_bytes)
    mounted = sorted({shm_mount(c)[1]["name"] for c in spec.get("containers") or [] if shm_mount(c)[1] is not None})
    if len(mounted) > 1:
        return plan_result(spec, "skip", "containers mount different volumes at /dev/shm ({}); fix by hand".format(", ".join(mounted)), None, size_bytes)
    if mounted:
        return _plan_existing(spec, parse, size_bytes, existing, mounted[0], targets)
    return _plan_add(spec, size_bytes, existing, volume_name, targets)


def _plan_add(spec, size_bytes, existing, volume_name, targets):
    if existing != "replace" and size_bytes <= RUNTIME_DEFAULT_BYTES:
        return plan_result(
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
    return plan_result(spec, "add", reason, name, size_bytes, ops + mount_ops, _original(name, None, volumes_state, records, size_bytes))


def _plan_existing(spec, parse, size_bytes, existing, name, targets):
    index, volume = volume_index(spec, name)
    state, current = volume_state(volume, parse)
    if volume is None:
        return plan_result(spec, "skip", f"/dev/shm is mounted from volume {name}, which the pod does not define; fix the template", name, size_bytes)
    if state in NEVER_PATCHED:
        return plan_result(spec, "skip", f"volume {name} at /dev/shm is a {source_type(volume)} volume; shmfix only patches emptyDir volumes", name, size_bytes)
    if existing == "keep":
        return plan_result(
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
            return plan_result(spec, "none", f"volume {name} is {_describe(state, current)}: {why}", name, size_bytes)
        elif current >= size_bytes:
            return plan_result(spec, "none", f"volume {name} sizeLimit {format_bytes(current)} is already >= {format_bytes(size_bytes)}", name, size_bytes)
        else:
            reason = f"raise sizeLimit of {name} from {format_bytes(current)} to {format_bytes(size_bytes)}"
        return _replace_volume(spec, index, volume, size_bytes, [], "resize", reason)
    mount_ops, records = _mount_ops(spec, targets, name)
    if state == SIZED and current == size_bytes:
        if not mount_ops:
            return plan_result(
                spec, "none", "volume {} is already a Memory emptyDir with sizeLimit {}".format(name, volume["emptyDir"]["sizeLimit"]), name, size_bytes
            )
        reason = "mount existing volume {} at /dev/shm in {}".format(name, ", ".join(r["container"] for r in records))
        return plan_result(spec, "add", reason, name, size_bytes, mount_ops, _original(name, volume, _list_state(spec, "volumes"), records, size_bytes))
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
    return plan_result(spec, action, reason, name, size_bytes, ops + mount_ops, _original(name, volume, "list", records, size_bytes))


def _describe(state, size_limit):
    if state == SIZED:
        return f"Memory emptyDir, sizeLimit {format_bytes(size_limit)}"
    if state == UNBOUNDED_MEMORY:
        return "Memory emptyDir without sizeLimit"
    if state == DISK_BACKED:
        return "disk-backed emptyDir" + (f", sizeLimit {format_bytes(size_limit)}" if size_limit else "")
    return state


# ----------------------------------------------------------------------------------------------
# diff and object paths


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


def prefix_patch(ops, prefix):
    """``ops`` with paths rebased under ``prefix`` (a '/spec/template/spec' pointer or a list of keys)."""
    if isinstance(prefix, (list, tuple)):
        prefix = pointer(prefix)
    prefix = prefix.rstrip("/")
    return [dict(op, path=prefix + op["path"]) for op in ops]
