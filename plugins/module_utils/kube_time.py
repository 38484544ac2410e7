# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the API server's timestamps (RFC 3339 UTC, whole seconds: creationTimestamp, finishedAt, ...)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import time

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def timestamp(seconds):
    """An RFC 3339 UTC time as the API server writes it: 1764648000 -> '2025-12-02T04:00:00Z'."""
    return time.strftime(TIME_FORMAT, time.gmtime(seconds))


def parse_timestamp(text):
    """Seconds since the epoch of an RFC 3339 UTC time; None when it is not one."""
    try:
        return calendar.timegm(time.strptime(str(text), TIME_FORMAT))
    except ValueError:
        return None
