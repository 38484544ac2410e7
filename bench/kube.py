"""The benchmark's own API client: plain JSON over the kubernetes client's ApiClient (auth, TLS).

Used by run.py to create, reset, settle and verify the benchmark's objects - never by a contender.
No model (de)serialization: lists of 5000 Deployments stay fast. Every request goes to the API
server named by the kubeconfig context (127.0.0.1 only, checked).
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

from kubernetes import client, config


class ApiError(RuntimeError):
    def __init__(self, status, method, path, body):
        super().__init__("%s %s -> %s: %s" % (method, path, status, (body or "")[:500]))
        self.status = status


class Kube:
    """One API server (kubeconfig + context); thread-safe (urllib3's pool)."""

    def __init__(self, kubeconfig, context, timeout=60):
        self.kubeconfig = kubeconfig
        self.context = context
        conf = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=conf, persist_config=False)
        host = urlsplit(conf.host).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise RuntimeError("bench: loopback API servers only, %s/%s is %s" % (kubeconfig, context, conf.host))
        conf.connection_pool_maxsize = 16
        self.host = conf.host
        self.api = client.ApiClient(configuration=conf)
        self.timeout = timeout
        self._local = threading.local()

    def request(self, method, path, body=None, query=None, content_type="application/json", ok=(200, 201, 202), timeout=None, raw=False):
        """The answer's JSON (its text with raw=True, as in the collection's client.Kube.request; None for an allowed 404); ApiError for a status not in ok."""
        url = self.host + path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        self.api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        data = json.dumps(body) if body is not None and not isinstance(body, (str, bytes)) else body
        resp = self.api.rest_client.pool_manager.request(
            method, url, body=data, headers=headers, timeout=timeout or self.timeout, preload_content=True, retries=False
        )
        text = resp.data.decode("utf-8", "replace")
        if resp.status not in ok:
            raise ApiError(resp.status, method, path, text)
        if resp.status == 404:  # allowed by the caller: "not there"
            return None
        if raw:
            return text
        return json.loads(text) if text else {}

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def list(self, path, query=None):
        """Every item of a (paginated, 500 per page) list."""
        items, cont = [], None
        while True:
            q = dict(query or {}, limit=500)
            if cont:
                q["continue"] = cont
            page = self.get(path, query=q)
            items += page.get("items") or []
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items

    def ready(self):
        try:
            url = self.host + "/readyz"
            headers = {}
            self.api.update_params_for_auth(headers, [], ["BearerToken"], "/readyz", "GET", None)
            return self.api.rest_client.pool_manager.request("GET", url, headers=headers, timeout=5, retries=False).status == 200
        except Exception:  # noqa: BLE001 - any transport error means not ready
            return False

    def wait_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(2)
        return False

    def ensure_namespace(self, name, labels=None, timeout=180):
        """Create the namespace (waiting out a previous one still terminating) and wait for its default ServiceAccount."""
        deadline = time.monotonic() + timeout
        while True:
            ns = self.get("/api/v1/namespaces/" + name, ok=(200, 404))
            if not ns:
                body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
                self.request("POST", "/api/v1/namespaces", body, ok=(201, 409))
                continue
            if (ns.get("status") or {}).get("phase") == "Active":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("namespace %s still terminating after %d s" % (name, timeout))
            time.sleep(2)
        while not self.get("/api/v1/namespaces/%s/serviceaccounts/default" % name, ok=(200, 404)):
            if time.monotonic() > deadline:
                raise RuntimeError("no default ServiceAccount in %s after %d s (kube-controller-manager down?)" % (name, timeout))
            time.sleep(1)

    def delete_namespace(self, name, wait=False, timeout=600):
        self.request("DELETE", "/api/v1/namespaces/" + name, ok=(200, 202, 404))
        deadline = time.monotonic() + timeout
        while wait and self.get("/api/v1/namespaces/" + name, ok=(200, 404)):
            if time.monotonic() > deadline:
                raise RuntimeError("namespace %s not gone after %d s" % (name, timeout))
            time.sleep(2)


def pmap(fn, items, workers=8):
    """list(map(fn, items)) on a thread pool; the first exception propagates."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
