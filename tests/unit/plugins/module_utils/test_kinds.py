# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kinds.py: the one registry of workload kinds, read by every module, filter and role."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import kinds


@pytest.mark.parametrize(
    "kind, pointer, resource",
    [
        ("Deployment", "/spec/template/spec", "deployments.apps"),
        ("CronJob", "/spec/jobTemplate/spec/template/spec", "cronjobs.batch"),
        ("ReplicationController", "/spec/template/spec", "replicationcontrollers"),
        ("Pod", "/spec", "pods"),
    ],
)
def test_pod_spec_pointer_and_resource(kind, pointer, resource):
    spec = kinds.builtin(kind)
    assert spec.pod_spec_pointer() == pointer
    assert spec.pod_spec_pointer().lstrip("/").split("/") == spec.pod_spec_keys()
    assert spec.resource == resource


def test_every_builtin_kind_says_how_it_rolls_out_and_how_its_pods_are_found():
    assert kinds.DEFAULT_KINDS == ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "CronJob", "Job", "Pod"]
    for spec in kinds.BUILTIN.values():
        assert spec["rollout"] in ("deployment", "statefulset", "daemonset", None)
        assert spec["rollout"] or spec["rollout_note"], spec["kind"]
        assert spec["pods"] in ("selector", "jobs", "self")
    assert [k for k, s in kinds.BUILTIN.items() if s["immutable"]] == ["Job", "Pod"]
    assert [k for k, s in kinds.BUILTIN.items() if s["left_to_owner"]] == ["ReplicaSet", "ReplicationController", "Pod"]


def test_unknown_kind_names_the_supported_ones():
    with pytest.raises(ValueError, match="unknown kind 'Deploymnet'; supported: Deployment, StatefulSet, .*custom resources go in extra_kinds"):
        kinds.builtin("Deploymnet")


def test_custom_kind_from_discovery():
    spec = kinds.custom("Rollout", "argoproj.io/v1alpha1", "rollouts")
    assert (spec.resource, spec.pod_spec_pointer(), spec["immutable"], spec["pods"]) == ("rollouts.argoproj.io", "/spec/template/spec", False, None)
    assert not kinds.pods_findable("Rollout") and kinds.pods_findable("CronJob")


def test_pointer_escapes():
    assert kinds.pointer(["metadata", "annotations", "shmfix.io/original"]) == "/metadata/annotations/shmfix.io~1original"
    assert kinds.pointer(["a~b"]) == "/a~0b"
