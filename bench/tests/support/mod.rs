//! What the lab system tests share: the `lingerd` binary (built with the
//! test's profile when missing) and one run of `lingerd-bench` with the
//! skip rules of `lingerd_lab`. It owns nothing but the child process.

use std::path::PathBuf;
use std::process::Command;

/// `lingerd` beside `lingerd-bench`, built with this test's profile when
/// missing.
pub(crate) fn lingerd_bin() -> PathBuf {
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

/// Runs `lingerd-bench ARGS --lingerd <bin>` and returns its stdout and
/// stderr once it succeeded; `None` when skipped (no root, or the daemon
/// cannot serve clients yet: exit 69), with `lingerd_lab`'s message.
pub(crate) fn run_bench(test: &str, args: &[&str]) -> Option<(String, String)> {
    if !lingerd_lab::is_root() {
        lingerd_lab::skip(test, "needs root (network namespaces, XDP, AF_XDP)");
        return None;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args(args)
        .arg("--lingerd")
        .arg(lingerd_bin())
        .output()
        .expect("run lingerd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(69) {
        lingerd_lab::skip(
            test,
            &format!("lingerd run cannot serve clients yet: {stderr}"),
        );
        return None;
    }
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    Some((stdout, stderr))
}
