# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The canary module's run: create the canaries (canary.py says what they are), measure and overfill
their /dev/shm, wait for the kubelet's verdict, delete their namespace.

``CanaryRunner(kube, namespace).run(probes, opts)`` runs every probe concurrently: all pods
first, then each one measured and overfilled (``measure_and_fill``), then the eviction waits
(``wait_for_evictions``). ``opts`` is the validated canary options of ``canary_options``.
``run_canary(kube, params, check_mode)`` is the module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils import canary as c
from ansible_collections.shmfix.k8s.plugins.module_utils import canary_leftovers as leftovers
from ansible_collections.shmfix.k8s.plugins.module_utils import df as df_utils
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.options import at_least_one, volume_name
from ansible_collections.shmfix.k8s.plugins.module_utils.pod_exec import HAS_STREAM, exec_in_pod
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from ansible_collections.shmfix.k8s.plugins.module_utils.units import MI


class CanaryRunner(object):
    """Create canaries, measure and overfill their /dev/shm, wait for the kubelet's verdict."""

    def __init__(self, kube, namespace, poll_interval=2.0, clock=time.time, sleep=time.sleep):
        self.kube = kube
        self.namespace = namespace
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep

    # ---- namespace

    def ensure_namespace(self, labels=None, annotations=None):
        path = "/api/v1/namespaces/%s" % self.namespace
        try:
            existing = self.kube.get(path, verb="get", resource="namespaces", name=self.namespace)
        except ShmfixError as err:
            if err.status != 404:
                raise
            existing = None
        if existing:
            if not c.is_canary_namespace(existing):
                raise ShmfixError(
                    "namespace %s exists and is not a shmfix canary namespace (label shmfix.io/canary=true); choose another namespace" % self.namespace
                )
            return False
        self.kube.request(
            "POST",
            "/api/v1/namespaces",
            body=c.namespace_manifest(self.namespace, labels, annotations),
            verb="create",
            resource="namespaces",
            name=self.namespace,
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
        if not c.is_canary_namespace(existing):
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
                    existing = self.kube.get(path, verb="get", resource="namespaces", name=self.namespace)
                except ShmfixError as err:
                    if err.status == 404:
                        return True
                    raise
                self.sleep(self.poll_interval)
            raise ShmfixError(leftovers.stuck_message(self.namespace, timeout, existing))
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
            result = exec_in_pod(self.kube, self.namespace, name, c.CONTAINER, command, timeout, clock=self.clock)
            rc = result.returncode
        except ShmfixError as exc:  # the exec was refused: the message names the verb and the resource
            raise ShmfixError("exec %s in pod %s/%s failed: %s" % (" ".join(command), self.namespace, name, exc.msg), status=exc.status, reason=exc.reason)
        except Exception as exc:  # noqa: BLE001 - websocket and socket errors while it runs
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
                problem = c.waiting_problem(pod)
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

    # ---- the run

    def _start(self, probe, opts):
        """Create one probe's pod; return its result record (filled as the probe goes)."""
        name = c.pod_name(probe["name"])
        manifest = c.pod_manifest(
            name,
            self.namespace,
            opts["image"],
            opts["size_limit"],
            image_pull_policy=opts["image_pull_policy"],
            node_selector=probe.get("node_selector"),
            node_name=probe.get("node_name"),
            run_as_user=opts["run_as_user"],
            memory_limit=opts["memory_limit"],
            volume_name=opts["volume_name"],
            labels=opts["labels"],
            probe=probe["name"],
            tolerations=opts["tolerations"],
        )
        self.create_pod(manifest)
        result = dict.fromkeys(RESULT_KEYS)
        result.update(
            name=probe["name"],
            pod=name,
            namespace=self.namespace,
            expected=probe.get("expect"),
            assumed=probe.get("assumed"),
            covers=list(probe.get("covers") or []),
            ok=False,
            reason="",
            size_limit=opts["size_limit"],
            size_limit_bytes=opts["size_limit_bytes"],
        )
        return result

    def measure_and_fill(self, result, opts):
        """df the canary's /dev/shm, then write past its sizeLimit; True when the kubelet's eviction is still to come."""
        try:
            df = df_utils.parse_df(self.exec_(result["pod"], ["df", "-Pk", "/dev/shm"])[0])
        except ValueError as exc:
            result.update(outcome=c.OUTCOME_ERROR, reason="df in the canary: %s" % exc)
            return False
        result.update(df_size_bytes=df["size_bytes"], df_used_bytes=df["used_bytes"], df_filesystem=df["filesystem"])
        command, result["write_bytes"] = c.fill_command(opts["size_limit_bytes"], opts["overfill_bytes"])
        try:
            output = self.exec_(result["pod"], command, timeout=120)[0]
        except ShmfixError as exc:
            output = str(exc)  # the kubelet may evict (kill) the pod while dd runs: look at the pod before giving up
        rc, text = c.parse_fill_output(output)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        enospc = [line for line in lines if c.ENOSPC_TEXT in line]
        result.update(write_exit_code=rc, write_message=enospc[0] if enospc else (lines or [""])[-1])
        outcome, reason = c.decide(opts["size_limit_bytes"], result["df_size_bytes"], rc, text, None, opts["volume_name"], opts["size_limit"])
        if outcome == c.OUTCOME_NOT_ENFORCED:
            return True  # the write went through: wait for the eviction manager
        result.update(outcome=outcome, reason=reason, evidence="df_and_write" if outcome == c.OUTCOME_SIZED else None, elapsed_seconds=self._elapsed())
        return False

    def _elapsed(self):
        return int(self.clock() - self.started)

    def _eviction_seen(self, result, opts):
        """True when the canary's fate is known (evicted, or ended without an eviction message after the grace period)."""
        pod = self.get_pod(result["pod"])
        message, source = c.eviction_from(pod, self.pod_events(result["pod"]))
        if message:
            outcome, reason = c.decide(
                opts["size_limit_bytes"], result["df_size_bytes"], result["write_exit_code"], "", message, opts["volume_name"], opts["size_limit"]
            )
            result.update(outcome=outcome, reason=reason, event_message=message.strip(), evidence=source, elapsed_seconds=self._elapsed())
            return True
        if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
            return False
        # The Evicted event may show up a moment after the pod ended: give it a grace period.
        ended = self._ended.setdefault(result["pod"], self.clock())
        if self.clock() - ended < c.EVENT_GRACE:
            return False
        result.update(
            outcome=c.OUTCOME_UNEXPECTED,
            reason="the canary ended (%s, %s) without an eviction message" % (pod["status"].get("phase"), pod["status"].get("reason")),
            elapsed_seconds=self._elapsed(),
        )
        return True

    def wait_for_evictions(self, waiting, opts):
        """Poll the canaries whose write went through until the kubelet evicts them or the timeout passes."""
        deadline = self.clock() + opts["wait_timeout"]
        while waiting:
            waiting = [r for r in waiting if not self._eviction_seen(r, opts)]
            if waiting and self.clock() >= deadline:
                for result in waiting:
                    result.update(
                        outcome=c.OUTCOME_NOT_ENFORCED,
                        reason="wrote %d bytes past a sizeLimit of %s: no ENOSPC and no eviction within %ds"
                        % (result["write_bytes"], opts["size_limit"], opts["wait_timeout"]),
                        elapsed_seconds=self._elapsed(),
                    )
                break
            if waiting:
                self.sleep(self.poll_interval)

    def run(self, probes, opts):
        """Run every probe (concurrently: all pods first, then the waits) and return their results."""
        self.started = self.clock()
        self._ended = {}
        results = [self._start(probe, opts) for probe in probes]
        running = self.wait_running([r["pod"] for r in results], opts["start_timeout"])
        waiting = []
        for result in results:
            pod, problem = running[result["pod"]]
            result["node"] = ((pod or {}).get("spec") or {}).get("nodeName")
            if problem:
                result.update(outcome=c.OUTCOME_ERROR, reason=problem)
            elif self.measure_and_fill(result, opts):
                waiting.append(result)
        self.wait_for_evictions(waiting, opts)
        for result in results:
            result["ok"] = c.probe_ok(result["outcome"], result["expected"])
        return results


RESULT_KEYS = [
    "name",
    "pod",
    "namespace",
    "node",
    "expected",
    "assumed",
    "covers",
    "outcome",
    "ok",
    "reason",
    "size_limit",
    "size_limit_bytes",
    "df_size_bytes",
    "df_used_bytes",
    "df_filesystem",
    "write_bytes",
    "write_exit_code",
    "write_message",
    "event_message",
    "evidence",
    "elapsed_seconds",
]


def canary_options(params):
    """The validated options of the canary module (sizes parsed, probes checked); ShmfixError naming the bad one."""
    opts = dict(params)
    at_least_one(params, "wait_sleep", "wait_timeout", "start_timeout")
    try:
        for key in ("size_limit", "overfill", "memory_limit"):
            opts[key + "_bytes"] = parse_bytes(params[key], key)
    except ValueError as exc:
        raise ShmfixError(str(exc))
    opts["volume_name"] = volume_name(params.get("volume_name") or "dshm")
    opts["labels"] = params.get("namespace_labels") or {}
    if params["state"] != "present":
        return opts
    if not params["probes"]:
        raise ShmfixError("probes: give at least one probe ({name, node_selector, expect})")
    names = [c.pod_name(probe["name"]) for probe in params["probes"]]
    if len(set(names)) != len(names):
        raise ShmfixError("probes: probe names must be distinct (pods %s)" % ", ".join(names))
    if opts["memory_limit_bytes"] < opts["size_limit_bytes"] + opts["overfill_bytes"] + 16 * MI:
        raise ShmfixError("memory_limit %s must exceed size_limit + overfill + 16Mi, or the canary is OOM-killed before the verdict" % params["memory_limit"])
    return opts


def _canary_namespaces(kube):
    data = kube.get("/api/v1/namespaces", query={"labelSelector": c.LABEL + "=true"}, verb="list", resource="namespaces")
    return data.get("items") or []


def _wait_gone(kube, names, timeout, clock, sleep, poll):
    """Wait until none of ``names`` is listed any more; return {name: namespace} of those still there."""
    deadline = clock() + timeout
    while True:
        left = {ns["metadata"]["name"]: ns for ns in _canary_namespaces(kube) if ns["metadata"]["name"] in names}
        if not left or clock() >= deadline:
            return left
        sleep(poll)


def sweep_leftovers(kube, keep, timeout, clock=time.time, sleep=time.sleep, poll=2.0):
    """Delete the canary namespaces earlier runs left behind (but ``keep``); return ({name: outcome}, warnings).

    Outcomes: 'deleted', 'live' (another run's, left alone), 'terminating' (still there after ``timeout``);
    canary_leftovers.verdict decides. Without ``list`` on namespaces nothing is swept and the warning
    says which verb is missing.
    """
    try:
        found = [ns for ns in _canary_namespaces(kube) if ns["metadata"]["name"] != keep]
    except ShmfixError as err:
        if err.status != 403:
            raise
        return {}, ["canary namespaces left by earlier runs were not looked for: %s" % err.msg]
    now = clock()
    outcome = {ns["metadata"]["name"]: leftovers.verdict(ns, now) for ns in found}
    for name in sorted(n for n, v in outcome.items() if v == "delete"):
        CanaryRunner(kube, name).delete_namespace(wait=False)
    going = [n for n, v in outcome.items() if v != "live"]
    left = _wait_gone(kube, going, timeout, clock, sleep, poll) if going else {}
    warnings = []
    for name in going:
        outcome[name] = "terminating" if name in left else "deleted"
        if name in left:
            warnings.append("left behind by an earlier run: " + leftovers.stuck_message(name, timeout, left[name]))
    return outcome, warnings


def _check_mode_result(params):
    probes = [dict(name=pr["name"], outcome=c.OUTCOME_NOT_RUN, ok=False, reason="check mode", expected=pr.get("expect")) for pr in params["probes"]]
    return dict(changed=True, ok=False, probes=probes)


def run_canary(kube, params, check_mode=False):
    """canary: run the probes (state=present) or delete the canary namespace (state=absent)."""
    opts = canary_options(params)
    runner = CanaryRunner(kube, params["namespace"], poll_interval=params["wait_sleep"])
    result = dict(changed=False, namespace=params["namespace"])
    try:
        if params["state"] == "absent":
            result["changed"] = True if check_mode else runner.delete_namespace(wait=params["wait"], timeout=params["wait_timeout"])
            if params.get("leftovers") and not check_mode:
                result["leftovers"], result["warnings"] = sweep_leftovers(kube, params["namespace"], params["wait_timeout"], poll=params["wait_sleep"])
                result["changed"] = result["changed"] or "deleted" in result["leftovers"].values()
        elif check_mode:
            result.update(_check_mode_result(params))
        else:
            runner.ensure_namespace(opts["labels"], leftovers.expiry_annotation(runner.clock(), params["start_timeout"], params["wait_timeout"]))
            result["changed"] = True
            probes = runner.run(params["probes"], opts)
            result.update(probes=probes, ok=all(pr["ok"] for pr in probes))
    except ShmfixError as err:
        raise err.with_result(changed=result["changed"], namespace=params["namespace"], api_calls=kube.calls)
    result["api_calls"] = kube.calls
    return result
