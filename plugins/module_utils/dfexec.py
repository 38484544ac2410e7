# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""shm_df_info: the size of /dev/shm seen from inside running pods.

`df -Pk /dev/shm` is exec'ed in each container (kubernetes.stream, one ApiClient per
exec because stream() swaps the client's transport while it runs) with bounded
parallelism. Where exec is impossible (no df, exec forbidden, container without a
shell) the kubelet's `/stats/summary` (through the API server's node proxy) gives
the size of a memory-backed emptyDir mounted at /dev/shm. Otherwise the method is
`unavailable` and `reason` says why.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.shmfix.k8s.plugins.module_utils import df as dfparse
from ansible_collections.shmfix.k8s.plugins.module_utils import kinds
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kind_path, resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.cluster import node_proxy_path
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.options import at_least_one
from ansible_collections.shmfix.k8s.plugins.module_utils.pod_exec import ExecRefused, exec_in_pod
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import SHM_PATH, shm_mount, volume_index

DF_COMMANDS = (["df", "-Pk", SHM_PATH], ["busybox", "df", "-Pk", SHM_PATH])
NOT_FOUND_MARKERS = ("executable file not found", "no such file or directory", "not found")


def selector_to_string(selector):
    """A LabelSelector ({matchLabels, matchExpressions}) or a plain map as a label selector string."""
    if not selector:
        return None
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return ",".join("%s=%s" % (k, v) for k, v in sorted(selector.items()))
    parts = ["%s=%s" % (k, v) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append("%s in (%s)" % (key, values))
        elif op == "NotIn":
            parts.append("%s notin (%s)" % (key, values))
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append("!" + key)
    return ",".join(parts) or None


def selector_matches(selector, labels):
    """True when ``labels`` match a LabelSelector ({matchLabels, matchExpressions}) or a plain map, as the API server decides."""
    labels = labels or {}
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (
            (op == "In" and not (present and labels[key] in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _owned_by(obj, kind, name):
    return any(r.get("kind") == kind and r.get("name") == name for r in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _owner_kind(owner):
    """The KindSpec of ``owner`` ({kind, name, api_version, plural}): a built-in kind, or a custom one given in full."""
    kind, name = owner.get("kind"), owner.get("name")
    if not kind or not name:
        raise ShmfixError("owner needs kind and name, got %r" % (owner,))
    if owner.get("api_version") and owner.get("plural"):
        return kinds.custom(kind, owner["api_version"], owner["plural"])
    if not kinds.pods_findable(kind):
        raise ShmfixError("owner kind %r is not a built-in workload kind; give owner.api_version and owner.plural" % kind)
    return kinds.builtin(kind)


def _owner_scope(kube, namespace, owner):
    """(label selector, pod filter or None, pod names) that find the pods of ``owner``."""
    spec = _owner_kind(owner)
    name = owner["name"]
    if spec["pods"] == "self":
        return None, None, [name]
    if spec["pods"] == "jobs":
        jobs = kube.get(resource_path("batch/v1", "jobs", namespace), verb="list", resource="jobs.batch", namespace=namespace)
        job_names = {j["metadata"]["name"] for j in jobs.get("items") or [] if _owned_by(j, spec["kind"], name)}
        return None, (lambda pod: any(_owned_by(pod, "Job", j) for j in job_names)), []
    obj = kube.get(kind_path(spec, namespace, name), verb="get", resource=spec.resource, namespace=namespace, name=name)
    selector = selector_to_string((obj.get("spec") or {}).get("selector"))
    if not selector:
        raise ShmfixError("%s %s/%s has no spec.selector to find its pods" % (spec["kind"], namespace, name))
    return selector, None, []


def _list_pods(kube, namespace, selector):
    query = {"labelSelector": selector} if selector else None
    try:
        items = kube.get(resource_path("v1", "pods", namespace), query=query, verb="list", resource="pods", namespace=namespace).get("items") or []
    except ShmfixError as err:
        if err.status == 400 and selector:
            raise ShmfixError("label selector %r is malformed: %s" % (selector, err.msg), status=err.status, reason=err.reason)
        raise
    if namespace and not items:
        try:
            kube.get(resource_path("v1", "namespaces", name=namespace), verb="get", resource="namespaces", name=namespace)
        except ShmfixError as err:
            if err.status == 404:
                raise ShmfixError("namespace %r does not exist" % namespace, status=404, reason=err.reason)
            if err.status != 403:  # 403: the credentials may not tell; no pod is no pod
                raise
    return items


def select_pods(kube, namespace, label_selector=None, owner=None, pods=None):
    """Running, not terminating pods of the selection."""
    if (owner or pods) and not namespace:
        raise ShmfixError("namespace is required with owner or pods")
    selector, owner_filter, names = label_selector, None, list(pods or [])
    if owner:
        owner_selector, owner_filter, owner_names = _owner_scope(kube, namespace, owner)
        selector = ",".join(s for s in (selector, owner_selector) if s) or None
        names += owner_names
    wanted = set(names)
    out = []
    for pod in _list_pods(kube, namespace, selector):
        if (wanted and (pod.get("metadata") or {}).get("name") not in wanted) or (owner_filter and not owner_filter(pod)):
            continue
        if is_running(pod):
            out.append(pod)
    return out


class _NamespaceView:
    """The running pods of one namespace and its workloads of each kind, each listed once (for ``workloads``)."""

    def __init__(self, kube, namespace):
        self.kube, self.namespace = kube, namespace
        self.pods = [p for p in _list_pods(kube, namespace, None) if is_running(p)]
        self.objects = {}
        self.by_name = {p["metadata"]["name"]: p for p in self.pods}
        self.by_label = {}
        for pod in self.pods:
            for label in ((pod.get("metadata") or {}).get("labels") or {}).items():
                self.by_label.setdefault(label, []).append(pod)

    def _listed(self, spec):
        """{name: object} of the workloads of kind ``spec`` in this namespace, listed on first use."""
        if spec["kind"] not in self.objects:
            listed = self.kube.get(kind_path(spec, self.namespace), verb="list", resource=spec.resource, namespace=self.namespace)
            self.objects[spec["kind"]] = {o["metadata"]["name"]: o for o in listed.get("items") or []}
        return self.objects[spec["kind"]]

    def _selector(self, spec, name):
        found = self._listed(spec).get(name)
        if found is None:
            raise ShmfixError("%s %s/%s not found" % (spec["kind"], self.namespace, name), status=404)
        selector = (found.get("spec") or {}).get("selector")
        if not selector:
            raise ShmfixError("%s %s/%s has no spec.selector to find its pods" % (spec["kind"], self.namespace, name))
        return selector

    def pods_of(self, workload):
        """The running pods of one entry of ``workloads``: its ``pods`` by name, or those its kind finds."""
        if workload.get("pods") or _owner_kind(workload)["pods"] == "self":
            return [self.by_name[n] for n in dict.fromkeys(workload.get("pods") or [workload["name"]]) if n in self.by_name]
        spec, name = _owner_kind(workload), workload["name"]
        if spec["pods"] == "jobs":
            jobs = {n for n, job in self._listed(kinds.builtin("Job")).items() if _owned_by(job, spec["kind"], name)}
            return [p for p in self.pods if any(_owned_by(p, "Job", j) for j in jobs)]
        selector = self._selector(spec, name)
        return [p for p in self._candidates(selector) if selector_matches(selector, (p.get("metadata") or {}).get("labels"))]

    def _candidates(self, selector):
        """The pods that carry the selector's first matchLabels pair (all pods when it has none)."""
        match = selector.get("matchLabels") if "matchLabels" in selector or "matchExpressions" in selector else selector
        first = next(iter(sorted((match or {}).items())), None)
        return self.by_label.get(first, []) if first else self.pods


def is_running(pod):
    """Running and not terminating: a pod whose /dev/shm can be measured."""
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and (pod.get("status") or {}).get("phase") == "Running"


def select_workload_pods(kube, workloads):
    """([(workload ref, pod)], [entry for each workload whose pods could not be found, with why]).

    One list of pods per namespace and one list per kind and namespace, however many workloads: a
    wave of 50 Deployments costs 2 requests, not 50 module runs. An error (missing namespace or
    workload, a list forbidden) is that workload's entry; the others are measured.
    """
    views, found, failed = {}, [], []
    for workload in workloads:
        ref = kinds.workload_ref(workload)
        try:
            found.extend((ref, pod) for pod in _view(views, kube, ref["namespace"]).pods_of(workload))
        except ShmfixError as err:
            failed.append(dict(_entry(ref["namespace"], None, None, None), workload=ref, reason=err.msg))
    return found, failed


def _view(views, kube, namespace):
    """The _NamespaceView of ``namespace``, made once; a namespace that could not be listed raises its error each time."""
    if namespace not in views:
        try:
            views[namespace] = _NamespaceView(kube, namespace)
        except ShmfixError as err:
            views[namespace] = err
    if isinstance(views[namespace], ShmfixError):
        raise views[namespace]
    return views[namespace]


def shm_volume_of(pod, container):
    """Name of the volume mounted at /dev/shm in `container` of `pod`, if any."""
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            return (shm_mount(c)[1] or {}).get("name")
    return None


def _volume_is_memory(pod, volume):
    found = volume_index(pod.get("spec") or {}, volume)[1] or {}
    return (found.get("emptyDir") or {}).get("medium") == "Memory"


def _running_containers(pod, wanted=None):
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    names = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        name = c.get("name")
        if wanted and name != wanted:
            continue
        if "running" in ((statuses.get(name) or {}).get("state") or {}):
            names.append(name)
    return names


def exec_df(kube, namespace, pod, container, timeout):
    """(stdout, error) of df in a container. error is None on success."""
    last_error = None
    for command in DF_COMMANDS:
        try:
            result = exec_in_pod(kube, namespace, pod, container, command, timeout)
        except ExecRefused as err:
            return None, "exec refused: %s" % err.msg
        if result.timed_out:
            return None, "exec of %s timed out after %ss" % (" ".join(command), timeout)
        stdout, stderr = result.stdout, result.stderr
        status = _status(result.status)
        if status is None or status.get("status") == "Success":
            if stdout.strip():
                return stdout, None
            last_error = "df printed nothing (stderr: %s)" % stderr.strip()
            continue
        message = status.get("message") or result.status
        last_error = "exec of %r failed: %s %s" % (" ".join(command), message, stderr.strip())
        if not any(m in message.lower() or m in stderr.lower() for m in NOT_FOUND_MARKERS):
            break
    return None, last_error


def _status(text):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"status": "Failure", "message": text}


class _SummaryCache:
    def __init__(self, kube):
        self.kube = kube
        self.lock = threading.Lock()
        self.cache = {}

    def get(self, node):
        with self.lock:
            if node not in self.cache:
                try:
                    self.cache[node] = (self.kube.get(node_proxy_path(node, "stats/summary"), verb="get", resource="nodes/proxy", name=node), None)
                except ShmfixError as err:
                    self.cache[node] = (None, err.msg)
            return self.cache[node]


def _from_kubelet_stats(entry, pod, error, summaries):
    """Fill ``entry`` from the kubelet's volume stats when exec failed with ``error``; the entry says why not otherwise."""
    volume = shm_volume_of(pod, entry["container"])
    node = entry["node"]
    if not volume or not _volume_is_memory(pod, volume):
        entry["reason"] = "%s; the kubelet reports only memory-backed emptyDir volumes and /dev/shm here is %s" % (
            error,
            "the runtime's default tmpfs" if not volume else "volume %s (not a memory emptyDir)" % volume,
        )
        return entry
    if not node:
        entry["reason"] = "%s; pod has no node" % error
        return entry
    summary, err = summaries.get(node)
    if summary is None:
        entry["reason"] = "%s; kubelet stats of node %s not readable: %s" % (error, node, err)
        return entry
    try:
        stats = dfparse.volume_stats_from_summary(summary, entry["namespace"], entry["pod"], volume)
    except ValueError as exc:
        stats, err = None, str(exc)
    if not stats or stats.get("size_bytes") is None:
        entry["reason"] = "%s; kubelet stats of node %s have no figures for volume %s yet%s" % (error, node, volume, (": " + err) if err else "")
        return entry
    entry.update(
        size_bytes=stats["size_bytes"],
        used_bytes=stats["used_bytes"],
        available_bytes=stats["available_bytes"],
        filesystem="tmpfs (volume %s)" % volume,
        method="kubelet_stats",
        reason="exec impossible: %s" % error,
    )
    return entry


def _entry(namespace, pod, container, node):
    """A df entry before any measurement: method unavailable, no figures."""
    return {
        "namespace": namespace,
        "pod": pod,
        "container": container,
        "node": node,
        "size_bytes": None,
        "used_bytes": None,
        "available_bytes": None,
        "filesystem": None,
        "method": "unavailable",
        "reason": "",
    }


def measure(kube, pod, container, timeout, summaries):
    """One df entry: {namespace, pod, container, node, size/used/available bytes, filesystem, method, reason}."""
    meta = pod["metadata"]
    entry = _entry(meta.get("namespace"), meta.get("name"), container, (pod.get("spec") or {}).get("nodeName"))
    output, error = exec_df(kube, entry["namespace"], entry["pod"], container, timeout)
    if output is not None:
        try:
            row = dfparse.parse_df(output, SHM_PATH)
        except ValueError as exc:
            error = "df output unreadable: %s" % exc
        else:
            entry.update(size_bytes=row["size_bytes"], used_bytes=row["used_bytes"], available_bytes=row["available_bytes"], filesystem=row.get("filesystem"))
            entry["method"] = "exec"
            return entry
    return _from_kubelet_stats(entry, pod, error, summaries)


def _with_namespaces(workloads, namespace):
    """The entries of ``workloads`` each with its namespace (its own, else the module's); ShmfixError naming one without."""
    out = []
    for index, workload in enumerate(workloads):
        if not workload.get("namespace") and not namespace:
            raise ShmfixError(
                "workloads[%d] (%s %s) has no namespace: give it one, or set the module's namespace" % (index, workload.get("kind"), workload.get("name"))
            )
        out.append(dict(workload, namespace=workload.get("namespace") or namespace))
    return out


def run_df(kube, namespace=None, label_selector=None, owner=None, pods=None, container=None, parallelism=8, timeout=30, workloads=None):
    """df of /dev/shm in every running container of the selected pods, ``parallelism`` execs at a time.

    With ``workloads`` ([{kind, name, namespace, pods}]) the pods are those of each workload and
    every entry names its ``workload``; a workload whose pods cannot be found has one entry saying why.
    """
    if workloads is not None:
        found, failed = select_workload_pods(kube, _with_namespaces(workloads, namespace))
    else:
        found, failed = [(None, pod) for pod in select_pods(kube, namespace, label_selector=label_selector, owner=owner, pods=pods)], []
    jobs = [(ref, pod, name) for ref, pod in found for name in _running_containers(pod, container)]
    if not jobs:
        return failed
    summaries = _SummaryCache(kube)

    def one(job):
        entry = measure(kube, job[1], job[2], timeout, summaries)
        return dict(entry, workload=job[0]) if job[0] else entry

    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs)))) as pool:
        return list(pool.map(one, jobs)) + failed


def run_df_info(kube, params):
    """shm_df_info: the module result."""
    at_least_one(params, "parallelism", "timeout")
    start = kube.calls
    try:
        entries = run_df(
            kube,
            namespace=params.get("namespace"),
            label_selector=params.get("label_selector"),
            owner=params.get("owner"),
            pods=params.get("pods"),
            workloads=params.get("workloads"),
            container=params.get("container"),
            parallelism=params.get("parallelism") or 8,
            timeout=params.get("timeout") or 30,
        )
    except ShmfixError as err:
        raise err.with_result(api_calls=kube.calls - start)
    return {"changed": False, "shm_df": entries, "api_calls": kube.calls - start}
