"""The benchmark's objects: N Deployments (replicas 0) in one namespace; create, reset, settle, verify.

Shapes rotate with the index i (every contender sees the same objects):

    i % 5 == 0, 1, 2: one container "app", memory limit 512Mi / 1Gi / 2Gi, no /dev/shm volume (to patch)
    i % 5 == 3:       app + sidecar, both with limits, no /dev/shm volume (to patch, two mounts)
    i % 5 == 4:       already mounts an emptyDir dshm (Memory, 1Gi) at /dev/shm (every contender leaves it alone)

`revisionHistoryLimit: 0`: each template change makes the deployment controller create one new (empty)
ReplicaSet and delete the old one, so the namespace always holds one ReplicaSet per Deployment, however
many times the objects are patched and reset.

Reset (``reset``): every Deployment whose pod template is not the original any more gets one JSON merge
patch from the benchmark's own client (kube.Kube) that puts back the original containers and volumes and
removes shmfix's annotation; then ``settle`` waits until the controllers are done: every Deployment
observed (status.observedGeneration == metadata.generation), one ReplicaSet each, none being deleted.
"""

import json
import time

from kube import ApiError, pmap

LABEL = "shmfix-bench"
IMAGE = "localhost/shmfix/busybox:local"
SHM_ANNOTATIONS = ("shmfix.io/original",)
LIMITS = ("512Mi", "1Gi", "2Gi")


def name_of(i):
    return "bench-%05d" % i


def index_of(name):
    return int(name.rsplit("-", 1)[1])


def preexisting(i):
    return i % 5 == 4


def to_patch(n):
    return sum(1 for i in range(n) if not preexisting(i))


def _container(cname, limit, mounts=()):
    c = {
        "name": cname,
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sleep", "3600"],
        "env": [{"name": "ROLE", "value": cname}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": limit}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}] + list(mounts),
    }
    if cname == "app":
        c["ports"] = [{"containerPort": 8080, "name": "http"}]
    return c


def pod_spec(i):
    """The original pod spec of Deployment i (containers and volumes: what a reset puts back)."""
    shape = i % 5
    volumes = [{"name": "config", "emptyDir": {}}]
    if shape in (0, 1, 2):
        containers = [_container("app", LIMITS[shape])]
    elif shape == 3:
        containers = [_container("app", "1Gi"), _container("sidecar", "128Mi")]
    else:
        containers = [_container("app", "2Gi", [{"name": "dshm", "mountPath": "/dev/shm"}])]
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}})
    return {"containers": containers, "volumes": volumes, "terminationGracePeriodSeconds": 5}


def deployment(i, namespace, paused=True):
    name = name_of(i)
    labels = {"app": name, LABEL: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 0,
            "paused": paused,
            "revisionHistoryLimit": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(i)},
        },
    }


def _deploy_path(namespace, name=None):
    return "/apis/apps/v1/namespaces/%s/deployments%s" % (namespace, "/" + name if name else "")


def list_deployments(kube, namespace):
    return kube.list(_deploy_path(namespace))


def _mounts(spec):
    return [[(m.get("name"), m.get("mountPath")) for m in c.get("volumeMounts") or []] for c in spec.get("containers") or []]


def _volumes(spec):
    return [(v.get("name"), json.dumps(v.get("emptyDir"), sort_keys=True)) for v in spec.get("volumes") or []]


def is_original(obj):
    """True when the pod template's mounts, volumes and shmfix annotations are as created."""
    i = index_of(obj["metadata"]["name"])
    want = pod_spec(i)
    have = obj["spec"]["template"]["spec"]
    annotations = obj["metadata"].get("annotations") or {}
    return _mounts(have) == _mounts(want) and _volumes(have) == _volumes(want) and not any(a in annotations for a in SHM_ANNOTATIONS)


def ensure(kube, namespace, n, workers=8, log=print, paused=True):
    """Exactly bench-00000 .. bench-<n-1> in the namespace (creates the missing, deletes the others)."""
    kube.ensure_namespace(namespace, {LABEL: "true"})
    have = {d["metadata"]["name"] for d in list_deployments(kube, namespace)}
    want = {name_of(i) for i in range(n)}
    missing = sorted(want - have)
    extra = sorted(have - want)
    if missing:
        log("creating %d Deployments in %s" % (len(missing), namespace))
        pmap(lambda name: kube.request("POST", _deploy_path(namespace), deployment(index_of(name), namespace, paused), ok=(201, 409)), missing, workers)
    if extra:
        log("deleting %d Deployments from %s" % (len(extra), namespace))
        pmap(lambda name: kube.request("DELETE", _deploy_path(namespace, name), ok=(200, 202, 404)), extra, workers)
    return len(missing), len(extra)


def restore(kube, namespace, workers=8):
    """Put every changed Deployment back to its original pod template (one JSON merge patch each, from the
    benchmark's client: the original containers and volumes, shmfix's annotation removed). Returns how many."""
    changed = [d["metadata"]["name"] for d in list_deployments(kube, namespace) if not is_original(d)]

    def one(name):
        spec = pod_spec(index_of(name))
        body = {
            "metadata": {"annotations": {a: None for a in SHM_ANNOTATIONS}},
            "spec": {"template": {"spec": {"containers": spec["containers"], "volumes": spec["volumes"]}}},
        }
        kube.request("PATCH", _deploy_path(namespace, name), body, content_type="application/merge-patch+json")

    pmap(one, changed, workers)
    return len(changed)


