# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a command in a container through the exec websocket (kubernetes.stream): df and the canaries.

The websocket is opened with kubernetes.stream's own transport (ws_client.websocket_call: the
v4/v5 channel protocol, TLS and proxy options of the client's Configuration), on the request that
the shared ApiClient serializes. Not through ``stream(CoreV1Api(...).connect_get_namespaced_pod_exec)``:
importing CoreV1Api and the models it names cost 0.4-0.6 s of every shm_df_info and canary run
(kubernetes client 37, ``python -X importtime``), and stream() swaps the ApiClient's transport while
it runs, which needed a fresh ApiClient per exec.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import re
import time

from ansible_collections.shmfix.k8s.plugins.module_utils.client import resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

try:
    HAS_STREAM = importlib.util.find_spec("kubernetes.stream") is not None
except ImportError:  # pragma: no cover - exercised by missing_required_lib
    HAS_STREAM = False

STATUS_CHANNEL = 3
_LOADED = {}


def _websocket_call():
    """kubernetes.stream.ws_client.websocket_call, imported on the first exec only."""
    if not _LOADED:
        from kubernetes.stream.ws_client import websocket_call  # pylint: disable=import-outside-toplevel

        _LOADED["websocket_call"] = websocket_call
    return _LOADED["websocket_call"]


# kubernetes.stream reports a refused websocket upgrade as ApiException(status=0, reason="Handshake status
# 403 Forbidden -+-+- {headers} -+-+- {body}"): the real status and the server's Status body are in the text.
_HANDSHAKE = re.compile(r"Handshake status (?P<status>\d{3})\s*(?P<reason>[^-]*?)\s*-\+-\+-.*?-\+-\+-\s*(?P<body>.*)$", re.DOTALL)


def _refusal(cause):
    """(status, reason, server message) of a refused exec (a refused upgrade, or an ApiException), or (None, None, None)."""
    match = _HANDSHAKE.search(str(getattr(cause, "reason", None) or cause))
    if match:
        status, reason, body = int(match.group("status")), match.group("reason").strip() or None, match.group("body").strip()
    elif getattr(cause, "status", None):
        status, reason, body = cause.status, getattr(cause, "reason", None), getattr(cause, "body", None) or getattr(cause, "reason", "") or ""
    else:
        return None, None, None
    try:
        message = json.loads(body).get("message") or body
    except (ValueError, TypeError, AttributeError):
        message = body
    return status, reason, str(message)[:500]


class ExecRefused(ShmfixError):
    """The exec stream could not be opened (ApiException, websocket or socket error); ``cause`` is that exception.

    A refusal by the API server says so in the client's words: 'forbidden: the credentials may not exec
    pods/exec <pod> in namespace <ns> (...): <the server's message>', with its real status.
    """

    def __init__(self, cause, namespace=None, pod=None):
        status, reason, message = _refusal(cause)
        what = "exec in pods/exec %s%s" % (pod or "?", " in namespace %s" % namespace if namespace else "")
        if status == 403:
            msg = "forbidden: the credentials may not %s (resource 'pods/exec': verb 'get' before Kubernetes 1.35, 'create' from 1.35): %s" % (what, message)
        elif status:
            msg = "API error %s %s while trying to %s: %s" % (status, reason or "", what, message)
        else:
            msg = "cannot %s: %s" % (what, cause)
        super(ExecRefused, self).__init__(msg, status=status, reason=reason, body=getattr(cause, "body", None))
        self.cause = cause


class ExecResult:
    """What an exec printed: ``stdout``, ``stderr``, ``output`` (both in the order they arrived),
    ``status`` (the text of the exit-status channel 3, "" if none) and ``timed_out`` (the stream
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
        the ExitCode cause; raises (ValueError, KeyError...) like WSClient.returncode on any other status."""
        if self.timed_out:
            return None
        err = json.loads(self.status)
        if err["status"] == "Success":
            return 0
        return int(err["details"]["causes"][0]["message"])


def _open(kube, namespace, pod, container, command, timeout):
    """The open exec websocket (kubernetes.stream's WSClient): one counted request of ``kube``."""
    if kube.headers:
        # create_websocket() passes on only the Authorization header: the exec would run with the credentials' own rights
        raise ExecRefused(
            ShmfixError(
                "exec cannot impersonate (impersonate_user/impersonate_groups): the kubernetes client's websocket "
                "transport sends only the Authorization header; give the credentials of that identity instead"
            ),
            namespace,
            pod,
        )
    websocket_call = _websocket_call()
    query = [("command", list(command)), ("container", container), ("stderr", "true"), ("stdin", "false"), ("stdout", "true"), ("tty", "false")]
    _method, url, headers, _body, _post = kube.api_client.param_serialize(
        "GET", resource_path("v1", "pods", namespace, pod, "exec"), header_params={}, auth_settings=["BearerToken"]
    )
    kube.count()
    try:
        return websocket_call(kube.configuration, "GET", url, query_params=query, headers=headers, _preload_content=False, _request_timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - ApiException, websocket and socket errors: exec is impossible
        raise ExecRefused(exc, namespace, pod)


def exec_in_pod(kube, namespace, pod, container, command, timeout, clock=time.time):
    """Run ``command`` in ``container`` of ``pod``; wait at most ``timeout`` seconds; return an ExecResult.

    Raises ExecRefused if the stream cannot be opened; errors while it runs propagate unchanged.
    """
    ws = _open(kube, namespace, pod, container, command, timeout)
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
