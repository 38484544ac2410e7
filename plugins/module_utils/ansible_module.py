# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ShmfixModule: the AnsibleModule every shmfix module builds.

It keeps the secrets of a kubeconfig given as a dict (tokens, keys, passwords) out of the module's
results, its logged invocation and ``-vvv`` output, as kubernetes.core's AnsibleK8SModule does:
the option itself cannot be ``no_log`` (a path is no secret), so its secret values are added to
the values Ansible masks before anything is logged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import AUTH_REQUIRED_TOGETHER

# kubeconfig keys whose values are secrets (kubernetes.core's list, plus OIDC's).
SENSITIVE_KUBECONFIG_KEYS = frozenset(
    (
        "token",
        "password",
        "secret",
        "client-key-data",
        "client-certificate-data",
        "certificate-authority-data",
        "api_key",
        "access-token",
        "refresh-token",
        "id-token",
        "client-secret",
    )
)


def kubeconfig_secrets(data):
    """The secret string values anywhere in a kubeconfig given as data (an empty set for a path)."""
    found = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in SENSITIVE_KUBECONFIG_KEYS and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= kubeconfig_secrets(value)
    elif isinstance(data, list):
        for item in data:
            found |= kubeconfig_secrets(item)
    return found


class ShmfixModule(AnsibleModule):
    """AnsibleModule with the kubeconfig's secrets masked from the start."""

    def __init__(self, *args, **kwargs):
        kwargs["required_together"] = list(kwargs.get("required_together") or []) + AUTH_REQUIRED_TOGETHER
        super(ShmfixModule, self).__init__(*args, **kwargs)
        self._mask_kubeconfig()

    def _mask_kubeconfig(self):
        self.no_log_values.update(kubeconfig_secrets((self.params or {}).get("kubeconfig")))

    def _log_invocation(self):
        # AnsibleModule logs its invocation from __init__: mask the kubeconfig's secrets before that.
        self._mask_kubeconfig()
        super(ShmfixModule, self)._log_invocation()
