"""The README's quickstart (examples/quickstart.py) and its AsyncClient example run
against a real server."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import SDK_DIR, DevServer


def test_quickstart_runs(server: DevServer) -> None:
    done = subprocess.run(
        [sys.executable, str(SDK_DIR / "examples" / "quickstart.py"), server.grpc],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "points: 3"
    assert [line.split()[0] for line in lines[1:]] == ["solaris", "dune"]
    assert lines[1].endswith("Solaris") and lines[2].endswith("Dune")


def test_readme_quickstart_runs_and_prints_what_it_shows(server: DevServer) -> None:
    readme = (SDK_DIR / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.search(r"```python\n(.*?)```\s*```\n(.*?)```", section, re.S)
    assert blocks, "the quickstart needs a python block followed by its output"
    code, shown = blocks.group(1), blocks.group(2)
    assert "127.0.0.1:6334" in code
    done = subprocess.run(
        [sys.executable, "-c", code.replace("127.0.0.1:6334", server.grpc)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def test_readme_async_example_runs(server: DevServer) -> None:
    readme = (SDK_DIR / "README.md").read_text()
    section = readme.split("## AsyncClient", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "the AsyncClient section needs a python example"
    code = block.group(1)
    assert "127.0.0.1:6334" in code
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code.replace("127.0.0.1:6334", server.grpc)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["a", "b", "c", "d"]
