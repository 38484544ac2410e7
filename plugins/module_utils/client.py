# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API access for the shmfix.k8s modules.

One `Kube` object per module run: it builds an ApiClient from the auth options
(kubernetes.core's names), makes raw REST calls that return plain camelCase dicts
(no model deserialization), counts every request in `calls`, and turns API and
transport errors into `ShmfixError`s whose message names the object and the verb.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
import time
import traceback

K8S_IMP_ERR = None
try:
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    HAS_K8S = True
except ImportError:  # pragma: no cover - exercised by missing_required_lib
    K8S_IMP_ERR = traceback.format_exc()
    HAS_K8S = False
    ApiException = Exception
    ConfigException = Exception

try:
    import importlib.util

    import yaml

    HAS_STREAM = importlib.util.find_spec("kubernetes.stream") is not None
except ImportError:  # pragma: no cover - exercised by missing_required_lib
    HAS_STREAM = False

# Imported on first exec only (_load_stream): importing CoreV1Api costs ~0.4 s, which every module
# run paid before, although only shm_df_facts and canary exec (measured by bench/, see its README).
CoreV1Api = None
k8s_stream = None


def _load_stream():
    global CoreV1Api, k8s_stream  # pylint: disable=global-statement
    if CoreV1Api is None:
        from kubernetes.client import CoreV1Api as _core  # pylint: disable=import-outside-toplevel

        CoreV1Api = _core
    if k8s_stream is None:
        from kubernetes.stream import stream as _stream  # pylint: disable=import-outside-toplevel

        k8s_stream = _stream


try:
    import urllib3

    HAS_URLLIB3 = True
except ImportError:  # pragma: no cover
    HAS_URLLIB3 = False

from ansible.module_utils.basic import env_fallback, missing_required_lib

FIELD_MANAGER = "shmfix"
DEFAULT_TIMEOUT = (10, 60)

AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False, fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY"])),
)

AUTH_PARAMS = tuple(AUTH_ARG_SPEC)


class ShmfixError(Exception):
    """An error with a message for the user; `status`/`reason` come from the API when known."""

    def __init__(self, msg, status=None, reason=None, body=None):
        super(ShmfixError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.reason = reason
        self.body = body

    def fail_kwargs(self):
        out = dict(msg=self.msg)
        if self.status is not None:
            out["status"] = self.status
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class ConflictError(ShmfixError):
    """The object changed between read and write (HTTP 409 / failed resourceVersion test)."""


def require_kubernetes(module):
    """Fail the module with missing_required_lib('kubernetes') when the client is absent."""
    if not HAS_K8S:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMP_ERR)


def fail_from_error(module, err, **extra):
    """fail_json from a ShmfixError (msg, status, reason) plus extra result keys."""
    kwargs = err.fail_kwargs()
    kwargs.update(extra)
    module.fail_json(**kwargs)


# --------------------------------------------------------------------------- configuration


def _kubeconfig_path(path):
    if path:
        return os.path.expanduser(path)
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    return os.path.expanduser("~/.kube/config")


