# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Canary pods that prove how a node enforces a memory emptyDir's sizeLimit.

A canary mounts ``emptyDir {medium: Memory, sizeLimit}`` at /dev/shm, measures it with ``df``
and writes past the limit. The outcome is:

- ``sized``: df shows the sizeLimit and the write fails with ENOSPC (kubelet with
  SizeMemoryBackedVolumes);
- ``evicted``: the write succeeds (the tmpfs is the kernel default) and the kubelet evicts the
  pod with ``Usage of EmptyDir volume "dshm" exceeds the limit "<limit>".``;
- ``not_enforced``: neither within the timeout;
- ``unexpected``: the write failed but df does not show the sizeLimit (something else limits it);
- ``error``: the canary could not run (unschedulable, image missing, exec refused...).

PURE: manifests and decisions take and return plain dicts; ``canary_runner.CanaryRunner`` drives them with
a ``client.Kube``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.shmfix.k8s.plugins.module_utils.pod_status import stuck_container, unschedulable
from ansible_collections.shmfix.k8s.plugins.module_utils.units import MI, page_round

# The label of every canary namespace and pod.
LABEL = "shmfix.io/canary"
CONTAINER = "canary"
FILL_FILE = "/dev/shm/shmfix-canary-fill"
RC_MARKER = "shmfix-rc="
ENOSPC_TEXT = "No space left on device"
EVICTION_RE = re.compile(r'Usage of EmptyDir volume "(?P<volume>[^"]+)" exceeds the limit "(?P<limit>[^"]+)"')

OUTCOME_SIZED = "sized"
OUTCOME_EVICTED = "evicted"
OUTCOME_NOT_ENFORCED = "not_enforced"
OUTCOME_UNEXPECTED = "unexpected"
OUTCOME_ERROR = "error"
OUTCOME_NOT_RUN = "not_run"

# Seconds to wait for an Evicted event after the canary pod ended without one.
EVENT_GRACE = 15

# What version_check calls a node's enforcement -> the outcome a canary must show.
EXPECTED_OUTCOME = {"sized": OUTCOME_SIZED, "eviction": OUTCOME_EVICTED, "evicted": OUTCOME_EVICTED}


def slug(text):
    """``text`` in lower-case letters, digits and '-' (the stuff of DNS-1123 names): 'v1.31 eviction' -> 'v1-31-eviction'."""
    return re.sub(r"[^a-z0-9-]+", "-", str(text).lower()).strip("-")


def pod_name(probe_name):
    """A DNS-1123 pod name for a probe: 'shm-canary-<probe>'."""
    return ("shm-canary-" + (slug(probe_name) or "probe"))[:63].rstrip("-")


def is_canary_namespace(namespace):
    """True for a namespace labelled LABEL=true (the only ones shmfix fills and deletes)."""
    return ((namespace.get("metadata") or {}).get("labels") or {}).get(LABEL) == "true"


