//! What the lab system tests share: the `lingerd` binary (built with the
//! test's profile when missing) and one run of `lingerd-bench`. The tests
//! are `#[ignore]`d (they need root and network namespaces); one that runs
//! without root fails. It owns nothing but the child process.

use std::path::PathBuf;
use std::process::Command;

/// `lingerd` beside `lingerd-bench`, built with this test's profile when
/// missing.
#[allow(dead_code)] // not every test binary uses every helper
pub(crate) fn lingerd_bin() -> PathBuf {
    let bin = bench_dir().join("lingerd");
    if !bin.is_file() {
        cargo_build_lingerd(&[]);
    }
    bin
}

/// `lingerd` beside `lingerd-bench`, built (or found up to date) by cargo
/// with this test's profile and `args` (`--features dpdk`): a binary left
/// there by a build with other features is rebuilt.
#[allow(dead_code)]
pub(crate) fn lingerd_bin_with(args: &[&str]) -> PathBuf {
    cargo_build_lingerd(args);
    bench_dir().join("lingerd")
}

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lingerd-bench"))
        .parent()
        .expect("a directory")
        .to_owned()
}

fn cargo_build_lingerd(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "lingerd"]).args(args);
    if bench_dir().file_name() == Some("release".as_ref()) {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build -p lingerd");
    assert!(status.success(), "cargo build -p lingerd {args:?} failed");
}

/// Runs `lingerd-bench ARGS --lingerd <bin>` and returns its stdout and
/// stderr once it succeeded; panics without root or when it fails.
#[allow(dead_code)]
pub(crate) fn run_bench(test: &str, args: &[&str]) -> (String, String) {
    let lingerd = lingerd_bin();
    let mut all = args.to_vec();
    all.extend(["--lingerd", lingerd.to_str().expect("a UTF-8 path")]);
    run_tool(test, &all)
}

/// Runs `lingerd-bench args...` as root and returns (stdout, stderr);
/// fails the test when it exits non-zero.
#[allow(dead_code)]
pub(crate) fn run_tool(test: &str, args: &[&str]) -> (String, String) {
    assert!(
        lingerd_lab::is_root(),
        "{test} cannot run: it needs root (network namespaces, XDP, AF_XDP)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args(args)
        .output()
        .expect("run lingerd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// The benchmark's report: its last stdout line, parsed as the JSON object
/// it must be, with every key of `keys` present.
#[allow(dead_code)]
pub(crate) fn last_json(stdout: &str, keys: &[&str]) -> (String, serde_json::Value) {
    let last = stdout.lines().last().expect("some output").to_owned();
    let json: serde_json::Value = serde_json::from_str(&last).expect("last line is JSON");
    for key in keys {
        assert!(json.get(*key).is_some(), "{key} missing from {last}");
    }
    (last, json)
}

/// Each of `keys` in `json` is a finite number above 0.
#[allow(dead_code)]
#[track_caller]
pub(crate) fn assert_positive(json: &serde_json::Value, keys: &[&str], last: &str) {
    for key in keys {
        let v = json[*key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key} = {v} in {last}");
    }
}
