# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wait for workload rollouts the way ``kubectl rollout status`` does, and find the new pods.

Pure parts: ``rollout_state(kind, obj) -> (state, message)`` with state one of
``complete``, ``progressing``, ``failed``, ``manual`` (OnDelete strategy or a paused
Deployment: nothing rolls until someone acts) and ``not_applicable`` (kinds without a rollout:
ReplicaSet, ReplicationController, CronJob, Job, Pod); ``pod_problem(pod)``.
``RolloutWaiter`` polls the API through a ``client.Kube``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils.client import ShmfixError

KINDS = {
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "DaemonSet": ("apps/v1", "daemonsets"),
    "ReplicaSet": ("apps/v1", "replicasets"),
    "ReplicationController": ("v1", "replicationcontrollers"),
    "CronJob": ("batch/v1", "cronjobs"),
    "Job": ("batch/v1", "jobs"),
    "Pod": ("v1", "pods"),
}

COMPLETE = "complete"
PROGRESSING = "progressing"
FAILED = "failed"
MANUAL = "manual"
NOT_APPLICABLE = "not_applicable"
TIMEOUT = "timeout"

NOT_APPLICABLE_NOTES = {
    "ReplicaSet": "a ReplicaSet does not replace running pods when its template changes; new pods get the new /dev/shm",
    "ReplicationController": "a ReplicationController does not replace running pods when its template changes; new pods get the new /dev/shm",
    "CronJob": "the next Job the CronJob starts gets the new /dev/shm",
    "Job": "a Job's pod template is immutable",
    "Pod": "a bare Pod cannot change its volumes",
}

