#!/usr/bin/env python3
"""The script an SRE writes with the kubernetes client: list the Deployments once, then send one
strategic-merge patch per Deployment whose containers lack a /dev/shm mount (an emptyDir
{medium: Memory, sizeLimit} volume "dshm" and the mount in every container). No precondition.

    sre_patch.py KUBECONFIG CONTEXT NAMESPACE SIZE [WORKERS]

WORKERS 1 (default): one patch after the other. WORKERS > 1: the same patches from a
ThreadPoolExecutor of that many threads (one shared ApiClient). Prints {"patched": k}.
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config

kubeconfig, context, namespace, size = sys.argv[1:5]
workers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
config.load_kube_config(config_file=kubeconfig, context=context)
apps = client.AppsV1Api()


def lacks_shm(d):
    return any("/dev/shm" not in [m.mount_path for m in c.volume_mounts or []] for c in d.spec.template.spec.containers)


def patch(d):
    mount = {"name": "dshm", "mountPath": "/dev/shm"}
    spec = {
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}],
        "containers": [{"name": c.name, "volumeMounts": [mount]} for c in d.spec.template.spec.containers],
    }
    apps.patch_namespaced_deployment(d.metadata.name, namespace, {"spec": {"template": {"spec": spec}}})


todo = [d for d in apps.list_namespaced_deployment(namespace).items if lacks_shm(d)]
if workers == 1:
    for d in todo:
        patch(d)
else:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(patch, todo))
print(json.dumps({"patched": len(todo)}))
