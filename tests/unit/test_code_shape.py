# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The house rules that keep the rooms readable: small files, functions short enough to read at once."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(ROOT, "plugins")
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 60


def _python_files(base):
    for folder, _dirs, files in os.walk(base):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


@pytest.mark.parametrize("path", sorted(_python_files(os.path.join(PLUGINS, "module_utils"))) + sorted(_python_files(os.path.join(PLUGINS, "plugin_utils"))))
def test_no_room_over_450_lines(path):
    with open(path) as handle:
        lines = len(handle.readlines())
    assert lines <= MAX_FILE_LINES, "%s has %d lines: split it by concern" % (os.path.relpath(path, ROOT), lines)


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", sorted(_python_files(PLUGINS)))
def test_no_function_over_60_lines(path):
    with open(path) as handle:
        tree = ast.parse(handle.read())
    long_ones = ["%s (%d lines)" % (f.name, f.end_lineno - f.lineno + 1) for f in _functions(tree) if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long_ones, "%s: %s" % (os.path.relpath(path, ROOT), ", ".join(long_ones))
