# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API access for the shmfix.k8s modules.

One ``Kube`` object per module run: it builds an ApiClient from the auth options
(kubernetes.core's names, args_common.AUTH_ARG_SPEC), makes raw REST calls that return plain
camelCase dicts (no model deserialization), counts every request in ``calls`` (raw requests,
the dynamic client's and exec streams alike), and turns API and transport errors into
``ShmfixError``s whose message names the object and the verb.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import ssl
import threading
import time
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_PROXY_HEADERS_SPEC
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ConflictError, ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import FIELD_MANAGER

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
    import urllib3

    HAS_URLLIB3 = True
except ImportError:  # pragma: no cover
    HAS_URLLIB3 = False

# Per request: seconds to connect (TCP and TLS), seconds to wait for the answer.
DEFAULT_TIMEOUT = (10, 60)
USER_AGENT = "shmfix.k8s"
# Answers worth another try (throttled, or a server error that may pass), how often, and the backoff.
RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRIES = 3
BACKOFF = (0.5, 1.0, 2.0)
RETRY_AFTER_MAX = 10.0


def _retry_delay(exc, attempt):
    """Seconds before retry ``attempt`` (0-based): the server's Retry-After (capped), else the backoff."""
    try:
        after = float((getattr(exc, "headers", None) or {}).get("Retry-After"))
    except (TypeError, ValueError):
        after = None
    return min(after, RETRY_AFTER_MAX) if after is not None and after >= 0 else BACKOFF[min(attempt, len(BACKOFF) - 1)]


# --------------------------------------------------------------------------- configuration


def _kubeconfig_path(path):
    if path:
        return os.path.expanduser(path)
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def _load_incluster(conf):
    try:
        from kubernetes.config import incluster_config  # pylint: disable=import-outside-toplevel

        incluster_config.load_incluster_config(client_configuration=conf)
    except ConfigException as exc:
        raise ShmfixError("in-cluster configuration could not be loaded: %s" % exc)


def _check_context(contexts, current, context, where):
    names = [c.get("name") for c in contexts or []]
    if context and context not in names:
        raise ShmfixError("context %r not found in %s; available contexts: %s" % (context, where, ", ".join(names) or "none"))
    if not context and not current:
        raise ShmfixError("%s has no current-context; set the context option (available: %s)" % (where, ", ".join(names) or "none"))


def _load_kubeconfig(conf, path, context, persist):
    """Load ``path`` (a kubeconfig, or several joined by os.pathsep) with ``context`` into ``conf``."""
    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=path)
    except Exception as exc:  # noqa: BLE001 - YAML, I/O and ConfigException errors alike: name the file
        raise ShmfixError("kubeconfig %r cannot be parsed: %s" % (path, exc))
    _check_context(contexts, current, context, "kubeconfig %r" % path)
    try:
        kube_config.load_kube_config(config_file=path, context=context, client_configuration=conf, persist_config=bool(persist))
    except Exception as exc:  # noqa: BLE001 - auth plugins and exec providers raise anything
        raise ShmfixError("kubeconfig %r (context %r) cannot be loaded: %s" % (path, context or current.get("name"), exc))


def _load_kubeconfig_dict(conf, config, context):
    """Load a kubeconfig given as data (a dict: a vault-held kubeconfig, kubernetes.core's ``kubeconfig`` as a dict)."""
    names = {c.get("name"): c for c in config.get("contexts") or [] if isinstance(c, dict)}
    current = names.get(config.get("current-context"))
    _check_context(list(names.values()), current, context, "the kubeconfig given as a dict")
    try:
        kube_config.load_kube_config_from_dict(config_dict=config, context=context, client_configuration=conf, persist_config=False)
    except Exception as exc:  # noqa: BLE001 - auth plugins and exec providers raise anything
        raise ShmfixError("the kubeconfig given as a dict (context %r) cannot be loaded: %s" % (context or config.get("current-context"), exc))


def _load_config_source(conf, params):
    """Load the kubeconfig (option: a path or a dict, $KUBECONFIG, ~/.kube/config) or the in-cluster config, unless only host is given."""
    host, kubeconfig = params.get("host"), params.get("kubeconfig")
    if isinstance(kubeconfig, dict):
        return _load_kubeconfig_dict(conf, kubeconfig, params.get("context"))
    if kubeconfig is not None and not isinstance(kubeconfig, str):
        raise ShmfixError("kubeconfig must be a path or a dict (a kubeconfig's content), got %s" % type(kubeconfig).__name__)
    if host and not kubeconfig:
        return
    path = _kubeconfig_path(kubeconfig)
    missing = [p for p in path.split(os.pathsep) if p and (not os.path.isfile(p) or not os.access(p, os.R_OK))]
    if not missing:
        _load_kubeconfig(conf, path, params.get("context"), params.get("persist_config"))
        return
    if host:
        raise ShmfixError("kubeconfig %r cannot be read (missing or no permission)" % ", ".join(missing))
    if not kubeconfig and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST"):
        _load_incluster(conf)
        return
    raise ShmfixError(
        "kubeconfig %r cannot be read (missing or no permission); set the kubeconfig option, $KUBECONFIG or the host/api_key options" % ", ".join(missing)
    )


def _proxy_headers(params):
    """urllib3 proxy headers from the proxy_headers option or, as kubernetes.core does, K8S_AUTH_PROXY_HEADERS_* variables."""
    given = params.get("proxy_headers")
    if given is None:
        given = {
            key: os.environ["K8S_AUTH_PROXY_HEADERS_" + key.upper()]
            for key in AUTH_PROXY_HEADERS_SPEC
            if os.environ.get("K8S_AUTH_PROXY_HEADERS_" + key.upper())
        }
    given = {k: v for k, v in (given or {}).items() if v}
    return urllib3.util.make_headers(**given) if given and HAS_URLLIB3 else None


def _check_url(params, opt):
    """host/proxy must be a URL with an address (https://<address>:<port>); ShmfixError naming it otherwise."""
    value = params.get(opt)
    try:
        ok = not value or not HAS_URLLIB3 or bool(urllib3.util.parse_url(value).host)
    except ValueError:
        ok = False
    if not ok:
        raise ShmfixError("%s %r is not a URL: give the API server's address as https://<address>:<port>" % (opt, value))


def _apply_explicit_options(conf, params):
    """Explicit options override what the kubeconfig said."""
    _check_url(params, "host")
    _check_url(params, "proxy")
    for opt, attr in (("host", "host"), ("ca_cert", "ssl_ca_cert"), ("client_cert", "cert_file"), ("client_key", "key_file"), ("proxy", "proxy")):
        if params.get(opt):
            setattr(conf, attr, params[opt])
    if params.get("no_proxy"):
        conf.no_proxy = params["no_proxy"]
    headers = _proxy_headers(params)
    if headers:
        conf.proxy_headers = headers
    if params.get("api_key"):
        conf.api_key = {"BearerToken": "Bearer %s" % params["api_key"]}
        conf.refresh_api_key_hook = None
    elif params.get("username") and params.get("password") and HAS_URLLIB3:
        conf.api_key = {"BearerToken": urllib3.util.make_headers(basic_auth="%s:%s" % (params["username"], params["password"]))["authorization"]}
        conf.refresh_api_key_hook = None
    if params.get("validate_certs") is not None:
        conf.verify_ssl = params["validate_certs"]
    for opt in ("ca_cert", "client_cert", "client_key"):
        value = params.get(opt)
        if value and not os.access(value, os.R_OK):
            raise ShmfixError("%s %r cannot be read" % (opt, value))


def _check_client_certificate(conf, params):
    """A client certificate/key that cannot be loaded fails before any request, naming it (not its content)."""
    if not conf.cert_file:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(conf.cert_file, conf.key_file or None)  # no CA store to load (25 ms)
    except (ssl.SSLError, OSError, ValueError) as exc:
        where = "client_cert %r / client_key %r" % (params.get("client_cert"), params.get("client_key"))
        where = where if params.get("client_cert") or params.get("client_key") else "the kubeconfig user's client-certificate / client-key"
        raise ShmfixError("%s cannot be loaded (%s): give a PEM certificate and the PEM private key that belongs to it" % (where, exc))


def build_configuration(params):
    """Return a kubernetes Configuration from the auth options, or raise ShmfixError.

    Precedence follows kubernetes.core: a kubeconfig (option, $KUBECONFIG or ~/.kube/config)
    is loaded unless only ``host`` is given; any explicit option then overrides it.
    """
    conf = Configuration()
    _load_config_source(conf, params)
    _apply_explicit_options(conf, params)
    _check_client_certificate(conf, params)
    if conf.verify_ssl is False and HAS_URLLIB3:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    # Fail fast on an unreachable server: one retry, bounded connect/read time.
    conf.retries = 1
    return conf


class _HeaderName(str):
    """A header name that is never equal to another object, so a header can be sent several times
    (Impersonate-Group once per group) through a dict, as kubernetes.core's unique_string does."""

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


def impersonation_headers(params):
    """[(name, value)] of the Impersonate-User / Impersonate-Group headers the options ask for."""
    headers = [("Impersonate-User", params["impersonate_user"])] if params.get("impersonate_user") else []
    return headers + [("Impersonate-Group", group) for group in params.get("impersonate_groups") or []]


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


def kind_path(kind, namespace=None, name=None):
    """The REST path of objects of ``kind`` (a kinds.KindSpec)."""
    return resource_path(kind["api_version"], kind["plural"], namespace if kind["namespaced"] else None, name)


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


def _api_error(exc, verb, resource, what):
    status, reason, message = exc.status, exc.reason, _server_message(exc.body)
    if status == 401:
        msg = "unauthorized: the API server rejected the credentials while trying to %s (%s); check api_key, client_cert/client_key or the kubeconfig user" % (
            what,
            message,
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


def _transport_error(exc, what, target):
    text = str(exc)
    cause = exc.reason if HAS_URLLIB3 and isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None else exc
    if HAS_URLLIB3 and isinstance(cause, urllib3.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in type(cause).__name__:
        return ShmfixError(
            "TLS failure talking to %s while trying to %s: %s; set ca_cert to the cluster's CA (or validate_certs: false for a test cluster)"
            % (target, what, cause),
            reason="TLSError",
        )
    unreachable = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ProtocolError) if HAS_URLLIB3 else ()
    if isinstance(cause, unreachable):
        return ShmfixError(
            "cannot reach the Kubernetes API server %s while trying to %s: %s; check host/kubeconfig/context and the network" % (target, what, cause),
            reason="Unreachable",
        )
    if HAS_URLLIB3 and isinstance(exc, urllib3.exceptions.HTTPError):
        return ShmfixError("cannot talk to the Kubernetes API server %s while trying to %s: %s" % (target, what, cause), reason="Unreachable")
    if isinstance(exc, (OSError, IOError)):
        return ShmfixError("cannot reach the Kubernetes API server %s while trying to %s: %s" % (target, what, exc), reason="Unreachable")
    return ShmfixError("error while trying to %s: %s: %s" % (what, type(exc).__name__, exc))


def map_exception(exc, verb, resource, namespace=None, name=None, host=None):
    """Turn an ApiException / urllib3 error into a ShmfixError naming verb, resource and object."""
    if isinstance(exc, ShmfixError):
        return exc
    what = describe(verb, resource, namespace, name)
    if HAS_K8S and isinstance(exc, ApiException) and getattr(exc, "status", 0):
        return _api_error(exc, verb, resource, what)
    return _transport_error(exc, what, host or "the API server")


# --------------------------------------------------------------------------- client


class Kube:
    """A thin, counting REST client over kubernetes.client.ApiClient.

    ``request()`` returns decoded JSON (plain dicts with the API's camelCase keys). ``calls``
    counts every HTTP request made through any ApiClient of this object (thread-safe).
    """

    def __init__(self, params=None, configuration=None, timeout=DEFAULT_TIMEOUT):
        if not HAS_K8S:
            raise ShmfixError(missing_required_lib("kubernetes"), result={"exception": K8S_IMP_ERR})
        self.configuration = configuration or build_configuration(params or {})
        self.headers = impersonation_headers(params or {})
        self.timeout = timeout
        self.calls = 0
        self.retried = 0
        self.sleep = time.sleep
        self._lock = threading.Lock()
        self.api_client = self.new_api_client()

    @property
    def host(self):
        return self.configuration.host

    def new_api_client(self):
        """A fresh ApiClient on the same configuration whose every request is counted (one per thread for kubernetes.stream)."""
        client = ApiClient(configuration=self.configuration)
        client.user_agent = USER_AGENT
        for name, value in self.headers:
            client.default_headers[_HeaderName(name)] = value
        call_api = client.call_api

        def counted_call_api(*args, **kwargs):
            self.count()
            return call_api(*args, **kwargs)

        client.call_api = counted_call_api
        return client

    def count(self, n=1):
        with self._lock:
            self.calls += n

    def request(self, method, path, query=None, body=None, content_type=None, verb=None, resource=None, namespace=None, name=None, raw=False):
        """Make one API request and return its JSON body (or text when raw=True).

        An answer 429 or 5xx is retried RETRIES times with backoff (Retry-After when the server sends one,
        at most RETRY_AFTER_MAX seconds): every write shmfix sends carries a precondition, so a retry of a
        write that did land fails its guard and is re-planned, never applied twice.
        verb/resource/namespace/name only serve error messages.
        """
        headers = {"Accept": "*/*" if raw else "application/json"}
        if content_type or body is not None:
            headers["Content-Type"] = content_type or "application/json"
        query_params = [(k, v) for k, v in (query or {}).items() if v is not None and v != ""]
        for attempt in range(RETRIES + 1):
            try:
                data = self._send(method, path, query_params, headers, body)
                break
            except Exception as exc:  # noqa: BLE001 - every transport/API error becomes a ShmfixError naming the object
                if getattr(exc, "status", None) not in RETRY_STATUSES or attempt == RETRIES:
                    raise map_exception(exc, verb or method.lower(), resource or path, namespace, name, host=self.host)
                self.retried += 1
                self.sleep(_retry_delay(exc, attempt))
        if raw:
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError:
            raise ShmfixError("the API server returned non-JSON for %s %s: %r" % (method, path, data[:200]))

    def _send(self, method, path, query_params, headers, body):
        req = self.api_client.param_serialize(method, path, query_params=query_params, header_params=headers, body=body, auth_settings=["BearerToken"])
        resp = self.api_client.call_api(*req, _request_timeout=self.timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        return data

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


def kube_from_params(params):
    """A Kube from a module's auth options; ShmfixError (before any request) when they are wrong."""
    return Kube(params=params)
