# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure rooms import neither Ansible nor the kubernetes client."""

import os
import subprocess
import sys

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import units

PURE = [
    "module_utils." + name
    for name in (
        "kinds",
        "units",
        "podspec",
        "assessment",
        "findings",
        "size_policy",
        "plan",
        "rollback",
        "gitops",
        "errors",
        "outcomes",
        "pod_status",
        "canary",
        "df",
        "versions",
        "evidence",
    )
] + ["plugin_utils." + name for name in ("report", "version_grading", "canary_probes", "remediation", "targeting")]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_without_ansible_or_kubernetes(module):
    base = os.path.abspath(os.path.join(os.path.dirname(units.__file__), *[".."] * 5))
    code = (
        "import sys; sys.modules['kubernetes'] = None; sys.modules['ansible'] = None; sys.path.insert(0, sys.argv[1]); "
        "import importlib; importlib.import_module('ansible_collections.shmfix.k8s.plugins.' + sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, base, module], check=True)
