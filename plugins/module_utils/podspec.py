# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the facts of a pod spec's /dev/shm: names, states, annotations, and the small readers.

Imports nothing from Ansible nor from the kubernetes client. Pod specs are plain dicts in the
API's camelCase. Where quantities are read, a ``parse`` callable is injected: pass
``quantity.parse_bytes`` (``parse(value, what, allow_zero=False) -> int``, ``ValueError`` on bad input).

- ``shm_mount(container)``, ``volume_index(pod_spec, name)``, ``source_type(volume)``,
  ``volume_state(volume, parse)``, ``volume_medium(volume)``;
- ``pod_memory_limit(pod_spec, parse=...)``: the pod's memory cgroup limit as the kubelet computes it;
- ``annotation(key, ...)``, ``is_skipped(...)``, ``managed_by(...)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.units import MI

SHM_PATH = "/dev/shm"
RUNTIME_DEFAULT_BYTES = 64 * MI
DEFAULT_VOLUME_NAME = "dshm"
FIELD_MANAGER = "shmfix"

ANNOTATION_SKIP = "shmfix.io/skip"
ANNOTATION_SIZE_LIMIT = "shmfix.io/size-limit"
ANNOTATION_ORIGINAL = "shmfix.io/original"

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

# ----------------------------------------------------------------------------------------------
# small readers


def norm_path(path):
    path = (path or "").rstrip("/")
    return path or "/"


def shm_mount(container):
    """(index, mount) of the container's mount at /dev/shm, or (None, None)."""
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if norm_path(mount.get("mountPath")) == SHM_PATH:
            return index, mount
    return None, None


def volume_index(pod_spec, name):
    """(index, volume) of the pod volume called ``name``, or (None, None)."""
    for index, volume in enumerate(pod_spec.get("volumes") or []):
        if volume.get("name") == name:
            return index, volume
    return None, None


def volume_medium(volume):
    """How a volume's storage is backed, for records: 'Memory', 'disk' (emptyDir without medium), 'hostPath', or the source key."""
    source = source_type(volume)
    if source == "emptyDir":
        return (volume.get("emptyDir") or {}).get("medium") or "disk"
    return source


def source_type(volume):
    """The volume source key ('emptyDir', 'configMap', 'persistentVolumeClaim', ...)."""
    keys = [k for k in volume if k != "name" and volume[k] is not None]
    return keys[0] if keys else "emptyDir"  # a volume with no source is an emptyDir for the kubelet


def container_memory_limit(container, parse, where):
    limits = (container.get("resources") or {}).get("limits") or {}
    value = limits.get("memory")
    if value is None:
        return None
    return parse(value, f"{where}.resources.limits.memory", allow_zero=True) or None


def volume_state(volume, parse):
    """(state, sizeLimit bytes or None) of a pod volume mounted at /dev/shm; ``volume`` None means missing."""
    if volume is None:
        return OTHER, None
    source = source_type(volume)
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
# memory limits


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
    limits = [container_memory_limit(c, parse, "container {}".format(c.get("name"))) for c in containers]
    declared = bool(containers) and all(limits)
    total = sum(x or 0 for x in limits)
    sidecars = 0
    init_peak = 0
    for init in pod_spec.get("initContainers") or []:
        own = container_memory_limit(init, parse, "init container {}".format(init.get("name"))) or 0
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
