# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the checkout importable as ``ansible_collections.shmfix.k8s`` (the way Ansible imports it).

Under ``ansible-test units`` the checkout already sits in ``.../ansible_collections/shmfix/k8s`` and
that tree is used. Otherwise the ``.collections/ansible_collections/shmfix/k8s`` symlink that
``make collection`` creates is used, and created here if it is missing, so a bare
``python -m pytest tests/unit`` works too.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collections_root():
    parts = ROOT.split(os.sep)
    if parts[-3:-2] == ["ansible_collections"] and parts[-2:] == ["shmfix", "k8s"]:
        return os.sep.join(parts[:-3])
    base = os.path.join(ROOT, ".collections")
    link = os.path.join(base, "ansible_collections", "shmfix", "k8s")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    return base


_BASE = _collections_root()
if _BASE not in sys.path:
    sys.path.insert(0, _BASE)