def reset(kube, namespace, n, workers=8, timeout=None, one_rs_each=False, log=None):
    """restore, then settle: (restored, seconds settling)."""
    restored = restore(kube, namespace, workers)
    return restored, settle(kube, namespace, n, timeout=timeout, one_rs_each=one_rs_each, log=log)


def settle(kube, namespace, n, timeout=None, pause=2.0, one_rs_each=False, log=None):
    """Wait until the controllers are done with the namespace: n Deployments, each observed, no ReplicaSet being
    deleted or orphaned (and, for Deployments that are not paused, exactly one each). Returns the seconds waited.

    The deployment controller syncs about 20 Deployments a second here (its client's default 20 QPS; a paused
    Deployment costs it one status write per change, one that is not paused about four): N=5000 changes take minutes.
    """
    timeout = timeout or 300 + n * 0.6
    interval = 1 if n <= 1000 else 5
    started = last_log = time.monotonic()
    while True:
        deps = list_deployments(kube, namespace)
        unobserved = [d["metadata"]["name"] for d in deps if (d.get("status") or {}).get("observedGeneration") != d["metadata"]["generation"]]
        rss, busy, owned = [], [], []
        if len(deps) == n and not unobserved:
            rss = kube.list("/apis/apps/v1/namespaces/%s/replicasets" % namespace)
            uids = {d["metadata"]["uid"] for d in deps}
            owned = [r for r in rss if any(o.get("uid") in uids for o in r["metadata"].get("ownerReferences") or [])]
            busy = [r for r in rss if r["metadata"].get("deletionTimestamp") or r not in owned]
            if not busy and (len(owned) == n or not one_rs_each):
                break
        now = time.monotonic()
        if now - started > timeout:
            raise RuntimeError(
                "namespace %s did not settle in %ds: %d/%d Deployments, %d not observed (e.g. %s), %d ReplicaSets (%d being deleted or orphaned)"
                % (namespace, timeout, len(deps), n, len(unobserved), unobserved[:3], len(rss), len(busy))
            )
        if log and now - last_log > 30:
            log("  settling %s: %d of %d Deployments not observed yet (%.0fs)" % (namespace, len(unobserved), len(deps), now - started))
            last_log = now
        time.sleep(interval)
    time.sleep(pause)  # let the controllers' last status writes land before a timed run
    return time.monotonic() - started


def verify_fixed(kube, namespace, n, size):
    """Problems after a real run: every container of every Deployment mounts /dev/shm from a Memory emptyDir
    with sizeLimit `size` (the preexisting ones keep their 1Gi)."""
    problems = []
    deps = list_deployments(kube, namespace)
    if len(deps) != n:
        problems.append("%d Deployments, expected %d" % (len(deps), n))
    for d in deps:
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        want = "1Gi" if preexisting(index_of(name)) else size
        for c in spec["containers"]:
            mount = next((m for m in c.get("volumeMounts") or [] if m["mountPath"] == "/dev/shm"), None)
            vol = vols.get(mount["name"]) if mount else None
            ed = (vol or {}).get("emptyDir") or {}
            if ed.get("medium") != "Memory" or ed.get("sizeLimit") != want:
                problems.append("%s/%s: /dev/shm is %s" % (name, c["name"], json.dumps(vol)))
    return problems


def verify_original(kube, namespace, n):
    """Problems after a read-only run: every Deployment still has its original template."""
    deps = list_deployments(kube, namespace)
    problems = ["%s changed" % d["metadata"]["name"] for d in deps if not is_original(d)]
    if len(deps) != n:
        problems.append("%d Deployments, expected %d" % (len(deps), n))
    return problems


def delete_deployments(kube, namespace):
    """One deletecollection of the bench's Deployments (the garbage collector removes their ReplicaSets)."""
    try:
        kube.request("DELETE", _deploy_path(namespace), query={"labelSelector": LABEL + "=true"}, ok=(200, 202, 404))
    except ApiError:
        pass


# --------------------------------------------------------------------------- pods for the df phase


def df_deployment(mode, replicas, namespace):
    """`replicas` running pods pinned to the node labelled shmfix.io/node-mode=<mode> (sized or eviction)."""
    name = "bench-df-" + mode
    labels = {"app": name, LABEL + "-df": "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"shmfix.io/node-mode": mode},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "86400"],
                            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def running_pods(kube, namespace, selector):
    pods = kube.list("/api/v1/namespaces/%s/pods" % namespace, query={"labelSelector": selector})
    return [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and all(cs.get("ready") for cs in (p["status"].get("containerStatuses") or [{}]))
    ]


def ensure_df_pods(kube, namespace, per_node, timeout=600, log=print):
    """per_node running pods on each node mode (sized, eviction); returns {mode: [pod names]}."""
    kube.ensure_namespace(namespace, {LABEL: "true"})
    for mode in ("sized", "eviction"):
        body = df_deployment(mode, per_node, namespace)
        try:
            kube.request("POST", _deploy_path(namespace), body)
        except ApiError as err:
            if err.status != 409:
                raise
            kube.request("PATCH", _deploy_path(namespace, body["metadata"]["name"]), body, content_type="application/merge-patch+json")
    deadline = time.monotonic() + timeout
    while True:
        pods = running_pods(kube, namespace, LABEL + "-df=true")
        by_mode = {m: sorted(p["metadata"]["name"] for p in pods if p["metadata"]["labels"]["app"] == "bench-df-" + m) for m in ("sized", "eviction")}
        if all(len(v) == per_node for v in by_mode.values()):
            return by_mode
        if time.monotonic() > deadline:
            raise RuntimeError("df pods not running after %ds: %s" % (timeout, {m: len(v) for m, v in by_mode.items()}))
        time.sleep(3)
