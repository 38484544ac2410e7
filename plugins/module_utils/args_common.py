# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every option spec shared by several modules, in one place (as kubernetes.core's args_common.py).

A module builds its ``argument_spec`` from these with ``copy.deepcopy`` and adds its own options.
The matching documentation is in plugins/doc_fragments/ (auth, selection, size_policy).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback
from ansible_collections.shmfix.k8s.plugins.module_utils.kinds import DEFAULT_KINDS
from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import DEFAULT_VOLUME_NAME, EXISTING_MODES

# Connection options: kubernetes.core's names, types and K8S_AUTH_* environment fallbacks, so a play's
# module_defaults written for kubernetes.core work for shmfix's modules too.
AUTH_PROXY_HEADERS_SPEC = dict(
    proxy_basic_auth=dict(type="str", no_log=True),
    basic_auth=dict(type="str", no_log=True),
    user_agent=dict(type="str"),
)
AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="raw", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    username=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_USERNAME"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_PASSWORD"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False, fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY"])),
    no_proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_NO_PROXY"])),
    proxy_headers=dict(type="dict", options=AUTH_PROXY_HEADERS_SPEC),
    persist_config=dict(type="bool", fallback=(env_fallback, ["K8S_AUTH_PERSIST_CONFIG"])),
    impersonate_user=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_USER"])),
    impersonate_groups=dict(type="list", elements="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_GROUPS"])),
)
AUTH_REQUIRED_TOGETHER = [("username", "password")]

DEFAULT_EXCLUDE_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease"]

# Which workloads: shm_info and shm_patch.
SELECTION_ARG_SPEC = dict(
    namespaces=dict(type="list", elements="str"),
    exclude_namespaces=dict(type="list", elements="str", default=list(DEFAULT_EXCLUDE_NAMESPACES)),
    kinds=dict(type="list", elements="str", choices=list(DEFAULT_KINDS), default=list(DEFAULT_KINDS)),
    label_selector=dict(type="str"),
    names=dict(type="list", elements="str"),
    extra_kinds=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            api_version=dict(type="str", required=True),
            kind=dict(type="str", required=True),
            template_path=dict(type="str", default="spec.template"),
        ),
    ),
)

# How large /dev/shm should be and what to do with an existing volume (validated by options.size_options).
SIZE_POLICY_ARG_SPEC = dict(
    size_limit=dict(type="str"),
    size_ratio=dict(type="float"),
    min_size=dict(type="str"),
    max_size=dict(type="str"),
    existing=dict(type="str", choices=list(EXISTING_MODES), default="grow"),
    volume_name=dict(type="str", default=DEFAULT_VOLUME_NAME),
)
SIZE_POLICY_MUTUALLY_EXCLUSIVE = [("size_limit", "size_ratio")]

# The name of shmfix's admission policy: admission_policy and admission_info.
DEFAULT_ADMISSION_POLICY_NAME = "shmfix-shm"
ADMISSION_ARG_SPEC = dict(name=dict(type="str", default=DEFAULT_ADMISSION_POLICY_NAME))
