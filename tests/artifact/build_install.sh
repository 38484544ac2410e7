#!/usr/bin/env bash
# Build the collection tarball from the checkout and install it, as a user would, into an empty
# collections path outside the checkout (the checkout's ansible.cfg points collections_path at
# .collections, where the checkout itself is linked: `ansible-galaxy collection install -p` would
# answer "Nothing to do", so the install runs with no ansible.cfg, from the destination).
#   tests/artifact/build_install.sh DEST    -> DEST/shmfix-k8s-<version>.tar.gz, DEST/collections/ansible_collections/shmfix/k8s
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=${1:?usage: tests/artifact/build_install.sh DEST}
GALAXY=$ROOT/.venv/bin/ansible-galaxy
case "$DEST" in "$ROOT"|"$ROOT"/*) echo "build_install.sh: DEST must be outside the checkout ($ROOT)" >&2; exit 2 ;; esac
rm -rf "$DEST" && mkdir -p "$DEST"
cd "$DEST"
: > "$DEST/ansible.cfg"   # an empty configuration: the defaults a new user has
export ANSIBLE_CONFIG=$DEST/ansible.cfg
"$GALAXY" collection build "$ROOT" --output-path "$DEST" >/dev/null
tarball=$(ls "$DEST"/shmfix-k8s-*.tar.gz)
"$GALAXY" collection install "$tarball" -p "$DEST/collections" --force >/dev/null
test -f "$DEST/collections/ansible_collections/shmfix/k8s/MANIFEST.json"
echo "$tarball"
