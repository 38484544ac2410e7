"""Run every module integration target (tests/integration/targets/<module>/tasks/main.yml) with
ansible-playbook against the embedded cluster, each in its own fresh namespace."""

from __future__ import annotations

import pytest
from helpers import run_target, targets


@pytest.mark.parametrize("target", targets())
def test_target(target, kubeconfig, kubectl, namespace, tmp_path):
    proc = run_target(target, kubeconfig, namespace, tmp_path)
    if proc.returncode != 0:
        pytest.fail(f"target {target} failed (rc={proc.returncode})\n--- stdout ---\n{proc.stdout[-20000:]}\n--- stderr ---\n{proc.stderr[-5000:]}")
