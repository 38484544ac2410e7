#!/usr/bin/env bash
# ansible-test sanity for the collection. ansible-test wants the tree at
# ansible_collections/<ns>/<name> (not behind a symlink) and, for the isolated `import` test,
# downloads a get-pip bootstrap from a host this machine cannot reach: we copy the tree into
# a scratch ansible_collections dir and seed ansible-test's cache with get_pip_standin.py, which
# bootstraps pip with the stdlib's ensurepip and installs the same packages from PyPI.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${SHMFIX_SANITY_DIR:-$HOME/.cache/shmfix/sanity}
DEST=$WORK/ansible_collections/shmfix/k8s
rm -rf "$DEST" && mkdir -p "$DEST"
cd "$ROOT"
git ls-files -co --exclude-standard -- plugins meta galaxy.yml README.md tests/unit tests/sanity |
  while IFS= read -r f; do [ -e "$f" ] && mkdir -p "$DEST/$(dirname "$f")" && cp -p "$f" "$DEST/$f"; done
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
# the pip version ansible-test bootstraps (get_venv_packages: pip=24.2 in ansible-core 2.19)
v=$("$ROOT/.venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g; from types import SimpleNamespace as N; print(g(N(version="3.11"))["pip"].replace(".", "_"))')
[ -s "$cache/get_pip_$v.py" ] || cp "$ROOT/tests/sanity/get_pip_standin.py" "$cache/get_pip_$v.py"
cd "$DEST"
PATH=$ROOT/.venv/bin:$PATH ansible-test sanity --python 3.11 --color no "$@"
