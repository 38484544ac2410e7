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

Pure parts (manifests, decisions) take and return plain dicts; ``CanaryRunner`` drives them with
a ``client.Kube``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.shmfix.k8s.plugins.module_utils import df as df_utils
from ansible_collections.shmfix.k8s.plugins.module_utils.client import HAS_STREAM, ShmfixError, exec_in_pod

PAGE_SIZE = 4096
MIB = 1024 * 1024
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

# Container waiting reasons that will not resolve by waiting.
FATAL_WAITING = (
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
)


def page_round(value):
    return -(-int(value) // PAGE_SIZE) * PAGE_SIZE


def pod_name(probe_name):
    """A DNS-1123 pod name for a probe: 'shm-canary-<probe>'."""
    base = re.sub(r"[^a-z0-9-]+", "-", str(probe_name).lower()).strip("-") or "probe"
    return ("shm-canary-" + base)[:63].rstrip("-")


def namespace_manifest(namespace, labels=None):
    """The canary namespace: labelled, and enforcing the `restricted` Pod Security level."""
    all_labels = {
        "app.kubernetes.io/managed-by": "shmfix",
        "shmfix.io/canary": "true",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    all_labels.update(labels or {})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": all_labels}}


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
    all_labels = {"app.kubernetes.io/managed-by": "shmfix", "app.kubernetes.io/name": "shm-canary", "shmfix.io/canary": "true"}
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
    count = -(-(int(size_limit_bytes) + int(overfill_bytes)) // MIB)
    return ["sh", "-c", "dd if=/dev/zero of=%s bs=1048576 count=%d 2>&1; echo %s$?" % (FILL_FILE, count, RC_MARKER)], count * MIB


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
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return "unschedulable: %s" % cond.get("message", "")
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return "%s: %s" % (waiting.get("reason"), waiting.get("message", ""))
    return None


def eviction_from(pod, events):
    """(message, source) of a pod's eviction from its Evicted event or its status (pure); (None, None) if none."""
    for event in events or []:
        if event.get("reason") == "Evicted" and event.get("message"):
            return event["message"], "event"
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted" and status.get("message"):
        return status["message"], "pod_status"
    return None, None


class CanaryRunner(object):
    """Create canaries, measure and overfill their /dev/shm, wait for the kubelet's verdict."""

    def __init__(self, kube, namespace, poll_interval=2.0, clock=time.time, sleep=time.sleep):
        self.kube = kube
        self.namespace = namespace
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep

    # ---- namespace

    def ensure_namespace(self, labels=None):
        path = "/api/v1/namespaces/%s" % self.namespace
        try:
            existing = self.kube.get(path, verb="get", resource="namespaces", name=self.namespace)
        except ShmfixError as err:
            if err.status != 404:
                raise
            existing = None
        if existing:
            if (existing.get("metadata") or {}).get("labels", {}).get("shmfix.io/canary") != "true":
                raise ShmfixError(
                    "namespace %s exists and is not a shmfix canary namespace (label shmfix.io/canary=true); choose another namespace" % self.namespace
                )
            return False
        self.kube.request(
            "POST", "/api/v1/namespaces", body=namespace_manifest(self.namespace, labels), verb="create", resource="namespaces", name=self.namespace
        )
        return True

    def delete_namespace(self, wait=True, timeout=120):
        path = "/api/v1/namespaces/%s" % self.namespace
        try:
            existing = self.kube.get(path, verb="get", resource="namespaces", name=self.namespace)
        except ShmfixError as err:
            if err.status == 404:
                return False
            raise
        if (existing.get("metadata") or {}).get("labels", {}).get("shmfix.io/canary") != "true":
            raise ShmfixError("namespace %s is not a shmfix canary namespace (label shmfix.io/canary=true); refusing to delete it" % self.namespace)
        if not (existing.get("metadata") or {}).get("deletionTimestamp"):
            try:
                self.kube.request(
                    "DELETE",
                    path,
                    body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background", "gracePeriodSeconds": 0},
                    verb="delete",
                    resource="namespaces",
                    name=self.namespace,
                )
            except ShmfixError as err:
                if err.status != 404:
                    raise
        if wait:
            deadline = self.clock() + timeout
            while self.clock() < deadline:
                try:
                    self.kube.get(path, verb="get", resource="namespaces", name=self.namespace)
                except ShmfixError as err:
                    if err.status == 404:
                        return True
                    raise
                self.sleep(self.poll_interval)
            raise ShmfixError("namespace %s still exists %ds after its deletion was requested" % (self.namespace, timeout))
        return True

    # ---- pods

    def create_pod(self, manifest):
        return self.kube.request(
            "POST",
            "/api/v1/namespaces/%s/pods" % self.namespace,
            body=manifest,
            verb="create",
            resource="pods",
            namespace=self.namespace,
            name=manifest["metadata"]["name"],
        )

    def get_pod(self, name):
        return self.kube.get("/api/v1/namespaces/%s/pods/%s" % (self.namespace, name), verb="get", resource="pods", namespace=self.namespace, name=name)

    def pod_events(self, name):
        data = self.kube.get(
            "/api/v1/namespaces/%s/events" % self.namespace,
            query={"fieldSelector": "involvedObject.kind=Pod,involvedObject.name=%s" % name},
            verb="list",
            resource="events",
            namespace=self.namespace,
        )
        return data.get("items") or []

    def exec_(self, name, command, timeout=60):
        """Run command in the canary container; return (stdout+stderr text, exit code or None)."""
        if not HAS_STREAM:  # pragma: no cover
            raise ShmfixError("kubernetes.stream is not available; install the kubernetes Python client")
        try:
            result = exec_in_pod(self.kube, self.namespace, name, CONTAINER, command, timeout, clock=self.clock)
            rc = result.returncode
        except Exception as exc:  # noqa: BLE001 - websocket, socket and API errors all mean the exec failed
            raise ShmfixError("exec %s in pod %s/%s failed: %s" % (" ".join(command), self.namespace, name, exc))
        return result.output, rc

    def wait_running(self, names, timeout):
        """Wait until every pod runs; return {name: (pod or None, problem or None)}."""
        deadline = self.clock() + timeout
        state = {n: (None, "not started") for n in names}
        pending = set(names)
        while pending:
            for name in sorted(pending):
                pod = self.get_pod(name)
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Running" and all((cs.get("state") or {}).get("running") for cs in (pod.get("status") or {}).get("containerStatuses") or [{}]):
                    state[name] = (pod, None)
                    pending.discard(name)
                    continue
                if phase in ("Failed", "Succeeded"):
                    state[name] = (pod, "the canary pod ended (%s) before it could be measured: %s" % (phase, (pod.get("status") or {}).get("message", "")))
                    pending.discard(name)
                    continue
                problem = waiting_problem(pod)
                if problem:
                    state[name] = (pod, problem)
                    pending.discard(name)
                    continue
                state[name] = (pod, "not running after %ds (phase %s)" % (timeout, phase))
            if pending and self.clock() >= deadline:
                break
            if pending:
                self.sleep(self.poll_interval)
        return state

    def run(
        self,
        probes,
        image,
        size_limit,
        size_limit_bytes,
        overfill_bytes,
        image_pull_policy="IfNotPresent",
        run_as_user=65534,
        memory_limit="256Mi",
        volume_name="dshm",
        labels=None,
        tolerations=None,
        start_timeout=120,
        timeout=180,
    ):
        """Run every probe (concurrently: all pods first, then the waits) and return their results."""
        started = self.clock()
        results = []
        for probe in probes:
            name = pod_name(probe["name"])
            manifest = pod_manifest(
                name,
                self.namespace,
                image,
                size_limit,
                image_pull_policy=image_pull_policy,
                node_selector=probe.get("node_selector"),
                node_name=probe.get("node_name"),
                run_as_user=run_as_user,
                memory_limit=memory_limit,
                volume_name=volume_name,
                labels=labels,
                probe=probe["name"],
                tolerations=tolerations,
            )
            self.create_pod(manifest)
            results.append(
                {
                    "name": probe["name"],
                    "pod": name,
                    "namespace": self.namespace,
                    "node": None,
                    "expected": probe.get("expect"),
                    "assumed": probe.get("assumed"),
                    "covers": list(probe.get("covers") or []),
                    "outcome": None,
                    "ok": False,
                    "reason": "",
                    "size_limit": size_limit,
                    "size_limit_bytes": size_limit_bytes,
                    "df_size_bytes": None,
                    "df_used_bytes": None,
                    "df_filesystem": None,
                    "write_bytes": None,
                    "write_exit_code": None,
                    "write_message": None,
                    "event_message": None,
                    "evidence": None,
                    "elapsed_seconds": None,
                }
            )
        running = self.wait_running([r["pod"] for r in results], start_timeout)
        waiting = []
        for result in results:
            pod, problem = running[result["pod"]]
            result["node"] = ((pod or {}).get("spec") or {}).get("nodeName")
            if problem:
                result.update(outcome=OUTCOME_ERROR, reason=problem)
                continue
            output, _rc = self.exec_(result["pod"], ["df", "-Pk", "/dev/shm"])
            try:
                df = df_utils.parse_df(output)
                result.update(df_size_bytes=df["size_bytes"], df_used_bytes=df["used_bytes"], df_filesystem=df["filesystem"])
            except ValueError as exc:
                result.update(outcome=OUTCOME_ERROR, reason="df in the canary: %s" % exc)
                continue
            command, write_bytes = fill_command(size_limit_bytes, overfill_bytes)
            result["write_bytes"] = write_bytes
            try:
                output, _rc = self.exec_(result["pod"], command, timeout=120)
            except ShmfixError as exc:
                # The kubelet may evict (kill) the pod while dd runs: look at the pod before giving up.
                output = str(exc)
            rc, text = parse_fill_output(output)
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            enospc_lines = [line for line in lines if ENOSPC_TEXT in line]
            result.update(write_exit_code=rc, write_message=(enospc_lines or lines or [""])[-1 if not enospc_lines else 0])
            outcome, reason = decide(size_limit_bytes, result["df_size_bytes"], rc, text, None, volume_name, size_limit)
            if outcome == OUTCOME_NOT_ENFORCED:
                waiting.append(result)  # the write went through: wait for the eviction manager
            else:
                result.update(
                    outcome=outcome, reason=reason, evidence="df_and_write" if outcome == OUTCOME_SIZED else None, elapsed_seconds=int(self.clock() - started)
                )
        deadline = self.clock() + timeout
        while waiting:
            for result in list(waiting):
                pod = self.get_pod(result["pod"])
                events = self.pod_events(result["pod"])
                message, source = eviction_from(pod, events)
                if message:
                    outcome, reason = decide(size_limit_bytes, result["df_size_bytes"], result["write_exit_code"], "", message, volume_name, size_limit)
                    result.update(outcome=outcome, reason=reason, event_message=message.strip(), evidence=source, elapsed_seconds=int(self.clock() - started))
                    waiting.remove(result)
                elif (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                    # The Evicted event may show up a moment after the pod ended: give it a grace period.
                    ended = result.setdefault("_ended_at", self.clock())
                    if self.clock() - ended < EVENT_GRACE:
                        continue
                    result.pop("_ended_at", None)
                    result.update(
                        outcome=OUTCOME_UNEXPECTED,
                        reason="the canary ended (%s, %s) without an eviction message" % (pod["status"].get("phase"), pod["status"].get("reason")),
                        elapsed_seconds=int(self.clock() - started),
                    )
                    waiting.remove(result)
            if not waiting:
                break
            if self.clock() >= deadline:
                for result in waiting:
                    result.pop("_ended_at", None)
                    result.update(
                        outcome=OUTCOME_NOT_ENFORCED,
                        reason="wrote %d bytes past a sizeLimit of %s: no ENOSPC and no eviction within %ds" % (result["write_bytes"], size_limit, timeout),
                        elapsed_seconds=int(self.clock() - started),
                    )
                break
            self.sleep(self.poll_interval)
        for result in results:
            result["ok"] = probe_ok(result["outcome"], result["expected"])
        return results
