# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: why a pod is stuck: unschedulable, a container that will not start by waiting, OOM-killed, failed.

Read by the rollout waits (rollout.py) and the canaries (canary.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.kube_time import parse_timestamp

# Container waiting reasons that will not resolve by waiting.
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


def unschedulable(pod):
    """The scheduler's message when the pod cannot be scheduled (pure), or None."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return cond.get("message", "")
    return None


def stuck_container(pod):
    """(container name, waiting reason, message) of the first container that will not start by waiting, or None."""
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return cs.get("name"), waiting.get("reason"), waiting.get("message", "")
    return None


# A container that exited non-zero this many seconds or less before a look is crash-looping, also while it
# runs again for a moment between two restarts (its state is then "running", not CrashLoopBackOff).
RECENT_CRASH_S = 600


def recent_crash(pod, now):
    """(container, restarts, exit code, seconds ago) of the first container that exited non-zero and was
    restarted within RECENT_CRASH_S before ``now`` (epoch seconds), or None."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        last = (cs.get("lastState") or {}).get("terminated") or {}
        finished = parse_timestamp(last.get("finishedAt"))
        if cs.get("restartCount") and last.get("exitCode") and finished is not None and now - finished <= RECENT_CRASH_S:
            return cs.get("name"), cs["restartCount"], last["exitCode"], max(0, int(now - finished))
    return None


def _oom_killed(pod):
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if ((cs.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled":
            return cs.get("name")
    return None


def pod_problem(pod):
    """Why a pod of the new revision is stuck (pure), or None."""
    name = (pod.get("metadata") or {}).get("name")
    status = pod.get("status") or {}
    if unschedulable(pod) is not None:
        return "pod %s is unschedulable: %s" % (name, unschedulable(pod))
    stuck = stuck_container(pod)
    if stuck:
        return "pod %s container %s: %s %s" % ((name,) + stuck)
    if _oom_killed(pod):
        return "pod %s container %s was OOM-killed (shm pages count against the container's memory limit)" % (name, _oom_killed(pod))
    if status.get("phase") == "Failed":
        return "pod %s failed: %s %s" % (name, status.get("reason", ""), status.get("message", ""))
    return None
