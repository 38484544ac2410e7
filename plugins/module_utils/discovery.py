# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""API discovery with the kubernetes client's dynamic client (as kubernetes.core does).

``resource(kube, api_version, kind)`` returns the dynamic client's ``Resource`` (``name`` is the
plural, ``namespaced``), with the client's discovery cache; a kind the server does not serve is a
``ShmfixError`` that lists what the API version does serve. The dynamic client is built once
per ``Kube`` and only when a custom kind or a manifest needs it: the built-in kinds need no
discovery, so shm_info and shm_patch make only their list calls.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.client import map_exception
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError

try:
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.discovery import LazyDiscoverer
    from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

    class RunDiscoverer(LazyDiscoverer):
        """The dynamic client's lazy discovery, cached for one module run only (never in a file): a stale
        cache cannot hide a CRD installed since, and a run makes the same discovery requests every time."""

        def _write_cache(self):
            pass

except ImportError:  # pragma: no cover - Kube() already fails with missing_required_lib("kubernetes")
    DynamicClient = RunDiscoverer = None
    ResourceNotFoundError = ResourceNotUniqueError = Exception

# A path that never exists: RunDiscoverer starts every run with an empty cache.
_NO_CACHE_FILE = "/nonexistent/shmfix-discovery-cache.json"


def dynamic_client(kube):
    """The DynamicClient over ``kube``'s counted ApiClient, built on first use."""
    if getattr(kube, "_dynamic", None) is None:
        try:
            kube._dynamic = DynamicClient(kube.api_client, cache_file=_NO_CACHE_FILE, discoverer=RunDiscoverer)
        except Exception as exc:  # noqa: BLE001 - discovery requests fail like any other
            raise map_exception(exc, "get", "API discovery", host=kube.host)
    return kube._dynamic


def _served_kinds(dyn, api_version):
    return sorted({r.kind for r in dyn.resources.search(api_version=api_version) if "/" not in (r.name or "")})


def resource(kube, api_version, kind, where="the manifests"):
    """The dynamic client's Resource of ``kind`` in ``api_version``; ShmfixError naming ``where`` the kind came from otherwise."""
    dyn = dynamic_client(kube)
    try:
        return dyn.resources.get(api_version=api_version, kind=kind)
    except (ResourceNotFoundError, ResourceNotUniqueError):
        served = _served_kinds(dyn, api_version)
    except Exception as exc:  # noqa: BLE001 - discovery requests fail like any other
        raise map_exception(exc, "get", "API group %s" % api_version, host=kube.host)
    if not served:
        raise ShmfixError("%s: api_version %r is not served by this cluster (kind %r); is the CRD installed?" % (where, api_version, kind), status=404)
    raise ShmfixError("unknown kind %r in %s: api_version %r serves %s" % (kind, where, api_version, ", ".join(served)))
