# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The manifest module: server-side apply or delete plain manifests with the kubernetes client's dynamic client.

Resources are found by the dynamic client's discovery (discovery.py), so any kind the server
serves works. ``apply`` reports ``created``, ``configured`` or ``unchanged`` by comparing the
object's ``resourceVersion`` before and after (a server-side apply that changes nothing does not
bump it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils.client import map_exception
from ansible_collections.shmfix.k8s.plugins.module_utils.discovery import dynamic_client, resource
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False


def split_documents(docs):
    """Flatten a list of manifests (dicts, ``kind: List`` objects, None from empty YAML documents)."""
    out = []
    for doc in docs or []:
        if not doc:
            continue
        if not isinstance(doc, dict):
            raise ShmfixError("a manifest must be a mapping, got %s" % type(doc).__name__)
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out.extend(split_documents(doc["items"]))
            continue
        for key in ("apiVersion", "kind"):
            if not doc.get(key):
                raise ShmfixError("manifest without %s: %r" % (key, {k: doc[k] for k in list(doc)[:3]}))
        if not (doc.get("metadata") or {}).get("name"):
            raise ShmfixError("%s manifest without metadata.name" % doc["kind"])
        out.append(doc)
    return out


def load_documents(definition=None, src=None):
    """The manifests of the ``definition`` option (a dict, a list or YAML text) or of the ``src`` file."""
    raw = definition
    if src:
        try:
            with open(src) as handle:
                raw = handle.read()
        except OSError as exc:
            raise ShmfixError("src %s cannot be read: %s" % (src, exc))
    if isinstance(raw, str):
        try:
            raw = list(yaml.safe_load_all(raw))
        except yaml.YAMLError as exc:
            raise ShmfixError("the manifests are not valid YAML: %s" % exc)
    return split_documents([raw] if isinstance(raw, dict) else raw)


class _Target(object):
    """Where one manifest lives: its dynamic-client Resource, namespace and name."""

    def __init__(self, kube, doc, default_namespace):
        self.kube = kube
        self.resource = resource(kube, doc["apiVersion"], doc["kind"])
        meta = doc.get("metadata") or {}
        self.name = meta["name"]
        self.kind = doc["kind"]
        self.namespace = (meta.get("namespace") or default_namespace) if self.resource.namespaced else None
        if self.resource.namespaced and not self.namespace:
            raise ShmfixError("%s %s is namespaced: set metadata.namespace or the namespace option" % (doc["kind"], self.name))

    def call(self, verb, method, **kwargs):
        try:
            return getattr(dynamic_client(self.kube), method)(
                self.resource, name=self.name, namespace=self.namespace, _request_timeout=self.kube.timeout, **kwargs
            )
        except Exception as exc:  # noqa: BLE001 - every API error becomes a ShmfixError naming the object
            raise map_exception(exc, verb, self.resource.name, self.namespace, self.name, host=self.kube.host)

    def get(self):
        try:
            return self.call("get", "get").to_dict()
        except ShmfixError as err:
            if err.status == 404:
                return None
            raise

    def record(self, action):
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "action": action}


def apply(kube, doc, default_namespace=None, field_manager="shmfix-manifest", dry_run=False):
    """Server-side apply one manifest; return {kind, namespace, name, action}."""
    target = _Target(kube, doc, default_namespace)
    body = dict(doc, metadata=dict(doc["metadata"]))
    if target.namespace:
        body["metadata"]["namespace"] = target.namespace
    before = target.get()
    after = target.call(
        "apply", "server_side_apply", body=body, field_manager=field_manager, force_conflicts=True, dry_run="All" if dry_run else None
    ).to_dict()
    if before is None:
        return target.record("created")
    changed = (before.get("metadata") or {}).get("resourceVersion") != (after.get("metadata") or {}).get("resourceVersion")
    return target.record("configured" if changed else "unchanged")


def delete(kube, doc, default_namespace=None, dry_run=False, wait=False, timeout=120, poll=1.0):
    """Delete one object (foreground propagation); return {kind, namespace, name, action}."""
    target = _Target(kube, doc, default_namespace)
    if target.get() is None:
        return target.record("absent")
    try:
        target.call(
            "delete", "delete", body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}, dry_run="All" if dry_run else None
        )
    except ShmfixError as err:
        if err.status != 404:
            raise
    deadline = time.time() + timeout
    while wait and not dry_run and target.get() is not None:
        if time.time() > deadline:
            raise ShmfixError("%s %s still exists %ds after its deletion" % (doc["kind"], target.name, timeout))
        time.sleep(poll)
    return target.record("deleted")


def run_manifest(kube, params, check_mode=False):
    """manifest: apply (state=present) or delete (state=absent, in reverse order) every manifest."""
    docs = load_documents(params.get("definition"), params.get("src"))
    results = []
    try:
        if params["state"] == "present":
            for doc in docs:
                results.append(apply(kube, doc, params.get("namespace"), params["field_manager"], dry_run=check_mode))
        else:
            for doc in reversed(docs):
                results.insert(0, delete(kube, doc, params.get("namespace"), dry_run=check_mode, wait=params["wait"], timeout=params["wait_timeout"]))
    except ShmfixError as err:
        raise err.with_result(results=results, api_calls=kube.calls)
    changed = any(r["action"] in ("created", "configured", "deleted") for r in results)
    return {"changed": changed, "results": results, "api_calls": kube.calls}
