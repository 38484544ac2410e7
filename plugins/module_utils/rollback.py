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


def plan_rollback(pod_spec, original):
    """Plan restoring what ``original`` (from annotation shmfix.io/original) recorded.

    Mounts shmfix added are removed, the volume is removed (if shmfix added it) or put back as it
    was, in place. Idempotent: a spec already restored gives action 'none'. Same shape as plan().
    """
    spec = pod_spec or {}
    original = decode_original(original)
    name = original["volume"]["name"]
    ops = _rollback_mount_ops(spec, original, name) + _rollback_volume_ops(spec, original, name)
    result = plan_result(spec, "rollback" if ops else "none", "", name, None, ops)
    result["reason"] = f"restore /dev/shm as it was before shmfix (volume {name})" if ops else f"nothing to roll back: volume {name} is as it was before shmfix"
    return result


def rollback(pod_spec, original):
    """Pod spec with the change recorded in ``original`` undone (a deep copy)."""
    return apply_plan(pod_spec, plan_rollback(pod_spec, original))
