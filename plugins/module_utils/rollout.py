# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wait for workload rollouts the way ``kubectl rollout status`` does, and find the new pods.

Pure parts: ``rollout_state(kind, obj) -> (state, message)`` with state one of
``complete``, ``progressing``, ``failed``, ``manual`` (OnDelete strategy or a paused
Deployment: nothing rolls until someone acts) and ``not_applicable`` (kinds without a rollout:
ReplicaSet, ReplicationController, CronJob, Job, Pod); ``current_pods(...)``.
``RolloutWaiter`` polls the API through a ``client.Kube``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils import kinds, outcomes
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kind_path, resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.options import at_least_one
from ansible_collections.shmfix.k8s.plugins.module_utils.pod_status import pod_problem

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


class RolloutWaiter(object):
    """Poll several workloads until each rollout is complete, failed, or the timeout passes."""

    def __init__(self, kube, poll_interval=2.0, fail_fast=True, fail_fast_after=20, clock=time.time, sleep=time.sleep):
        self.kube = kube
        self.poll_interval = poll_interval
        self.fail_fast = fail_fast
        self.fail_fast_after = fail_fast_after
        self.clock = clock
        self.sleep = sleep
        self.started = None

    def _get(self, kind, namespace, name):
        spec = kinds.builtin(kind)
        return self.kube.get(kind_path(spec, namespace, name), verb="get", resource=spec.resource, namespace=namespace, name=name)

    def _list(self, api_version, plural, namespace, selector=None):
        data = self.kube.get(
            resource_path(api_version, plural, namespace), query={"labelSelector": selector}, verb="list", resource=plural, namespace=namespace
        )
        return data.get("items") or []

    def pods_of(self, kind, obj):
        namespace = obj["metadata"]["namespace"]
        selector = _selector(obj)
        pods = self._list("v1", "pods", namespace, selector)
        replicasets = self._list("apps/v1", "replicasets", namespace, selector) if kind == "Deployment" else None
        revisions = self._list("apps/v1", "controllerrevisions", namespace, selector) if kind == "DaemonSet" else None
        return pods, current_pods(kind, obj, pods, replicasets, revisions)

    def _problems(self, kind, obj):
        """(names of the current pods, what is wrong with them: at most 3)."""
        pods, names = self.pods_of(kind, obj)
        problems = [p for p in (pod_problem(pod) for pod in pods if pod["metadata"]["name"] in names) if p]
        return names, problems[:3]

    def _elapsed(self):
        return int(self.clock() - self.started)

    def poll(self, result, want_pods=True):
        """Look at one workload once; True when its rollout has ended (result updated)."""
        kind = result["kind"]
        if kind not in kinds.BUILTIN:
            result.update(status=FAILED, message="unknown kind %s (known: %s)" % (kind, ", ".join(kinds.DEFAULT_KINDS)), elapsed_seconds=0)
            return True
        try:
            obj = self._get(kind, result["namespace"], result["name"])
        except ShmfixError as err:
            result.update(status=FAILED, message=err.msg, elapsed_seconds=self._elapsed())
            return True
        state, message = rollout_state(kind, obj)
        if state == PROGRESSING:
            result["message"] = message
            if self.fail_fast and self.clock() - self.started >= self.fail_fast_after and rolled_out(kind):
                names, problems = self._problems(kind, obj)
                if problems:
                    result.update(status=FAILED, message="%s; %s" % (message, "; ".join(problems)), pods=names, elapsed_seconds=self._elapsed())
                    return True
            return False
        result.update(status=state, message=message, elapsed_seconds=self._elapsed())
        if want_pods and state in (COMPLETE, FAILED) and rolled_out(kind):
            names, problems = self._problems(kind, obj)
            result["pods"] = names
            if state == FAILED and problems:
                result["message"] += "; " + "; ".join(problems)
        return True

    def time_out(self, result, timeout):
        """Mark a workload still rolling out at the deadline, with what its pods show."""
        why = result["message"]
        try:
            names, problems = self._problems(result["kind"], self._get(result["kind"], result["namespace"], result["name"]))
            if problems:
                why += "; " + "; ".join(problems)
            result["pods"] = names
        except ShmfixError as err:
            why += "; " + err.msg
        result.update(status=TIMEOUT, message="not rolled out within %ds: %s" % (timeout, why), elapsed_seconds=self._elapsed())

    def wait(self, workloads, timeout=300, want_pods=True):
        """Wait for every workload; return one result dict per workload, in order."""
        self.started = self.clock()
        deadline = self.started + timeout
        results = [dict(kind=w["kind"], namespace=w["namespace"], name=w["name"], status=None, message="", pods=[], elapsed_seconds=None) for w in workloads]
        pending = list(results)
        while pending:
            pending = [r for r in pending if not self.poll(r, want_pods)]
            if pending and self.clock() >= deadline:
                for result in pending:
                    self.time_out(result, timeout)
                break
            if pending:
                self.sleep(self.poll_interval)
        return results


def run_rollout_status(kube, params):
    """rollout_status: the module result."""
    unknown = sorted({w["kind"] for w in params["workloads"]} - set(kinds.BUILTIN))
    if unknown:
        raise ShmfixError("workloads: unknown kind(s) %s (known: %s)" % (", ".join(unknown), ", ".join(kinds.DEFAULT_KINDS)))
    at_least_one(params, "wait_sleep")
    waiter = RolloutWaiter(kube, poll_interval=params["wait_sleep"], fail_fast=params["fail_fast"], fail_fast_after=params["fail_fast_after"])
    results = waiter.wait(params["workloads"], timeout=params["wait_timeout"] if params["wait"] else 0)
    failed = len([r for r in results if r["status"] in (FAILED, TIMEOUT)])
    return {"changed": False, "results": results, "failures": failed, "api_calls": kube.calls}
