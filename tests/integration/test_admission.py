"""The admission policy (shmfix.k8s.admission_policy's module_utils) on the embedded cluster's API server, which serves
MutatingAdmissionPolicy v1beta1 (localcluster/lib/common.sh turns it on).

- The CEL twin of the size policy and the planner: the same pods are admitted by the API server (dry-run creates: no pod
  runs) and planned by size_policy.desired_size + plan.plan in Python; the volumes and /dev/shm mounts must be the same,
  under four policies (default ratio, fixed size, ratio clamped by min/max, existing=replace) at once, each bound to its
  own namespace.
- The user's view: ``kubectl create deployment`` of the plain busybox image before and after the policy; ``df /dev/shm``
  in the new pod shows 64 MiB, then the size the policy computed (1Gi without a memory limit, half the limit with one),
  on the sized node. A pod with ``shmfix.io/skip`` and one that has its /dev/shm are stored as sent.
- ``state: absent`` leaves nothing of shmfix's behind, and a new pod is no longer changed.

Every policy is bound to this file's namespaces only (b-adm-*): the other tests' pods are never mutated.
Costs about 40 s (three pods run; the rest are dry runs).
"""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
from helpers import CONTEXT, import_collection
from localcluster_helpers import BUSYBOX, SIZED_NODE, df_k

import_collection()

from ansible_collections.shmfix.k8s.plugins.module_utils import admission, admission_policy, client, plan, podspec, size_policy
from ansible_collections.shmfix.k8s.plugins.module_utils.options import size_options
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes

MI, GI = 1024**2, 1024**3
ADMITTED = admission_policy.ANNOTATION_ADMITTED
POLICIES = {
    "default": {},
    "fixed": {"size_limit": "256Mi"},
    "clamped": {"size_ratio": 0.25, "min_size": "128Mi", "max_size": "2Gi"},
    "replace": {"existing": "replace", "size_ratio": 0.5},
}


def params(name, namespace, **over):
    p = {
        "name": name,
        "state": "present",
        "mode": "auto",
        "validation_actions": ["Warn", "Audit"],
        "namespaces": [namespace],
        "exclude_namespaces": ["kube-system", "kube-public", "kube-node-lease"],
        "label_selector": None,
        "size_limit": None,
        "size_ratio": None,
        "min_size": None,
        "max_size": None,
        "existing": "grow",
        "volume_name": "dshm",
    }
    p.update(over)
    return p


