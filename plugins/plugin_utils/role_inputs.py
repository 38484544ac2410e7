# -*- coding: utf-8 -*-
# Copyright: (c) 2026, shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the playbooks' first step: refuse role variables no role knows.

A typo (``-e remediate_size_limt=2Gi``) is an unknown variable to Ansible, so the role silently runs
with its default and changes production with a size nobody asked for. Every variable named like a
role's input (``remediate_*``, ``eviction_verify_*``, ``version_check_*``, ``admission_*``) must be one of the options
of that role's meta/argument_specs.yml; ``unknown_inputs`` says which are not and the nearest known name.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os

ROLES = ("remediate", "eviction_verify", "version_check", "admission")
ROLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles")


def known_inputs(argument_specs):
    """Every option of every entry point of one role's argument_specs (the parsed meta/argument_specs.yml)."""
    names = set()
    for entry in ((argument_specs or {}).get("argument_specs") or {}).values():
        names.update((entry or {}).get("options") or {})
    return names


def unknown_inputs(names, specs_by_role):
    """Messages for the ``names`` that look like a role's input but are none of its options (pure)."""
    messages = []
    for name in sorted(set(names or [])):
        role = next((r for r in sorted(specs_by_role, key=len, reverse=True) if name.startswith(r + "_")), None)
        if role is None:
            continue
        known = known_inputs(specs_by_role[role])
        if name in known:
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = "did you mean %s? " % near[0] if near else ""
        messages.append(
            "%s is not an input of the %s role: %sthe run stops before anything is written (inputs: roles/%s/meta/argument_specs.yml)"
            % (name, role, hint, role)
        )
    return messages


def load_specs(roles_dir=ROLES_DIR, roles=ROLES):
    """{role: parsed meta/argument_specs.yml} of the collection's roles (PyYAML, which Ansible ships)."""
    import yaml  # pylint: disable=import-outside-toplevel

    specs = {}
    for role in roles:
        with open(os.path.join(roles_dir, role, "meta", "argument_specs.yml")) as handle:
            specs[role] = yaml.safe_load(handle)
    return specs
