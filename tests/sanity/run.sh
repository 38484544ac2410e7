#!/usr/bin/env bash
# ansible-test sanity on the collection as users get it: the tarball built from the checkout and
# installed outside it (tests/artifact/build_install.sh), with the ansible-core of .venv (the one
# line meta/runtime.yml claims). ansible-test's isolated `import` test downloads a get-pip bootstrap
# from a host this machine cannot reach: its cache is seeded with get_pip_standin.py, which
# bootstraps pip with the stdlib's ensurepip and installs the same packages from PyPI.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${SHMFIX_SANITY_DIR:-$HOME/.cache/shmfix/sanity}
"$ROOT/tests/artifact/build_install.sh" "$WORK" >/dev/null
DEST=$WORK/collections/ansible_collections/shmfix/k8s
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
# the pip version ansible-test bootstraps (get_venv_packages: pip=24.2 in ansible-core 2.19)
v=$("$ROOT/.venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g; from types import SimpleNamespace as N; print(g(N(version="3.11"))["pip"].replace(".", "_"))')
[ -s "$cache/get_pip_$v.py" ] || cp "$ROOT/tests/sanity/get_pip_standin.py" "$cache/get_pip_$v.py"
# rbac/*.yaml are multi-document manifests for kubectl apply -f, on purpose: the ignore file says so
# (it is not shipped; ansible-test reads it from the tree under test).
mkdir -p "$DEST/tests/sanity"
cp "$ROOT/tests/sanity/ignore-2.19.txt" "$DEST/tests/sanity/"
cd "$DEST"
# ansible-test wants a git repository or a clean tree: an installed collection is the latter.
PATH=$ROOT/.venv/bin:$PATH ANSIBLE_CONFIG=$WORK/ansible.cfg ansible-test sanity --python 3.11 --color no "$@"
