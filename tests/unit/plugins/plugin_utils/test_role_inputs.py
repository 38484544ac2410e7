# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugin_utils/role_inputs.py: a typo in a role variable is named with the nearest known input."""

from ansible_collections.shmfix.k8s.plugins.plugin_utils import role_inputs


def test_the_trial_typo_is_named_with_its_fix():
    specs = role_inputs.load_specs()
    tail = "the run stops before anything is written (inputs: roles/remediate/meta/argument_specs.yml)"
    assert role_inputs.unknown_inputs(["remediate_size_limt", "remediate_size_limit", "eviction_verify_timeout", "other_var"], specs) == [
        "remediate_size_limt is not an input of the remediate role: did you mean remediate_size_limit? " + tail
    ]


def test_every_input_of_every_entry_point_is_known():
    specs = role_inputs.load_specs()
    for role in role_inputs.ROLES:
        known = role_inputs.known_inputs(specs[role])
        assert known and all(name.startswith(role + "_") for name in known), role
    assert "remediate_rollout_soak" in role_inputs.known_inputs(specs["remediate"])
    tail = "the run stops before anything is written (inputs: roles/{0}/meta/argument_specs.yml)"
    assert role_inputs.unknown_inputs(["version_check_min_versoin", "eviction_verify_tiemout"], specs) == [
        "eviction_verify_tiemout is not an input of the eviction_verify role: did you mean eviction_verify_timeout? " + tail.format("eviction_verify"),
        "version_check_min_versoin is not an input of the version_check role: did you mean version_check_min_version? " + tail.format("version_check"),
    ]


def test_a_typo_in_an_admission_input_is_named_too():
    specs = role_inputs.load_specs()
    (message,) = role_inputs.unknown_inputs(["admission_size_limt", "admission_enabled"], specs)
    assert message.startswith("admission_size_limt is not an input of the admission role: did you mean admission_size_limit?")