def container(name="main", limit=None, mounts=None, restart_policy=None):
    c = {"name": name, "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}
    if limit:
        c["resources"] = {"limits": {"memory": limit}}
    if mounts:
        c["volumeMounts"] = mounts
    if restart_policy:
        c["restartPolicy"] = restart_policy
    return c


def pod(name, containers=None, volumes=None, annotations=None, init=None, **spec):
    body = {"automountServiceAccountToken": False, "containers": containers or [container()], "terminationGracePeriodSeconds": 1}
    if volumes:
        body["volumes"] = volumes
    if init:
        body["initContainers"] = init
    body.update(spec)
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


SHM = [{"name": "dshm", "mountPath": "/dev/shm"}]


def memory(name="dshm", size=None):
    empty = {"medium": "Memory"}
    if size:
        empty["sizeLimit"] = size
    return {"name": name, "emptyDir": empty}


# Pods whose admission the CEL must decide as the Python planner does.
CASES = [
    pod("plain"),
    pod("limit-3gi", [container(limit="3Gi")]),
    pod("limit-1g-decimal", [container(limit="1G")]),
    pod("one-limit-missing", [container("a", limit="2Gi"), container("b")]),
    pod("two-limits", [container("a", limit="2Gi"), container("b", limit="1Gi")]),
    pod("init-larger", [container(limit="1Gi")], init=[container("setup", limit="6Gi")]),
    pod("native-sidecar", [container(limit="1Gi")], init=[container("proxy", limit="512Mi", restart_policy="Always")]),
    pod("small-limit", [container(limit="100Mi")]),
    pod("annotated-size", annotations={podspec.ANNOTATION_SIZE_LIMIT: "300Mi"}),
    pod("bad-annotation", annotations={podspec.ANNOTATION_SIZE_LIMIT: "lots"}),
    pod("skipped", annotations={podspec.ANNOTATION_SKIP: "true"}),
    pod("skip-false", annotations={podspec.ANNOTATION_SKIP: "False"}),
    pod("host-ipc", hostIPC=True),
    pod("has-128mi", [container(mounts=SHM)], volumes=[memory(size="128Mi")]),
    pod("has-8gi", [container(mounts=SHM)], volumes=[memory(size="8Gi")]),
    pod("unbounded", [container(mounts=SHM)], volumes=[memory()]),
    pod("unbounded-limited", [container(limit="2Gi", mounts=SHM)], volumes=[memory()]),
    pod("disk-backed", [container(mounts=SHM)], volumes=[{"name": "dshm", "emptyDir": {}}]),
    pod("half-mounted", [container("a", mounts=SHM), container("b")], volumes=[memory(size="128Mi")]),
    pod("name-taken", [container(mounts=[{"name": "dshm", "mountPath": "/data"}])], volumes=[{"name": "dshm", "emptyDir": {}}]),
]


def python_admits(obj, options):
    """What fix-shm's planner gives this pod under ``options`` (size_options): the pod spec after, or None (left as sent)."""
    meta, spec = obj["metadata"], obj["spec"]
    if podspec.is_skipped(pod_metadata=meta) or spec.get("hostIPC"):
        return None
    raw = podspec.annotation(podspec.ANNOTATION_SIZE_LIMIT, pod_metadata=meta)
    try:
        annotation_bytes = None if raw is None else parse_bytes(raw, "annotation")
    except ValueError:
        return None
    size, _source = size_policy.desired_size(
        spec,
        parse=parse_bytes,
        size_limit=options["size_limit"],
        size_ratio=options["size_ratio"],
        min_size=options["min_size"],
        max_size=options["max_size"],
        annotation_bytes=annotation_bytes,
    )
    planned = plan.plan(spec, parse=parse_bytes, size_bytes=size, existing=options["existing"], volume_name=options["volume_name"])
    return plan.apply_plan(spec, planned) if planned["patch"] else None


def shm_view(spec):
    """The parts admission may change: volumes by name, each regular container's mounts."""
    return {
        "volumes": sorted(spec.get("volumes") or [], key=lambda v: v["name"]),
        "mounts": {c["name"]: sorted((m["name"], m["mountPath"]) for m in c.get("volumeMounts") or []) for c in spec["containers"]},
    }


@pytest.fixture(scope="module")
def kube(kubeconfig):
    return client.Kube(params={"kubeconfig": str(kubeconfig), "context": CONTEXT})


@pytest.fixture(scope="module")
def namespaces(kubectl):
    """One namespace per policy of POLICIES plus 'user' (kubectl create deployment) and 'vap' (the warning policy), deleted afterwards."""
    suffix = uuid.uuid4().hex[:6]
    names = {key: f"b-adm-{key}-{suffix}" for key in list(POLICIES) + ["user", "vap"]}
    for name in names.values():
        kubectl("create", "namespace", name)
    yield names
    for name in names.values():
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def dry_run_create(kube, namespace, obj):
    path = client.resource_path("v1", "pods", namespace)
    return kube.request("POST", path, query={"dryRun": "All"}, body=obj, verb="create", resource="pods", namespace=namespace)


def wait_effective(kube, namespace, present=True, timeout=30):
    """Until a plain pod's dry-run create is (present) or is no longer (absent) changed by the policy: the API server's
    policy informer picks a new object up after a moment."""
    deadline = time.monotonic() + timeout
    while True:
        got = dry_run_create(kube, namespace, pod("probe-" + uuid.uuid4().hex[:6]))
        if (ADMITTED in (got["metadata"].get("annotations") or {})) == present:
            return got
        assert time.monotonic() < deadline, f"policy in {namespace} not {'effective' if present else 'gone'} after {timeout}s"
        time.sleep(0.5)


def remove(kube, name, namespace):
    return admission.run_admission(kube, params(name, namespace, state="absent"))


@pytest.fixture(scope="module")
def installed(kube, namespaces):
    """The four policies of POLICIES, each bound to its namespace; removed afterwards (and checked gone)."""
    found = admission.served(kube)
    assert found["mutating"] == "admissionregistration.k8s.io/v1beta1", f"the embedded API server should serve MAP v1beta1, discovery says {found}"
    results = {}
    for key, over in POLICIES.items():
        results[key] = admission.run_admission(kube, params(f"shmfix-b-{key}", namespaces[key], **over))
    for key in POLICIES:
        wait_effective(kube, namespaces[key])
    yield results
    for key in POLICIES:
        remove(kube, f"shmfix-b-{key}", namespaces[key])


def test_discovery_picks_the_served_mutating_version(installed):
    for result in installed.values():
        assert result["changed"] is True
        assert [(o["kind"], o["action"]) for o in result["objects"]] == [("MutatingAdmissionPolicy", "created"), ("MutatingAdmissionPolicyBinding", "created")]
        assert result["active"]["label"] == "mutating v1beta1"


@pytest.mark.parametrize("key", list(POLICIES))
def test_the_api_server_admits_each_pod_as_the_python_planner_plans_it(kube, namespaces, installed, key):
    options = size_options(params("x", "x", **POLICIES[key]))
    mismatches, changed = [], 0
    for case in CASES:
        got = dry_run_create(kube, namespaces[key], copy.deepcopy(case))
        want = python_admits(case, options)
        admitted = (got["metadata"].get("annotations") or {}).get(ADMITTED)
        expected_view = shm_view(want if want is not None else case["spec"])
        if shm_view(got["spec"]) != expected_view or (admitted is not None) != (want is not None):
            mismatches.append((case["metadata"]["name"], {"api_server": shm_view(got["spec"]), "admitted_by": admitted, "python": expected_view}))
        changed += want is not None
    assert mismatches == [], json.dumps(mismatches, indent=1)
    assert 5 <= changed < len(CASES)  # the cases cover both sides under every policy


def test_rerun_is_unchanged_and_check_mode_writes_nothing(kube, namespaces, installed):
    again = admission.run_admission(kube, params("shmfix-b-fixed", namespaces["fixed"], **POLICIES["fixed"]))
    assert again["changed"] is False and {o["action"] for o in again["objects"]} == {"unchanged"}
    preview = admission.run_admission(kube, params("shmfix-b-fixed", namespaces["fixed"], size_limit="512Mi"), check_mode=True, want_diff=True)
    assert preview["changed"] is True and {o["action"] for o in preview["objects"]} == {"configured"}
    assert any("512Mi" in json.dumps(d["after"]) and "256Mi" in json.dumps(d["before"]) for d in preview["diff"])
    live = kube.get(client.resource_path("admissionregistration.k8s.io/v1beta1", "mutatingadmissionpolicies", name="shmfix-b-fixed"))
    assert json.loads(live["metadata"]["annotations"][admission_policy.ANNOTATION_POLICY])["size_limit"] == "256Mi"


def create_deployment(kubectl, namespace, name, limit=None):
    """``kubectl create deployment`` of the plain busybox image, on the sized node (a nodeSelector added to the same object)."""
    obj = json.loads(kubectl("create", "deployment", name, f"--image={BUSYBOX}", "--dry-run=client", "-o", "json", "--", "sleep", "3600"))
    spec = obj["spec"]["template"]["spec"]
    spec["nodeSelector"] = {"shmfix.io/node-mode": "sized"}
    spec["terminationGracePeriodSeconds"] = 1
    if limit:
        spec["containers"][0]["resources"] = {"limits": {"memory": limit}}
    kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))
    kubectl("rollout", "status", "-n", namespace, f"deployment/{name}", "--timeout=120s")
    (running,) = [p for p in kubectl.json("get", "pods", "-n", namespace, "-l", f"app={name}")["items"] if not p["metadata"].get("deletionTimestamp")]
    assert running["spec"]["nodeName"] == SIZED_NODE
    return running


