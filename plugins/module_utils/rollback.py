# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the record of what shmfix replaced (annotation shmfix.io/original) and the exact rollback.

- ``encode_original(original) -> str``, ``decode_original(text) -> dict``, ``merge_original(recorded, new)``
  (re-patching keeps the first, pre-shmfix record);
- ``plan_rollback(pod_spec, original) -> dict`` (the shape of plan.plan(); action 'rollback' or 'none');
- ``rollback(pod_spec, original)``: ``rollback(apply_plan(s, p), p['original']) == s``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json

from ansible_collections.shmfix.k8s.plugins.module_utils.plan import apply_plan, plan_result
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import ANNOTATION_ORIGINAL, ORIGINAL_VERSION, SHM_PATH, norm_path, volume_index


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
        k = next((k for k, m in enumerate(mounts) if m.get("name") == name and norm_path(m.get("mountPath")) == SHM_PATH), None)
        if k is None:
            continue
        ops.append({"op": "test", "path": f"/containers/{i}/name", "value": record["container"]})
        if len(mounts) == 1 and record.get("volumeMounts") in ("absent", "null"):
            ops.append(_restore_list(f"/containers/{i}/volumeMounts", record["volumeMounts"]))
        else:
            ops.append({"op": "remove", "path": f"/containers/{i}/volumeMounts/{k}"})
    return ops


def _rollback_volume_ops(pod_spec, original, name):
    index, current = volume_index(pod_spec, name)
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


def _written_volume(original):
    """The volume shmfix wrote: a Memory emptyDir with the sizeLimit the record keeps."""
    return {"name": original["volume"]["name"], "emptyDir": {"medium": "Memory", "sizeLimit": original.get("size_limit")}}


def _same_volume(current, written, parse):
    if current == written or parse is None or not isinstance(current, dict):
        return current == written
    empty_dir = current.get("emptyDir") or {}
    if set(current) != {"name", "emptyDir"} or set(empty_dir) != {"medium", "sizeLimit"} or empty_dir.get("medium") != "Memory":
        return False
    try:
        return parse(empty_dir["sizeLimit"], "sizeLimit") == parse(written["emptyDir"]["sizeLimit"], "sizeLimit")
    except ValueError:
        return False


def _other_users(pod_spec, original, name):
    """'init container x at /p' for every mount of the volume that is not one of the /dev/shm mounts shmfix added."""
    added = {m["container"] for m in original["mounts"]}
    users = []
    for key, what in (("containers", "container"), ("initContainers", "init container"), ("ephemeralContainers", "ephemeral container")):
        for c in pod_spec.get(key) or []:
            for m in c.get("volumeMounts") or []:
                ours = key == "containers" and c.get("name") in added and norm_path(m.get("mountPath")) == SHM_PATH
                if m.get("name") == name and not ours:
                    users.append("%s %s at %s" % (what, c.get("name"), m.get("mountPath")))
    return users


def rollback_drift(pod_spec, original, parse=None):
    """(drift force may override, drift that blocks even with force): what changed since shmfix wrote the volume."""
    name = original["volume"]["name"]
    current = volume_index(pod_spec, name)[1]
    written = _written_volume(original)
    changed, blocking = [], []
    restored = current is not None and current == original["volume"].get("entry")
    if current is not None and not restored and not _same_volume(current, written, parse):
        changed.append("volume %s is now %s, shmfix wrote %s" % (name, json.dumps(current, sort_keys=True), json.dumps(written, sort_keys=True)))
    users = _other_users(pod_spec, original, name) if current is not None and original["volume"].get("entry") is None else []
    if users:
        blocking.append("volume %s, which shmfix added, is also mounted by %s: removing it would break that mount" % (name, ", ".join(users)))
    return changed, blocking


def plan_rollback(pod_spec, original, force=False, parse=None):
    """Plan restoring what ``original`` (from annotation shmfix.io/original) recorded.

    Mounts shmfix added are removed, the volume is removed (if shmfix added it) or put back as it
    was, in place. Idempotent: a spec already restored gives action 'none'. Same shape as plan().
    A volume changed since shmfix wrote it (a sizeLimit raised by hand) is drift: action 'skip' with
    the reason, unless ``force``; a volume shmfix added that other mounts now use is always 'skip'.
    """
    spec = pod_spec or {}
    original = decode_original(original)
    name = original["volume"]["name"]
    changed, blocking = rollback_drift(spec, original, parse)
    if blocking or (changed and not force):
        why = "; ".join(blocking + changed)
        hint = "restore it by hand" if blocking else "restore it by hand, or roll back with force to put back what was there before shmfix"
        return plan_result(spec, "skip", "drift since shmfix patched it: %s; %s" % (why, hint), name, None)
    ops = _rollback_mount_ops(spec, original, name) + _rollback_volume_ops(spec, original, name)
    result = plan_result(spec, "rollback" if ops else "none", "", name, None, ops)
    result["reason"] = f"restore /dev/shm as it was before shmfix (volume {name})" if ops else f"nothing to roll back: volume {name} is as it was before shmfix"
    return result


def rollback(pod_spec, original):
    """Pod spec with the change recorded in ``original`` undone (a deep copy)."""
    return apply_plan(pod_spec, plan_rollback(pod_spec, original))
