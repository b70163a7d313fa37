//! The Python SDK (`sdk/python`) passes its own checks against this build's `vectron`:
//! `sdk/python/scripts/test.sh` makes a venv with the package and its pinned tools from
//! the package registry, checks that the committed stubs match `proto/`, that the package
//! imports with `grpcio`, `protobuf` and `numpy` at exactly their declared floors (a
//! second venv beside the first), runs mypy strict and ruff, then pytest against real
//! `vectron dev` servers it starts.
//!
//! It needs Python 3.10 or later and the package registry. Where Python is missing it
//! says so loudly and does not run, unless `VECTRON_REQUIRE_PYTHON_SDK=1` (as `.ci/run`
//! sets it), which makes a missing Python a failure.

use std::path::Path;
use std::process::Command;

/// Whether `python3` is 3.10 or later.
fn python_at_least_3_10() -> bool {
    Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 10))"])
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn the_python_sdk_passes_its_checks_against_this_build() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let required = std::env::var("VECTRON_REQUIRE_PYTHON_SDK").is_ok_and(|v| v == "1");
    if !python_at_least_3_10() {
        assert!(
            !required,
            "VECTRON_REQUIRE_PYTHON_SDK=1, but python3 (3.10 or later) is not installed"
        );
        eprintln!(
            "\n*** NOT RUN: the Python SDK's tests need python3 3.10 or later, which this \
             machine lacks; install it (or set VECTRON_REQUIRE_PYTHON_SDK=1 to make this a \
             failure) ***\n"
        );
        return;
    }
    // The venv lives beside the build, so that a second run installs nothing.
    let venv = std::env::var("VECTRON_PYTHON_SDK_VENV").map_or_else(
        |_| repo.join("target").join("python-sdk-venv"),
        std::path::PathBuf::from,
    );
    let output = Command::new(repo.join("sdk/python/scripts/test.sh"))
        .env("VENV", &venv)
        .env("VECTRON_BIN", env!("CARGO_BIN_EXE_vectron"))
        .output()
        .expect("run sdk/python/scripts/test.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sdk/python/scripts/test.sh failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    // Its summary line, in the test's output.
    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.contains(" passed"))
        .unwrap_or("(no pytest summary)");
    eprintln!("python sdk: {summary}");
    assert!(summary.contains(" passed"), "{stdout}");
}
