# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The validators of module options, called once at the edge (a module's run, a filter).

``size_options(params)`` checks what shm_patch, the remediate role and the admission policy take
(``size_limit``, ``size_ratio``, ``min_size``, ``max_size``, ``existing``, ``volume_name``) and
returns them validated: sizes as byte counts, the ratio as a float. Every error is a
``ShmfixError`` naming the option, the value and the fix, in one wording per rule. The pure
planner (size_policy.py, plan.py) receives only validated values.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.evidence import DEFAULT_DF_THRESHOLD, DEFAULT_LOG_LINES
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import DEFAULT_VOLUME_NAME, EXISTING_MODES
from ansible_collections.shmfix.k8s.plugins.module_utils.quantity import parse_bytes, parse_ratio
from ansible_collections.shmfix.k8s.plugins.module_utils.units import format_bytes

SIZE_KEYS = ("size_limit", "min_size", "max_size")
# A volume name is a DNS-1123 label (the API server refuses anything else at write time).
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def size_options(params):
    """{size_limit, size_ratio, min_size, max_size, existing, volume_name} validated; ShmfixError otherwise."""
    out = {}
    try:
        for key in SIZE_KEYS:
            out[key] = None if params.get(key) is None else parse_bytes(params[key], key)
        out["size_ratio"] = None if params.get("size_ratio") is None else parse_ratio(params["size_ratio"], "size_ratio")
    except ValueError as exc:
        raise ShmfixError(str(exc))
    if out["size_limit"] is not None and out["size_ratio"] is not None:
        raise ShmfixError("size_limit and size_ratio are mutually exclusive; give one")
    if out["min_size"] is not None and out["max_size"] is not None and out["min_size"] > out["max_size"]:
        raise ShmfixError(f"min_size {format_bytes(out['min_size'])} is above max_size {format_bytes(out['max_size'])}: give min_size <= max_size")
    out["existing"] = "grow" if params.get("existing") is None else params["existing"]
    if out["existing"] not in EXISTING_MODES:
        raise ShmfixError(f"existing: {out['existing']!r} must be one of {', '.join(EXISTING_MODES)}")
    out["volume_name"] = volume_name(DEFAULT_VOLUME_NAME if params.get("volume_name") is None else params["volume_name"])
    return out


def volume_name(name, what="volume_name"):
    """``name`` if it is a valid volume name (a DNS-1123 label); ShmfixError naming ``what`` otherwise."""
    if not isinstance(name, str) or len(name) > 63 or not _DNS1123_LABEL.match(name):
        raise ShmfixError(f"{what}: {name!r} is not a valid volume name (lower-case letters, digits and '-', at most 63, e.g. dshm)")
    return name


def at_least_one(params, *keys):
    """ShmfixError naming the first of ``keys`` (counts: parallelism, timeouts) that is set below 1."""
    for key in keys:
        if params.get(key) is not None and params[key] < 1:
            raise ShmfixError("%s must be at least 1, got %r" % (key, params[key]))


def evidence_options(params):
    """{evidence, df, threshold, logs, log_lines} of shm_info's evidence options, validated; ShmfixError otherwise."""
    at_least_one(params, "evidence_log_lines")
    threshold = params.get("evidence_df_threshold")
    threshold = DEFAULT_DF_THRESHOLD if threshold is None else threshold
    if not 1 <= threshold <= 100:
        raise ShmfixError("evidence_df_threshold must be a percentage from 1 to 100, got %r" % threshold)
    df, logs = bool(params.get("evidence_df")), bool(params.get("evidence_logs"))
    if (df or logs) and params.get("evidence") is False:
        raise ShmfixError("evidence_df and evidence_logs read the pods that evidence=false does not list; drop evidence=false")
    return {
        "evidence": params.get("evidence") is not False,
        "df": df,
        "threshold": threshold,
        "logs": logs,
        "log_lines": params.get("evidence_log_lines") or DEFAULT_LOG_LINES,
    }
