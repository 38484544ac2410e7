"""module_utils of shm_patch (patching.py) driven directly against the embedded cluster, where a playbook
cannot reach: a concurrent edit between read and write, the API call budget for N workloads,
and custom resources through extra_kinds."""

from __future__ import annotations

import json
import time

import pytest
from helpers import CONTEXT, import_collection
from localcluster_helpers import BUSYBOX

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import client, nodes, patching, selection

SHM_VOLUME = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}


def deployment(name: str, replicas: int = 0) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"suite": "shmfix-live"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
                },
            },
        },
    }


def params(namespace: str, **over) -> dict:
    p = {
        "namespaces": [namespace],
        "exclude_namespaces": [],
        "kinds": ["Deployment"],
        "extra_kinds": [],
        "label_selector": None,
        "names": None,
        "state": "present",
        "size_limit": "256Mi",
        "size_ratio": None,
        "min_size": None,
        "max_size": None,
        "existing": "keep",
        "managed": "warn",
        "volume_name": "dshm",
    }
    p.update(over)
    return p


@pytest.fixture
def kube(kubeconfig):
    return client.Kube(params={"kubeconfig": str(kubeconfig), "context": CONTEXT})


def read_one(kube, p):
    specs = selection.resolve_kinds(kube, p["kinds"], p["extra_kinds"])
    selected = selection.select_workloads(kube, p, specs)
    assert len(selected) == 1
    return selected[0]


def test_concurrent_edit_is_retried_and_kept(kube, kubectl, namespace):
    kubectl.apply(deployment("web"), namespace)
    p = params(namespace)
    request = patching.patch_request(p)
    spec, stale = read_one(kube, p)
    node_info = nodes.read_nodes(kube)

    # Someone edits the object between our read and our write: an annotation, an env var in the
    # pod template, and a configMap volume that takes the name dshm.
    kubectl("annotate", "-n", namespace, "deployment/web", "team=payments")
    kubectl(
        "patch",
        "-n",
        namespace,
        "deployment/web",
        "--type=json",
        "-p",
        json.dumps(
            [
                {"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [{"name": "MODE", "value": "fast"}]},
                {"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "dshm", "configMap": {"name": "settings"}}]},
            ]
        ),
    )
    edited = kubectl.json("get", "-n", namespace, "deployment", "web")
    assert edited["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]

    calls_before = kube.calls
    record, _ = patching.patch_object(kube, spec, stale, node_info, request)

    assert record["action"] == "patched", record
    assert record["conflict_retries"] == 1
    # stale write refused, one re-read, one write
    assert kube.calls - calls_before == 3
    live = kubectl.json("get", "-n", namespace, "deployment", "web")
    pod = live["spec"]["template"]["spec"]
    assert live["metadata"]["annotations"]["team"] == "payments"
    assert pod["containers"][0]["env"] == [{"name": "MODE", "value": "fast"}]
    # re-planned on the fresh object: the configMap keeps dshm, the shm volume is dshm-1
    assert pod["volumes"][0]["name"] == "dshm" and "configMap" in pod["volumes"][0]
    assert pod["volumes"][1] == {"name": "dshm-1", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}
    assert pod["containers"][0]["volumeMounts"] == [{"name": "dshm-1", "mountPath": "/dev/shm"}]

    # and the rollback gives back exactly the edited template
    rollback = patching.run_patch(kube, params(namespace, state="absent"))
    assert rollback["summary"]["restored"] == 1
    assert kubectl.json("get", "-n", namespace, "deployment", "web")["spec"]["template"] == edited["spec"]["template"]


def test_conflict_retries_are_bounded(kube, kubectl, namespace, monkeypatch):
    kubectl.apply(deployment("busy"), namespace)
    p = params(namespace)
    request = patching.patch_request(p)
    spec, obj = read_one(kube, p)
    node_info = nodes.read_nodes(kube)
    real_reread = patching.reread

    def reread_then_edit(kube_, spec_, obj_):
        fresh = real_reread(kube_, spec_, obj_)
        # the pod template moves on again before every retry (an annotation alone would be no
        # conflict: the patch only adds its own annotation, guarded by its value)
        kubectl("set", "env", "-n", namespace, "deployment/busy", f"TICK={time.monotonic_ns()}")
        return fresh

    monkeypatch.setattr(patching, "reread", reread_then_edit)
    kubectl("set", "env", "-n", namespace, "deployment/busy", "TICK=0")
    record, _ = patching.patch_object(kube, spec, obj, node_info, request)
    assert record["action"] == "failed"
    assert record["reason"] == f"still conflicting after {patching.CONFLICT_RETRIES} re-reads"
    live = kubectl.json("get", "-n", namespace, "deployment", "busy")
    assert "volumes" not in live["spec"]["template"]["spec"]


@pytest.mark.parametrize("n", [20])
def test_api_calls_for_n_deployments(kube, kubectl, namespace, n):
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment(f"app-{i:02d}") for i in range(n)]}),
    )
    # Let the deployment controller finish its status writes first: one landing between our list
    # and our patch changes the resourceVersion, so the precondition answers 409 and shm_patch
    # re-reads and re-writes (correct, but two more calls than this count expects).
    kubectl(
        "wait",
        "-n",
        namespace,
        "deployment",
        "--all",
        "--for=jsonpath={.status.conditions[?(@.type=='Progressing')].reason}=NewReplicaSetAvailable",
        "--timeout=120s",
    )
    started = time.monotonic()
    first = patching.run_patch(kube, params(namespace))
    elapsed = time.monotonic() - started
    assert first["summary"]["patched"] == n
    # one list of Deployments + one list of nodes + one write per Deployment (no conflict: the
    # controller's status writes settled before the run, see above)
    assert [r["name"] for r in first["results"] if r.get("conflict_retries")] == []
    assert first["api_calls"] == 1 + 1 + n
    calls = kube.calls
    second = patching.run_patch(kube, params(namespace))
    assert second["changed"] is False
    assert kube.calls - calls == 2
    assert second["summary"]["unchanged"] == n and len(second["results"]) == n
    # the same no-op rerun with brief records, then none: same calls, same summary, a smaller result
    brief = patching.run_patch(kube, dict(params(namespace), unchanged_results="brief"))
    none = patching.run_patch(kube, dict(params(namespace), unchanged_results="none"))
    assert brief["summary"] == none["summary"] == second["summary"] and brief["api_calls"] == none["api_calls"] == 2
    assert [r["name"] for r in brief["results"]] == [r["name"] for r in second["results"]] and none["results"] == []
    assert len(json.dumps(brief["results"])) < len(json.dumps(second["results"])) / 2
    print(f"shm_patch over {n} Deployments: {first['api_calls']} API calls, {elapsed:.2f}s; rerun: {kube.calls - calls} calls")


