//! System test of `lingerd-bench lab`: `lab --connections 2000 --mode abort
//! --json --idle sleep` runs to completion on a lab of its own and its last
//! stdout line is a JSON object with every key the issue asks for, `lost`
//! = 0 and positive rates.
//!
//! A correctness test of the tool, not a timing assertion. It needs root
//! and the `lingerd` binary (built here with cargo when missing). Without
//! root, or while `lingerd run` cannot start its dataplane (exit 69), it is
//! skipped with a message, unless `LINGERD_REQUIRE_SYSTEM_TESTS=1`, where it
//! fails (`lingerd_lab`'s rule). The benchmark owns its lab and removes it
//! on every exit path.

use std::path::PathBuf;
use std::process::Command;

/// The keys of issue 6, item 1.
const KEYS: &[&str] = &[
    "mode",
    "connections",
    "closes_per_s",
    "xsk_ceiling_pps",
    "kernel_closes_per_s",
    "ratio_to_ceiling",
    "ratio_to_kernel",
    "p50_us",
    "p99_us",
    "p999_us",
    "lost",
];

const TEST: &str = "lab_abort_2000_json";

/// `lingerd` beside `lingerd-bench`, built with this test's profile when
/// missing.
fn lingerd_bin() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_lingerd-bench"));
    let bin = bench.with_file_name("lingerd");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "lingerd"]);
        if bench.parent().and_then(|p| p.file_name()) == Some("release".as_ref()) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p lingerd");
        assert!(status.success(), "cargo build -p lingerd failed");
    }
    bin
}

#[test]
fn lab_abort_2000_json() {
    if !lingerd_lab::is_root() {
        return lingerd_lab::skip(TEST, "needs root (network namespaces, XDP, AF_XDP)");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args([
            "lab",
            "--connections",
            "2000",
            "--mode",
            "abort",
            "--json",
            "--idle",
            "sleep",
            "--kernel-connections",
            "2000",
            "--ceiling-seconds",
            "1",
            "--id",
            &format!("tl{}", std::process::id() % 1_000_000),
            "--lingerd",
        ])
        .arg(lingerd_bin())
        .output()
        .expect("run lingerd-bench lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(69) {
        return lingerd_lab::skip(
            TEST,
            &format!("lingerd run cannot serve clients yet: {stderr}"),
        );
    }
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().expect("some output");
    let json: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for key in KEYS {
        assert!(json.get(*key).is_some(), "{key} missing from {last}");
    }
    assert_eq!(json["mode"], "abort");
    assert_eq!(json["connections"].as_u64(), Some(2000));
    assert_eq!(json["lost"].as_u64(), Some(0), "{last}\n{stderr}");
    for key in [
        "closes_per_s",
        "xsk_ceiling_pps",
        "kernel_closes_per_s",
        "ratio_to_ceiling",
        "ratio_to_kernel",
        "p50_us",
        "p99_us",
        "p999_us",
    ] {
        let v = json[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {v} in {last}");
    }
    assert!(json["p50_us"].as_f64() <= json["p999_us"].as_f64());
    // The table comes first.
    assert!(stdout.contains("closes_per_s") && stdout.contains("kernel_closes_per_s"));
}
