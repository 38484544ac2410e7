"""Bad input, table-driven (issue 11): modules, roles, playbooks and inventories, on the real cluster.

Every case asserts that its message names the bad input and says what to do, and that nothing was
written: the resourceVersion of every object in the target namespace is the same after the runs.
The cases run in two processes: one play on localhost with a task per module case (MODULE_CASES),
and one fix-shm.yml run over an inventory with a host per playbook/inventory case (HOST_CASES) plus
one good host whose namespace holds workloads with bad annotations (a finding for that workload
only; the others are fixed) and an object whose annotations are near the API server's 256 KiB limit.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from fault_helpers import PlaybookRun, create_namespaces, create_workloads, delete_namespaces, deployment, wait_rolled_out, write_inventory
from helpers import CONTEXT, VENV_BIN, playbook_env, single_report
from localcluster_helpers import REPO_ROOT, STATE

KUBECONFIG = STATE / "kubeconfig"
# (id, module, options, fragments the message must hold: the bad input, then what to do)
MODULE_CASES = [
    ("size-unit", "shm_patch", {"size_limit": "12XB"}, ["size_limit", "12XB"]),
    ("size-negative", "shm_patch", {"size_limit": "-1Gi"}, ["size_limit", "-1Gi"]),
    ("size-not-a-number", "shm_patch", {"size_limit": "lots"}, ["size_limit", "lots"]),
    ("ratio-above-one", "shm_patch", {"size_ratio": 1.5}, ["size_ratio", "1.5"]),
    ("ratio-zero", "shm_patch", {"size_ratio": 0}, ["size_ratio", "0"]),
    ("limit-and-ratio", "shm_patch", {"size_limit": "1Gi", "size_ratio": 0.5}, ["size_limit", "size_ratio", "mutually exclusive"]),
    ("min-above-max", "shm_patch", {"min_size": "2Gi", "max_size": "1Gi"}, ["min_size", "max_size", "give min_size <= max_size"]),
    ("kind-typo", "shm_patch", {"kinds": ["Deploymnet"]}, ["kinds", "Deploymnet", "Deployment"]),
    ("existing-choice", "shm_patch", {"existing": "sometimes"}, ["existing", "sometimes"]),
    ("volume-name", "shm_patch", {"volume_name": "Dev_Shm"}, ["volume_name", "Dev_Shm", "e.g. dshm"]),
    ("namespace-invalid", "shm_info", {"namespaces": ["Bad_NS!"]}, ["Bad_NS!", "does not exist"]),
    ("selector-syntax", "shm_info", {"label_selector": "app in ("}, ["label_selector", "app in (", "malformed"]),
    ("name-matches-nothing", "shm_patch", {"names": ["Not_A_Name"]}, ["'Not_A_Name'", "matched no workload", "check the spelling"]),
    ("kubeconfig-missing", "shm_info", {"kubeconfig": "/nonexistent/kubeconfig"}, ["/nonexistent/kubeconfig", "cannot be read", "set the kubeconfig option"]),
    ("kubeconfig-garbage", "shm_info", {"kubeconfig": "@garbage"}, ["cannot be parsed", "@garbage"]),
    ("kubeconfig-dict-empty", "shm_info", {"kubeconfig": {"apiVersion": "v1", "kind": "Config"}}, ["kubeconfig given as a dict", "context"]),
    ("context-unknown", "shm_info", {"context": "no-such-context"}, ["no-such-context", "available contexts", CONTEXT]),
    ("ca-cert-missing", "shm_info", {"ca_cert": "/nonexistent/ca.pem"}, ["ca_cert", "/nonexistent/ca.pem", "cannot be read"]),
    ("client-cert-garbage", "shm_info", {"client_cert": "@garbage", "client_key": "@garbage"}, ["client_cert", "@garbage", "cannot be loaded", "give a PEM"]),
    ("host-unreachable", "shm_info", {"host": "https://127.0.0.1:1", "api_key": "not-a-real-token", "kubeconfig": None}, ["127.0.0.1:1", "check host"]),
    ("host-not-a-url", "shm_info", {"host": "not a url", "api_key": "not-a-real-token", "kubeconfig": None}, ["host", "not a url", "https://<address>:<port>"]),
    ("token-wrong", "shm_info", {"host": "@apiserver", "api_key": "wrong-token", "validate_certs": False, "kubeconfig": None}, ["unauthorized", "api_key"]),
    ("tls-untrusted", "shm_info", {"host": "@apiserver", "api_key": "wrong-token", "kubeconfig": None}, ["TLS", "ca_cert"]),
    ("crd-unknown", "shm_info", {"kinds": [], "extra_kinds": [{"api_version": "faults.shmfix.io/v1", "kind": "NoSuchWidget"}]}, ["NoSuchWidget"]),
    (
        "crd-template-path",
        "shm_patch",
        {"names": ["widget"], "extra_kinds": [{"api_version": "@crd", "kind": "FaultWidget", "template_path": "spec.podTemplate"}]},
        ["spec.podTemplate"],
    ),
    ("rollout-kind", "rollout_status", {"workloads": [{"kind": "Deploymnet", "namespace": "@ns", "name": "w-ok"}]}, ["Deploymnet"]),
]
# (id, host vars, fragments of the cluster's failure message in report.json)
HOST_CASES = [
    ("role-size-limit", {"remediate_size_limit": "lots"}, ["size_limit", "lots"]),
    ("role-batch-size-type", {"remediate_batch_size": "five"}, ["remediate_batch_size", "five"]),
    ("role-min-above-max", {"remediate_min_size": "2Gi", "remediate_max_size": "1Gi"}, ["min_size", "max_size"]),
    ("role-namespaces-dict", {"remediate_namespaces": {"a": 1}}, ["remediate_namespaces"]),
    ("role-kinds-typo", {"remediate_kinds": ["Pod", "Deploymnet"]}, ["Deploymnet"]),
    ("role-ratio-type", {"remediate_size_ratio": "half"}, ["remediate_size_ratio", "float"]),  # Ansible's own check does not repeat the value
    ("role-var-typo", {"remediate_sizelimit": "1Gi"}, ["remediate_sizelimit"]),
    ("role-max-failures", {"remediate_max_failures": "many"}, ["remediate_max_failures", "many"]),
    ("role-existing", {"remediate_existing": "sometimes"}, ["existing", "sometimes"]),
    ("role-bool", {"eviction_verify_enabled": "maybe"}, ["eviction_verify_enabled", "maybe"]),
    ("inv-kubeconfig-missing", {"shmfix_kubeconfig": "/nonexistent/kubeconfig"}, ["/nonexistent/kubeconfig", "cannot be read"]),
    ("inv-context-unknown", {"shmfix_context": "no-such-context"}, ["no-such-context", "available contexts"]),
    ("inv-ca-cert-missing", {"shmfix_ca_cert": "/nonexistent/ca.pem"}, ["ca_cert", "/nonexistent/ca.pem"]),
    (
        "inv-token-wrong",
        {"shmfix_host": "@apiserver", "shmfix_api_key": "wrong-token", "shmfix_validate_certs": False, "shmfix_kubeconfig": None},
        ["unauthorized"],
    ),
    ("inv-validate-certs-type", {"shmfix_validate_certs": "perhaps"}, ["validate_certs", "perhaps"]),
]
BIG_ANNOTATION_BYTES = (
    262144 - 150
)  # with the other annotations and the controller's revision: under the API server's 256 KiB total, too close for shmfix.io/original


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


def _server() -> str:
    """The main cluster's API server URL, from its kubeconfig."""
    config = yaml.safe_load(KUBECONFIG.read_text())
    ctx = next(c["context"] for c in config["contexts"] if c["name"] == CONTEXT)
    return next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == ctx["cluster"])


