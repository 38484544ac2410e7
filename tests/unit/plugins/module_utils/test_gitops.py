# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""gitops.py: the snippet for Helm/Argo CD/Flux-managed workloads is YAML that loads back to the plan."""

import pytest
import yaml
from ansible_collections.shmfix.k8s.plugins.module_utils import gitops, kinds
from ansible_collections.shmfix.k8s.plugins.module_utils import plan as planner
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes
from shm_fixtures import EXPECTED, load


@pytest.mark.parametrize("name", ["deployment-triton-flux-helm", "cronjob-batch-inference", "deployment-argocd-gunicorn"])
def test_gitops_snippet_is_valid_yaml_matching_the_plan(name):
    obj, spec = load(name)[0], load(name)[2]
    p = planner.plan(spec, parse=parse_bytes, size_bytes=EXPECTED[name]["desired"][0])
    text = gitops.gitops_snippet(kinds.builtin(obj["kind"]), p, name=obj["metadata"]["name"])
    patch, values = yaml.safe_load_all(text)
    assert patch["apiVersion"] == obj["apiVersion"] and patch["kind"] == obj["kind"]
    assert patch["metadata"] == {"name": obj["metadata"]["name"]}
    node = patch
    for key in kinds.builtin(obj["kind"]).pod_spec_keys():
        node = node[key]
    assert node["volumes"] == [p["after"]["volume"]]
    assert node["containers"] == [{"name": c["name"], "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]} for c in spec["containers"]]
    assert values == {"extraVolumes": [p["after"]["volume"]], "extraVolumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}


def test_gitops_snippet_quotes_numeric_quantities():
    spec = {"containers": [{"name": "a"}]}
    p = planner.plan(spec, parse=parse_bytes, size_bytes=100_000_000)
    docs = list(yaml.safe_load_all(gitops.gitops_snippet(kinds.builtin("Deployment"), p, name="a")))
    assert len(docs) == 2
    patch = docs[0]
    assert patch["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "100000000"


@pytest.mark.parametrize("container", ["0x10", "true", "1e3", "null", "0o17", "12:30"])
def test_gitops_snippet_quotes_names_yaml_would_read_as_other_types(container):
    # A container named 0x10 is a valid Kubernetes name; written unquoted it loads back as the integer 16
    # and the kustomize patch targets a container that does not exist.
    p = planner.plan({"containers": [{"name": container}]}, parse=parse_bytes, size_bytes=1024**3)
    patch, values = yaml.safe_load_all(gitops.gitops_snippet(kinds.builtin("Deployment"), p, name=container))
    assert patch["metadata"]["name"] == container
    assert [c["name"] for c in patch["spec"]["template"]["spec"]["containers"]] == [container]
    assert values["extraVolumes"][0]["emptyDir"]["sizeLimit"] == "1Gi"


def test_gitops_snippet_for_a_custom_kind_uses_its_template_path():
    rollout = kinds.custom("Rollout", "argoproj.io/v1alpha1", "rollouts", template_path="spec.template")
    p = planner.plan({"containers": [{"name": "app"}]}, parse=parse_bytes, size_bytes=1024**3)
    patch = next(yaml.safe_load_all(gitops.gitops_snippet(rollout, p, name="canary")))
    assert (patch["apiVersion"], patch["kind"]) == ("argoproj.io/v1alpha1", "Rollout")
    assert patch["spec"]["template"]["spec"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]
