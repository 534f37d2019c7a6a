//! The built `lingerd` binary, run as an operator or systemd would: exit
//! statuses (0, 2, 69, 78) and what check-config and run print.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EX_CONFIG: i32 = 78;
const EX_UNAVAILABLE: i32 = 69;
const EX_NOPERM: i32 = 77;

fn lingerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lingerd"))
        .args(args)
        .output()
        .expect("run lingerd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/config")
        .join(name)
        .display()
        .to_string()
}

/// A scratch file named `name` in a directory of its own (tempfile),
/// removed on drop.
struct Scratch {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new(name: &str, contents: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("lingerd-cli-")
            .tempdir()
            .unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        Scratch { path, _dir: dir }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

#[test]
fn test_check_config_ok_prints_summary() {
    for name in ["lingerd.yaml", "lab.yaml", "loadbalancer.yaml"] {
        let path = example(name);
        let out = lingerd(&["check-config", "--config", &path]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        assert!(stdout.starts_with(&format!("OK: {path}\n")), "{stdout}");
        assert!(stdout.contains("  interface "), "{stdout}");
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn test_check_config_typo_exits_78_with_location() {
    let f = Scratch::new(
        "typo.yaml",
        "interface: eth0\naddresses: [198.18.0.1/24]\nxdp:\n  frmaes: 4096\n",
    );
    let out = lingerd(&["check-config", "--config", f.path()]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "lingerd: {}: invalid configuration at line 4 column 3",
            f.path()
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{}:4:3", f.path())), "{stderr}");
    assert!(
        stderr.contains("unknown field `frmaes`, expected one of mode, zero_copy, frames, idle"),
        "{stderr}"
    );
}

#[test]
fn test_check_config_invalid_value_exits_78() {
    let f = Scratch::new(
        "dup.yaml",
        "interface: eth0\naddresses: [198.18.0.1/24]\nlisten: [{port: 80}, {port: 80}]\n",
    );
    let out = lingerd(&["check-config", "--config", f.path()]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("port 80 is listed twice"), "{stderr}");
    assert!(stderr.contains(&format!("{}:3:29", f.path())), "{stderr}");
}

#[test]
fn test_check_config_missing_file_exits_78() {
    let out = lingerd(&["check-config", "--config", "/nonexistent/lingerd.yaml"]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    assert!(text(&out.stderr).contains("/nonexistent/lingerd.yaml: cannot read"));
}

#[test]
fn test_run_refuses_a_missing_interface() {
    // lab.yaml names `lgdID-d`, a placeholder no namespace of ours has.
    let path = example("lab.yaml");
    let out = lingerd(&["run", "--config", &path]);
    let stderr = text(&out.stderr);
    if lingerd_lab::is_root() {
        assert_eq!(out.status.code(), Some(EX_UNAVAILABLE), "{stderr}");
        assert!(
            stderr.contains("interface lgdID-d does not exist in this network namespace"),
            "{stderr}"
        );
    } else {
        assert_eq!(out.status.code(), Some(EX_NOPERM), "{stderr}");
        assert!(stderr.contains("must run as root"), "{stderr}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn test_run_with_bad_config_exits_78() {
    let f = Scratch::new("run-bad.yaml", "interface: eth0\n");
    let out = lingerd(&["run", "--config", f.path()]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    assert!(text(&out.stderr).contains("missing field `addresses`"));
}

#[test]
fn test_usage_errors_exit_2() {
    assert_eq!(lingerd(&[]).status.code(), Some(2));
    assert_eq!(lingerd(&["check-config"]).status.code(), Some(2));
    assert_eq!(lingerd(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn test_version() {
    let out = lingerd(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("lingerd "));
}

#[test]
fn test_ctl_without_a_daemon_is_unavailable() {
    let dir = Scratch::new("ctl-nodaemon.txt", "");
    let sock = dir.path.with_file_name("lingerd.ctl");
    let out = lingerd(&["ctl", "--socket", sock.to_str().unwrap(), "stats"]);
    assert_eq!(out.status.code(), Some(EX_UNAVAILABLE), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach the daemon at"), "{err}");
    assert!(err.contains("is `lingerd run` running"), "{err}");
}

#[test]
fn test_ctl_reads_the_socket_from_the_config() {
    // A bad configuration is EX_CONFIG, as for run.
    let bad = Scratch::new("ctl-bad.yaml", "interface: eth0\nbogus: 1\n");
    let out = lingerd(&["ctl", "--config", bad.path(), "conns"]);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{out:?}");
    // A good one names the ctl socket beside clients.socket.
    let out = lingerd(&["ctl", "--config", &example("lab.yaml"), "conns"]);
    let err = text(&out.stderr);
    assert!(err.contains("/run/lingerd/lab.ctl"), "{err}");
}

#[test]
fn test_ctl_bad_flags_fail_before_connecting() {
    for (args, says) in [
        (
            &["ctl", "conns", "--src", "198.18.0/24"][..],
            "not an IPv4 address",
        ),
        (&["ctl", "conns", "--dst", "198.18.0.0/40"], "0..=32"),
        (&["ctl", "conns", "--state", "establishd"], "unknown state"),
        (&["ctl", "conns", "--dport", "70000"], "70000"),
        (
            &["ctl", "kill", "--state", "all", "--mode", "rst"],
            "unknown mode",
        ),
        (
            &["ctl", "kill", "--state", "all", "--mode", "linger=5"],
            "give a unit",
        ),
        (&["ctl", "kill", "--state", "all"], "--mode"),
    ] {
        let out = lingerd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // No filter at all: refused by ctl itself, nothing sent.
    let out = lingerd(&[
        "ctl",
        "--socket",
        "/nonexistent/x.ctl",
        "kill",
        "--mode",
        "abort",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("kill needs a filter"), "{out:?}");
}

/// `port: dpdk` is checked against what this binary was built with: a
/// default build refuses it at the `port` line, a `dpdk` build accepts it.
#[test]
fn test_check_config_port_dpdk_follows_the_build() {
    let path = example("dpdk.yaml");
    let out = lingerd(&["check-config", &path]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    if cfg!(feature = "dpdk") {
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains("dpdk device memif:socket=/run/lingerd/memif0.sock,role=server"),
            "{stdout}"
        );
    } else {
        assert_eq!(out.status.code(), Some(EX_CONFIG), "{stdout}{stderr}");
        assert!(
            stderr.contains("this binary was built without the `dpdk` feature"),
            "{stderr}"
        );
        assert!(stderr.contains("dpdk.yaml:17:7"), "{stderr}");
    }
}
