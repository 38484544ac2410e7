# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the findings of an assessment: what is wrong or worth knowing about a workload's /dev/shm.

Each finding is ``{severity: error|warning|info, code, message}``; the message says what to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import (
    ANNOTATION_SIZE_LIMIT,
    ANNOTATION_SKIP,
    DISK_BACKED,
    HOST_IPC,
    HOST_PATH,
    MEMORY_STATES,
    NODE_EVICTION,
    OTHER,
    RUNTIME_DEFAULT,
    RUNTIME_DEFAULT_BYTES,
    UNBOUNDED_MEMORY,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes, human

# The severities of the findings that need a look: a workload with none of them is fine.
NEEDS_A_LOOK = ("error", "warning")


def needing_a_look(found):
    """The findings of a record that need a look (errors and warnings), in their order."""
    return [f for f in found or [] if f.get("severity") in NEEDS_A_LOOK]


_MANAGER_ADVICE = {
    "helm": "the next `helm upgrade` reverts a live patch; put the volume in the chart values (shm_patch returns the snippet to paste)",
    "argocd": "Argo CD shows a live patch as OutOfSync and self-heal reverts it; put the volume in the Git source (shm_patch returns the snippet to paste)",
    "flux": "Flux reverts a live patch at its next reconcile; put the volume in the Git source or the HelmRelease values "
    "(shm_patch returns the snippet to paste)",
}


def findings(result, target_bytes=None, node_allocatable=None):
    """The findings of an assessment (assessment.assess's result without ``findings``)."""
    found = []
    found.extend(_state_findings(result))
    found.extend(_size_findings(result, target_bytes, node_allocatable))
    found.extend(_mount_findings(result))
    found.extend(_memory_accounting_findings(result))
    found.extend(_metadata_findings(result))
    return found


def finding(severity, code, message):
    return {"severity": severity, "code": code, "message": message}


def _state_findings(result):
    found = []
    if result["state"] == HOST_IPC:
        found.append(
            finding(
                "info",
                "host_ipc",
                "the pod uses hostIPC: /dev/shm is the node's own, shared with the host and every hostIPC pod; "
                "shmfix never patches it. Drop hostIPC and mount a memory emptyDir at /dev/shm if isolation is wanted.",
            )
        )
    found.extend(f for f in (_container_state_finding(c) for c in result["containers"]) if f)
    found.extend(_volume_kind_findings(result))
    return found


def _container_state_finding(c):
    """The finding of one container whose /dev/shm is a volume shmfix never patches, or None."""
    if c["state"] == HOST_PATH:
        return finding(
            "warning",
            "host_path",
            "container {} mounts hostPath volume {} at /dev/shm: it shares the node's shared memory and is never patched; "
            "replace it with an emptyDir {{medium: Memory, sizeLimit}} by hand if the sharing is not intended.".format(c["name"], c["volume"]),
        )
    if c["state"] == OTHER and c.get("missing_volume"):
        return finding(
            "error",
            "missing_volume",
            "container {} mounts volume {} at /dev/shm but the pod has no such volume; fix the template.".format(c["name"], c["volume"]),
        )
    if c["state"] == OTHER:
        return finding(
            "info",
            "other",
            "container {} mounts volume {} at /dev/shm and it is not an emptyDir: shmfix never patches it; "
            "move that volume elsewhere if the container needs shared memory.".format(c["name"], c["volume"]),
        )
    return None


def _volume_kind_findings(result):
    """Disk-backed volume, runtime default, eviction-enforced memory volume."""
    found = []
    containers = result["containers"]
    if result["state"] == DISK_BACKED or any(c["state"] == DISK_BACKED for c in containers):
        disk = next(c for c in containers if c["state"] == DISK_BACKED)
        found.append(
            finding(
                "warning",
                "disk_backed",
                "volume {} at /dev/shm is an emptyDir without medium: Memory: shared memory lives on the node's disk (slow, counts against "
                "ephemeral storage); set medium: Memory and a sizeLimit (shmfix.k8s.shm_patch existing=replace).".format(disk["volume"]),
            )
        )
    if result["state"] == RUNTIME_DEFAULT and not any(c["volume"] for c in containers):
        found.append(
            finding(
                "info",
                "runtime_default",
                f"no volume is mounted at /dev/shm: every container gets the container runtime's {human(RUNTIME_DEFAULT_BYTES)} tmpfs; "
                "if the workload uses shared memory (PyTorch DataLoader workers, Chrome, PostgreSQL parallel query) "
                "add a memory emptyDir with shmfix.k8s.shm_patch.",
            )
        )
    if result["volume"] and result["node_mode"] == NODE_EVICTION and any(c["state"] in MEMORY_STATES for c in containers):
        found.append(
            finding(
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
    if memory and size_limit and pod_limit and size_limit > pod_limit and result["node_mode"] != NODE_EVICTION:
        # only a kubelet that sizes memory emptyDirs caps the tmpfs; on an eviction node it is half the RAM
        where = "where the kubelet sizes memory emptyDirs (SizeMemoryBackedVolumes), " if result["node_mode_assumed"] else ""
        found.append(
            finding(
                "warning",
                "size_limit_above_memory_limit",
                "sizeLimit {0} of volume {1} is above the pod memory limit {2}: {4}the kubelet silently caps the tmpfs at {2}; "
                "lower sizeLimit to at most {3} or raise limits.memory.".format(
                    human(size_limit), result["volume"], human(pod_limit), format_bytes(pod_limit), where
                ),
            )
        )
    if any(c["state"] == UNBOUNDED_MEMORY for c in result["containers"]) and not pod_limit:
        reach = f"node allocatable memory ({human(node_allocatable)})" if node_allocatable else "the node's allocatable memory"
        if result["node_mode"] == NODE_EVICTION:
            reach = "half of the node's RAM" + (f" ({human(result['effective_bytes'])})" if result["effective_bytes"] else "")
        found.append(
            finding(
                "warning",
                "no_memory_limit_no_size_limit",
                "volume {} at /dev/shm is a Memory emptyDir without sizeLimit and the pod has no memory limit: shared memory can grow to {} "
                "and starve the node; set a sizeLimit (shmfix.k8s.shm_patch existing=replace) or memory limits.".format(result["volume"], reach),
            )
        )
    effective = result["effective_bytes"]
    if target_bytes and effective is not None and effective < target_bytes:
        found.append(finding("warning", "effective_below_target", _below_target_message(result, target_bytes)))
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
            finding(
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
    sidecars = [c["name"] for c in result.get("init_containers") or [] if c.get("sidecar") and not c["volume"]]
    if sidecars and result["state"] != HOST_IPC:
        found.append(
            finding(
                "info",
                "sidecars_without_mount",
                "native sidecars {0} (init containers with restartPolicy: Always) have no /dev/shm mount: they see the runtime's {1} tmpfs, "
                "also after a fix (shmfix mounts the volume in regular containers only); mount it in them by hand if they use shared "
                "memory with the app.".format(", ".join(sidecars), human(RUNTIME_DEFAULT_BYTES)),
            )
        )
    if len(result["volumes"]) > 1:
        found.append(
            finding(
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
                finding(
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
                finding(
                    "warning",
                    "memory_accounting",
                    f"container {c['name']}: shared memory pages count against its memory limit ({human(limit)}), so it is OOM-killed before "
                    f"/dev/shm ({human(shm)}) is full; raise limits.memory above {format_bytes(shm)} plus the working set, or lower sizeLimit "
                    "(half of the limit is a sound default).",
                )
            )
    return found


def _metadata_findings(result):
    found = []
    for name in result["managed_by"]:
        found.append(
            finding(
                "warning",
                "managed_by_" + name,
                "the workload is managed by {}: {}.".format({"helm": "Helm", "argocd": "Argo CD", "flux": "Flux"}[name], _MANAGER_ADVICE[name]),
            )
        )
    if result["annotation_error"]:
        found.append(
            finding(
                "error",
                "bad_annotation",
                f"{result['annotation_error']}; shmfix does not patch this workload until it is fixed: "
                f"kubectl annotate <kind>/<name> {ANNOTATION_SIZE_LIMIT}=1Gi --overwrite.",
            )
        )
    if result["skip"]:
        found.append(
            finding(
                "info",
                "skip_annotation",
                f"annotation {ANNOTATION_SKIP} is set: shmfix reports but never patches this workload; remove it to allow patching.",
            )
        )
    return found


_EVIDENCE_WORDS = {
    "sigbus": "a container died of SIGBUS",
    "oom_killed": "a container was OOM-killed",
    "df_usage": "/dev/shm is nearly full",
    "no_space_log": "the logs say the space ran out",
}


def evidence_findings(evidence, state):
    """Findings of a workload's evidence (evidence.evidence_record): one warning per kind of evidence, and
    an info for images known to need shared memory when /dev/shm is still the runtime default (``state``)."""
    found = []
    items = (evidence or {}).get("items") or []
    for kind in [k for k in _EVIDENCE_WORDS if any(i["kind"] == k for i in items)]:
        same = [i for i in items if i["kind"] == kind]
        more = " (and %d more)" % (len(same) - 1) if len(same) > 1 else ""
        found.append(
            finding(
                "warning",
                "shm_pressure_" + kind,
                "evidence that /dev/shm is too small, %s: %s%s; give it a memory emptyDir (shmfix.k8s.shm_patch, remediate_target=evidence)."
                % (_EVIDENCE_WORDS[kind], same[0]["message"], more),
            )
        )
    likely = (evidence or {}).get("likely") or []
    if likely and not items and state == RUNTIME_DEFAULT:
        known = ", ".join("%s runs %s (%s)" % (x["container"], x["software"], x["image"]) for x in likely)
        found.append(
            finding(
                "info",
                "likely_needs_shm",
                f"{known}: software known to use more than the runtime's {human(RUNTIME_DEFAULT_BYTES)} of /dev/shm; no evidence yet that "
                "its pods hit the limit (remediate_target=likely picks it).",
            )
        )
    return found
