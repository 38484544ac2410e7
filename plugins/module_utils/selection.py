# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which workloads: the selected kinds (kinds.py, discovery for custom ones), one list call per kind.

``resolve_kinds(kube, kinds, extra_kinds) -> [KindSpec]`` and
``select_workloads(kube, params, specs) -> [(KindSpec, obj)]`` for the selection options of
shm_info and shm_patch (args_common.SELECTION_ARG_SPEC).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils import kinds as kinds_registry
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kind_path, resource_path
from ansible_collections.shmfix.k8s.plugins.module_utils.discovery import resource
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError


def resolve_kinds(kube, kinds, extra_kinds):
    """KindSpecs for the selected kinds: built-in ones from the registry, custom ones by discovery."""
    specs = []
    for kind in kinds if kinds is not None else kinds_registry.DEFAULT_KINDS:
        try:
            specs.append(kinds_registry.builtin(kind))
        except ValueError as exc:
            raise ShmfixError("kinds: %s" % exc)
    for extra in extra_kinds or []:
        api_version = (extra.get("api_version") or "").strip()
        kind = (extra.get("kind") or "").strip()
        if not api_version or not kind:
            raise ShmfixError("extra_kinds entry %r needs api_version and kind" % (extra,))
        found = resource(kube, api_version, kind, where="extra_kinds")
        specs.append(kinds_registry.custom(kind, api_version, found.name, bool(found.namespaced), extra.get("template_path") or "spec.template"))
    return specs


def list_objects(kube, spec, namespace=None, label_selector=None):
    """Every object of ``spec`` (one list call), each with its apiVersion and kind set."""
    query = {"labelSelector": label_selector} if label_selector else None
    try:
        data = kube.get(kind_path(spec, namespace), query=query, verb="list", resource=spec.resource, namespace=namespace)
    except ShmfixError as err:
        if err.status == 400 and label_selector:
            raise ShmfixError("label_selector %r is malformed: %s" % (label_selector, err.msg), status=err.status, reason=err.reason)
        raise
    items = data.get("items") or []
    for item in items:
        # list items carry no apiVersion/kind
        item.setdefault("apiVersion", spec["api_version"])
        item.setdefault("kind", spec["kind"])
    return items


def controller_owner(obj):
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return {"kind": ref.get("kind"), "name": ref.get("name")}
    if refs:
        return {"kind": refs[0].get("kind"), "name": refs[0].get("name")}
    return None


def _wanted(spec, obj, exclude, names):
    meta = obj.get("metadata") or {}
    if meta.get("namespace") in exclude or (names and meta.get("name") not in names):
        return False
    return not (spec["left_to_owner"] and any(r.get("controller") for r in meta.get("ownerReferences") or []))


def _check_namespaces(kube, namespaces, seen, warnings):
    """A namespace given in ``namespaces`` that yielded no object must exist: a typo fails instead of selecting nothing.

    Credentials that may not read namespaces cannot tell a typo from an empty namespace: that is a warning.
    """
    for ns in namespaces:
        if ns in seen:
            continue
        try:
            kube.get(resource_path("v1", "namespaces", name=ns), verb="get", resource="namespaces", name=ns)
        except ShmfixError as err:
            if err.status == 404:
                raise ShmfixError("namespace %r (in namespaces) does not exist" % ns, status=404, reason=err.reason)
            if err.status != 403:
                raise
            warnings.append(
                "namespace %r (in namespaces) has no selected workload, and whether it exists cannot be checked: %s; "
                "grant get on namespaces to catch a typo" % (ns, err.msg)
            )


def select_workloads(kube, params, specs, warnings=None, listed=None):
    """[(KindSpec, obj)] for the selection. One list call per kind (per namespace when namespaces is set).

    What the credentials do not let it check is appended to ``warnings`` (a list), when given.
    ``listed`` (a dict), when given, receives every object listed per built-in kind, owned ones too
    (shm_info's evidence reuses the list of Pods).
    """
    namespaces = params.get("namespaces")
    exclude = set(params.get("exclude_namespaces") or [])
    names = set(params.get("names") or [])
    label_selector = params.get("label_selector")
    if namespaces is not None:
        namespaces = [n for n in namespaces if n not in exclude]
    seen, named = set(), set()
    selected = []
    for spec in specs:
        scopes = [None] if namespaces is None or not spec["namespaced"] else namespaces
        for namespace in scopes:
            objs = list_objects(kube, spec, namespace, label_selector)
            if listed is not None and not spec["custom"]:
                listed.setdefault(spec["kind"], []).extend(objs)
            for obj in objs:
                meta = obj.get("metadata") or {}
                seen.add(meta.get("namespace"))
                if meta.get("namespace") not in exclude:
                    named.add(meta.get("name"))
                if _wanted(spec, obj, exclude, names):
                    selected.append((spec, obj))
    if namespaces:
        _check_namespaces(kube, namespaces, seen, warnings if warnings is not None else [])
    _check_names(names, named, specs)
    return selected


def _check_names(names, named, specs):
    """A name given in ``names`` that no listed workload has is a typo (as kubectl's NotFound): fail before any write."""
    missing = sorted(names - named)
    if missing:
        raise ShmfixError(
            "names %s matched no workload of the kinds %s in the selected namespaces; check the spelling, "
            "or the kinds, namespaces and label_selector options" % (", ".join(repr(n) for n in missing), ", ".join(s["kind"] for s in specs))
        )