def namespace_manifest(namespace, labels=None, annotations=None):
    """The canary namespace: labelled (and annotated), and enforcing the `restricted` Pod Security level."""
    all_labels = {
        "app.kubernetes.io/managed-by": "shmfix",
        LABEL: "true",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    all_labels.update(labels or {})
    metadata = {"name": namespace, "labels": all_labels}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def pod_manifest(
    name,
    namespace,
    image,
    size_limit,
    image_pull_policy="IfNotPresent",
    node_selector=None,
    node_name=None,
    run_as_user=65534,
    memory_limit="256Mi",
    volume_name="dshm",
    labels=None,
    probe=None,
    tolerations=None,
):
    """A canary pod that passes the `restricted` Pod Security level and mounts the sized emptyDir at /dev/shm."""
    all_labels = {"app.kubernetes.io/managed-by": "shmfix", "app.kubernetes.io/name": "shm-canary", LABEL: "true"}
    if probe:
        all_labels["shmfix.io/probe"] = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(probe))[:63].strip("-_.") or "probe"
    all_labels.update(labels or {})
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": int(run_as_user),
            "runAsGroup": int(run_as_user),
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": image_pull_policy,
                # No TERM handler, like the seed's pods: an evicted canary is killed and ends Failed/Evicted.
                "command": ["sh", "-c", "while true; do sleep 1; done"],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                },
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"memory": memory_limit},
                },
                "volumeMounts": [{"name": volume_name, "mountPath": "/dev/shm"}],
            }
        ],
        "volumes": [{"name": volume_name, "emptyDir": {"medium": "Memory", "sizeLimit": size_limit}}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if node_name:
        spec["nodeName"] = node_name
    if tolerations:
        spec["tolerations"] = list(tolerations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": all_labels}, "spec": spec}


def fill_command(size_limit_bytes, overfill_bytes):
    """Shell command writing size_limit + overfill bytes (whole MiB, rounded up) into /dev/shm."""
    count = -(-(int(size_limit_bytes) + int(overfill_bytes)) // MI)
    return ["sh", "-c", "dd if=/dev/zero of=%s bs=1048576 count=%d 2>&1; echo %s$?" % (FILL_FILE, count, RC_MARKER)], count * MI


def parse_fill_output(output):
    """(exit code of dd or None, dd's own output without the marker line)."""
    rc = None
    lines = []
    for line in (output or "").splitlines():
        if line.startswith(RC_MARKER):
            try:
                rc = int(line[len(RC_MARKER) :].strip())
            except ValueError:
                rc = None
        else:
            lines.append(line)
    return rc, "\n".join(lines).strip()


def eviction_message_matches(message, volume_name, size_limit):
    """True when message is the kubelet's emptyDir eviction message for this volume and limit."""
    match = EVICTION_RE.search(message or "")
    if not match:
        return False
    return match.group("volume") == volume_name and match.group("limit") == str(size_limit)


def decide(size_limit_bytes, df_size_bytes, write_rc, write_output, eviction_message, volume_name, size_limit):
    """Outcome and reason of one canary from what was observed (pure).

    eviction_message is the pod's status message (or the Evicted event's) when it was evicted.
    """
    want = page_round(size_limit_bytes)
    if eviction_message:
        if eviction_message_matches(eviction_message, volume_name, size_limit):
            return OUTCOME_EVICTED, "the kubelet evicted the pod: %s" % eviction_message.strip()
        return OUTCOME_UNEXPECTED, "the pod was evicted for another reason: %s" % eviction_message.strip()
    enospc = ENOSPC_TEXT in (write_output or "")
    if enospc:
        if df_size_bytes is not None and int(df_size_bytes) == want:
            return OUTCOME_SIZED, "df shows %d bytes (the sizeLimit %s) and the write failed with ENOSPC" % (int(df_size_bytes), size_limit)
        return OUTCOME_UNEXPECTED, "the write failed with ENOSPC but df shows %s bytes, not the sizeLimit %s (%d bytes)" % (df_size_bytes, size_limit, want)
    if write_rc not in (0, None):
        return OUTCOME_UNEXPECTED, "the write failed with exit code %s: %s" % (write_rc, (write_output or "").strip()[-200:])
    return OUTCOME_NOT_ENFORCED, "the write past the sizeLimit succeeded and the pod was not evicted"


def probe_ok(outcome, expected):
    """A probe passes when it shows enforcement, and the enforcement expected (if any)."""
    if outcome not in (OUTCOME_SIZED, OUTCOME_EVICTED):
        return False
    want = EXPECTED_OUTCOME.get(expected) if expected else None
    return want is None or want == outcome


def waiting_problem(pod):
    """A reason why a pending canary will never start (pure), or None."""
    message = unschedulable(pod)
    if message is not None:
        return "unschedulable: %s" % message
    stuck = stuck_container(pod)
    return "%s: %s" % stuck[1:] if stuck else None


def eviction_from(pod, events):
    """(message, source) of a pod's eviction from its Evicted event or its status (pure); (None, None) if none."""
    for event in events or []:
        if event.get("reason") == "Evicted" and event.get("message"):
            return event["message"], "event"
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted" and status.get("message"):
        return status["message"], "pod_status"
    return None, None
