# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure evidence logic (module_utils/evidence.py), on pods, logs and df output captured from the embedded cluster
(tests/fixtures/evidence: a Deployment running shm-mmap on the runtime default, one filling /dev/shm to 88 %, one whose
dd hit ENOSPC, a quiet one, a bare pod OOM-killed by its shm pages) and the manifests of tests/fixtures/manifests."""

import copy
import json
import os

import pytest
import yaml
from ansible_collections.shmfix.k8s.plugins.module_utils import df as dfparse
from ansible_collections.shmfix.k8s.plugins.module_utils import evidence as ev
from ansible_collections.shmfix.k8s.plugins.module_utils.findings import evidence_findings

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures")
MI = 1024**2


def fixture(name):
    with open(os.path.join(FIXTURES, "evidence", name)) as handle:
        return json.load(handle) if name.endswith(".json") else handle.read()


def manifest(name):
    with open(os.path.join(FIXTURES, "manifests", name + ".yaml")) as handle:
        return yaml.safe_load(handle)


def record(kind, name, namespace="evidence-dev", owner=None, **extra):
    return dict({"kind": kind, "namespace": namespace, "name": name, "owner": owner, "volume": None}, **extra)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    "image,software",
    [
        ("postgres", "PostgreSQL"),
        ("docker.io/library/postgres:16", "PostgreSQL"),
        ("docker.io/bitnami/postgresql:16.3.0-debian-12-r14", "PostgreSQL"),
        ("ghcr.io/cloudnative-pg/postgresql:16.2@sha256:" + "a" * 64, "PostgreSQL"),
        ("postgis/postgis:16-3.4", "PostgreSQL"),
        ("timescale/timescaledb-ha:pg16", "PostgreSQL"),
        ("registry.opensource.zalan.do/acid/spilo-16:3.2-p2", "PostgreSQL"),
        ("container-registry.oracle.com/database/free:23.4.0.0", "Oracle Database"),
        ("gvenzl/oracle-xe:21-slim", "Oracle Database"),
        ("selenium/node-chrome:4.21.0-20240522", "Chrome/Selenium"),
        ("selenium/standalone-firefox:4.21", "Chrome/Selenium"),
        ("zenika/alpine-chrome:124", "Chrome/Selenium"),
        ("chromedp/headless-shell:latest", "Chrome/Selenium"),
        ("mcr.microsoft.com/playwright:v1.44.0-jammy", "Chrome/Selenium"),
        ("nvcr.io/nvidia/pytorch:24.05-py3", "PyTorch"),
        ("quay.io/jupyter/pytorch-notebook:2024-06-17", "PyTorch"),
        ("pytorch/torchserve:0.11.0-gpu", "PyTorch"),
        ("rayproject/ray:2.9.0", "Ray"),
        ("rayproject/ray-ml:2.9.0-gpu", "Ray"),
        ("vllm/vllm-openai:v0.5.0", "vLLM"),
        # not the software, or another one whose name merely contains it
        ("prometheuscommunity/postgres-exporter:v0.15.0", None),
        ("registry.opensource.zalan.do/acid/postgres-operator:v1.12.2", None),
        ("bitnami/pgbouncer:1.22", None),
        ("container-registry.oracle.com/os/oraclelinux:9", None),
        ("amazon/aws-xray-daemon:3.3.10", None),
        ("nvcr.io/nvidia/k8s/dcgm-exporter:3.3.6-3.4.2-ubuntu22.04", None),
        ("localhost/shmfix/busybox:local", None),
        ("registry.example.com/shop/checkout:5.2.0", None),
        ("", None),
        (None, None),
    ],
)
def test_likely_software_from_the_image_name(image, software):
    assert ev.likely_software(image) == software


def test_image_path_drops_registry_tag_and_digest():
    assert ev.image_path("localhost:5000/team/PG:16@sha256:abc") == "team/pg"
    assert ev.image_path("docker.io/library/postgres:16") == "library/postgres"
    assert ev.image_path("postgres:16") == "postgres"
    assert ev.image_path("team/app") == "team/app"


@pytest.mark.parametrize(
    "name,expected",
    [
        ("postgresql-bitnami-statefulset", [("postgresql", "PostgreSQL")]),
        ("statefulset-oracle-disk-shm", [("oracle", "Oracle Database")]),
        ("deployment-selenium-chrome", [("selenium-grid-selenium-node-chrome", "Chrome/Selenium")]),
        ("ray-head-kuberay-pod", [("ray-head", "Ray")]),
        # the trainer runs PyTorch; its dcgm-exporter sidecar does not count
        ("deployment-pytorch-mixed-mounts", [("trainer", "PyTorch")]),
        ("deployment-argocd-gunicorn", []),
        ("cronjob-batch-inference", []),
    ],
)
def test_likely_from_the_pod_templates_of_real_manifests(name, expected):
    obj = manifest(name)
    template = obj if obj["kind"] == "Pod" else (obj["spec"].get("jobTemplate", {}).get("spec") or obj["spec"])["template"]
    assert [(x["container"], x["software"]) for x in ev.likely_from_pod_spec(template["spec"])] == expected


# --------------------------------------------------------------------------- which pods are whose


def test_a_deployments_pod_is_found_through_its_replicaset_name_and_template_hash():
    pod = fixture("pod-mmap-writer.json")
    records = [record("Deployment", "mmap-writer"), record("Deployment", "mmap"), record("Deployment", "quiet")]
    found = ev.pods_by_record([pod, fixture("pod-quiet.json")], records)
    assert [p["metadata"]["name"] for p in found[("Deployment", "evidence-dev", "mmap-writer")]] == [pod["metadata"]["name"]]
    assert ("Deployment", "evidence-dev", "mmap") not in found
    assert len(found[("Deployment", "evidence-dev", "quiet")]) == 1


def test_pods_of_other_namespaces_unselected_owners_and_bare_pods():
    pod = fixture("pod-mmap-writer.json")
    assert ev.pods_by_record([pod], [record("Deployment", "mmap-writer", namespace="other")]) == {}
    bare = fixture("pod-oom-mmap.json")
    assert ev.pods_by_record([bare], [record("Pod", "oom-mmap")]) == {("Pod", "evidence-dev", "oom-mmap"): [bare]}
    assert ev.pods_by_record([bare], [record("Deployment", "oom-mmap")]) == {}


def test_a_jobs_pod_counts_for_the_job_and_its_cronjob():
    pod = {"metadata": {"name": "nightly-29001-x", "namespace": "ml", "ownerReferences": [{"kind": "Job", "name": "nightly-29001", "controller": True}]}}
    cron = record("CronJob", "nightly", namespace="ml")
    job = record("Job", "nightly-29001", namespace="ml", owner={"kind": "CronJob", "name": "nightly"})
    assert set(ev.pods_by_record([pod], [cron, job])) == {("Job", "ml", "nightly-29001"), ("CronJob", "ml", "nightly")}
    # Jobs not selected (kinds: [CronJob]): the Job's name still leads to its CronJob
    assert set(ev.pods_by_record([pod], [cron])) == {("CronJob", "ml", "nightly")}


# --------------------------------------------------------------------------- evidence items


def test_sigbus_of_the_mmap_writer_on_the_runtime_default_is_evidence():
    pod = fixture("pod-mmap-writer.json")
    items = ev.terminations(pod)
    assert [(i["kind"], i["container"], i["exit_code"]) for i in items] == [("sigbus", "main", 135)]
    assert items[0]["restarts"] == pod["status"]["containerStatuses"][0]["restartCount"] >= 1
    assert "SIGBUS (exit code 135" in items[0]["message"] and pod["metadata"]["name"] in items[0]["message"]
    # what the container printed before the signal: 64 MiB, the runtime default
    assert fixture("log-mmap-writer-previous.txt").splitlines()[-1] == "shm-mmap: written 64 MiB (67108864 bytes)"


def test_an_oom_kill_is_evidence_with_the_shm_usage_df_saw():
    pod = fixture("pod-oom-mmap.json")
    [item] = ev.terminations(pod, {"main": (39 * MI, 64 * MI)})
    assert item["kind"] == "oom_killed" and item["exit_code"] == 137
    assert (item["shm_used_bytes"], item["shm_size_bytes"]) == (39 * MI, 64 * MI)
    assert "39 MiB used of 64 MiB" in item["message"]
    assert "usage not read" in ev.terminations(pod)[0]["message"]


def test_a_signal_7_without_exit_code_and_other_terminations():
    base = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 0, "signal": 7}}}]}}
    assert ev.terminations(base)[0]["kind"] == "sigbus"
    for term in ({"exitCode": 1, "reason": "Error"}, {"exitCode": 137, "reason": "Error"}, {"exitCode": 0, "reason": "Completed"}):
        pod = copy.deepcopy(base)
        pod["status"]["containerStatuses"][0]["state"] = {"terminated": term}
        assert ev.terminations(pod) == []
    assert ev.terminations(fixture("pod-quiet.json")) == []


def test_df_usage_above_the_threshold_is_evidence():
    row = dfparse.parse_df(fixture("df-shm-filler.txt"))
    entry = dict(row, pod="shm-filler-x", container="main")
    item = ev.df_item(entry)
    assert (item["used_bytes"], item["size_bytes"], item["percent"], item["threshold"]) == (56 * MI, 64 * MI, 87.5, 80)
    assert item["message"] == "pod shm-filler-x container main: /dev/shm 56 MiB used of 64 MiB (88 %, threshold 80 %)"
    assert ev.df_item(entry, threshold=90) is None
    assert ev.df_item(dict(entry, used_bytes=0)) is None
    assert ev.df_item(dict(entry, used_bytes=None)) is None


def test_df_usage_is_measured_against_a_smaller_size_limit_on_an_eviction_node():
    half_ram = 12 * 1024 * MI
    entry = {"pod": "p", "container": "c", "used_bytes": 240 * MI, "size_bytes": half_ram}
    item = ev.df_item(entry, 80, size_limit_bytes=256 * MI)
    assert item["size_bytes"] == 256 * MI and item["percent"] == 93.8
    assert "of its sizeLimit 256 MiB" in item["message"]
    assert ev.df_item(entry, 80) is None  # against half the RAM it is 2 %


def test_no_space_left_in_a_log_tail_is_evidence():
    item = ev.log_item("enospc-logger-x", "main", fixture("log-enospc-logger.txt"), lines=200)
    assert item["count"] == 1 and item["line"] == "dd: error writing '/dev/shm/x': No space left on device"
    assert item["previous"] is False and "1 of the last 200 log lines" in item["message"]
    pytorch = "RuntimeError: DataLoader worker (pid 42) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory."
    assert ev.log_item("p", "c", "epoch 1\n" + pytorch, previous=True)["previous"] is True
    assert ev.log_item("p", "c", fixture("log-mmap-writer-previous.txt")) is None
    assert ev.scan_log("") == (0, None)


# --------------------------------------------------------------------------- levels, targets, findings


def test_levels_and_what_each_target_selects():
    sig = ev.terminations(fixture("pod-mmap-writer.json"))
    likely = [{"container": "postgres", "image": "postgres:16", "software": "PostgreSQL"}]
    evidence = ev.evidence_record(likely, sig, ["images", "pod statuses"], 1)
    only_likely = ev.evidence_record(likely, [], ["images", "pod statuses"], 0)
    none = ev.evidence_record([], [], ["images", "pod statuses"], 1)
    assert (evidence["level"], only_likely["level"], none["level"]) == ("evidence", "likely", "none")
    chosen = {t: [ev.selected(e, t) for e in (evidence, only_likely, none)] for t in ev.TARGETS}
    assert chosen == {"all": [True, True, True], "evidence": [True, False, False], "likely": [True, True, False]}
    assert ev.why(evidence, "evidence").startswith("evidence of shm pressure: pod mmap-writer-")
    assert ev.why(none, "evidence") == "no evidence of shm pressure (checked: images, pod statuses)"
    assert ev.why(only_likely, "evidence").endswith("remediate_target=likely would change it")
    assert ev.why(only_likely, "likely").startswith("likely to need shared memory (postgres runs PostgreSQL)")
    assert ev.summarize([{"evidence": evidence}, {"evidence": none}, {}]) == {"evidence": 1, "likely": 0, "none": 1}


def test_findings_of_evidence_and_likely():
    items = ev.terminations(fixture("pod-mmap-writer.json")) * 2
    found = evidence_findings(ev.evidence_record([], items, []), "runtime_default")
    assert [(f["severity"], f["code"]) for f in found] == [("warning", "shm_pressure_sigbus")]
    assert "(and 1 more)" in found[0]["message"]
    likely = [{"container": "db", "image": "postgres:16", "software": "PostgreSQL"}]
    assert [f["code"] for f in evidence_findings(ev.evidence_record(likely, [], []), "runtime_default")] == ["likely_needs_shm"]
    # a sized /dev/shm needs no hint, and evidence makes the hint moot
    assert evidence_findings(ev.evidence_record(likely, [], []), "sized") == []
    assert [f["code"] for f in evidence_findings(ev.evidence_record(likely, items, []), "runtime_default")] == ["shm_pressure_sigbus"]


# --------------------------------------------------------------------------- options and what is read (no API)


def test_evidence_options_defaults_and_refusals():
    from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
    from ansible_collections.shmfix.k8s.plugins.module_utils.options import evidence_options

    assert evidence_options({}) == {"evidence": True, "df": False, "threshold": 80, "logs": False, "log_lines": 200}
    assert evidence_options({"evidence_df": True, "evidence_df_threshold": 95, "evidence_logs": True, "evidence_log_lines": 50})["threshold"] == 95
    for params, words in (
        ({"evidence_df_threshold": 0}, "evidence_df_threshold must be a percentage from 1 to 100, got 0"),
        ({"evidence_df_threshold": 101}, "got 101"),
        ({"evidence_log_lines": 0}, "evidence_log_lines must be at least 1"),
        ({"evidence": False, "evidence_logs": True}, "drop evidence=false"),
    ):
        with pytest.raises(ShmfixError) as err:
            evidence_options(params)
        assert words in err.value.msg


def test_what_is_read_in_which_pod():
    from ansible_collections.shmfix.k8s.plugins.module_utils.evidence_reads import df_jobs, log_jobs

    writer, filler, oom = fixture("pod-mmap-writer.json"), fixture("pod-shm-filler.json"), fixture("pod-oom-mmap.json")
    # df only where a container runs: not in the crash-looping writer nor the failed pod
    assert [(p["metadata"]["name"], c) for p, c in df_jobs([writer, filler, oom])] == [(filler["metadata"]["name"], "main")]
    two = copy.deepcopy(filler)
    two["spec"]["containers"].append(dict(two["spec"]["containers"][0], name="side"))
    two["status"]["containerStatuses"].append(dict(two["status"]["containerStatuses"][0], name="side"))
    assert [c for _, c in df_jobs([two])] == ["main"]  # both see the sandbox's /dev/shm: measured once
    two["spec"]["containers"][1]["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert [c for _, c in df_jobs([two])] == ["main", "side"]
    # logs: the writer's previous run (it is waiting to restart), the failed pod's only run
    assert [(c, prev) for _, c, prev in log_jobs([writer])] == [("main", True)]
    assert [(c, prev) for _, c, prev in log_jobs([oom, filler])] == [("main", False), ("main", False)]
