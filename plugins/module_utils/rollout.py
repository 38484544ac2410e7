# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: where a workload's rollout stands, the rules of ``kubectl rollout status``, and whether its pods are healthy.

- ``rollout_state(kind, obj) -> (state, message)`` with state one of ``complete``, ``progressing``,
  ``failed``, ``manual`` (OnDelete strategy or a paused Deployment: nothing rolls until someone acts)
  and ``not_applicable`` (kinds without a rollout: ReplicaSet, ReplicationController, CronJob, Job, Pod);
- ``current_pods(kind, obj, pods, ...)``: the live pods of the current revision;
- ``health_problems(kind, obj, pods)``: why a workload is not healthy now (fewer available replicas than
  desired, a stuck pod), to leave a workload that was broken before the run alone;
- ``restart_counts(pods)`` and ``soak_problem(pods, baseline)``: a rollout is complete only when its new
  pods are Ready and stay Ready, with no restart, for a soak period (a crash-looping container is Ready
  for a moment after each start: long enough for the controller to call the rollout done).

rollout_waiter.py polls the API through a ``client.Kube``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import kinds, outcomes
from ansible_collections.shmfix.k8s.plugins.module_utils.pod_status import pod_problem, recent_crash

COMPLETE = outcomes.ROLLOUT_COMPLETE
PROGRESSING = outcomes.ROLLOUT_PROGRESSING
FAILED = outcomes.ROLLOUT_FAILED
MANUAL = outcomes.ROLLOUT_MANUAL
NOT_APPLICABLE = outcomes.ROLLOUT_NOT_APPLICABLE
TIMEOUT = outcomes.ROLLOUT_TIMEOUT


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _replica_failure(status):
    """'; pods cannot be created: <the server's message>' when the controller could not create pods
    (condition ReplicaFailure: a LimitRange, a quota or an admission policy refused them), else ''."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return "; pods cannot be created (%s): %s" % (cond.get("reason") or "ReplicaFailure", cond.get("message", ""))
    return ""


def _deployment_state(obj):
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    if spec.get("paused"):
        return MANUAL, "the Deployment is paused; resume it to roll out the change"
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return PROGRESSING, "waiting for the rollout to be observed"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return FAILED, "progress deadline exceeded: %s%s" % (cond.get("message", ""), _replica_failure(status))
    replicas = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    if updated < replicas:
        return PROGRESSING, "%d out of %d new replicas have been updated%s" % (updated, replicas, _replica_failure(status))
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


_OBSERVERS = {"deployment": _deployment_state, "statefulset": _statefulset_state, "daemonset": _daemonset_state}


def rolled_out(kind):
    """True when a template change of ``kind`` is rolled out by its controller (kinds.py ``rollout``)."""
    return kind in kinds.BUILTIN and kinds.BUILTIN[kind]["rollout"] is not None


def rollout_state(kind, obj):
    """(state, message) of a workload's rollout from the object (pure)."""
    spec = kinds.BUILTIN.get(kind)
    if spec and spec["rollout"]:
        return _OBSERVERS[spec["rollout"]](obj)
    return NOT_APPLICABLE, spec["rollout_note"] if spec else "%s has no rollout to wait for" % kind


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


def desired_and_available(kind, obj):
    """(desired, available) replicas of a workload with replicas (Deployment, StatefulSet, DaemonSet, ReplicaSet, RC)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        return _int(status.get("desiredNumberScheduled")), _int(status.get("numberAvailable"))
    available = status.get("readyReplicas") if kind == "StatefulSet" else status.get("availableReplicas")
    return _int(spec.get("replicas"), 1), _int(available)


def health_problems(kind, obj, pods, now=None):
    """What is wrong with a workload now (pure): fewer available replicas than desired, stuck pods, and (with
    ``now``, epoch seconds) pods with a container that crashed and restarted recently ([] when healthy)."""
    problems = []
    if rolled_out(kind):
        desired, available = desired_and_available(kind, obj)
        if available < desired:
            problems.append("%d of %d replicas available" % (available, desired))
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    problems.extend(p for p in (pod_health_problem(pod, now) for pod in live) if p)
    return problems


def pod_health_problem(pod, now=None):
    """pod_status.pod_problem, or (with ``now``, epoch seconds) a container that crashed and restarted recently, or None."""
    problem = pod_problem(pod)
    crash = recent_crash(pod, now) if now is not None and problem is None else None
    return problem or (crash and "pod %s container %s restarted %d times, last exit code %d %ds ago" % ((pod["metadata"]["name"],) + crash))


def restart_counts(pods):
    """{pod name: restarts of all its containers} (pure)."""
    out = {}
    for pod in pods:
        statuses = ((pod.get("status") or {}).get("containerStatuses") or []) + ((pod.get("status") or {}).get("initContainerStatuses") or [])
        out[pod["metadata"]["name"]] = sum(_int(s.get("restartCount")) for s in statuses)
    return out


def _ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def soak_problem(pods, baseline):
    """Why the new pods did not stay healthy since ``baseline`` (restart_counts at completion), or None (pure)."""
    for pod in pods:
        name = pod["metadata"]["name"]
        restarts = restart_counts([pod])[name]
        if restarts > baseline.get(name, 0):
            return "pod %s restarted (%d -> %d restarts) after the rollout was complete" % (name, baseline.get(name, 0), restarts)
        if not _ready(pod):
            return pod_problem(pod) or "pod %s is no longer Ready" % name
    return None