def build_configuration(params):
    """Return a kubernetes Configuration from the auth options, or raise ShmfixError.

    Precedence follows kubernetes.core: a kubeconfig (option, $KUBECONFIG or ~/.kube/config)
    is loaded unless only `host` is given; any explicit option then overrides it.
    """
    host = params.get("host")
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    conf = Configuration()
    loaded = False
    if kubeconfig or not host:
        path = _kubeconfig_path(kubeconfig)
        paths = [p for p in path.split(os.pathsep) if p]
        missing = [p for p in paths if not os.path.isfile(p) or not os.access(p, os.R_OK)]
        if missing and not host:
            if not kubeconfig and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST"):
                try:
                    from kubernetes.config import incluster_config

                    incluster_config.load_incluster_config(client_configuration=conf)
                    loaded = True
                except ConfigException as exc:
                    raise ShmfixError("in-cluster configuration could not be loaded: %s" % exc)
            else:
                raise ShmfixError(
                    "kubeconfig %r cannot be read (missing or no permission); set the kubeconfig option, "
                    "$KUBECONFIG or the host/api_key options" % ", ".join(missing)
                )
        elif missing:
            raise ShmfixError("kubeconfig %r cannot be read (missing or no permission)" % ", ".join(missing))
        if not loaded and not missing:
            try:
                contexts, current = kube_config.list_kube_config_contexts(config_file=path)
            except Exception as exc:  # noqa: BLE001 - YAML, I/O and ConfigException errors alike: name the file
                raise ShmfixError("kubeconfig %r cannot be parsed: %s" % (path, exc))
            names = [c.get("name") for c in contexts or []]
            if context and context not in names:
                raise ShmfixError("context %r not found in kubeconfig %r; available contexts: %s" % (context, path, ", ".join(names) or "none"))
            if not context and not current:
                raise ShmfixError("kubeconfig %r has no current-context; set the context option (available: %s)" % (path, ", ".join(names) or "none"))
            try:
                kube_config.load_kube_config(config_file=path, context=context, client_configuration=conf, persist_config=False)
            except Exception as exc:  # noqa: BLE001 - auth plugins and exec providers raise anything
                raise ShmfixError("kubeconfig %r (context %r) cannot be loaded: %s" % (path, context or current.get("name"), exc))
            loaded = True
    if host:
        conf.host = host
    if params.get("api_key"):
        conf.api_key = {"BearerToken": "Bearer %s" % params["api_key"]}
        conf.refresh_api_key_hook = None
    if params.get("validate_certs") is not None:
        conf.verify_ssl = params["validate_certs"]
    if params.get("ca_cert"):
        conf.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        conf.cert_file = params["client_cert"]
    if params.get("client_key"):
        conf.key_file = params["client_key"]
    if params.get("proxy"):
        conf.proxy = params["proxy"]
    for opt in ("ca_cert", "client_cert", "client_key"):
        value = params.get(opt)
        if value and not os.access(value, os.R_OK):
            raise ShmfixError("%s %r cannot be read" % (opt, value))
    if (not conf.host or conf.host == "http://localhost") and not loaded and not host:
        raise ShmfixError("no Kubernetes API server: set host or kubeconfig")
    if conf.verify_ssl is False and HAS_URLLIB3:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    # Fail fast on an unreachable server: one retry, bounded connect/read time.
    conf.retries = 1
    return conf


# --------------------------------------------------------------------------- paths


def api_prefix(api_version):
    """'/api/v1' for the core group, '/apis/<group>/<version>' otherwise."""
    if "/" in api_version:
        return "/apis/" + api_version
    return "/api/" + api_version


def resource_path(api_version, plural, namespace=None, name=None, subresource=None):
    path = api_prefix(api_version)
    if namespace:
        path += "/namespaces/" + namespace
    path += "/" + plural
    if name:
        path += "/" + name
    if subresource:
        path += "/" + subresource
    return path


def resource_label(api_version, plural):
    """'deployments.apps', 'pods', 'rollouts.argoproj.io': how RBAC names a resource."""
    group = api_version.split("/")[0] if "/" in api_version else ""
    return plural + ("." + group if group else "")


# --------------------------------------------------------------------------- errors


def _server_message(body):
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):
            return data["message"]
    except ValueError:
        pass
    return body.strip()[:500]


def describe(verb, resource, namespace=None, name=None):
    """'patch deployments.apps web in namespace shop' - the words error messages use."""
    what = "%s %s" % (verb, resource)
    if name:
        what += " %s" % name
    if namespace:
        what += " in namespace %s" % namespace
    elif verb in ("list", "watch") and not name:
        what += " in all namespaces"
    return what


