#!/usr/bin/env bash
# Every check of the Python SDK, as CI runs them:
#   1. a venv with the package and its pinned test tools (scripts/venv.sh),
#   2. the stub drift check: regenerate src/vectron/_proto and `git diff --exit-code` it,
#   3. the floors check (scripts/check_floors.sh): the package installed with grpcio,
#      protobuf and numpy at exactly their declared floors, in the venv $VENV-floors,
#      imports with every stub (made once, then reused while the floors are the same),
#   4. `mypy --strict` on the hand-written code (the generated stubs are exempt by config),
#      then on the tests, examples and scripts; ruff's lint and format checks,
#   5. pytest against real `vectron dev` servers (VECTRON_BIN, default
#      <repo>/target/debug/vectron); pytest's "no tests collected" (exit 5) is a failure.
#
# Usage: scripts/test.sh [pytest args...]
#   VENV: where the venv lives (default: sdk/python/.venv); the floors venv is $VENV-floors.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(dirname "$here")"
repo="$(cd "$sdk/../.." && pwd)"
venv="${VENV:-$sdk/.venv}"

echo "== venv ($venv)"
python="$("$here/venv.sh" "$venv" | tail -n 1)"
"$python" -c 'import sys, vectron; print("vectron", vectron.__version__, "on Python", sys.version.split()[0])'

echo "== generated stubs match proto/ (gen_proto.sh, then diff and git diff)"
proto_out="$sdk/src/vectron/_proto"
before="$(mktemp -d)"
trap 'rm -rf "$before"' EXIT
cp -a "$proto_out" "$before/_proto"
"$here/gen_proto.sh" "$python"
# Against the files as they were (catches drift before they are ever committed) ...
if ! diff -r "$before/_proto" "$proto_out"; then
    echo "the generated stubs were stale: gen_proto.sh rewrote them (above); commit the result" >&2
    exit 1
fi
# ... and against what git holds, as CI checks a clean checkout.
git -C "$repo" diff --exit-code -- sdk/python/src/vectron/_proto

echo "== the package at its dependencies' floors (check_floors.sh ${venv%/}-floors)"
"$here/check_floors.sh" "${venv%/}-floors"

echo "== mypy --strict src/vectron (then tests, examples, scripts); ruff"
(cd "$sdk" && "$python" -m mypy --strict src/vectron)
(cd "$sdk" && "$python" -m mypy --strict tests examples)
(cd "$sdk" && "$python" -m mypy --strict scripts)
(cd "$sdk" && "$python" -m ruff check . && "$python" -m ruff format --check .)

echo "== pytest"
set +e
(cd "$sdk" && "$python" -m pytest -q "$@")
status=$?
set -e
if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit $status
