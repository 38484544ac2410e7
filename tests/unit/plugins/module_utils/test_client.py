# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""client.py: configuration from the auth options and error mapping (no cluster needed)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
import urllib3
from ansible_collections.shmfix.k8s.plugins.module_utils import client, kinds
from kubernetes.client.exceptions import ApiException

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: abc}
contexts:
- name: one
  context: {cluster: c1, user: u1}
- name: two
  context: {cluster: c1, user: u1}
current-context: one
"""


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def test_kubeconfig_context_is_loaded(kubeconfig):
    conf = client.build_configuration({"kubeconfig": kubeconfig, "context": "two"})
    assert conf.host == "https://127.0.0.1:6443"
    assert conf.verify_ssl is False
    assert conf.api_key["BearerToken"] == "Bearer abc"


def test_missing_context_names_it_and_lists_the_others(kubeconfig):
    with pytest.raises(client.ShmfixError) as err:
        client.build_configuration({"kubeconfig": kubeconfig, "context": "nope"})
    assert "context 'nope' not found" in err.value.msg
    assert "one, two" in err.value.msg


def test_unreadable_kubeconfig_is_named(tmp_path):
    missing = str(tmp_path / "absent")
    with pytest.raises(client.ShmfixError) as err:
        client.build_configuration({"kubeconfig": missing})
    assert missing in err.value.msg and "cannot be read" in err.value.msg


def test_garbage_kubeconfig_is_named(tmp_path):
    path = tmp_path / "bad"
    path.write_text(":::: not yaml [")
    with pytest.raises(client.ShmfixError) as err:
        client.build_configuration({"kubeconfig": str(path)})
    assert str(path) in err.value.msg


def test_explicit_options_override_the_kubeconfig(kubeconfig):
    conf = client.build_configuration({"kubeconfig": kubeconfig, "host": "https://10.0.0.1:6443", "api_key": "tok", "validate_certs": True})
    assert conf.host == "https://10.0.0.1:6443"
    assert conf.api_key["BearerToken"] == "Bearer tok"
    assert conf.verify_ssl is True


def test_a_client_certificate_that_cannot_be_loaded_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    garbage = tmp_path / "client.pem"
    garbage.write_text("secret-looking garbage\n")
    with pytest.raises(client.ShmfixError) as err:
        client.build_configuration({"host": "https://127.0.0.1:6443", "client_cert": str(garbage), "client_key": str(garbage)})
    assert "client_cert %r / client_key %r cannot be loaded" % (str(garbage), str(garbage)) in err.value.msg
    assert "give a PEM certificate and the PEM private key" in err.value.msg
    assert "secret-looking" not in err.value.msg


@pytest.mark.parametrize("opt", ["host", "proxy"])
def test_a_host_that_is_no_url_is_named(monkeypatch, tmp_path, opt):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    params = {"host": "https://127.0.0.1:6443", opt: "not a url"}
    with pytest.raises(client.ShmfixError) as err:
        client.build_configuration(params)
    assert err.value.msg == "%s 'not a url' is not a URL: give the API server's address as https://<address>:<port>" % opt


def test_host_only_needs_no_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    conf = client.build_configuration({"host": "https://10.0.0.1:6443", "api_key": "tok"})
    assert conf.host == "https://10.0.0.1:6443"


def _api_exception(status, reason, message):
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


def test_forbidden_names_verb_and_resource():
    err = client.map_exception(_api_exception(403, "Forbidden", 'deployments.apps "web" is forbidden'), "patch", "deployments.apps", "shop", "web")
    assert err.status == 403 and err.reason == "Forbidden"
    assert "verb 'patch' on resource 'deployments.apps'" in err.msg
    assert "web in namespace shop" in err.msg


def test_conflict_is_a_conflict_error():
    err = client.map_exception(_api_exception(409, "Conflict", "the object has been modified"), "patch", "deployments.apps", "shop", "web")
    assert isinstance(err, client.ConflictError)
    assert err.status == 409


def test_unreachable_server():
    exc = urllib3.exceptions.MaxRetryError(None, "/apis", reason=urllib3.exceptions.NewConnectionError(None, "Connection refused"))
    err = client.map_exception(exc, "list", "deployments.apps", host="https://127.0.0.1:1")
    assert err.status is None and err.reason == "Unreachable"
    assert "cannot reach the Kubernetes API server https://127.0.0.1:1" in err.msg
    assert "list deployments.apps in all namespaces" in err.msg


def test_tls_failure():
    exc = urllib3.exceptions.MaxRetryError(None, "/version", reason=urllib3.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"))
    err = client.map_exception(exc, "get", "version", host="https://127.0.0.1:6443")
    assert err.reason == "TLSError"
    assert "ca_cert" in err.msg


@pytest.mark.parametrize(
    "api_version, plural, ns, name, path, label",
    [
        ("v1", "pods", "a", "p", "/api/v1/namespaces/a/pods/p", "pods"),
        ("apps/v1", "deployments", None, None, "/apis/apps/v1/deployments", "deployments.apps"),
        ("argoproj.io/v1alpha1", "rollouts", "a", None, "/apis/argoproj.io/v1alpha1/namespaces/a/rollouts", "rollouts.argoproj.io"),
    ],
)
def test_paths(api_version, plural, ns, name, path, label):
    assert client.resource_path(api_version, plural, ns, name) == path
    spec = kinds.custom("X", api_version, plural)
    assert spec.resource == label
    assert client.kind_path(spec, ns, name) == path


def test_every_request_of_every_api_client_is_counted(monkeypatch):
    monkeypatch.setattr(client.ApiClient, "call_api", lambda self, *args, **kwargs: "response")
    kube = client.Kube(configuration=client.Configuration())
    assert kube.api_client.call_api("GET", "/version") == "response"
    assert kube.new_api_client().call_api("GET", "/api/v1/pods") == "response"
    assert kube.calls == 2


# --------------------------------------------------------------------------- kubernetes.core's options


def test_kubeconfig_as_a_dict_like_kubernetes_core():
    import yaml

    data = yaml.safe_load(KUBECONFIG)
    conf = client.build_configuration({"kubeconfig": data, "context": "two"})
    assert conf.host == "https://127.0.0.1:6443" and conf.api_key["BearerToken"] == "Bearer abc"
    with pytest.raises(client.ShmfixError, match="context 'nope' not found in the kubeconfig given as a dict; available contexts: one, two"):
        client.build_configuration({"kubeconfig": data, "context": "nope"})
    with pytest.raises(client.ShmfixError, match="kubeconfig must be a path or a dict"):
        client.build_configuration({"kubeconfig": ["no"]})


def test_proxy_options_basic_auth_and_impersonation(kubeconfig, monkeypatch):
    monkeypatch.setenv("K8S_AUTH_PROXY_HEADERS_USER_AGENT", "from-env")
    conf = client.build_configuration({"kubeconfig": kubeconfig, "no_proxy": "127.0.0.1,.svc", "username": "u", "password": "p"})
    assert conf.no_proxy == "127.0.0.1,.svc"
    assert conf.proxy_headers == {"user-agent": "from-env"}
    assert conf.api_key["BearerToken"] == "Basic dTpw"
    conf = client.build_configuration({"kubeconfig": kubeconfig, "proxy_headers": {"proxy_basic_auth": "a:b", "basic_auth": None, "user_agent": None}})
    assert conf.proxy_headers == {"proxy-authorization": "Basic YTpi"}
    kube = client.Kube(params={"kubeconfig": kubeconfig, "impersonate_user": "alice", "impersonate_groups": ["dev", "ops"]})
    sent = [(str(k), v) for k, v in kube.new_api_client().default_headers.items() if str(k).startswith("Impersonate")]
    assert sent == [("Impersonate-User", "alice"), ("Impersonate-Group", "dev"), ("Impersonate-Group", "ops")]


class _Answer:
    def __init__(self, status, headers=None):
        self.status, self.reason, self.data, self.headers = status, "x", b'{"message": "busy"}', headers or {}

    def getheaders(self):
        return self.headers


def test_429_and_5xx_are_retried_with_backoff_then_named(monkeypatch):
    kube = client.Kube(configuration=client.Configuration())
    slept = []
    kube.sleep = slept.append
    answers = [ApiException(http_resp=_Answer(503)), ApiException(http_resp=_Answer(429, {"Retry-After": "3"})), b'{"ok": true}']

    def send(*_args):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(kube, "_send", send)
    assert kube.get("/x") == {"ok": True}
    assert slept == [0.5, 3.0] and kube.retried == 2
    answers[:] = [ApiException(http_resp=_Answer(500))] * (client.RETRIES + 1)
    with pytest.raises(client.ShmfixError) as err:
        kube.get("/x", verb="list", resource="deployments.apps")
    assert err.value.status == 500 and "API error 500" in err.value.msg and "list deployments.apps" in err.value.msg
    assert slept[2:] == list(client.BACKOFF) and kube.retried == 2 + client.RETRIES
    answers[:] = [ApiException(http_resp=_Answer(403))]
    with pytest.raises(client.ShmfixError, match="forbidden"):
        kube.get("/x")
    assert kube.retried == 2 + client.RETRIES  # a 403 is not retried