def map_exception(exc, verb, resource, namespace=None, name=None, host=None):
    """Turn an ApiException / urllib3 error into a ShmfixError naming verb, resource and object."""
    what = describe(verb, resource, namespace, name)
    if isinstance(exc, ShmfixError):
        return exc
    if HAS_K8S and isinstance(exc, ApiException) and getattr(exc, "status", 0):
        status = exc.status
        reason = exc.reason
        message = _server_message(exc.body)
        if status == 401:
            msg = (
                "unauthorized: the API server rejected the credentials while trying to %s (%s); check api_key, client_cert/client_key or the kubeconfig user"
                % (what, message)
            )
        elif status == 403:
            msg = "forbidden: the credentials may not %s (verb %r on resource %r): %s" % (what, verb, resource, message)
        elif status == 404:
            msg = "not found: %s: %s" % (what, message)
        elif status == 409:
            return ConflictError("conflict: %s: %s" % (what, message), status=status, reason=reason, body=exc.body)
        else:
            msg = "API error %s %s while trying to %s: %s" % (status, reason, what, message)
        return ShmfixError(msg, status=status, reason=reason, body=exc.body)
    text = str(exc)
    cause = exc
    if HAS_URLLIB3 and isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        cause = exc.reason
    target = host or "the API server"
    if HAS_URLLIB3 and isinstance(cause, urllib3.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in type(cause).__name__:
        return ShmfixError(
            "TLS failure talking to %s while trying to %s: %s; set ca_cert to the cluster's CA (or validate_certs: false for a test cluster)"
            % (target, what, cause),
            reason="TLSError",
        )
    if HAS_URLLIB3 and isinstance(cause, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ProtocolError)):
        return ShmfixError(
            "cannot reach the Kubernetes API server %s while trying to %s: %s; check host/kubeconfig/context and the network" % (target, what, cause),
            reason="Unreachable",
        )
    if HAS_URLLIB3 and isinstance(exc, (urllib3.exceptions.HTTPError,)):
        return ShmfixError("cannot talk to the Kubernetes API server %s while trying to %s: %s" % (target, what, cause), reason="Unreachable")
    if isinstance(exc, (OSError, IOError)):
        return ShmfixError("cannot reach the Kubernetes API server %s while trying to %s: %s" % (target, what, exc), reason="Unreachable")
    return ShmfixError("error while trying to %s: %s: %s" % (what, type(exc).__name__, exc))


# --------------------------------------------------------------------------- client


