#!/usr/bin/env bash
# antsibull-docs lint-collection-docs on the checkout: the docsite files (docs/docsite), every
# module's and role's documentation, and their O()/V()/M() references. It needs the collection under
# ansible_collections/<namespace>/<name>, so it links the checkout into a temporary tree.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
mkdir -p "$TREE/ansible_collections/shmfix"
ln -s "$ROOT" "$TREE/ansible_collections/shmfix/k8s"
cd "$TREE/ansible_collections/shmfix/k8s"
PATH=$ROOT/.venv/bin:$PATH antsibull-docs lint-collection-docs --plugin-docs .
