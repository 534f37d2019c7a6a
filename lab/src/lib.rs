//! The netns lab of `deploy/lab`, from Rust, and what every system test
//! and lab benchmark shares around it.
//!
//! [`Lab::up`] runs `deploy/lab up --id ID --queues N`, keeps the
//! `LAB_*=value` lines it prints, and runs `deploy/lab down` when dropped,
//! panics included; [`down_all_on_panic`] also covers `panic = "abort"`
//! binaries (the bench's release build), where no destructor runs. [`need`]
//! is the rule for a system test: such a test is `#[ignore]`d (it needs
//! root and network namespaces), so when it runs it was asked for, and a
//! lab it cannot make is a failure, never a pass. [`proc`] is the one
//! child-process helper, [`daemon`] the one daemon under test.
//!
//! It owns the labs it made, the children it spawned and their scratch
//! directories, nothing else: it never touches a namespace it did not
//! create, and the lab itself only uses 198.18.0.0/15.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

pub mod daemon;
pub mod impair;
pub mod proc;

/// Labs this process made and has not taken down yet.
static LABS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The `deploy/lab` script (`$LINGERD_LAB` overrides).
pub fn script() -> PathBuf {
    std::env::var_os("LINGERD_LAB").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/lab")),
        PathBuf::from,
    )
}

fn down(id: &str) {
    let _ = Command::new(script()).args(["down", "--id", id]).output();
    LABS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|l| l != id);
}

/// Installs a panic hook that takes every lab of this process down before
/// the previous hook runs (for `panic = "abort"` builds).
pub fn down_all_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let ids = std::mem::take(&mut *LABS.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            let _ = Command::new(script()).args(["down", "--id", &id]).output();
        }
        previous(info);
    }));
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Whether system tests must run (`LINGERD_REQUIRE_SYSTEM_TESTS=1`): the
/// scripts that decide whether to run the `#[ignore]`d system tests read
/// it (`deploy/test`); a system test that runs fails without a lab either
/// way.
pub fn required() -> bool {
    std::env::var("LINGERD_REQUIRE_SYSTEM_TESTS").as_deref() == Ok("1")
}

/// A lab with `queues` queues for `test`; panics when this process is not
/// root or the host cannot make one (the test was asked for: it fails).
pub fn need(test: &str, id: &str, queues: u32) -> Lab {
    assert!(
        is_root(),
        "system test {test} cannot run: it needs root (network namespaces, XDP, AF_XDP)"
    );
    Lab::up(id, queues).unwrap_or_else(|why| panic!("system test {test} cannot run: {why}"))
}

/// A lab id: `prefix` (letters or digits, ≤ 4) and this process's pid, so
/// that parallel test binaries never collide.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 1_000_000)
}

/// A lab made by `deploy/lab up`; `down` on drop.
#[derive(Debug)]
pub struct Lab {
    id: String,
    env: BTreeMap<String, String>,
}

impl Lab {
    /// `deploy/lab up --id id --queues queues`; `Err(reason)` when it fails.
    pub fn up(id: &str, queues: u32) -> Result<Lab, String> {
        let mut c = Command::new(script());
        c.args(["up", "--id", id, "--queues", &queues.to_string()]);
        Lab::up_with(id, c)
    }

    /// Runs `up`, a `deploy/lab up` command for lab `id`, and keeps the
    /// `KEY=VALUE` lines it prints; the lab is taken down on drop (and by
    /// [`down_all_on_panic`]).
    pub(crate) fn up_with(id: &str, mut up: Command) -> Result<Lab, String> {
        let out = up
            .output()
            .map_err(|e| format!("cannot run deploy/lab: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{:?} exited {}: {}",
                up.get_args().collect::<Vec<_>>(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        LABS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.to_owned());
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Lab {
            id: id.to_owned(),
            env,
        })
    }

    /// The lab id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A `LAB_*` value (`LAB_DUT_NS`, `LAB_PEER_IF`, …); panics when the
    /// script did not print it.
    pub fn get(&self, key: &str) -> String {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("deploy/lab did not print {key}"))
            .clone()
    }

    /// `ip -n <ns> args...` (`ns_key`: `LAB_DUT_NS` or `LAB_PEER_NS`),
    /// which must succeed; returns stdout.
    pub fn ip(&self, ns_key: &str, args: &[&str]) -> String {
        let ns = self.get(ns_key);
        let out = Command::new("ip")
            .arg("-n")
            .arg(&ns)
            .args(args)
            .output()
            .expect("running ip");
        assert!(out.status.success(), "ip -n {ns} {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command that runs `program args...` inside the namespace
    /// `ns_key` names (`ip netns exec`); the caller spawns it.
    pub fn command(&self, ns_key: &str, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.get(ns_key), program])
            .args(args);
        c
    }

    /// Runs `program args...` in the namespace and returns its output.
    pub fn exec(&self, ns_key: &str, program: &str, args: &[&str]) -> Output {
        self.command(ns_key, program, args)
            .output()
            .unwrap_or_else(|e| panic!("running {program} in {ns_key}: {e}"))
    }

    /// A counter of the peer's veth (`rx_packets`, `tx_packets`, …), read
    /// inside the peer namespace (sysfs does not follow `setns`).
    pub fn peer_stat(&self, name: &str) -> Result<u64, String> {
        let path = format!(
            "/sys/class/net/{}/statistics/{name}",
            self.get("LAB_PEER_IF")
        );
        let out = self.exec("LAB_PEER_NS", "cat", &[&path]);
        if !out.status.success() {
            return Err(format!("reading {path} in the peer namespace failed"));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("{path}: {e}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        down(&self.id);
    }
}