def shm_mounts(obj):
    return [m for c in obj["spec"]["containers"] for m in c.get("volumeMounts") or [] if m["mountPath"] == "/dev/shm"]


def test_kubectl_create_deployment_gets_the_computed_dev_shm(kube, kubectl, namespaces):
    ns = namespaces["user"]
    before = create_deployment(kubectl, ns, "before")
    assert shm_mounts(before) == [] and ADMITTED not in (before["metadata"].get("annotations") or {})
    assert df_k(kubectl, ns, before["metadata"]["name"])["size_kib"] == 64 * 1024  # the runtime default

    result = admission.run_admission(kube, params("shmfix-b-user", ns))
    try:
        assert result["changed"] is True
        wait_effective(kube, ns)
        plain = create_deployment(kubectl, ns, "after")
        ratio = create_deployment(kubectl, ns, "after-limit", limit="512Mi")
        skipped = pod("skipped", annotations={podspec.ANNOTATION_SKIP: "true"})
        own = pod("own-shm", [container(mounts=SHM)], volumes=[memory(size="2Gi")])
        for obj in (skipped, own):
            kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj))
        stored = {name: kubectl.json("get", "pod", "-n", ns, name) for name in ("skipped", "own-shm")}
    finally:
        removed = remove(kube, "shmfix-b-user", ns)

    for got, size in ((plain, "1Gi"), (ratio, "256Mi")):  # no memory limit: 1Gi; half of 512Mi
        assert got["metadata"]["annotations"][ADMITTED] == "shmfix-b-user"
        assert [v for v in got["spec"]["volumes"] if v["name"] == "dshm"] == [memory(size=size)]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in got["spec"]["containers"][0]["volumeMounts"]
        assert df_k(kubectl, ns, got["metadata"]["name"])["size_kib"] * 1024 == parse_bytes(size, "size")
    assert "volumes" not in stored["skipped"]["spec"] and ADMITTED not in (stored["skipped"]["metadata"].get("annotations") or {})
    assert stored["own-shm"]["spec"]["volumes"] == [memory(size="2Gi")] and ADMITTED not in (stored["own-shm"]["metadata"].get("annotations") or {})
    # the Deployments kubectl created are as kubectl sent them: only their pods were mutated (no GitOps drift)
    assert "volumes" not in kubectl.json("get", "deployment", "-n", ns, "after")["spec"]["template"]["spec"]

    assert removed["changed"] is True and sorted(o["action"] for o in removed["objects"]) == ["deleted", "deleted"]
    left = kubectl("get", "mutatingadmissionpolicies,mutatingadmissionpolicybindings", "-l", "shmfix.io/admission=shmfix-b-user", "-o", "name")
    assert left.strip() == ""
    wait_effective(kube, ns, present=False)
    assert remove(kube, "shmfix-b-user", ns)["changed"] is False


