# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pod_exec.py: what an exec printed, its exit status, its timeout, with a scripted websocket."""

import json

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import pod_exec
from ansible_collections.shmfix.k8s.plugins.module_utils.client import Kube
from kubernetes.client import Configuration
from kubernetes.client.exceptions import ApiException


class FakeWS:
    """A kubernetes.stream WSClient stand-in: frames arrive one per update(); None closes the stream."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.channels = {}
        self.open = True
        self.closed = False

    def is_open(self):
        return self.open

    def update(self, timeout=0):
        if self.open and self.frames:
            frame = self.frames.pop(0)
            if frame is None:
                self.open = False
            else:
                self.channels[frame[0]] = self.channels.get(frame[0], "") + frame[1]

    def peek_stdout(self):
        self.update()
        return self.channels.get(1, "")

    def peek_stderr(self):
        self.update()
        return self.channels.get(2, "")

    def read_channel(self, channel, timeout=0):
        return self.channels.pop(channel, "")

    def read_stdout(self):
        return self.read_channel(1)

    def read_stderr(self):
        return self.read_channel(2)

    def close(self):
        self.closed = True


def _kube(**params):
    """A real Kube on a configuration with a bearer token; nothing here connects."""
    conf = Configuration(host="https://127.0.0.1:6443")
    conf.api_key = {"authorization": "s3cret"}
    conf.api_key_prefix = {"authorization": "Bearer"}
    return Kube(params=params, configuration=conf)


def _exec(monkeypatch, frames=None, refuse=None, clock=None, **params):
    ws = FakeWS(frames or [])
    calls = []

    def websocket_call(configuration, method, url, **kwargs):
        calls.append((configuration, method, url, kwargs))
        if refuse:
            raise refuse
        return ws

    monkeypatch.setitem(pod_exec._LOADED, "websocket_call", websocket_call)
    kube = _kube(**params)
    kwargs = {"clock": clock} if clock else {}
    result = pod_exec.exec_in_pod(kube, "ns", "pod", "c", ["df", "-Pk", "/dev/shm"], 5, **kwargs)
    return result, ws, kube, calls


def test_the_exec_request_names_the_pod_the_command_and_the_token(monkeypatch):
    _result, _ws, kube, calls = _exec(monkeypatch, [None])
    ((conf, method, url, kwargs),) = calls
    assert conf is kube.configuration and method == "GET"
    assert url == "https://127.0.0.1:6443/api/v1/namespaces/ns/pods/pod/exec"
    assert kwargs["query_params"][0] == ("command", ["df", "-Pk", "/dev/shm"])
    assert dict(kwargs["query_params"][1:]) == {"container": "c", "stderr": "true", "stdin": "false", "stdout": "true", "tty": "false"}
    assert kwargs["headers"]["authorization"] == "Bearer s3cret"
    assert kwargs["_preload_content"] is False and kwargs["_request_timeout"] == 5
    assert kube.calls == 1


def test_an_impersonating_exec_is_refused_before_any_request(monkeypatch):
    with pytest.raises(pod_exec.ExecRefused) as err:
        _exec(monkeypatch, [None], impersonate_user="alice")
    assert "cannot impersonate" in err.value.msg and "pods/exec pod in namespace ns" in err.value.msg
    assert err.value.status is None  # shm_df_info then reads the kubelet's stats, through impersonated requests


def test_exec_in_pod_collects_stdout_stderr_and_exit_status(monkeypatch):
    failure = json.dumps({"status": "Failure", "message": "exit 3", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})
    result, ws, _kube, _calls = _exec(monkeypatch, [(1, "out1 "), (2, "err1 "), (1, "out2"), (3, failure), None])
    assert (result.stdout, result.stderr, result.output) == ("out1 out2", "err1 ", "out1 err1 out2")
    assert result.status == failure and not result.timed_out
    assert result.returncode == 3
    assert ws.closed


def test_exec_in_pod_success_is_returncode_zero(monkeypatch):
    result, _ws, _kube, _calls = _exec(monkeypatch, [(1, "ok"), (3, '{"status": "Success"}'), None])
    assert (result.stdout, result.returncode) == ("ok", 0)


def test_exec_in_pod_times_out_with_the_stream_open(monkeypatch):
    ticks = iter(range(0, 100, 3))
    result, ws, _kube, _calls = _exec(monkeypatch, [(1, "a")] * 50, clock=lambda: next(ticks))
    assert result.timed_out and result.returncode is None
    assert ws.closed


def test_exec_in_pod_refused_keeps_the_cause(monkeypatch):
    exc = ApiException(status=403, reason="Forbidden")
    with pytest.raises(pod_exec.ExecRefused) as err:
        _exec(monkeypatch, refuse=exc)
    assert err.value.cause is exc and err.value.status == 403 and err.value.reason == "Forbidden"
    assert err.value.msg.startswith("forbidden: the credentials may not exec in pods/exec pod in namespace ns (resource 'pods/exec'")
    assert err.value.msg.endswith(": Forbidden")


def test_a_refused_exec_is_named_in_the_clients_words():
    # what kubernetes.stream raises when the API server refuses the websocket upgrade (seen with a read-only token)
    reason = (
        "Handshake status 403 Forbidden -+-+- {'audit-id': 'a1', 'date': 'Tue'} -+-+- "
        '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \\"web-1\\" is forbidden: User \\"system:serviceaccount:'
        'shmfix-system:shmfix-audit\\" cannot get resource \\"pods/exec\\" in API group \\"\\" in the namespace \\"shop\\"","reason":"Forbidden","code":403}'
    )
    err = pod_exec.ExecRefused(ApiException(status=0, reason=reason), "shop", "web-1")
    assert err.status == 403
    assert err.msg.startswith("forbidden: the credentials may not exec in pods/exec web-1 in namespace shop (resource 'pods/exec'")
    assert err.msg.endswith('cannot get resource "pods/exec" in API group "" in the namespace "shop"')
    assert "audit-id" not in err.msg
    other = pod_exec.ExecRefused(OSError("connection reset"), "shop", "web-1")
    assert other.msg == "cannot exec in pods/exec web-1 in namespace shop: connection reset" and other.status is None