class Kube:
    """A thin, counting REST client over kubernetes.client.ApiClient.

    `request()` returns decoded JSON (plain dicts with the API's camelCase keys).
    `calls` counts every HTTP request made through this object (thread-safe).
    """

    def __init__(self, params=None, configuration=None, timeout=DEFAULT_TIMEOUT):
        if not HAS_K8S:
            raise ShmfixError(missing_required_lib("kubernetes"))
        self.configuration = configuration or build_configuration(params or {})
        self.api_client = ApiClient(configuration=self.configuration)
        self.api_client.user_agent = "shmfix.k8s"
        self.timeout = timeout
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def host(self):
        return self.configuration.host

    def new_api_client(self):
        """A fresh ApiClient on the same configuration (one per thread for kubernetes.stream)."""
        client = ApiClient(configuration=self.configuration)
        client.user_agent = "shmfix.k8s"
        return client

    def count(self, n=1):
        with self._lock:
            self.calls += n

    def request(self, method, path, query=None, body=None, content_type=None, verb=None, resource=None, namespace=None, name=None, raw=False):
        """Make one API request and return its JSON body (or text when raw=True).

        verb/resource/namespace/name only serve error messages.
        """
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        if raw:
            headers["Accept"] = "*/*"
        query_params = [(k, v) for k, v in (query or {}).items() if v is not None and v != ""]
        self.count()
        try:
            req = self.api_client.param_serialize(method, path, query_params=query_params, header_params=headers, body=body, auth_settings=["BearerToken"])
            resp = self.api_client.call_api(*req, _request_timeout=self.timeout)
            data = resp.read()
            if not 200 <= resp.status <= 299:
                raise ApiException(http_resp=resp)
        except Exception as exc:  # noqa: BLE001 - every transport/API error becomes a ShmfixError naming the object
            raise map_exception(exc, verb or method.lower(), resource or path, namespace, name, host=self.host)
        if raw:
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError:
            raise ShmfixError("the API server returned non-JSON for %s %s: %r" % (method, path, data[:200]))

    # ---- convenience wrappers

    def get(self, path, query=None, **kw):
        return self.request("GET", path, query=query, **kw)

    def patch(self, path, body, patch_type="json", dry_run=False, **kw):
        content_type = {
            "json": "application/json-patch+json",
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        query = {"fieldManager": FIELD_MANAGER}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", path, query=query, body=body, content_type=content_type, verb=kw.pop("verb", "patch"), **kw)

    def server_version(self):
        return self.get("/version", verb="get", resource="version")


def kube_from_module(module):
    """Build a Kube from a module's params or fail the module (before any write)."""
    require_kubernetes(module)
    try:
        return Kube(params=module.params)
    except ShmfixError as err:
        fail_from_error(module, err)


# --------------------------------------------------------------------------- exec

STATUS_CHANNEL = 3


class ExecRefused(ShmfixError):
    """The exec stream could not be opened (ApiException, websocket or socket error); `cause` is that exception."""

    def __init__(self, cause):
        super(ExecRefused, self).__init__(
            str(cause), status=getattr(cause, "status", None), reason=getattr(cause, "reason", None), body=getattr(cause, "body", None)
        )
        self.cause = cause


class ExecResult:
    """What an exec printed: `stdout`, `stderr`, `output` (both in the order they arrived),
    `status` (the text of the exit-status channel 3, "" if none) and `timed_out` (the stream
    was still open at the deadline)."""

    def __init__(self, stdout, stderr, output, status, timed_out):
        self.stdout = stdout
        self.stderr = stderr
        self.output = output
        self.status = status
        self.timed_out = timed_out

    @property
    def returncode(self):
        """The exit code as kubernetes.stream computes it: None if timed out, 0 on Success, else
        the ExitCode cause; raises (TypeError, KeyError...) like WSClient.returncode on any other status."""
        if self.timed_out:
            return None
        err = yaml.safe_load(self.status)
        if err["status"] == "Success":
            return 0
        return int(err["details"]["causes"][0]["message"])


def exec_in_pod(kube, namespace, pod, container, command, timeout, clock=time.time):
    """Run `command` in `container` of `pod` through the exec websocket; wait at most `timeout` seconds.

    Counts one API call, uses a fresh ApiClient (stream() swaps the client's transport while it
    runs) and returns an ExecResult. Raises ExecRefused if the stream cannot be opened; errors
    while it runs propagate unchanged.
    """
    _load_stream()
    kube.count()
    api = CoreV1Api(kube.new_api_client())
    try:
        ws = k8s_stream(
            api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=command,
            container=container,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
            _request_timeout=timeout,
        )
    except Exception as exc:  # noqa: BLE001 - ApiException, websocket and socket errors: exec is impossible
        raise ExecRefused(exc)
    stdout, stderr, output = [], [], []

    def collect():
        if ws.peek_stdout():
            output.append(ws.read_stdout())
            stdout.append(output[-1])
        if ws.peek_stderr():
            output.append(ws.read_stderr())
            stderr.append(output[-1])

    try:
        deadline = clock() + timeout
        while ws.is_open() and clock() < deadline:
            ws.update(timeout=1)
            collect()
        collect()
        status = ws.read_channel(STATUS_CHANNEL) or ""
        timed_out = ws.is_open()
    finally:
        ws.close()
    return ExecResult("".join(stdout), "".join(stderr), "".join(output), status, timed_out)