def resource_versions(kubectl, namespace: str) -> dict:
    items = kubectl.json("get", "deployments,faultwidgets.faults.shmfix.io", "-n", namespace)["items"]
    return {(i["kind"], i["metadata"]["name"]): i["metadata"]["resourceVersion"] for i in items}


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "faultwidgets.faults.shmfix.io"},
    "spec": {
        "group": "faults.shmfix.io",
        "scope": "Namespaced",
        "names": {"plural": "faultwidgets", "singular": "faultwidget", "kind": "FaultWidget"},
        "versions": [
            {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
        ],
    },
}


@pytest.fixture(scope="module")
def target(kubectl, tmp_path_factory):
    """The namespace every bad case points at (a Deployment and a FaultWidget), and the good host's namespace."""
    sfx = uuid.uuid4().hex[:6]
    bad_ns, good_ns = f"faults-bad-{sfx}", f"faults-good-{sfx}"
    kubectl.apply(CRD)
    kubectl("wait", "--for=condition=Established", "crd/faultwidgets.faults.shmfix.io", "--timeout=60s")
    create_namespaces(kubectl, [bad_ns, good_ns])
    widget = {
        "apiVersion": "faults.shmfix.io/v1",
        "kind": "FaultWidget",
        "metadata": {"name": "widget"},
        "spec": {"template": deployment("widget", "plain")["spec"]["template"]},
    }
    kubectl.apply(widget, bad_ns)
    create_workloads(kubectl, bad_ns, [deployment("w-ok", "plain")])
    good = [deployment("w-ok", "plain"), deployment("w-bad-size", "plain"), deployment("w-bad-original", "sized64"), deployment("w-big", "plain")]
    good[1]["metadata"]["annotations"]["shmfix.io/size-limit"] = "lots"
    good[2]["metadata"]["annotations"]["shmfix.io/original"] = '{"v": 1, "volume": "not a record"'
    good[3]["metadata"]["annotations"]["big"] = "x" * BIG_ANNOTATION_BYTES
    create_workloads(kubectl, good_ns, good)
    wait_rolled_out(kubectl, [bad_ns, good_ns])
    yield {"bad": bad_ns, "good": good_ns, "workdir": tmp_path_factory.mktemp("bad-inputs")}
    delete_namespaces(kubectl, [bad_ns, good_ns])