# Container waiting reasons that mean the new pods will not become ready by waiting.
STUCK_REASONS = (
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _deployment_state(obj):
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    if spec.get("paused"):
        return MANUAL, "the Deployment is paused; resume it to roll out the change"
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return PROGRESSING, "waiting for the rollout to be observed"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return FAILED, "progress deadline exceeded: %s" % cond.get("message", "")
    replicas = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    if updated < replicas:
        return PROGRESSING, "%d out of %d new replicas have been updated" % (updated, replicas)
    if _int(status.get("replicas")) > updated:
        return PROGRESSING, "%d old replicas are pending termination" % (_int(status.get("replicas")) - updated)
    available = _int(status.get("availableReplicas"))
    if available < updated:
        return PROGRESSING, "%d of %d updated replicas are available" % (available, updated)
    return COMPLETE, "successfully rolled out (%d replicas)" % updated


def _statefulset_state(obj):
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return MANUAL, "updateStrategy %s: pods get the change only when deleted" % strategy.get("type")
    if not _int(status.get("observedGeneration")) or _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return PROGRESSING, "waiting for the statefulset spec update to be observed"
    replicas = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < replicas:
        return PROGRESSING, "%d of %d pods are ready" % (ready, replicas)
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    if partition:
        updated = _int(status.get("updatedReplicas"))
        if updated < replicas - partition:
            return PROGRESSING, "%d of %d pods above partition %d updated" % (updated, replicas - partition, partition)
        return COMPLETE, "partitioned rollout complete (%d pods updated)" % updated
    if status.get("updateRevision") != status.get("currentRevision"):
        return PROGRESSING, "%d of %d pods updated to revision %s" % (_int(status.get("updatedReplicas")), replicas, status.get("updateRevision"))
    return COMPLETE, "rolled out revision %s (%d pods)" % (status.get("currentRevision"), replicas)


def _daemonset_state(obj):
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return MANUAL, "updateStrategy %s: pods get the change only when deleted" % strategy.get("type")
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return PROGRESSING, "waiting for the daemon set spec update to be observed"
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    if updated < desired:
        return PROGRESSING, "%d out of %d new pods have been updated" % (updated, desired)
    available = _int(status.get("numberAvailable"))
    if available < desired:
        return PROGRESSING, "%d of %d updated pods are available" % (available, desired)
    return COMPLETE, "rolled out to %d nodes" % desired


def rollout_state(kind, obj):
    """(state, message) of a workload's rollout from the object (pure)."""
    if kind == "Deployment":
        return _deployment_state(obj)
    if kind == "StatefulSet":
        return _statefulset_state(obj)
    if kind == "DaemonSet":
        return _daemonset_state(obj)
    return NOT_APPLICABLE, NOT_APPLICABLE_NOTES.get(kind, "%s has no rollout to wait for" % kind)


def pod_problem(pod):
    """Why a pod of the new revision is stuck (pure), or None."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return "pod %s is unschedulable: %s" % ((pod.get("metadata") or {}).get("name"), cond.get("message", ""))
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return "pod %s container %s: %s %s" % ((pod.get("metadata") or {}).get("name"), cs.get("name"), waiting.get("reason"), waiting.get("message", ""))
        terminated = (cs.get("lastState") or {}).get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return "pod %s container %s was OOM-killed (shm pages count against the container's memory limit)" % (
                (pod.get("metadata") or {}).get("name"),
                cs.get("name"),
            )
    if status.get("phase") == "Failed":
        return "pod %s failed: %s %s" % ((pod.get("metadata") or {}).get("name"), status.get("reason", ""), status.get("message", ""))
    return None


def _owned_by(obj, uid):
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _selector(obj):
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels))


def current_pods(kind, obj, pods, replicasets=None, revisions=None):
    """Names of the live pods of the workload's current revision (pure; lists passed in)."""
    uid = (obj.get("metadata") or {}).get("uid")
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if kind == "Deployment":
        revision = ((obj.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision")
        owners = [rs for rs in replicasets or [] if _owned_by(rs, uid)]
        current = [rs for rs in owners if ((rs.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision]
        uids = {(rs.get("metadata") or {}).get("uid") for rs in current}
        return sorted(p["metadata"]["name"] for p in live if any(_owned_by(p, u) for u in uids))
    if kind == "StatefulSet":
        revision = (obj.get("status") or {}).get("updateRevision")
        return sorted(
            p["metadata"]["name"]
            for p in live
            if _owned_by(p, uid) and ((p.get("metadata") or {}).get("labels") or {}).get("controller-revision-hash") == revision
        )
    if kind == "DaemonSet":
        owned = [r for r in revisions or [] if _owned_by(r, uid)]
        if not owned:
            return sorted(p["metadata"]["name"] for p in live if _owned_by(p, uid))
        latest = max(owned, key=lambda r: _int(r.get("revision")))
        name = obj["metadata"]["name"]
        rev_hash = latest["metadata"]["name"][len(name) + 1 :] if latest["metadata"]["name"].startswith(name + "-") else None
        return sorted(
            p["metadata"]["name"]
            for p in live
            if _owned_by(p, uid) and (rev_hash is None or ((p.get("metadata") or {}).get("labels") or {}).get("controller-revision-hash") == rev_hash)
        )
    return sorted(p["metadata"]["name"] for p in live if _owned_by(p, uid))


class RolloutWaiter(object):
    """Poll several workloads until each rollout is complete, failed, or the timeout passes."""

    def __init__(self, kube, poll_interval=2.0, fail_fast=True, fail_fast_after=20, clock=time.time, sleep=time.sleep):
        self.kube = kube
        self.poll_interval = poll_interval
        self.fail_fast = fail_fast
        self.fail_fast_after = fail_fast_after
        self.clock = clock
        self.sleep = sleep

    def _get(self, kind, namespace, name):
        api_version, plural = KINDS[kind]
        prefix = "/api/" + api_version if "/" not in api_version else "/apis/" + api_version
        return self.kube.get(
            "%s/namespaces/%s/%s/%s" % (prefix, namespace, plural, name),
            verb="get",
            resource=plural + ("." + api_version.split("/")[0] if "/" in api_version else ""),
            namespace=namespace,
            name=name,
        )

    def _list(self, api_version, plural, namespace, selector=None):
        prefix = "/api/" + api_version if "/" not in api_version else "/apis/" + api_version
        data = self.kube.get(
            "%s/namespaces/%s/%s" % (prefix, namespace, plural), query={"labelSelector": selector}, verb="list", resource=plural, namespace=namespace
        )
        return data.get("items") or []

    def pods_of(self, kind, obj):
        namespace = obj["metadata"]["namespace"]
        selector = _selector(obj)
        pods = self._list("v1", "pods", namespace, selector)
        replicasets = self._list("apps/v1", "replicasets", namespace, selector) if kind == "Deployment" else None
        revisions = self._list("apps/v1", "controllerrevisions", namespace, selector) if kind == "DaemonSet" else None
        return pods, current_pods(kind, obj, pods, replicasets, revisions)

    def wait(self, workloads, timeout=300, want_pods=True):
        """Wait for every workload; return one result dict per workload, in order."""
        started = self.clock()
        deadline = started + timeout
        results = []
        for w in workloads:
            results.append(
                {
                    "kind": w["kind"],
                    "namespace": w["namespace"],
                    "name": w["name"],
                    "status": None,
                    "message": "",
                    "pods": [],
                    "elapsed_seconds": None,
                }
            )
        pending = list(range(len(results)))
        while pending:
            for index in list(pending):
                result = results[index]
                kind = result["kind"]
                if kind not in KINDS:
                    result.update(status=FAILED, message="unknown kind %s (known: %s)" % (kind, ", ".join(sorted(KINDS))), elapsed_seconds=0)
                    pending.remove(index)
                    continue
                try:
                    obj = self._get(kind, result["namespace"], result["name"])
                except ShmfixError as err:
                    result.update(status=FAILED, message=err.msg, elapsed_seconds=int(self.clock() - started))
                    pending.remove(index)
                    continue
                state, message = rollout_state(kind, obj)
                if state == PROGRESSING:
                    result["message"] = message
                    if self.fail_fast and self.clock() - started >= self.fail_fast_after and kind in ("Deployment", "StatefulSet", "DaemonSet"):
                        pods, names = self.pods_of(kind, obj)
                        problems = [pod_problem(p) for p in pods if p["metadata"]["name"] in names]
                        problems = [p for p in problems if p]
                        if problems:
                            result.update(
                                status=FAILED, message="%s; %s" % (message, "; ".join(problems[:3])), pods=names, elapsed_seconds=int(self.clock() - started)
                            )
                            pending.remove(index)
                    continue
                result.update(status=state, message=message, elapsed_seconds=int(self.clock() - started))
                if want_pods and state in (COMPLETE, FAILED) and kind in ("Deployment", "StatefulSet", "DaemonSet"):
                    pods, names = self.pods_of(kind, obj)
                    result["pods"] = names
                    if state == FAILED:
                        problems = [pod_problem(p) for p in pods if p["metadata"]["name"] in names]
                        problems = [p for p in problems if p]
                        if problems:
                            result["message"] += "; " + "; ".join(problems[:3])
                pending.remove(index)
            if not pending:
                break
            if self.clock() >= deadline:
                for index in pending:
                    result = results[index]
                    why = result["message"]
                    try:
                        obj = self._get(result["kind"], result["namespace"], result["name"])
                        pods, names = self.pods_of(result["kind"], obj)
                        problems = [pod_problem(p) for p in pods if p["metadata"]["name"] in names]
                        problems = [p for p in problems if p]
                        if problems:
                            why += "; " + "; ".join(problems[:3])
                        result["pods"] = names
                    except ShmfixError as err:
                        why += "; " + err.msg
                    result.update(status=TIMEOUT, message="not rolled out within %ds: %s" % (timeout, why), elapsed_seconds=int(self.clock() - started))
                break
            self.sleep(self.poll_interval)
        return results
