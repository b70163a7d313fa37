#!/usr/bin/env bash
# Installs the package with every runtime dependency at its declared floor
# (grpcio, protobuf, numpy, as pyproject.toml says) in a venv of its own, and imports it
# and every generated stub there: generated code refuses a runtime older than its
# generator, so this fails if a floor falls below the versions gen_proto.sh used.
#
# Usage: scripts/check_floors.sh VENV_DIR
#   Idempotent: the venv is made anew only when the floors (or the interpreter) changed
#   since the last successful run, and the package is reinstalled only when its sources,
#   pyproject.toml or the constraints changed; the import check runs every time. So a
#   second run takes seconds. PYTHON picks the interpreter (default: python3).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 VENV_DIR" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(dirname "$here")"
venv="$1"
base_python="${PYTHON:-python3}"

mapfile -t floors < <("$base_python" - "$sdk/pyproject.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
for name, version in re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9.]+)', deps):
    print(f"{name}=={version}")
PY
)
if [[ ${#floors[@]} -eq 0 ]]; then
    echo "check_floors.sh: no floors found in $sdk/pyproject.toml" >&2
    exit 1
fi
echo "check_floors.sh: ${floors[*]}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. The venv with the floors: kept while the floors and the interpreter are the same.
floors_stamp="$venv/.floors-stamp"
want_floors="${floors[*]} $("$base_python" -V 2>&1) $(command -v "$base_python")"
if [[ -x "$venv/bin/python" && -f "$floors_stamp" && "$(cat "$floors_stamp")" == "$want_floors" ]]; then
    echo "check_floors.sh: reusing $venv"
else
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
    # Floors for the runtime; the constraints pin only the build backend here.
    "$venv/bin/python" -m pip install --quiet "${floors[@]}"
    echo "$want_floors" >"$floors_stamp"
fi

# 2. The package itself (not editable: as a user gets it), when its inputs changed.
package_stamp="$venv/.package-stamp"
want_package="$(
    cd "$sdk"
    find src/vectron -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum pyproject.toml README.md scripts/constraints.txt
)"
want_package="$(echo "$want_package" | sha256sum | cut -d' ' -f1)"
if [[ -f "$package_stamp" && "$(cat "$package_stamp")" == "$want_package" ]]; then
    echo "check_floors.sh: vectron-client unchanged since the last install"
else
    rm -f "$package_stamp"
    PIP_CONSTRAINT="$here/constraints.txt" "$venv/bin/python" -m pip install --quiet \
        --no-deps --force-reinstall "$sdk"
    echo "$want_package" >"$package_stamp"
fi

# 3. Every time: the installed versions are the floors, and everything imports.
"$venv/bin/python" -m pip check
"$venv/bin/python" - "${floors[@]}" <<'PY'
import importlib, pkgutil, sys
from importlib.metadata import version

def release(text: str) -> list[int]:
    # 1.24 == 1.24.0: compare the numbers without trailing zeros.
    parts = [int(p) for p in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return parts


for floor in sys.argv[1:]:
    name, wanted = floor.split("==")
    got = version(name)
    assert release(got) == release(wanted), f"{name} {got} installed, floor is {wanted}"

import numpy as np

import vectron
import vectron._proto.vectron.v1 as v1
from vectron._encode import encode_upsert_requests, prepare_points

names = [m.name for m in pkgutil.iter_modules(v1.__path__)]
for name in names:
    importlib.import_module(f"vectron._proto.vectron.v1.{name}")
points = prepare_points(np.ones((2, 3)), ["a", "b"], [{"k": 1}, None], dimension=3)
(wire,) = encode_upsert_requests("c", points, wait=None, batch_size=10, max_bytes=1 << 20)
assert len(v1.points_pb2.UpsertRequest.FromString(wire).points) == 2
vectron.Client("127.0.0.1:1").close()
print(
    f"check_floors.sh: vectron {vectron.__version__} imports {len(names)} stub modules with "
    + ", ".join(f"{p} {version(p)}" for p in ("grpcio", "protobuf", "numpy"))
)
PY