def test_extra_kinds_custom_resource(kube, kubectl, namespace):
    group = f"{namespace}.shmfix.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"rollouts.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "rollouts", "singular": "rollout", "kind": "Rollout"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    kubectl.apply(crd)
    try:
        kubectl("wait", "--for=condition=Established", f"crd/rollouts.{group}", "--timeout=60s")
        rollout = deployment("canary")
        rollout.update(apiVersion=f"{group}/v1alpha1", kind="Rollout")
        deadline = time.monotonic() + 30
        while kubectl.run("apply", "-n", namespace, "-f", "-", input=json.dumps(rollout), check=False).returncode != 0:
            assert time.monotonic() < deadline, "the Rollout CRD is not served"
            time.sleep(1)
        before = kubectl.json("get", "-n", namespace, f"rollouts.{group}", "canary")
        extra = [{"api_version": f"{group}/v1alpha1", "kind": "Rollout", "template_path": "spec.template"}]
        p = params(namespace, kinds=[], extra_kinds=extra)

        check = patching.run_patch(kube, p, check_mode=True)
        assert check["results"][0]["action"] == "would_patch"
        # the dynamic client's discovery (/api, /apis, the group's resources) + list + nodes + dry-run write
        assert check["api_calls"] == 6
        assert kubectl.json("get", "-n", namespace, f"rollouts.{group}", "canary")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

        real = patching.run_patch(kube, p)
        assert real["results"][0]["action"] == "patched"
        # discovery is kept for the life of the client (one module run): list + nodes + write
        assert real["api_calls"] == 3
        after = kubectl.json("get", "-n", namespace, f"rollouts.{group}", "canary")
        assert after["spec"]["template"]["spec"]["volumes"] == [SHM_VOLUME]

        assert patching.run_patch(kube, p)["changed"] is False
        restored = patching.run_patch(kube, params(namespace, kinds=[], extra_kinds=extra, state="absent"))
        assert restored["results"][0]["action"] == "restored"
        assert kubectl.json("get", "-n", namespace, f"rollouts.{group}", "canary")["spec"]["template"] == before["spec"]["template"]
    finally:
        kubectl.run("delete", "crd", f"rollouts.{group}", "--wait=false", check=False)
