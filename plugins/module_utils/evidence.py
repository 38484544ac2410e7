# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: evidence that a workload's pods hit the /dev/shm limit, and images known to need shared memory.

Evidence comes from what the cluster already has (read by evidence_reads.py):

- a container whose last termination was SIGBUS (exit code 135: a write through ``mmap`` found the
  tmpfs full, PyTorch's "DataLoader worker killed by signal: Bus error") or an OOM kill (shm pages
  count against the container's memory limit), with the /dev/shm usage df saw where it was read;
- ``df /dev/shm`` in a running pod at or above a threshold (default 80 %) of its size (of the
  ``sizeLimit`` where that is smaller: a kubelet that enforces it by eviction shows half the RAM);
- "No space left on device" or "Bus error" in the tail of a container's log.

An image of software known to use shared memory (``LIKELY_IMAGES``) makes a workload ``likely``,
never evidence. ``evidence_record`` puts it together: ``level`` is ``evidence``, ``likely`` or
``none``; ``selected(evidence, target)`` is what the remediate role's ``remediate_target`` picks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.shmfix.k8s.plugins.module_utils.units import human

SIGBUS_EXIT_CODE = 135  # 128 + SIGBUS (7)
SIGBUS_SIGNAL = 7
DEFAULT_DF_THRESHOLD = 80
DEFAULT_LOG_LINES = 200
LOG_MARKERS = ("No space left on device", "Bus error")
EVIDENCE, LIKELY, NONE = "evidence", "likely", "none"
TARGETS = ("all", EVIDENCE, LIKELY)
_SEP = r"[/._-]"


def _words(*names):
    """A pattern for any of ``names`` as a whole word of an image path (between '/', '.', '_', '-')."""
    return r"(?:^|%s)(?:%s)(?=$|%s)" % (_SEP, "|".join(re.escape(n) for n in names), _SEP)


# Software known to need more than 64 MiB of /dev/shm, matched against an image's path (registry host,
# tag and digest removed). The one table: add a line here, and a case to its unit test.
LIKELY_IMAGES = (
    ("PostgreSQL", _words("postgres", "postgresql", "postgis", "timescaledb", "timescaledb-ha", "pgvector", "spilo", "patroni")),
    ("Oracle Database", _words("oracle") + r"|^database/(?:enterprise|free|express)(?=$|/)"),
    ("Chrome/Selenium", _words("selenium", "chrome", "chromium", "headless-shell", "puppeteer", "playwright", "browserless")),
    ("PyTorch", _words("pytorch", "torch", "torchserve")),
    ("Ray", r"(?:^|/)ray(?=$|[-_])|" + _words("rayproject")),
    ("vLLM", _words("vllm")),
)
# Helpers around such software that do not use its shared memory themselves.
_NOT_THE_SOFTWARE = re.compile(_words("exporter", "operator", "pgbouncer"))


def image_path(image):
    """The repository path of an image reference: no registry host, tag or digest, lower case.

    'docker.io/bitnami/postgresql:16.3.0@sha256:...' -> 'bitnami/postgresql'; 'postgres' -> 'postgres'.
    """
    ref = (image or "").strip().lower().split("@", 1)[0]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    last = parts[-1].rsplit(":", 1)[0] if parts else ""
    return "/".join(parts[:-1] + [last])


def likely_software(image):
    """The software of ``LIKELY_IMAGES`` the image runs ('PostgreSQL'), or None."""
    path = image_path(image)
    if not path or _NOT_THE_SOFTWARE.search(path):
        return None
    return next((name for name, pattern in LIKELY_IMAGES if re.search(pattern, path)), None)


def likely_from_pod_spec(pod_spec):
    """[{container, image, software}] of the containers (init containers too) whose image is known to need shared memory."""
    spec = pod_spec or {}
    out = []
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        software = likely_software(container.get("image"))
        if software:
            out.append({"container": container.get("name"), "image": container.get("image"), "software": software})
    return out


# --------------------------------------------------------------------------- which pods are whose


def _controller(meta):
    refs = meta.get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def _direct_owner(pod, index):
    """The (kind, namespace, name) of the record that made ``pod``, or None."""
    meta = pod.get("metadata") or {}
    ns, ref = meta.get("namespace"), _controller(meta)
    if ref is None:
        return ("Pod", ns, meta.get("name")) if ("Pod", ns, meta.get("name")) in index else None
    kind, name = ref.get("kind"), ref.get("name") or ""
    if (kind, ns, name) in index:
        return (kind, ns, name)
    labels = meta.get("labels") or {}
    template_hash = labels.get("pod-template-hash") or labels.get("rollouts-pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
        # a Deployment's (or an Argo Rollout's) ReplicaSet is <owner>-<pod-template-hash>
        parent = name[: -len(template_hash) - 1]
        candidates = sorted((k for k in index if k[1:] == (ns, parent) and k[0] not in ("Pod", "ReplicaSet", "Job")), key=lambda k: k[0] != "Deployment")
        return candidates[0] if candidates else None
    match = re.match(r"^(.+)-\d+$", name) if kind == "Job" else None
    if match and ("CronJob", ns, match.group(1)) in index:
        return ("CronJob", ns, match.group(1))  # a CronJob's Job is <cronjob>-<scheduled minute>
    return None


def pods_by_record(pods, records):
    """{(kind, namespace, name): [pods]} of the records (shm_info workloads); a Job's pods count for its CronJob too."""
    index = {(r.get("kind"), r.get("namespace"), r.get("name")): r for r in records or []}
    out = {}
    for pod in pods or []:
        key, seen = _direct_owner(pod, index), set()
        while key and key in index and key not in seen:
            seen.add(key)
            out.setdefault(key, []).append(pod)
            owner = index[key].get("owner") or {}
            key = (owner.get("kind"), key[1], owner.get("name"))
    return out


# --------------------------------------------------------------------------- evidence items


def _pod_name(pod):
    return (pod.get("metadata") or {}).get("name")


def terminations(pod, shm_used=None):
    """Evidence items of the pod's containers whose latest termination was SIGBUS or an OOM kill.

    ``shm_used``: {container: (used_bytes, size_bytes)} of /dev/shm where df read it.
    """
    status = pod.get("status") or {}
    items = []
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        term = ((cs.get("state") or {}).get("terminated")) or ((cs.get("lastState") or {}).get("terminated")) or {}
        base = {"pod": _pod_name(pod), "container": cs.get("name"), "exit_code": term.get("exitCode"), "finished_at": term.get("finishedAt")}
        base["restarts"] = cs.get("restartCount") or 0
        where = "pod %s container %s" % (base["pod"], base["container"])
        when = " at %s" % term["finishedAt"] if term.get("finishedAt") else ""
        if term.get("exitCode") == SIGBUS_EXIT_CODE or term.get("signal") == SIGBUS_SIGNAL:
            message = "%s was killed by SIGBUS (exit code 135, 'Bus error')%s, %d restart(s): a write through mmap found /dev/shm full" % (
                where,
                when,
                base["restarts"],
            )
            items.append(dict(base, kind="sigbus", message=message))
        elif term.get("reason") == "OOMKilled":
            used, size = (shm_used or {}).get(cs.get("name")) or (None, None)
            shm = "/dev/shm now %s used of %s" % (human(used), human(size)) if used is not None else "/dev/shm usage not read"
            message = "%s was OOM-killed%s, %d restart(s): shared memory pages count against its memory limit (%s)" % (where, when, base["restarts"], shm)
            items.append(dict(base, kind="oom_killed", shm_used_bytes=used, shm_size_bytes=size, message=message))
    return items


def df_item(entry, threshold=DEFAULT_DF_THRESHOLD, size_limit_bytes=None):
    """The evidence item of one df entry (shm_df_info's shape) at or above ``threshold`` percent, or None.

    The bound is the tmpfs size, or ``size_limit_bytes`` when smaller (an eviction-enforced sizeLimit).
    """
    used, size = entry.get("used_bytes"), entry.get("size_bytes")
    bound = min(x for x in (size, size_limit_bytes) if x) if (size or size_limit_bytes) else None
    if used is None or not bound:
        return None
    percent = 100.0 * used / bound
    if percent < threshold:
        return None
    of = "of its sizeLimit %s" % human(bound) if bound != size else "of %s" % human(bound)
    message = "pod %s container %s: /dev/shm %s used %s (%.0f %%, threshold %d %%)" % (
        entry.get("pod"),
        entry.get("container"),
        human(used),
        of,
        percent,
        threshold,
    )
    return {
        "kind": "df_usage",
        "pod": entry.get("pod"),
        "container": entry.get("container"),
        "used_bytes": used,
        "size_bytes": bound,
        "percent": round(percent, 1),
        "threshold": threshold,
        "message": message,
    }


def scan_log(text, markers=LOG_MARKERS):
    """(number of lines mentioning a marker, the last such line trimmed to 300 characters) of a log tail."""
    lowered = [m.lower() for m in markers]
    hits = [line for line in (text or "").splitlines() if any(m in line.lower() for m in lowered)]
    return len(hits), (hits[-1].strip()[:300] if hits else None)


def log_item(pod, container, text, previous=False, lines=DEFAULT_LOG_LINES):
    """The evidence item of a container's log tail that mentions a marker, or None."""
    count, last = scan_log(text)
    if not count:
        return None
    run = " (previous run)" if previous else ""
    message = "pod %s container %s%s: %d of the last %d log lines say %s: %s" % (
        pod,
        container,
        run,
        count,
        lines,
        " or ".join(repr(m) for m in LOG_MARKERS),
        last,
    )
    return {"kind": "no_space_log", "pod": pod, "container": container, "previous": bool(previous), "count": count, "line": last, "message": message}


def evidence_record(likely, items, checked, pods=0, note=""):
    """The ``evidence`` of a workload record: level, evidence items, likely images, what was read."""
    level = EVIDENCE if items else (LIKELY if likely else NONE)
    return {"level": level, "items": list(items), "likely": list(likely), "checked": list(checked), "pods": pods, "note": note}


def selected(evidence, target):
    """True when ``remediate_target`` ``target`` (all, evidence, likely) picks a workload with this evidence."""
    level = (evidence or {}).get("level") or NONE
    return target == "all" or level == EVIDENCE or (target == LIKELY and level == LIKELY)


def why(evidence, target):
    """Why ``target`` picks or leaves a workload, in the report's words."""
    evidence = evidence or {}
    items, likely = evidence.get("items") or [], evidence.get("likely") or []
    more = " (and %d more)" % (len(items) - 1) if len(items) > 1 else ""
    known = "; ".join("%s runs %s" % (x["container"], x["software"]) for x in likely)
    if target == "all":
        return "remediate_target=all: every workload the plan would change"
    if items:
        return "evidence of shm pressure: %s%s" % (items[0]["message"], more)
    if likely and target == LIKELY:
        return "likely to need shared memory (%s), no evidence of shm pressure yet" % known
    checked = ", ".join(evidence.get("checked") or []) or "nothing"
    left = "no evidence of shm pressure (checked: %s)" % checked
    if likely:
        left += "; likely to need shared memory (%s): remediate_target=likely would change it" % known
    return left + (" - " + evidence["note"] if evidence.get("note") else "")


def summarize(records):
    """{evidence: n, likely: n, none: n} over the records that carry ``evidence``."""
    counts = {EVIDENCE: 0, LIKELY: 0, NONE: 0}
    for record in records or []:
        if record.get("evidence"):
            counts[record["evidence"]["level"]] += 1
    return counts
