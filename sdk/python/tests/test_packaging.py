"""Packaging: version floors equal the generator's versions, the stubs import, and the
wheel is one pure ``py3-none-any`` file with the stubs and the type marker inside."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import vectron
from conftest import SDK_DIR

PROTO_DIR = SDK_DIR / "src" / "vectron" / "_proto" / "vectron" / "v1"
PYPROJECT = (SDK_DIR / "pyproject.toml").read_text()


def floor(package: str) -> str:
    """The `>=` floor pyproject.toml declares for a runtime dependency."""
    match = re.search(rf'"{re.escape(package)}>=([0-9.]+)[,"]', PYPROJECT)
    assert match, f"no floor for {package} in pyproject.toml"
    return match.group(1)


def test_floors_equal_the_versions_that_generated_the_stubs() -> None:
    protobuf_stamps = {
        m.group(1)
        for path in PROTO_DIR.glob("*_pb2.py")
        if (m := re.search(r"^# Protobuf Python Version: ([0-9.]+)$", path.read_text(), re.M))
    }
    grpc_stamps = {
        m.group(1)
        for path in PROTO_DIR.glob("*_pb2_grpc.py")
        if (m := re.search(r"^GRPC_GENERATED_VERSION = '([0-9.]+)'$", path.read_text(), re.M))
    }
    assert len(protobuf_stamps) == 1 and len(grpc_stamps) == 1
    assert floor("protobuf") == protobuf_stamps.pop()
    grpc_version = grpc_stamps.pop()
    assert floor("grpcio") == grpc_version
    assert f'"grpcio-tools=={grpc_version}"' in PYPROJECT
    gen_script = (SDK_DIR / "scripts" / "gen_proto.sh").read_text()
    assert f'GRPCIO_TOOLS_VERSION="{grpc_version}"' in gen_script


def test_version_matches_pyproject() -> None:
    assert re.search(rf'^version = "{re.escape(vectron.__version__)}"$', PYPROJECT, re.M)


@pytest.mark.parametrize(
    "proto",
    sorted(
        p.name[: -len(".proto")]
        for p in (SDK_DIR.parents[1] / "proto" / "vectron" / "v1").glob("*.proto")
    ),
)
def test_every_stub_imports(proto: str) -> None:
    for suffix in ("_pb2", "_pb2_grpc"):
        module = importlib.import_module(f"vectron._proto.vectron.v1.{proto}{suffix}")
        assert module.__name__.endswith(suffix)
    descriptor = importlib.import_module(f"vectron._proto.vectron.v1.{proto}_pb2").DESCRIPTOR
    assert descriptor.name == f"vectron/v1/{proto}.proto"  # registered under the proto's path


@pytest.mark.timeout(300)
def test_the_wheel_is_pure_and_complete(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
            str(SDK_DIR),
        ],
        check=True,
    )
    wheels = list(tmp_path.glob("*.whl"))
    assert [w.name for w in wheels] == [f"vectron_client-{vectron.__version__}-py3-none-any.whl"]
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert "vectron/py.typed" in names
    assert "vectron/client.py" in names
    assert "vectron/aio.py" in names and "vectron/_calls.py" in names
    assert "vectron/_proto/vectron/v1/points_pb2.py" in names
    assert "vectron/_proto/vectron/v1/points_pb2.pyi" in names
    assert "vectron/_proto/vectron/v1/points_pb2_grpc.py" in names
    assert not any(n.startswith("tests/") or "__pycache__" in n for n in names)
    metadata = (
        zipfile.ZipFile(wheels[0])
        .read(f"vectron_client-{vectron.__version__}.dist-info/METADATA")
        .decode()
    )
    assert f"Requires-Dist: grpcio>={floor('grpcio')}" in metadata
    assert "Requires-Dist: protobuf<8,>=" in metadata or "Requires-Dist: protobuf>=" in metadata
    assert "Requires-Dist: numpy>=1.24" in metadata
