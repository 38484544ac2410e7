# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible_module.py: the secrets of a kubeconfig given as a dict are found for masking."""

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import kubeconfig_secrets


def test_kubeconfig_secrets_finds_every_secret_and_nothing_else():
    config = {
        "apiVersion": "v1",
        "clusters": [{"name": "c", "cluster": {"server": "https://k:6443", "certificate-authority-data": "Q0E="}}],
        "users": [
            {"name": "a", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}},
            {"name": "b", "user": {"token": "tok-123"}},
            {"name": "o", "user": {"auth-provider": {"config": {"id-token": "idt", "refresh-token": "rt", "client-secret": "cs", "client-id": "visible"}}}},
        ],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "a"}}],
    }
    assert kubeconfig_secrets(config) == {"Q0E=", "Q0VSVA==", "S0VZ", "tok-123", "idt", "rt", "cs"}
    assert kubeconfig_secrets("/path/to/kubeconfig") == set()