def workload(name, annotations=None, volumes=None, mounts=None):
    """A Deployment of 0 replicas (no pods: the warning is about the object kubectl applies)."""
    spec = {"containers": [container(mounts=mounts)]}
    if volumes:
        spec["volumes"] = volumes
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}}, "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


def warnings_of(kubectl, namespace, obj, *extra):
    proc = kubectl.run("apply", "-n", namespace, "-f", "-", *extra, input=json.dumps(obj))
    assert proc.returncode == 0, proc.stderr  # warned, never denied
    return [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]


def test_the_validating_policy_warns_kubectl_and_denies_nothing(kube, kubectl, namespaces):
    """mode=validating, what mode=auto installs where MutatingAdmissionPolicy is not served (forced here: this API server serves it)."""
    ns = namespaces["vap"]
    result = admission.run_admission(kube, params("shmfix-b-vap", ns, mode="validating"))
    try:
        assert [(o["kind"], o["api_version"]) for o in result["objects"]] == [
            ("ValidatingAdmissionPolicy", "admissionregistration.k8s.io/v1"),
            ("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io/v1"),
        ]
        assert result["active"]["label"] == "validating Warn,Audit"
        deadline = time.monotonic() + 30
        while not warnings_of(kubectl, ns, workload("probe"), "--dry-run=server"):
            assert time.monotonic() < deadline, "the warning policy is not effective after 30 s"
            time.sleep(0.5)
        plain = warnings_of(kubectl, ns, workload("web"))
        skipped = warnings_of(kubectl, ns, workload("skipped", annotations={podspec.ANNOTATION_SKIP: "true"}))
        sized = warnings_of(kubectl, ns, workload("sized", volumes=[memory(size="2Gi")], mounts=SHM))
        bare = warnings_of(kubectl, ns, pod("bare"), "--dry-run=server")
    finally:
        removed = remove(kube, "shmfix-b-vap", ns)
    (line,) = plain
    assert (
        f"Deployment {ns}/web: /dev/shm is the runtime default (64 MiB); shmfix would give it an emptyDir {{medium: Memory, sizeLimit: 1Gi}} at /dev/shm."
        in line
    )
    assert "fix-shm.yml" in line and "shmfix.io/skip=true" in line
    assert kubectl.json("get", "deployment", "-n", ns, "web")["metadata"]["name"] == "web"  # created: Warn and Audit deny nothing
    assert skipped == [] and sized == []
    (line,) = bare
    assert f"Pod {ns}/bare: /dev/shm is the runtime default (64 MiB)" in line and "cannot be patched later" in line
    assert sorted(o["action"] for o in removed["objects"]) == ["deleted", "deleted"]
    left = kubectl("get", "validatingadmissionpolicies,validatingadmissionpolicybindings", "-l", "shmfix.io/admission=shmfix-b-vap", "-o", "name")
    assert left.strip() == ""


def test_an_object_of_the_same_name_that_is_not_shmfixs_is_never_touched(kube, kubectl, namespaces):
    """state present refuses to overwrite it, state absent leaves it (only objects with shmfix's labels are deleted)."""
    name = "shmfix-b-foreign-" + uuid.uuid4().hex[:6]
    (policy, _binding) = admission_policy.mutating_objects(name, "admissionregistration.k8s.io/v1beta1", size_options({}), {"namespaces": [namespaces["user"]]})
    policy["metadata"]["labels"] = {"team": "someone-else"}
    kubectl("create", "-f", "-", input=json.dumps(policy))
    try:
        with pytest.raises(admission.ShmfixError, match="is not shmfix's"):
            admission.run_admission(kube, params(name, namespaces["user"]))
        assert remove(kube, name, namespaces["user"])["changed"] is False
        assert kubectl.json("get", "mutatingadmissionpolicy", name)["metadata"]["labels"] == {"team": "someone-else"}
        assert kubectl("get", "mutatingadmissionpolicybinding", name, "--ignore-not-found", "-o", "name").strip() == ""
    finally:
        kubectl.run("delete", "mutatingadmissionpolicy", name, "--ignore-not-found", check=False)
