# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the size policy and the /dev/shm facts of a pod spec, written in CEL for admission policies.

Each expression is the CEL twin of one Python owner, and the integration test
tests/integration/test_admission.py checks them against each other on the API server:

- ``memory_variables(spec)``: ``podspec.pod_memory_limit`` (pod-level limit, else every regular
  container's limit plus native sidecars, init containers, RuntimeClass overhead);
- ``size_variables(sizes, metas)``: ``size_policy.desired_size`` (the ``shmfix.io/size-limit``
  annotation, ``size_limit``, else ``size_ratio`` of the pod limit in whole MiB clamped to
  ``min_size``/``max_size``, 1Gi without a limit) and ``units.format_bytes``;
- ``state_variables(spec)``: ``podspec.shm_mount``/``volume_state``: which volume the regular
  containers mount at /dev/shm and its state;
- ``action_variables(existing, volume_name)``: what ``plan.plan`` does with that state.

``spec`` is a CEL expression of the pod spec (``object.spec`` in a MutatingAdmissionPolicy on Pods,
``variables.podSpec`` in the ValidatingAdmissionPolicy on workloads); ``metas`` the metadata
expressions whose annotations count, first wins (the object's, then its pod template's).

CEL used, and since when the API server has it: ``quantity()``/``isQuantity()`` (1.28), the
Kubernetes list functions ``sum()``/``max()``/``indexOf()``, the strings extension's
``trim()``/``lowerAscii()`` (1.29), optional fields ``?field:`` (1.28). Two-variable comprehensions
(a list index in ``map``) are not used: a 1.32 API server, the first with MutatingAdmissionPolicy
(v1alpha1), compiles new expressions for 1.31, which lacks them; ``indexOf`` on the init
containers' names gives the position instead. Nothing of the size policy needed a fallback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import (
    _FALSE,
    ANNOTATION_SIZE_LIMIT,
    ANNOTATION_SKIP,
    DISK_BACKED,
    HOST_PATH,
    OTHER,
    RUNTIME_DEFAULT,
    RUNTIME_DEFAULT_BYTES,
    SHM_PATH,
    SIZED,
    UNBOUNDED_MEMORY,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.size_policy import DEFAULT_MIN_BYTES, DEFAULT_NO_LIMIT_BYTES, DEFAULT_RATIO
from ansible_collections.shmfix.k8s.plugins.module_utils.units import _BINARY_UNITS, MI

# A mount at /dev/shm, as podspec.norm_path sees it (trailing slashes do not count).
SHM_MOUNT_RE = "^" + SHM_PATH + "/*$"
# What the policies write: add a volume and mounts, set the volume's medium and sizeLimit, mount it.
ACT_ADD, ACT_SET, ACT_MOUNT, ACT_SET_MOUNT = "add", "set", "mount", "set_mount"
CHANGING_ACTIONS = (ACT_ADD, ACT_SET, ACT_MOUNT, ACT_SET_MOUNT)
ACT_NONE, ACT_SKIP = "none", "skip"
# How many alternative volume names (dshm-1, dshm-2, ...) plan._pick_volume_name may need at admission.
NAME_CANDIDATES = 16


def lit(value):
    """A CEL literal: a string (JSON's escapes are CEL's), an int, a float (shortest exact repr), a bool, a list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def _limit(c):
    """A container's memory limit in bytes, 0 without one."""
    return f"(has({c}.resources) && has({c}.resources.limits) && 'memory' in {c}.resources.limits ? quantity({c}.resources.limits.memory).asInteger() : 0)"


def _sidecar(c):
    return f"(has({c}.restartPolicy) && {c}.restartPolicy == 'Always')"


def _is_shm(m):
    return f"{m}.mountPath.matches({lit(SHM_MOUNT_RE)})"


def _has_shm(c):
    return f"(has({c}.volumeMounts) && {c}.volumeMounts.exists(m, {_is_shm('m')}))"


def memory_variables(spec):
    """[(name, expression)]: ``memoryLimit``, the pod's memory cgroup limit in bytes (0: none), as podspec.pod_memory_limit."""
    running = (
        f"variables.initContainers.map(c, ({_sidecar('c')} ? 0 : {_limit('c')}) + variables.initContainers.filter(d, {_sidecar('d')} "
        f"&& variables.initNames.indexOf(d.name) <= variables.initNames.indexOf(c.name)).map(d, {_limit('d')}).sum())"
    )
    containers = (
        f"{spec}.containers.all(c, {_limit('c')} > 0) && variables.initRunning.all(r, r > 0) ? "
        f"([{spec}.containers.map(c, {_limit('c')}).sum() + variables.initContainers.filter(c, {_sidecar('c')}).map(c, {_limit('c')}).sum()]"
        " + variables.initRunning).max() : 0"
    )
    pod = f"{spec}.resources"
    return [
        ("initContainers", f"has({spec}.initContainers) ? {spec}.initContainers : []"),
        ("initNames", "variables.initContainers.map(c, c.name)"),
        ("initRunning", running),
        ("containersMemoryLimit", containers),
        ("memoryOverhead", f"has({spec}.overhead) && 'memory' in {spec}.overhead ? quantity({spec}.overhead.memory).asInteger() : 0"),
        ("podMemoryLimit", f"has({pod}) && has({pod}.limits) && 'memory' in {pod}.limits ? quantity({pod}.limits.memory).asInteger() : 0"),
        (
            "memoryLimit",
            (
                "variables.podMemoryLimit > 0 ? variables.podMemoryLimit + variables.memoryOverhead : "
                "variables.containersMemoryLimit > 0 ? variables.containersMemoryLimit + variables.memoryOverhead : 0"
            ),
        ),
    ]


def annotation(key, metas):
    """CEL optional of annotation ``key`` on the first of ``metas`` that has it (podspec.annotation)."""
    return ".or(".join(f"{meta}.?annotations[?{lit(key)}]" for meta in metas) + ")" * (len(metas) - 1)


def skip_condition(metas):
    """CEL true when the object is NOT skipped (podspec.is_skipped: anything but false/no/0/off/'' skips)."""
    return f"string({annotation(ANNOTATION_SKIP, metas)}.orValue('false')).trim().lowerAscii() in {lit(list(_FALSE))}"


def format_bytes(b):
    """CEL of units.format_bytes: the largest binary suffix that divides ``b`` exactly, else plain bytes."""
    expr = f"string({b})"
    for suffix, size in reversed(_BINARY_UNITS):
        expr = f"{b} % {size} == 0 ? string({b} / {size}) + {lit(suffix)} : ({expr})"
    return expr


def size_variables(sizes, metas):
    """[(name, expression)]: ``desiredBytes`` (size_policy.desired_size; -1 for a bad size annotation) and ``sizeLimit`` (its quantity)."""
    quantity = "quantity(string(variables.sizeAnnotation).trim())"
    annotated = (
        f"variables.sizeAnnotation == null ? 0 : isQuantity(string(variables.sizeAnnotation).trim()) && {quantity}.isInteger() "
        f"&& {quantity}.asInteger() > 0 ? {quantity}.asInteger() : -1"
    )
    if sizes.get("size_limit") is not None:
        policy = lit(sizes["size_limit"])
    else:
        ratio = sizes["size_ratio"] if sizes.get("size_ratio") is not None else DEFAULT_RATIO
        low = sizes["min_size"] if sizes.get("min_size") is not None else DEFAULT_MIN_BYTES
        base = f"(variables.memoryLimit > 0 ? [{MI}, int(double(variables.memoryLimit) * {lit(float(ratio))}) / {MI} * {MI}].max() : {DEFAULT_NO_LIMIT_BYTES})"
        policy = f"{base} < {low} ? {low} : {base}"
        if sizes.get("max_size") is not None:
            policy = f"{base} < {low} ? {low} : {base} > {sizes['max_size']} ? {sizes['max_size']} : {base}"
    return [
        ("sizeAnnotation", annotation(ANNOTATION_SIZE_LIMIT, metas) + ".orValue(null)"),
        ("annotationBytes", annotated),
        ("desiredBytes", f"variables.annotationBytes != 0 ? variables.annotationBytes : ({policy})"),
        ("sizeLimit", format_bytes("variables.desiredBytes")),
    ]


def state_variables(spec):
    """[(name, expression)]: the /dev/shm volume of the regular containers (podspec) and its state.

    ``shmState`` is a podspec state (runtime_default, sized, unbounded_memory, disk_backed, host_path,
    other), or 'conflict' (containers mount different volumes) / 'missing' (an undefined volume).
    """
    vol = "variables.shmVolume[0]"
    medium = f"(has({vol}.emptyDir.medium) ? {vol}.emptyDir.medium : '')"
    state = (
        f"size(variables.shmVolumes) == 0 ? {lit(RUNTIME_DEFAULT)} : variables.shmVolumes.exists(n, n != variables.shmVolumes[0]) ? 'conflict' : "
        f"size(variables.shmVolume) == 0 ? 'missing' : has({vol}.hostPath) ? {lit(HOST_PATH)} : !has({vol}.emptyDir) ? {lit(OTHER)} : "
        f"{medium} == 'Memory' ? (variables.shmLimitBytes > 0 ? {lit(SIZED)} : {lit(UNBOUNDED_MEMORY)}) : "
        f"{medium} == '' ? {lit(DISK_BACKED)} : {lit(OTHER)}"
    )
    return [
        ("volumes", f"has({spec}.volumes) ? {spec}.volumes : []"),
        ("shmVolumes", f"{spec}.containers.filter(c, {_has_shm('c')}).map(c, c.volumeMounts.filter(m, {_is_shm('m')})[0].name)"),
        ("lacking", f"{spec}.containers.filter(c, !{_has_shm('c')})"),
        ("shmVolume", "variables.volumes.filter(v, size(variables.shmVolumes) > 0 && v.name == variables.shmVolumes[0])"),
        ("shmLimitBytes", f"has({vol}.emptyDir.sizeLimit) ? quantity({vol}.emptyDir.sizeLimit).asInteger() : 0"),
        ("shmState", state),
    ]


def _existing_action(existing):
    """What plan._plan_existing does with one emptyDir volume at /dev/shm, for ``existing``."""
    if existing == "keep":
        return lit(ACT_NONE)
    if existing == "grow":
        return (
            f"(variables.shmState == {lit(UNBOUNDED_MEMORY)} && variables.memoryLimit == 0) || "
            f"(variables.shmState == {lit(SIZED)} && variables.shmLimitBytes < variables.desiredBytes) ? {lit(ACT_SET)} : {lit(ACT_NONE)}"
        )
    return (
        f"variables.shmState == {lit(SIZED)} && variables.shmLimitBytes == variables.desiredBytes ? "
        f"(size(variables.lacking) > 0 ? {lit(ACT_MOUNT)} : {lit(ACT_NONE)}) : (size(variables.lacking) > 0 ? {lit(ACT_SET_MOUNT)} : {lit(ACT_SET)})"
    )


def action_variables(existing, volume_name):
    """[(name, expression)]: ``action`` (add, set, mount, set_mount, none, skip) and ``volumeName``, as plan.plan decides."""
    candidates = [volume_name] + [f"{volume_name}-{n}" for n in range(1, NAME_CANDIDATES + 1) if len(f"{volume_name}-{n}") <= 63]
    small = f"variables.desiredBytes <= {RUNTIME_DEFAULT_BYTES} ? {lit(ACT_NONE)} : " if existing != "replace" else ""
    action = (
        f"variables.annotationBytes < 0 ? {lit(ACT_SKIP)} : variables.shmState == {lit(RUNTIME_DEFAULT)} ? ({small}{lit(ACT_ADD)}) : "
        f"variables.shmState in {lit(['conflict', 'missing', HOST_PATH, OTHER])} ? {lit(ACT_SKIP)} : ({_existing_action(existing)})"
    )
    return [
        ("action", action),
        (
            "volumeName",
            f"variables.action == {lit(ACT_ADD)} ? {lit(candidates)}.filter(n, !variables.volumes.exists(v, v.name == n))[0] : variables.shmVolumes[0]",
        ),
    ]


def apply_configuration(annotation_key, policy_name):
    """The MutatingAdmissionPolicy's ApplyConfiguration: the volume, the /dev/shm mounts, an annotation naming the policy.

    Merged as server-side apply merges: ``volumes`` is keyed by name, ``containers`` by name and their
    ``volumeMounts`` by mountPath, so only the listed entries change; nothing else of the pod is written.
    """
    volume = "[Object.spec.volumes{name: variables.volumeName, emptyDir: Object.spec.volumes.emptyDir{medium: 'Memory', sizeLimit: variables.sizeLimit}}]"
    mounts = (
        "variables.lacking.map(c, Object.spec.containers{name: c.name, "
        f"volumeMounts: [Object.spec.containers.volumeMounts{{name: variables.volumeName, mountPath: {lit(SHM_PATH)}}}]}})"
    )
    return (
        f"variables.action in {lit(list(CHANGING_ACTIONS))} ? Object{{"
        f"metadata: Object.metadata{{annotations: {{{lit(annotation_key)}: {lit(policy_name)}}}}}, spec: Object.spec{{"
        f"?volumes: variables.action == {lit(ACT_MOUNT)} ? optional.none() : optional.of({volume}), "
        f"?containers: variables.action == {lit(ACT_SET)} ? optional.none() : optional.of({mounts})"
        "}} : Object{}"
    )
