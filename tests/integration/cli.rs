//! The binary starts and describes itself.

use std::process::Command;

fn vectron() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vectron"))
}

#[test]
fn help_runs_and_names_the_binary() {
    let out = vectron()
        .arg("--help")
        .output()
        .expect("run vectron --help");
    assert!(out.status.success(), "exit status {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("utf-8 help");
    assert!(text.starts_with("Vectron"), "help text: {text}");
    assert!(text.contains("Usage: vectron"), "help text: {text}");
}

#[test]
fn version_matches_the_crate() {
    let out = vectron()
        .arg("--version")
        .output()
        .expect("run vectron --version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("vectron {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_subcommand_is_refused_with_usage() {
    let out = vectron()
        .arg("no-such-command")
        .output()
        .expect("run vectron");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no-such-command"), "stderr: {err}");
}
