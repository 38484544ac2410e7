# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the errors every shmfix module fails with.

``ShmfixError(msg, status=None, reason=None, body=None, result=None)``: a message for the user,
the API's ``status``/``reason`` when known, and ``result``: the partial module result (records
written before the error, ``api_calls``) that ``fail_kwargs()`` returns with the message, as
kubernetes.core's ``ResourceTimeout(message, result=None)`` does. A module's ``main()`` is::

    try:
        result = run_x(kube_from_params(module.params), module.params)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ShmfixError(Exception):
    """An error with a message for the user; ``result`` carries the partial module result."""

    def __init__(self, msg, status=None, reason=None, body=None, result=None):
        super(ShmfixError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.reason = reason
        self.body = body
        self.result = dict(result or {})

    def with_result(self, **result):
        """Add partial results (keys already set are kept) and return the error, to re-raise it."""
        for key, value in result.items():
            self.result.setdefault(key, value)
        return self

    def fail_kwargs(self):
        """Keyword arguments for ``module.fail_json``: the partial result, msg, status and reason."""
        out = dict(self.result)
        out["msg"] = self.msg
        if self.status is not None:
            out["status"] = self.status
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class ConflictError(ShmfixError):
    """The object changed between read and write (HTTP 409 / failed resourceVersion test)."""
