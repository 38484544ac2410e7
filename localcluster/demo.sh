#!/usr/bin/env bash
# `make demo`: the main job against the embedded cluster (started by `make cluster-up`).
# Until playbooks/fix-shm.yml exists this runs localcluster/demo-first.yml: cluster versions
# and the seed's 64 MiB /dev/shm measured in a pod.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLAYBOOK=${SHMFIX_DEMO_PLAYBOOK:-$ROOT/localcluster/demo-first.yml}
ANSIBLE_PLAYBOOK=$ROOT/.venv/bin/ansible-playbook
[ -x "$ANSIBLE_PLAYBOOK" ] || { echo "demo: $ANSIBLE_PLAYBOOK missing; run: make deps" >&2; exit 1; }
[ -s "$ROOT/.localcluster/kubeconfig" ] || { echo "demo: the embedded cluster is not up; run: make cluster-up" >&2; exit 1; }
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$ROOT/ansible.cfg}
cd "$ROOT"
exec "$ANSIBLE_PLAYBOOK" -i localhost, -e ansible_python_interpreter="$ROOT/.venv/bin/python" "$PLAYBOOK" "$@"
