# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rollout_status: wait for rollouts (rollout.py says where each stands), soak the new pods, or just look.

A rollout ends ``complete`` only after its new pods stayed Ready, without a restart, for ``soak``
seconds; ``failed`` when the controller says so, a new pod is stuck (fail_fast) or does not survive
the soak; ``timeout`` at the deadline. With ``wait=false`` every workload is looked at once and
reported with ``healthy`` and ``problems`` (what the remediate role checks before it touches a wave).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils import kinds
from ansible_collections.shmfix.k8s.plugins.module_utils import rollout as r
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kind_path, resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.options import at_least_one


class RolloutWaiter(object):
    """Poll several workloads until each rollout is complete (and soaked), failed, or the timeout passes."""

    def __init__(self, kube, poll_interval=2.0, fail_fast=True, fail_fast_after=20, soak=0, clock=time.time, sleep=time.sleep):
        self.kube = kube
        self.poll_interval = poll_interval
        self.fail_fast = fail_fast
        self.fail_fast_after = fail_fast_after
        self.soak = soak
        self.clock = clock
        self.sleep = sleep
        self.started = None
        self._soaking = {}

    def _get(self, kind, namespace, name):
        spec = kinds.builtin(kind)
        return self.kube.get(kind_path(spec, namespace, name), verb="get", resource=spec.resource, namespace=namespace, name=name)

    def _list(self, api_version, plural, namespace, selector=None):
        data = self.kube.get(
            resource_path(api_version, plural, namespace), query={"labelSelector": selector}, verb="list", resource=plural, namespace=namespace
        )
        return data.get("items") or []

    def pods_of(self, kind, obj):
        """(every pod the workload's selector matches, names of the current revision's)."""
        namespace = obj["metadata"]["namespace"]
        selector = r._selector(obj)
        pods = self._list("v1", "pods", namespace, selector)
        replicasets = self._list("apps/v1", "replicasets", namespace, selector) if kind == "Deployment" else None
        revisions = self._list("apps/v1", "controllerrevisions", namespace, selector) if kind == "DaemonSet" else None
        return pods, r.current_pods(kind, obj, pods, replicasets, revisions)

    def _problems(self, kind, obj):
        """(names of the current pods, what is wrong with them: at most 3)."""
        pods, names = self.pods_of(kind, obj)
        now = self.clock()
        problems = [p for p in (r.pod_health_problem(pod, now) for pod in pods if pod["metadata"]["name"] in names) if p]
        return names, problems[:3]

    def _elapsed(self):
        return int(self.clock() - self.started)

    def _soaked(self, result, kind, obj, message):
        """After the controller's 'complete': True when the new pods stayed healthy for the soak (result updated)."""
        pods, names = self.pods_of(kind, obj)
        current = [p for p in pods if p["metadata"]["name"] in names]
        key = (result["kind"], result["namespace"], result["name"])
        since, baseline = self._soaking.setdefault(key, (self.clock(), r.restart_counts(current)))
        problem = r.soak_problem(current, baseline)
        if problem:
            result.update(status=r.FAILED, message="%s, then %s" % (message, problem), pods=names, elapsed_seconds=self._elapsed())
            return True
        if current and self.clock() - since < self.soak:
            result["message"] = "%s; soaking: the new pods must stay Ready for %ds" % (message, self.soak)
            return False
        soaked = "; the new pods stayed Ready with no restart for %ds" % self.soak if current and self.soak else ""
        result.update(status=r.COMPLETE, message=message + soaked, pods=names, elapsed_seconds=self._elapsed())
        return True

    def _progressing(self, result, kind, obj, message):
        result["message"] = message
        if (result["kind"], result["namespace"], result["name"]) in self._soaking:
            names, problems = self._problems(kind, obj)
            why = "; ".join([message] + problems)
            result.update(status=r.FAILED, message="the rollout was complete, then %s" % why, pods=names, elapsed_seconds=self._elapsed())
            return True
        if self.fail_fast and self.clock() - self.started >= self.fail_fast_after and r.rolled_out(kind):
            names, problems = self._problems(kind, obj)
            if problems:
                result.update(status=r.FAILED, message="%s; %s" % (message, "; ".join(problems)), pods=names, elapsed_seconds=self._elapsed())
                return True
        return False

    def poll(self, result, want_pods=True):
        """Look at one workload once; True when its rollout has ended (result updated)."""
        kind = result["kind"]
        try:
            obj = self._get(kind, result["namespace"], result["name"])
        except ShmfixError as err:
            result.update(status=r.FAILED, message=err.msg, elapsed_seconds=self._elapsed())
            return True
        state, message = r.rollout_state(kind, obj)
        if state == r.PROGRESSING:
            return self._progressing(result, kind, obj, message)
        if state == r.COMPLETE and r.rolled_out(kind):
            return self._soaked(result, kind, obj, message)
        result.update(status=state, message=message, elapsed_seconds=self._elapsed())
        if want_pods and state == r.FAILED and r.rolled_out(kind):
            result["pods"], problems = self._problems(kind, obj)
            if problems:
                result["message"] += "; " + "; ".join(problems)
        return True

    def time_out(self, result, timeout):
        """Mark a workload still rolling out (or soaking) at the deadline, with what its pods show."""
        why = result["message"]
        try:
            names, problems = self._problems(result["kind"], self._get(result["kind"], result["namespace"], result["name"]))
            if problems:
                why += "; " + "; ".join(problems)
            result["pods"] = names
        except ShmfixError as err:
            why += "; " + err.msg
        result.update(status=r.TIMEOUT, message="not rolled out within %ds: %s" % (timeout, why), elapsed_seconds=self._elapsed())

    def wait(self, workloads, timeout=300, want_pods=True):
        """Wait for every workload; return one result dict per workload, in order."""
        self.started = self.clock()
        deadline = self.started + timeout
        results = [dict(kind=w["kind"], namespace=w["namespace"], name=w["name"], status=None, message="", pods=[], elapsed_seconds=None) for w in workloads]
        pending = list(results)
        while pending:
            pending = [res for res in pending if not self.poll(res, want_pods)]
            if pending and self.clock() >= deadline:
                for res in pending:
                    self.time_out(res, timeout)
                break
            if pending:
                self.sleep(self.poll_interval)
        return results

    def look(self, workloads):
        """Each workload looked at once: its rollout state, and whether it is healthy now (healthy, problems)."""
        results = []
        for w in workloads:
            res = dict(kind=w["kind"], namespace=w["namespace"], name=w["name"], pods=[], elapsed_seconds=0)
            try:
                obj = self._get(w["kind"], w["namespace"], w["name"])
            except ShmfixError as err:
                res.update(status=r.FAILED, message=err.msg, healthy=False, problems=[err.msg])
                results.append(res)
                continue
            res["status"], res["message"] = r.rollout_state(w["kind"], obj)
            pods, res["pods"] = self.pods_of(w["kind"], obj) if r.rolled_out(w["kind"]) else ([], [])
            res["problems"] = r.health_problems(w["kind"], obj, pods, now=self.clock())
            res["healthy"] = not res["problems"]
            results.append(res)
        return results


def run_rollout_status(kube, params):
    """rollout_status: the module result."""
    unknown = sorted({w["kind"] for w in params["workloads"]} - set(kinds.BUILTIN))
    if unknown:
        raise ShmfixError("workloads: unknown kind(s) %s (known: %s)" % (", ".join(unknown), ", ".join(kinds.DEFAULT_KINDS)))
    at_least_one(params, "wait_sleep")
    waiter = RolloutWaiter(
        kube, poll_interval=params["wait_sleep"], fail_fast=params["fail_fast"], fail_fast_after=params["fail_fast_after"], soak=params.get("soak") or 0
    )
    results = waiter.wait(params["workloads"], timeout=params["wait_timeout"]) if params["wait"] else waiter.look(params["workloads"])
    failed = len([res for res in results if res["status"] in (r.FAILED, r.TIMEOUT)])
    return {"changed": False, "results": results, "failures": failed, "api_calls": kube.calls}
