"""A counting pass-through in front of the real API server, on 127.0.0.1 only.

Used for the *counting* runs of the benchmark (never for the timed ones): the contender is
given a kubeconfig whose server is http://127.0.0.1:<port>; every request is forwarded
unchanged (method, path, query, headers, body) over TLS with the original kubeconfig's
client certificate to the real API server, and recorded as (method, path, query, status).
That attributes every request to the contender that made it -- including discovery and
node/namespace reads that the API server's metrics cannot attribute to a client.
Nothing is answered by the proxy itself: no mock, no cache.
"""

import base64
import http.client
import os
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}


def _kubeconfig_parts(kubeconfig, context):
    with open(kubeconfig) as f:
        cfg = yaml.safe_load(f)
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    return cluster, user


def _material(section, key):
    """Path of a PEM given inline (`<key>-data`) or as a file."""
    if section.get(key + "-data"):
        fd, path = tempfile.mkstemp(prefix="bench-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(section[key + "-data"]))
        return path
    return section.get(key)


def classify(method, path, query):
    """(verb, resource) in the API server's vocabulary; discovery for /api, /apis, /version."""
    parts = [p for p in path.split("/") if p]
    q = parse_qs(query)
    if not parts or parts[0] not in ("api", "apis"):
        return method.lower(), "nonresource:" + path
    # /api/v1/... or /apis/<group>/<version>/...
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if not rest:
        return "get", "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0]
    named = len(rest) >= 2
    if len(rest) >= 3:
        resource = rest[0] + "/" + rest[2]
    verb = {
        "GET": "get" if named else ("watch" if q.get("watch") in (["true"], ["1"]) else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method, method.lower())
    if method == "PATCH":
        verb = "patch"
    if "All" in q.get("dryRun", []):
        verb += "(dryRun)"
    return verb, resource


class CountingProxy:
    def __init__(self, kubeconfig, context):
        cluster, user = _kubeconfig_parts(kubeconfig, context)
        url = urlsplit(cluster["server"])
        assert url.hostname in ("127.0.0.1", "localhost", "::1"), "loopback API servers only: %s" % cluster["server"]
        self.upstream = (url.hostname, url.port or 443)
        self._tmp = []
        ca = _material(cluster, "certificate-authority")
        cert = _material(user, "client-certificate")
        key = _material(user, "client-key")
        self._tmp = [p for p, k in ((ca, cluster), (cert, user), (key, user)) if p and p.startswith(tempfile.gettempdir())]
        self.ssl = ssl.create_default_context(cafile=ca)
        if cert:
            self.ssl.load_cert_chain(cert, key)
        self.token = user.get("token")
        self.lock = threading.Lock()
        self.records = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _conn(self):
                local = getattr(self, "_upstream", None)
                if local is None:
                    local = http.client.HTTPSConnection(proxy.upstream[0], proxy.upstream[1], context=proxy.ssl, timeout=120)
                    self._upstream = local
                return local

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS and k.lower() != "authorization"}
                if proxy.token:
                    headers["Authorization"] = "Bearer " + proxy.token
                started = time.monotonic()
                for attempt in (1, 2):
                    conn = self._conn()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        self._upstream = None
                        if attempt == 2:
                            raise
                elapsed = time.monotonic() - started
                split = urlsplit(self.path)
                verb, resource = classify(self.command, split.path, split.query)
                with proxy.lock:
                    proxy.records.append(
                        {
                            "method": self.command,
                            "path": split.path,
                            "query": split.query,
                            "status": resp.status,
                            "verb": verb,
                            "resource": resource,
                            "seconds": round(elapsed, 4),
                        }
                    )
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_HEADERS:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        for p in self._tmp:
            try:
                os.unlink(p)
            except OSError:
                pass

    def take(self):
        """Records since the last take()."""
        with self.lock:
            out, self.records = self.records, []
        return out

    def write_kubeconfig(self, path, context):
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "bench-proxy", "cluster": {"server": "http://127.0.0.1:%d" % self.port}}],
            "users": [{"name": "bench-proxy", "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": "bench-proxy", "user": "bench-proxy"}}],
            "current-context": context,
        }
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        os.chmod(path, 0o600)
        return path
