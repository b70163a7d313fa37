#!/usr/bin/env bash
# Makes (or brings up to date) a virtual environment with this package installed in
# editable mode, with its `test` and `gen` extras, every version pinned by
# scripts/constraints.txt, from the package registry. Idempotent: when the venv already
# matches pyproject.toml and the constraints, nothing is installed.
#
# Usage: scripts/venv.sh VENV_DIR
#   Prints the venv's python path on stdout (the last line); pip's output goes to stderr.
#   PYTHON picks the interpreter that makes the venv (default: python3, 3.10 or later).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 VENV_DIR" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(dirname "$here")"
venv="$1"
constraints="$here/constraints.txt"
base_python="${PYTHON:-python3}"

if ! "$base_python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "venv.sh: $base_python is $("$base_python" -V 2>&1); need Python 3.10 or later" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$base_python" -m venv "$venv" >&2
fi
python="$(cd "$venv/bin" && pwd)/python"

# What the install depends on; the stamp records it after a successful install.
want="$(cat "$sdk/pyproject.toml" "$constraints" | sha256sum | cut -d' ' -f1) $("$python" -V 2>&1)"
stamp="$venv/.vectron-client-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$python" -c 'import vectron' 2>/dev/null; then
    echo "$python"
    exit 0
fi

rm -f "$stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# PIP_CONSTRAINT also pins the build backend (hatchling) in pip's isolated build env.
export PIP_CONSTRAINT="$constraints"
"$python" -m pip install --quiet "pip==$(grep -E '^pip==' "$constraints" | cut -d= -f3)" >&2
"$python" -m pip install --quiet -e "$sdk[test,gen]" >&2
"$python" -m pip check >&2
echo "$want" >"$stamp"
echo "$python"
