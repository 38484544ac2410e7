# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the manifest helpers' pure parts, with the demo workloads file."""

import os

import pytest
import yaml
from ansible_collections.shmfix.k8s.plugins.module_utils import manifest
from ansible_collections.shmfix.k8s.plugins.module_utils.client import ShmfixError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_demo_workloads_are_the_ones_the_demo_promises():
    with open(os.path.join(ROOT, "playbooks", "files", "demo-workloads.yml")) as handle:
        docs = manifest.split_documents(list(yaml.safe_load_all(handle)))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Deployment", "hello-world") in kinds
    assert ("StatefulSet", "pg") in kinds
    assert ("CronJob", "nightly-report") in kinds
    assert ("Job", "one-off-migration") in kinds
    for doc in docs:
        spec = doc.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if template:
            for container in template["spec"]["containers"]:
                assert container["image"] == "localhost/shmfix/busybox:local"
                assert container["imagePullPolicy"] == "Never"
    pg = next(d for d in docs if d["metadata"]["name"] == "pg" and d["kind"] == "StatefulSet")
    assert pg["spec"]["template"]["spec"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]


def test_split_documents_flattens_lists_and_skips_empty_documents():
    docs = [None, {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]}]
    assert [d["metadata"]["name"] for d in manifest.split_documents(docs)] == ["a"]


@pytest.mark.parametrize(
    "doc", [{"kind": "ConfigMap", "metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, ["not", "a", "mapping"]]
)
def test_split_documents_refuses_incomplete_manifests(doc):
    with pytest.raises(ShmfixError):
        manifest.split_documents([doc])
