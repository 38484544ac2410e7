# -*- coding: utf-8 -*-
# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply (server-side) or delete plain manifests through a ``client.Kube``.

Resources are found with API discovery (``/api/v1``, ``/apis/<group>/<version>``), so any kind the
server serves works. ``apply`` reports ``created``, ``configured`` or ``unchanged`` by comparing the
object's ``resourceVersion`` before and after (a server-side apply that changes nothing does not
bump it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.shmfix.k8s.plugins.module_utils.client import ShmfixError, api_prefix


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


class Resources(object):
    """API discovery with a cache: (apiVersion, kind) -> (plural, namespaced)."""

    def __init__(self, kube):
        self.kube = kube
        self.cache = {}

    def lookup(self, api_version, kind):
        if api_version not in self.cache:
            data = self.kube.get(api_prefix(api_version), verb="get", resource="discovery %s" % api_version)
            self.cache[api_version] = {r["kind"]: (r["name"], bool(r.get("namespaced"))) for r in data.get("resources") or [] if "/" not in r.get("name", "")}
        try:
            return self.cache[api_version][kind]
        except KeyError:
            raise ShmfixError("the API server serves no kind %s in %s" % (kind, api_version))


def object_path(resources, doc, default_namespace=None):
    plural, namespaced = resources.lookup(doc["apiVersion"], doc["kind"])
    meta = doc.get("metadata") or {}
    namespace = meta.get("namespace") or default_namespace if namespaced else None
    if namespaced and not namespace:
        raise ShmfixError("%s %s is namespaced: set metadata.namespace or the namespace option" % (doc["kind"], meta["name"]))
    path = api_prefix(doc["apiVersion"])
    if namespace:
        path += "/namespaces/" + namespace
    return path + "/" + plural, plural, namespace


def _get(kube, path, name, plural, namespace):
    try:
        return kube.get(path + "/" + name, verb="get", resource=plural, namespace=namespace, name=name)
    except ShmfixError as err:
        if err.status == 404:
            return None
        raise


def apply(kube, resources, doc, default_namespace=None, field_manager="shmfix-manifest", dry_run=False):
    """Server-side apply one manifest; return {kind, namespace, name, action}."""
    path, plural, namespace = object_path(resources, doc, default_namespace)
    name = doc["metadata"]["name"]
    body = dict(doc)
    body["metadata"] = dict(doc["metadata"])
    if namespace:
        body["metadata"]["namespace"] = namespace
    before = _get(kube, path, name, plural, namespace)
    query = {"fieldManager": field_manager, "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    after = kube.request(
        "PATCH",
        path + "/" + name,
        query=query,
        body=body,
        content_type="application/apply-patch+yaml",
        verb="apply",
        resource=plural,
        namespace=namespace,
        name=name,
    )
    if before is None:
        action = "created"
    elif (before.get("metadata") or {}).get("resourceVersion") != (after.get("metadata") or {}).get("resourceVersion"):
        action = "configured"
    else:
        action = "unchanged"
    return {"kind": doc["kind"], "namespace": namespace, "name": name, "action": action}


def delete(kube, resources, doc, default_namespace=None, dry_run=False, wait=False, timeout=120, poll=1.0):
    """Delete one object (foreground propagation); return {kind, namespace, name, action}."""
    path, plural, namespace = object_path(resources, doc, default_namespace)
    name = doc["metadata"]["name"]
    if _get(kube, path, name, plural, namespace) is None:
        return {"kind": doc["kind"], "namespace": namespace, "name": name, "action": "absent"}
    query = {"dryRun": "All"} if dry_run else None
    try:
        kube.request(
            "DELETE",
            path + "/" + name,
            query=query,
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"},
            verb="delete",
            resource=plural,
            namespace=namespace,
            name=name,
        )
    except ShmfixError as err:
        if err.status != 404:
            raise
    if wait and not dry_run:
        deadline = time.time() + timeout
        while _get(kube, path, name, plural, namespace) is not None:
            if time.time() > deadline:
                raise ShmfixError("%s %s still exists %ds after its deletion" % (doc["kind"], name, timeout))
            time.sleep(poll)
    return {"kind": doc["kind"], "namespace": namespace, "name": name, "action": "deleted"}
