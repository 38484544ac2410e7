# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dfexec.py helpers that need no API server: selectors, the /dev/shm volume of a container, owners."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import dfexec
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError


def test_selector_to_string():
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "DoesNotExist"}],
    }
    assert dfexec.selector_to_string(sel) == "app=web,tier in (a,b),!x"
    assert dfexec.selector_to_string({"app": "web"}) == "app=web"


def test_shm_volume_of():
    pod = {"spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm/"}]}]}}
    assert dfexec.shm_volume_of(pod, "c") == "dshm"
    assert dfexec.shm_volume_of(pod, "other") is None


def test_owner_kind_comes_from_the_registry_or_in_full():
    assert dfexec._owner_kind({"kind": "StatefulSet", "name": "pg"})["pods"] == "selector"
    assert dfexec._owner_kind({"kind": "Rollout", "name": "r", "api_version": "argoproj.io/v1alpha1", "plural": "rollouts"}).resource == "rollouts.argoproj.io"
    with pytest.raises(ShmfixError, match="owner kind 'Rollout' is not a built-in workload kind; give owner.api_version and owner.plural"):
        dfexec._owner_kind({"kind": "Rollout", "name": "r"})
