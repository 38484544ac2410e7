# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Byte quantities: parse with the kubernetes client's own parser (formatting is units.py's).

API (stable, used by the modules):

- ``parse_bytes(value, what, allow_zero=False) -> int``: a Kubernetes quantity ("256Mi", "1Gi",
  "1.5Gi", "500M", 1073741824) as a whole number of bytes. ``ValueError`` naming ``what``,
  the input and the fix on anything else.
- ``parse_ratio(value, what) -> float``: a ratio with 0 < ratio <= 1.
- ``HAS_KUBERNETES`` / ``KUBERNETES_IMPORT_ERROR``: for ``missing_required_lib("kubernetes")``.

``parse_bytes`` is what callers inject into ``assessment.assess(parse=...)`` and friends.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback
from decimal import Decimal

try:
    from kubernetes.utils.quantity import parse_quantity

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only without the kubernetes client
    parse_quantity = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

_HINT = "use a binary suffix such as 256Mi or 1Gi"


def _fail(what, value, why):
    raise ValueError(f"{what}: {value!r} {why} ({_HINT})")


def parse_bytes(value, what="quantity", allow_zero=False):
    """Return ``value`` (a Kubernetes quantity string or a number of bytes) as an ``int``.

    ``what`` names the input in the error message (an option name, an annotation key, a field path).
    Zero is refused unless ``allow_zero`` (a size is needed almost everywhere); negative numbers,
    fractions of a byte ("100m", "0.5"), booleans, empty strings and ``None`` are always refused.
    The upper-case ``K`` suffix is refused too: the Python client accepts it but the API server
    does not (Kubernetes spells it ``k`` = 1000 or ``Ki`` = 1024).
    """
    if parse_quantity is None:  # pragma: no cover
        raise ValueError(f"{what}: cannot parse {value!r}: the kubernetes Python client is not installed (pip install kubernetes)")
    if value is None or isinstance(value, bool):
        _fail(what, value, "is not a Kubernetes quantity")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            _fail(what, value, "is empty, not a Kubernetes quantity")
        if text.endswith("K"):
            raise ValueError(
                "{0}: {1!r} is not a Kubernetes quantity (Kubernetes has no 'K' suffix: write {2}Ki for KiB or {2}k for thousands)".format(
                    what, value, text[:-1]
                )
            )
        value_for_parser = text
    elif isinstance(value, (int, float, Decimal)):
        value_for_parser = value
    else:
        _fail(what, value, "is not a Kubernetes quantity")
    try:
        number = parse_quantity(value_for_parser)
    except (ValueError, TypeError, ArithmeticError):
        _fail(what, value, "is not a Kubernetes quantity")
    if not number.is_finite():
        _fail(what, value, "is not a finite Kubernetes quantity")
    if number < 0:
        _fail(what, value, "is negative; a size must be positive")
    if number != number.to_integral_value():
        _fail(what, value, "is not a whole number of bytes")
    if number == 0 and not allow_zero:
        _fail(what, value, "is zero; a size must be positive")
    return int(number)


def parse_ratio(value, what="size_ratio"):
    """Return ``value`` as a float ratio with 0 < ratio <= 1, or raise ``ValueError`` naming ``what``."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a ratio (give a number with 0 < ratio <= 1, e.g. 0.5)")
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a number (give a ratio with 0 < ratio <= 1, e.g. 0.5)")
    if not 0 < ratio <= 1:
        raise ValueError(f"{what}: {value!r} is out of range (give a ratio with 0 < ratio <= 1, e.g. 0.5 for half of the pod memory limit)")
    return ratio
