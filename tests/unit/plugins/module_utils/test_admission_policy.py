# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""admission_policy.py and admission_cel.py (the objects and their CEL as text) and the pure parts of admission.py
(which protection, what is active). Whether the CEL computes what size_policy/plan compute is checked on the API
server itself: tests/integration/test_admission.py."""

import json
import re

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils import admission, admission_cel, admission_policy
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.kinds import BUILTIN
from ansible_collections.shmfix.k8s.plugins.module_utils.options import size_options

MI = 1024**2
SELECTION = {"namespaces": None, "exclude_namespaces": ["kube-system"], "label_selector": None}


def sizes(**params):
    return size_options(params)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", {}),
        (None, {}),
        ("app=web", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
        ("app==web", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
        ("tier!=cache", {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["cache"]}]}),
        ("gpu in (a100, h100)", {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100", "h100"]}]}),
        ("gpu notin (t4)", {"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["t4"]}]}),
        (
            "shmfix.io/opt-in,!legacy",
            {"matchExpressions": [{"key": "shmfix.io/opt-in", "operator": "Exists"}, {"key": "legacy", "operator": "DoesNotExist"}]},
        ),
        (
            "app=web,gpu in (a,b),!x",
            {
                "matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web"]},
                    {"key": "gpu", "operator": "In", "values": ["a", "b"]},
                    {"key": "x", "operator": "DoesNotExist"},
                ]
            },
        ),
    ],
)
def test_label_selector_strings_become_label_selectors(text, expected):
    assert admission_policy.label_selector(text) == expected


@pytest.mark.parametrize("text", ["app=web,=x", "!app=web", "gpu in a100", "a b"])
def test_malformed_label_selectors_are_refused_naming_the_term(text):
    with pytest.raises(ValueError, match="label_selector"):
        admission_policy.label_selector(text)


def test_match_resources_namespaces_and_objects():
    out = admission_policy.match_resources({"namespaces": ["ml", "b"], "exclude_namespaces": ["kube-system"], "label_selector": "app=x"})
    assert out["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["b", "ml"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
    ]
    assert out["objectSelector"] == {"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]}
    assert admission_policy.match_resources({})["namespaceSelector"] == {"matchExpressions": []}
    assert "objectSelector" not in admission_policy.match_resources({})


@pytest.mark.parametrize("version", ["admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1", "admissionregistration.k8s.io/v1alpha1"])
def test_mutating_policy_and_binding_of_each_served_version(version):
    policy, binding = admission_policy.mutating_objects("shmfix-shm", version, sizes(size_limit="1Gi"), SELECTION)
    assert (policy["apiVersion"], policy["kind"], binding["apiVersion"], binding["kind"]) == (
        version,
        "MutatingAdmissionPolicy",
        version,
        "MutatingAdmissionPolicyBinding",
    )
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == "shmfix-shm"
    for obj in (policy, binding):
        assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "shmfix", "shmfix.io/admission": "shmfix-shm"}
        assert json.loads(obj["metadata"]["annotations"]["shmfix.io/size-policy"])["size_limit"] == "1Gi"
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Ignore" and spec["reinvocationPolicy"] == "IfNeeded"
    assert spec["matchConstraints"]["resourceRules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
    names = [v["name"] for v in spec["variables"]]
    assert len(names) == len(set(names))
    (mutation,) = spec["mutations"]
    assert mutation["patchType"] == "ApplyConfiguration"
    assert "variables.sizeLimit" in mutation["applyConfiguration"]["expression"]


def test_variables_are_defined_before_use():
    for objs in (
        admission_policy.mutating_objects("p", "admissionregistration.k8s.io/v1beta1", sizes(size_ratio=0.25, max_size="2Gi"), SELECTION),
        admission_policy.validating_objects("p", sizes(), SELECTION),
    ):
        variables = objs[0]["spec"]["variables"]
        defined = set()
        every = {v["name"] for v in variables}
        for var in variables:
            used = {name for name in every if re.search(r"\bvariables\.%s\b" % name, var["expression"])}
            assert used <= defined, (var["name"], used - defined)
            defined.add(var["name"])


def test_size_policy_literals_reach_the_cel():
    by_name = lambda objs: {v["name"]: v["expression"] for v in objs[0]["spec"]["variables"]}
    fixed = by_name(admission_policy.mutating_objects("p", "v", sizes(size_limit="3Gi"), SELECTION))
    assert fixed["desiredBytes"].endswith("(%d)" % (3 * 1024 * MI))
    ratio = by_name(admission_policy.mutating_objects("p", "v", sizes(size_ratio=0.25, min_size="128Mi", max_size="2Gi"), SELECTION))
    assert "* 0.25)" in ratio["desiredBytes"] and str(128 * MI) in ratio["desiredBytes"] and str(2048 * MI) in ratio["desiredBytes"]
    default = by_name(admission_policy.mutating_objects("p", "v", sizes(), SELECTION))
    assert "* 0.5)" in default["desiredBytes"] and str(64 * MI) in default["desiredBytes"]


@pytest.mark.parametrize("value,cel", [("a'b\"c", '"a\'b\\"c"'), (3, "3"), (0.1, "0.1"), (True, "true"), (["x", 2], '["x", 2]')])
def test_cel_literals(value, cel):
    assert admission_cel.lit(value) == cel


def test_validating_policy_covers_every_builtin_workload_kind_and_warns_by_default():
    policy, binding = admission_policy.validating_objects("shmfix-shm", sizes(), SELECTION)
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    plurals = {p for rule in policy["spec"]["matchConstraints"]["resourceRules"] for p in rule["resources"]}
    assert plurals == {spec["plural"] for spec in BUILTIN.values()}
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    message = policy["spec"]["validations"][0]["messageExpression"]
    assert "fix-shm.yml" in message and "shmfix.io/skip" in message
    deny = admission_policy.validating_objects("x", sizes(), SELECTION, ["Deny", "Audit"])[1]
    assert deny["spec"]["validationActions"] == ["Deny", "Audit"]


def test_choose_prefers_the_mutating_policy_and_falls_back():
    both = {"mutating": "admissionregistration.k8s.io/v1beta1", "validating": "admissionregistration.k8s.io/v1"}
    only_vap = {"mutating": None, "validating": "admissionregistration.k8s.io/v1"}
    assert admission.choose(both, "auto") == ("mutating", both["mutating"])
    assert admission.choose(both, "validating") == ("validating", both["validating"])
    assert admission.choose(only_vap, "auto") == ("validating", only_vap["validating"])
    assert admission.choose({"mutating": None, "validating": None}, "auto") == ("none", None)
    with pytest.raises(ShmfixError, match="mode=mutating"):
        admission.choose(only_vap, "mutating")
    assert admission.available(both) == "mutating v1beta1"
    assert admission.available(only_vap) == "validating Warn,Audit"


def test_desired_refuses_deny_with_warn_and_bad_selectors():
    params = {"name": "p", "validation_actions": ["Deny", "Warn"], "label_selector": None, "namespaces": None, "exclude_namespaces": []}
    with pytest.raises(ShmfixError, match="Deny and Warn"):
        admission.desired(params, "validating", "admissionregistration.k8s.io/v1")
    params.update(validation_actions=None, label_selector="a b")
    with pytest.raises(ShmfixError, match="label_selector"):
        admission.desired(params, "mutating", "admissionregistration.k8s.io/v1beta1")
    assert admission.desired(dict(params, label_selector=None), "none", None) == []


def test_active_reads_the_installed_objects():
    objs = admission_policy.validating_objects("p", sizes(size_limit="512Mi"), SELECTION)
    got = admission.active(objs)
    assert (got["protection"], got["label"], got["validation_actions"]) == ("validating", "validating Warn,Audit", ["Warn", "Audit"])
    assert got["size_policy"]["size_limit"] == "512Mi"
    assert admission.active(objs[:1])["protection"] == "none"  # a policy without its binding protects nothing
    mutating = admission_policy.mutating_objects("p", "admissionregistration.k8s.io/v1", sizes(), SELECTION)
    assert admission.active(mutating)["label"] == "mutating v1"


def test_trimmed_drops_what_the_server_owns():
    obj = {"kind": "X", "status": {"a": 1}, "metadata": {"name": "n", "uid": "u", "resourceVersion": "1", "managedFields": [], "labels": {"a": "b"}}}
    assert admission.trimmed(obj) == {"kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}}}
    assert admission.trimmed(None) == {}