def module_play(target: dict, workdir: Path) -> Path:
    garbage = workdir / "garbage.txt"
    garbage.write_text("this is not a kubeconfig: [\n  - nor a certificate\n")
    subst = {"@garbage": str(garbage), "@apiserver": _server(), "@ns": target["bad"], "@crd": "faults.shmfix.io/v1"}

    def fill(value):
        if isinstance(value, str):
            return subst.get(value, value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    tasks = []
    for case in MODULE_CASES:
        case_id, module, options, _fragments = case.values if hasattr(case, "values") else case
        args = {"kubeconfig": str(KUBECONFIG), "context": CONTEXT}
        if module != "rollout_status":
            args["namespaces"] = [target["bad"]]
        args.update(fill(options))
        args = {k: v for k, v in args.items() if v is not None}
        if "host" in options:
            args.pop("context", None)
        tasks.append({"name": case_id, f"shmfix.k8s.{module}": args, "register": "r", "ignore_errors": True})
        tasks.append({"name": f"keep {case_id}", "ansible.builtin.set_fact": {"results": "{{ results | combine({'%s': r}) }}" % case_id}})
    tasks.append(
        {"name": "write", "ansible.builtin.copy": {"content": "{{ results | to_nice_json }}", "dest": str(workdir / "module-results.json"), "mode": "0600"}}
    )
    play = [
        {
            "name": "bad inputs",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"results": {}, "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "tasks": tasks,
        }
    ]
    path = workdir / "module-cases.yml"
    path.write_text(json.dumps(play, indent=1))
    return path, subst


@pytest.fixture(scope="module")
def module_results(kubectl, target):
    workdir = target["workdir"]
    before = resource_versions(kubectl, target["bad"])
    play, subst = module_play(target, workdir)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(play)],
        cwd=REPO_ROOT,
        env=playbook_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    (workdir / "module-cases.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    results = json.loads((workdir / "module-results.json").read_text())
    return {"results": results, "subst": subst, "before": before, "after": resource_versions(kubectl, target["bad"])}


@pytest.mark.parametrize("case_id, module, options, fragments", MODULE_CASES, ids=[_case_id(c) for c in MODULE_CASES])
def test_module_bad_input(module_results, case_id, module, options, fragments):
    result = module_results["results"][case_id]
    message = result.get("msg") or ""
    print(f"{case_id}: {message}")
    assert result.get("failed") is True, result
    assert result.get("changed") is not True, result
    for fragment in fragments:
        fragment = module_results["subst"].get(fragment, fragment)
        assert fragment in message, f"{case_id}: {fragment!r} not in {message!r}"
    assert module_results["after"] == module_results["before"], "an object was written"


@pytest.fixture(scope="module")
def host_results(kubectl, target):
    workdir = target["workdir"]
    hosts = {}
    base = {
        "shmfix_kubeconfig": str(KUBECONFIG),
        "shmfix_context": CONTEXT,
        "eviction_verify_enabled": False,
        "remediate_verify_df": False,
        "remediate_rollout_soak": 0,
    }
    for case_id, host_vars, _fragments in HOST_CASES:
        filled = {k: (_server() if v == "@apiserver" else v) for k, v in host_vars.items()}
        host = {**base, "remediate_namespaces": [target["bad"]], **filled}
        if "shmfix_host" in filled:
            host.pop("shmfix_context")
        hosts[case_id] = {k: v for k, v in host.items() if v is not None}
    hosts["good"] = dict(base, remediate_namespaces=[target["good"]], remediate_size_limit="256Mi")
    inventory = write_inventory(workdir / "hosts.yml", hosts)
    before = {ns: resource_versions(kubectl, ns) for ns in (target["bad"], target["good"])}
    run = PlaybookRun("fix-shm.yml", inventory, playbook_env(workdir / "reports"), workdir / "hosts.log")
    rc = run.wait(900)
    report = single_report(workdir / "reports")
    after = {ns: resource_versions(kubectl, ns) for ns in (target["bad"], target["good"])}
    return {"rc": rc, "output": run.output(), "clusters": {c["name"]: c for c in report["clusters"]}, "before": before, "after": after}


@pytest.mark.parametrize("case_id, host_vars, fragments", HOST_CASES, ids=[c[0] for c in HOST_CASES])
def test_inventory_bad_input(host_results, target, case_id, host_vars, fragments):
    cluster = host_results["clusters"][case_id]
    message = (cluster.get("failure") or {}).get("message") or ""
    print(f"{case_id}: {cluster['status']} {message}")
    assert host_results["rc"] == 2
    assert cluster["status"] in ("failed", "unreachable"), cluster
    for fragment in fragments:
        assert fragment in message, f"{case_id}: {fragment!r} not in {message!r}"
    assert cluster["changed"] == []
    assert host_results["after"][target["bad"]] == host_results["before"][target["bad"]], "an object was written"


def good_entries(host_results) -> dict:
    good = host_results["clusters"]["good"]
    return {w["name"]: w for w in good["changed"] + good["failed"] + good["skipped"] + good["unchanged"]}


def unwritten(host_results, target, name: str) -> bool:
    key = ("Deployment", name)
    return host_results["after"][target["good"]][key] == host_results["before"][target["good"]][key]


def test_bad_size_annotation_is_a_finding_of_its_workload_and_the_others_proceed(host_results, target):
    entries = good_entries(host_results)
    assert entries["w-ok"]["action"] == "patched" and not unwritten(host_results, target, "w-ok")
    size = entries["w-bad-size"]
    messages = [f.get("message", "") for f in size["findings"]]
    assert any("shmfix.io/size-limit" in m and "'lots'" in m and "kubectl annotate" in m for m in messages), messages
    assert size["action"] == "skipped" and unwritten(host_results, target, "w-bad-size"), size


def test_corrupted_original_is_a_finding_and_the_workload_is_left_alone(host_results, target):
    original = good_entries(host_results)["w-bad-original"]
    assert original["action"] == "skipped" and unwritten(host_results, target, "w-bad-original"), original
    assert original["reason"].startswith("bad annotation shmfix.io/original") and "remove the annotation" in original["reason"], original


def test_annotations_near_the_256k_limit_fail_that_workload_with_the_servers_reason(host_results, target):
    big = good_entries(host_results)["w-big"]
    assert big["action"] == "failed" and "metadata.annotations: Too long" in big["reason"] and "262144" in big["reason"], big
    assert unwritten(host_results, target, "w-big")
