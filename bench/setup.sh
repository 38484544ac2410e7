#!/usr/bin/env bash
# Create bench/.venv with the pinned ansible (bundles kubernetes.core) + ansible-core 2.19.14.
# Idempotent: reinstalls only when requirements.txt changed. Usage: bench/setup.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv"
STAMP="$VENV/.installed"
if [[ -f "$STAMP" && "$STAMP" -nt "$HERE/requirements.txt" ]]; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements.txt"
# Fail early if the bundled collection or the core version is not what we pinned.
"$VENV/bin/python" - <<'PY'
import importlib.util, os, sys
import ansible.release
spec = importlib.util.find_spec("ansible_collections.kubernetes.core")
assert spec is not None, "kubernetes.core not bundled by the ansible package"
assert ansible.release.__version__ == "2.19.14", ansible.release.__version__
print("bench venv: ansible-core", ansible.release.__version__, "kubernetes.core at", list(spec.submodule_search_locations)[0])
PY
touch "$STAMP"
