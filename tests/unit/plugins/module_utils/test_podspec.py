# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""podspec.py: the pod memory limit as the kubelet computes it, annotations, managers."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import podspec
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from shm_fixtures import GI, MI


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}, {"name": "b"}]}, (None, None)),
        ({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}], "overhead": {"memory": "160Mi"}}, (GI + 160 * MI, "containers")),
        (
            {
                "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
                "initContainers": [{"name": "big", "resources": {"limits": {"memory": "4Gi"}}}],
            },
            (4 * GI, "containers"),
        ),
        ({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}], "initContainers": [{"name": "nolimit"}]}, (None, None)),
        (
            {
                "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
                "initContainers": [{"name": "side", "restartPolicy": "Always", "resources": {"limits": {"memory": "512Mi"}}}, {"name": "after"}],
            },
            (1536 * MI, "containers"),
        ),
        ({"containers": [{"name": "a"}], "resources": {"limits": {"memory": "3Gi"}}}, (3 * GI, "pod")),
        ({"containers": [{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]}, (None, None)),
        ({"containers": []}, (None, None)),
    ],
)
def test_pod_memory_limit(spec, expected):
    assert podspec.pod_memory_limit(spec, parse=parse_bytes) == expected


def test_size_annotation_on_the_pod_template_counts():
    pod_meta = {"annotations": {podspec.ANNOTATION_SIZE_LIMIT: "3Gi"}}
    assert podspec.annotation(podspec.ANNOTATION_SIZE_LIMIT, pod_metadata=pod_meta, object_metadata={}) == "3Gi"
    assert (
        podspec.annotation(podspec.ANNOTATION_SIZE_LIMIT, pod_metadata=pod_meta, object_metadata={"annotations": {podspec.ANNOTATION_SIZE_LIMIT: "1Gi"}})
        == "1Gi"
    )


@pytest.mark.parametrize(("value", "skipped"), [("true", True), ("True", True), ("yes", True), ("please", True), ("false", False), ("0", False), (None, False)])
def test_skip_annotation(value, skipped):
    meta = {"annotations": {podspec.ANNOTATION_SKIP: value}} if value is not None else {}
    assert podspec.is_skipped(object_metadata=meta) is skipped


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"labels": {"app.kubernetes.io/managed-by": "Helm"}}, ["helm"]),
        ({"labels": {"app.kubernetes.io/managed-by": "helm"}}, ["helm"]),
        ({"labels": {"app.kubernetes.io/managed-by": "kustomize"}}, []),
        ({"annotations": {"meta.helm.sh/release-name": "pg"}}, ["helm"]),
        ({"labels": {"argocd.argoproj.io/instance": "shop"}}, ["argocd"]),
        ({"labels": {"app.kubernetes.io/instance": "shop"}}, []),
        ({"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/checkout"}}, ["argocd"]),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}, ["flux"]),
        ({"labels": {"helm.toolkit.fluxcd.io/name": "triton", "app.kubernetes.io/managed-by": "Helm"}}, ["flux", "helm"]),
    ],
)
def test_managed_by(metadata, expected):
    assert podspec.managed_by(object_metadata=metadata) == expected
