# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""selection.py: kinds resolved and objects selected, without an API server where no call is needed."""

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import selection
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError


def test_unknown_kind_fails_before_any_call():
    with pytest.raises(ShmfixError) as err:
        selection.resolve_kinds(None, ["Deploymnet"], [])
    assert "unknown kind 'Deploymnet'" in err.value.msg


def test_builtin_kinds_need_no_discovery():
    assert [s["kind"] for s in selection.resolve_kinds(None, ["Deployment", "CronJob"], [])] == ["Deployment", "CronJob"]


def test_owned_replicasets_and_pods_are_left_to_their_owner():
    rs = {"metadata": {"namespace": "a", "name": "web-1", "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}]}}
    assert selection.controller_owner(rs) == {"kind": "Deployment", "name": "web"}
    specs = {s["kind"]: s for s in selection.resolve_kinds(None, ["ReplicaSet", "Deployment", "Pod"], [])}
    assert not selection._wanted(specs["ReplicaSet"], rs, set(), set())
    assert not selection._wanted(specs["Pod"], rs, set(), set())
    assert selection._wanted(specs["Deployment"], rs, set(), set())
    assert not selection._wanted(specs["Deployment"], rs, {"a"}, set())
    assert not selection._wanted(specs["Deployment"], rs, set(), {"other"})


def test_a_name_no_listed_workload_has_fails_naming_it():
    specs = [{"kind": "Deployment"}, {"kind": "StatefulSet"}]
    selection._check_names({"web", "api"}, {"web", "api", "db"}, specs)
    with pytest.raises(ShmfixError) as err:
        selection._check_names({"web", "Not_A_Name"}, {"web", "db"}, specs)
    assert "'Not_A_Name'" in err.value.msg and "'web'" not in err.value.msg
    assert "kinds Deployment, StatefulSet" in err.value.msg and "check the spelling" in err.value.msg
