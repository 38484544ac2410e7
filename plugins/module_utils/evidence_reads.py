# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""shm_info's evidence: read what the cluster already knows about the selected workloads' pods.

- the pods (one list per namespace of the selection, or none at all when shm_info listed the Pod kind
  without a label selector: that list is reused) and their container statuses;
- with ``evidence_df``: ``df -Pk /dev/shm`` in one container per distinct /dev/shm of each running
  pod (dfexec.measure: exec, else the kubelet's volume stats), ``evidence_parallelism`` at a time;
- with ``evidence_logs``: the last ``evidence_log_lines`` lines of each container's log (and of its
  previous run when it restarted).

What each reading means is decided by the pure evidence.py; this room only fetches.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.shmfix.k8s.plugins.module_utils import evidence as ev
from ansible_collections.shmfix.k8s.plugins.module_utils.client import resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.dfexec import _running_containers, _SummaryCache, is_running, measure, shm_volume_of
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.findings import evidence_findings

PARALLELISM = 8
DF_TIMEOUT = 30


def scope_pods(kube, params, listed=None):
    """The pods of the selection's namespaces: ``listed`` (the Pod kind's list shm_info made) when it can serve, else one list per scope."""
    if listed is not None and not params.get("label_selector"):
        return listed
    exclude = set(params.get("exclude_namespaces") or [])
    namespaces = params.get("namespaces")
    scopes = [None] if namespaces is None else [n for n in namespaces if n not in exclude]
    pods = []
    for namespace in scopes:
        pods += kube.get(resource_path("v1", "pods", namespace), verb="list", resource="pods", namespace=namespace).get("items") or []
    return [p for p in pods if (p.get("metadata") or {}).get("namespace") not in exclude]


def df_jobs(pods):
    """(pod, container) pairs to measure: one running container per distinct /dev/shm (volume, or the sandbox's) of each running pod."""
    jobs = []
    for pod in (p for p in pods if is_running(p)):
        seen = set()
        for name in _running_containers(pod):
            volume = shm_volume_of(pod, name)
            if volume not in seen:
                seen.add(volume)
                jobs.append((pod, name))
    return jobs


def log_jobs(pods):
    """(pod, container, previous) of every container that has a log: the current run, and the previous one after a restart."""
    jobs = []
    for pod in pods:
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            state = cs.get("state") or {}
            if "running" in state or "terminated" in state:
                jobs.append((pod, cs.get("name"), False))
            if (cs.get("lastState") or {}).get("terminated"):
                jobs.append((pod, cs.get("name"), True))
    return jobs


def read_log(kube, pod, container, previous, lines):
    """(log tail text, error) of one container run; error is None on success."""
    meta = pod.get("metadata") or {}
    query = {"container": container, "tailLines": lines, "previous": "true" if previous else None}
    path = resource_path("v1", "pods", meta.get("namespace"), meta.get("name"), "log")
    try:
        return kube.get(path, query=query, raw=True, verb="get", resource="pods/log", namespace=meta.get("namespace"), name=meta.get("name")), None
    except ShmfixError as err:
        return None, err.msg


def _parallel(jobs, work):
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLELISM, len(jobs))) as pool:
        return list(pool.map(work, jobs))


def _key(pod):
    meta = pod.get("metadata") or {}
    return meta.get("namespace"), meta.get("name")


def read_all(kube, pods, opts):
    """({(ns, pod): [df entries]}, {(ns, pod): [log evidence items]}, [errors]) for the pods, as the options ask."""
    df, logs, errors = {}, {}, []
    if opts["df"]:
        summaries = _SummaryCache(kube)
        for entry in _parallel(df_jobs(pods), lambda job: measure(kube, job[0], job[1], DF_TIMEOUT, summaries)):
            df.setdefault((entry["namespace"], entry["pod"]), []).append(entry)
    if opts["logs"]:
        jobs = log_jobs(pods)
        for (pod, container, previous), (text, error) in zip(jobs, _parallel(jobs, lambda j: read_log(kube, j[0], j[1], j[2], opts["log_lines"]))):
            if error:
                errors.append("log of pod %s container %s not read: %s" % (_key(pod)[1], container, error))
                continue
            item = ev.log_item(_key(pod)[1], container, text, previous, opts["log_lines"])
            if item:
                logs.setdefault(_key(pod), []).append(item)
    return df, logs, errors


def _items(record, pods, df, logs, threshold):
    """The evidence items of one record from its pods' statuses, df entries and log hits."""
    size_limit = (record.get("volume") or {}).get("size_limit_bytes")
    items = []
    for pod in pods:
        entries = df.get(_key(pod), [])
        used = {e["container"]: (e.get("used_bytes"), e.get("size_bytes")) for e in entries}
        for cs in (pod.get("spec") or {}).get("containers") or []:
            # containers that share a /dev/shm share its figures
            same = [e for e in entries if shm_volume_of(pod, e["container"]) == shm_volume_of(pod, cs.get("name"))]
            used.setdefault(cs.get("name"), (same[0].get("used_bytes"), same[0].get("size_bytes")) if same else (None, None))
        items += ev.terminations(pod, used)
        for entry in entries:
            item = ev.df_item(entry, threshold, size_limit if shm_volume_of(pod, entry["container"]) else None)
            items += [item] if item else []
        items += logs.get(_key(pod), [])
    return items


def add_evidence(kube, params, opts, records, pod_specs, listed_pods=None, warnings=None):
    """Set ``evidence`` (and its findings) on every record; return the summary counts {evidence, likely, none}.

    ``opts``: options.evidence_options(params), validated before anything is listed.
    """
    checked, note, pods_of, read = ["images"], "", {}, False
    if opts["evidence"]:
        try:
            pods_of, read = ev.pods_by_record(scope_pods(kube, params, listed_pods), records), True
            checked.append("pod statuses")
        except ShmfixError as err:
            note = "pod statuses not read: %s" % err.msg
            (warnings if warnings is not None else []).append("evidence: " + note)
    unique = list({_key(p): p for pods in pods_of.values() for p in pods}.values())
    df, logs, errors = read_all(kube, unique, opts) if read else ({}, {}, [])
    checked += [
        c for c, on in (("df /dev/shm >= %d %%" % opts["threshold"], opts["df"]), ("last %d log lines" % opts["log_lines"], opts["logs"])) if on and read
    ]
    if errors and warnings is not None:
        warnings.append("evidence: %d log read(s) failed, first: %s" % (len(errors), errors[0]))
    for record, pod_spec in zip(records, pod_specs):
        pods = pods_of.get((record["kind"], record["namespace"], record["name"]), [])
        items = _items(record, pods, df, logs, opts["threshold"])
        record["evidence"] = ev.evidence_record(ev.likely_from_pod_spec(pod_spec), items, checked, len(pods), note)
        record["findings"] += evidence_findings(record["evidence"], record.get("shm_state") or record.get("state"))
    return ev.summarize(records)
