#!/usr/bin/env bash
# Installs the package with every runtime dependency at its declared floor
# (grpcio, protobuf, numpy, as pyproject.toml says) in a fresh venv, and imports it and
# every generated stub there: generated code refuses a runtime older than its generator,
# so this fails if a floor falls below the versions gen_proto.sh used.
#
# Usage: scripts/check_floors.sh VENV_DIR   (the directory is made anew)
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
echo "check_floors.sh: ${floors[*]}"

rm -rf "$venv"
"$base_python" -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Floors for the runtime; the constraints pin only the build backend here.
"$venv/bin/python" -m pip install --quiet "${floors[@]}"
PIP_CONSTRAINT="$here/constraints.txt" "$venv/bin/python" -m pip install --quiet --no-deps "$sdk"
"$venv/bin/python" -m pip check
"$venv/bin/python" - <<'PY'
import importlib, pkgutil
from importlib.metadata import version

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
