#!/usr/bin/env bash
# `make demo`: the main job against the embedded cluster (started by `make cluster-up`).
# Deploys the seed's hello-world Deployment and a few sample workloads (playbooks/demo_setup.yml,
# reset to their unpatched state), then runs the main job playbooks/fix-shm.yml on the embedded
# cluster (inventories/local.yml). The report lands in reports/<timestamp>/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANSIBLE_PLAYBOOK=$ROOT/.venv/bin/ansible-playbook
[ -x "$ANSIBLE_PLAYBOOK" ] || { echo "demo: $ANSIBLE_PLAYBOOK missing; run: make deps" >&2; exit 1; }
[ -s "$ROOT/.localcluster/kubeconfig" ] || { echo "demo: the embedded cluster is not up; run: make cluster-up" >&2; exit 1; }
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$ROOT/ansible.cfg}
cd "$ROOT"
"$ANSIBLE_PLAYBOOK" -i inventories/local.yml playbooks/demo_setup.yml -e demo_reset=true
exec "$ANSIBLE_PLAYBOOK" -i inventories/local.yml playbooks/fix-shm.yml "$@"
