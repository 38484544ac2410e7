# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: Kubernetes versions and what they mean for memory-backed emptyDir sizing.

SizeMemoryBackedVolumes (KEP-1967) is a kubelet feature: alpha in 1.20 (off by default), beta in
1.22 (on by default), GA and locked on in 1.32, gate removed in 1.35. When it is on the kubelet
mounts the tmpfs with ``size=min(node allocatable, pod memory limit, sizeLimit)`` and writes past it
fail with ENOSPC ("sized"); when it is off the tmpfs is the kernel default (half of the node's RAM)
and ``sizeLimit`` is only enforced by the eviction manager ("eviction").

API:

- ``parse_version(text, what='version') -> (major, minor, patch)``; accepts 'v1.29.3-eks-4f4795d',
  'v1.30.1+k3s1', 'v1.28.9-gke.1000', 'v1.34.4', '1.22', a ``/version`` dict (``gitVersion``, or
  ``major``/``minor`` such as '29+') or a tuple. ``ValueError`` otherwise.
- ``tier(version) -> 'unsized'|'gated'|'default_on'|'ga'``
- ``expected_enforcement(version, feature_gates=None) -> 'sized'|'eviction'``
- ``compare(a, b) -> -1|0|1`` and ``at_least(version, minimum) -> bool``
- ``format_version((1, 29, 3)) -> 'v1.29.3'``
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

FEATURE_GATE = "SizeMemoryBackedVolumes"
ALPHA = (1, 20, 0)
BETA = (1, 22, 0)
GA = (1, 32, 0)
GATE_REMOVED = (1, 35, 0)

UNSIZED = "unsized"
GATED = "gated"
DEFAULT_ON = "default_on"
TIER_GA = "ga"

SIZED = "sized"
EVICTION = "eviction"

# A version is not a quantity: a regex is the right tool here.  Build metadata and vendor
# suffixes ('-eks-4f4795d', '+k3s1', '-gke.1000', '-rc.1') are ignored.
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\+?(?:\.(\d+))?(?:[-+].*)?$")


def parse_version(text, what="version"):
    """Return ``(major, minor, patch)`` for a kubelet/server version; ``ValueError`` naming ``what`` if it is not one."""
    if isinstance(text, tuple) and len(text) in (2, 3) and all(isinstance(x, int) and not isinstance(x, bool) for x in text):
        return (text + (0,))[:3]
    if isinstance(text, dict):
        if text.get("gitVersion"):
            return parse_version(text["gitVersion"], what)
        if text.get("major") and text.get("minor"):
            return parse_version("{}.{}".format(text["major"], text["minor"]), what)
    if isinstance(text, str):
        match = _VERSION_RE.match(text.strip())
        if match:
            return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    raise ValueError(f"{what}: {text!r} is not a Kubernetes version (expected something like v1.29.3, v1.30.1+k3s1 or 1.22)")


def format_version(version):
    """``(1, 29, 3)`` -> ``'v1.29.3'``."""
    major, minor, patch = parse_version(version)
    return f"v{major}.{minor}.{patch}"


def compare(a, b):
    """-1, 0 or 1 as version ``a`` is older than, the same as or newer than ``b`` (vendor suffixes ignored)."""
    va, vb = parse_version(a), parse_version(b)
    return (va > vb) - (va < vb)


def at_least(version, minimum):
    """True when ``version`` >= ``minimum``, e.g. ``at_least('v1.29.3-eks-1', '1.22')``."""
    return compare(version, minimum) >= 0


def tier(version):
    """Where a kubelet version stands for SizeMemoryBackedVolumes.

    'unsized' (< 1.20: no feature), 'gated' (1.20-1.21: alpha, off unless enabled),
    'default_on' (1.22-1.31: beta, on unless disabled), 'ga' (>= 1.32: always on).
    """
    v = parse_version(version)
    if v < ALPHA:
        return UNSIZED
    if v < BETA:
        return GATED
    if v < GA:
        return DEFAULT_ON
    return TIER_GA


def parse_feature_gates(feature_gates):
    """Normalise feature gates to ``{name: bool}``.

    Accepts a dict (kubelet config ``featureGates``; values may be bools or 'true'/'false' strings)
    or the ``--feature-gates`` flag form ``'A=true,B=false'``. ``ValueError`` on a malformed entry.
    """
    if not feature_gates:
        return {}
    if isinstance(feature_gates, dict):
        items = feature_gates.items()
    elif isinstance(feature_gates, str):
        items = []
        for part in feature_gates.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"feature_gates: {part!r} is not NAME=true|false (as in --feature-gates=SizeMemoryBackedVolumes=false)")
            items.append((name.strip(), value.strip()))
    else:
        raise ValueError(f"feature_gates: {feature_gates!r} must be a dict or a 'Name=true,Other=false' string")  # noqa: TRY004 - callers catch ValueError
    gates = {}
    for name, value in items:
        gates[name] = _gate_bool(name, value)
    return gates


def _gate_bool(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"feature_gates: {name}={value!r} must be true or false")


def expected_enforcement(version, feature_gates=None):
    """How a kubelet of ``version`` enforces a memory emptyDir ``sizeLimit``: 'sized' or 'eviction'.

    - < 1.20: 'eviction' (the tmpfs is half of the node's RAM).
    - 1.20-1.21: 'sized' only when SizeMemoryBackedVolumes is explicitly true, else 'eviction'.
    - 1.22-1.31: 'eviction' only when the gate is explicitly false, else 'sized'.
    - >= 1.32: 'sized' (the gate is locked on; from 1.35 it no longer exists).
    """
    t = tier(version)
    gate = parse_feature_gates(feature_gates).get(FEATURE_GATE)
    if t == UNSIZED:
        return EVICTION
    if t == GATED:
        return SIZED if gate is True else EVICTION
    if t == DEFAULT_ON:
        return EVICTION if gate is False else SIZED
    return SIZED
