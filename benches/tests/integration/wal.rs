//! `vectron-bench wal`, briefly, on both drivers: the append run and the replay run print
//! one JSON line with every promised key.

use std::process::Command;

fn run(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vectron-bench"))
        .arg("wal")
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x > 0.0, "{key} = {x} in {v}");
    x
}

#[test]
fn append_run_reports_every_key() {
    for driver in ["uring", "legacy"] {
        let v = run(&[
            "--writers",
            "8",
            "--record-bytes",
            "1024",
            "--seconds",
            "0.3",
            "--driver",
            driver,
        ]);
        for key in [
            "appends_per_s",
            "mb_per_s",
            "syncs_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "raw_records_per_s",
            "raw_p99_us",
        ] {
            positive(&v, key);
        }
        assert_eq!(v["record_bytes"], 1024);
        let mb = positive(&v, "mb_per_s");
        let appends = positive(&v, "appends_per_s");
        assert!((mb * 1e6 / appends - 1024.0).abs() < 1.0, "{v}");
    }
}

#[test]
fn replay_run_reports_both_speeds() {
    let v = run(&[
        "--replay-mib",
        "4",
        "--rounds",
        "1",
        "--sync",
        "never",
        "--segment-mib",
        "1",
    ]);
    for key in [
        "replay_mb_per_s",
        "cat_mb_per_s",
        "replay_warm_mb_per_s",
        "cat_warm_mb_per_s",
    ] {
        positive(&v, key);
    }
    assert!(v["segments"].as_u64().unwrap() >= 4, "{v}");
}

#[test]
fn bad_options_fail_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_vectron-bench"))
        .args(["wal", "--sync", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sync"));
}
