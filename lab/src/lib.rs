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
//! create, and the lab itself only uses 198.18.0.0/15, 2001:db8::/32 and
//! the fixed link-local addresses fe80::1 and fe80::2. A lab is IPv4 only
//! ([`Lab::up`]) or dual-stack ([`Lab::up_for`] with [`Family::V6`]);
//! [`Family`] picks which addresses a test or a benchmark uses
//! ([`Lab::dut_addr`], [`Lab::peer_addr`], [`Lab::dut_prefix`]).
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use lingerd_config::Prefix;
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
    need_for(test, id, queues, Family::V4)
}

/// [`need`] for a lab that carries `family` ([`Lab::up_for`]).
pub fn need_for(test: &str, id: &str, queues: u32, family: Family) -> Lab {
    assert!(
        is_root(),
        "system test {test} cannot run: it needs root (network namespaces, XDP, AF_XDP)"
    );
    Lab::up_for(id, queues, family)
        .unwrap_or_else(|why| panic!("system test {test} ({family}) cannot run: {why}"))
}

/// A lab id: `prefix` (letters or digits, ≤ 4) and this process's pid, so
/// that parallel test binaries never collide.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 1_000_000)
}

/// An address family of the lab.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 198.18.0.1/24 and 198.18.0.2/24.
    #[default]
    V4,
    /// IPv6: 2001:db8::1/64 and 2001:db8::2/64.
    V6,
}

impl Family {
    /// Both, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The suffix of its `LAB_*` keys (`LAB_DUT_ADDR`, `LAB_DUT_ADDR6`).
    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "",
            Family::V6 => "6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        })
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Family, String> {
        match s {
            "v4" | "ipv4" | "4" => Ok(Family::V4),
            "v6" | "ipv6" | "6" => Ok(Family::V6),
            _ => Err(format!("`{s}` is not an address family: v4 or v6")),
        }
    }
}

/// A lab made by `deploy/lab up`; `down` on drop.
#[derive(Debug)]
pub struct Lab {
    id: String,
    env: BTreeMap<String, String>,
}

impl Lab {
    /// `deploy/lab up --id id --queues queues`: IPv4 only (IPv6 off, so
    /// that frame counts hold only what a test sent); `Err(reason)` when
    /// it fails.
    pub fn up(id: &str, queues: u32) -> Result<Lab, String> {
        Lab::up_for(id, queues, Family::V4)
    }

    /// A lab that can carry `family`: [`Lab::up`] for IPv4, `deploy/lab up
    /// --ipv6` (dual-stack) for IPv6.
    pub fn up_for(id: &str, queues: u32, family: Family) -> Result<Lab, String> {
        let mut c = Command::new(script());
        c.args(["up", "--id", id, "--queues", &queues.to_string()]);
        if family == Family::V6 {
            c.arg("--ipv6");
        }
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

    /// The dut end's address of `family` (`LAB_DUT_ADDR`, `LAB_DUT_ADDR6`);
    /// panics when the script printed none or a bad one.
    pub fn dut_addr(&self, family: Family) -> IpAddr {
        self.addr(&format!("LAB_DUT_ADDR{}", family.suffix()))
    }

    /// The peer end's address of `family`.
    pub fn peer_addr(&self, family: Family) -> IpAddr {
        self.addr(&format!("LAB_PEER_ADDR{}", family.suffix()))
    }

    /// The dut's address of `family` with the link's prefix length, as
    /// lingerd's `addresses` takes it (`198.18.0.1/24`, `2001:db8::1/64`).
    pub fn dut_prefix(&self, family: Family) -> Prefix {
        let key = format!("LAB_PREFIX_LEN{}", family.suffix());
        let len: u8 = self
            .get(&key)
            .parse()
            .unwrap_or_else(|e| panic!("deploy/lab printed a bad {key}: {e}"));
        Prefix::new(self.dut_addr(family), len)
            .unwrap_or_else(|| panic!("deploy/lab printed {key}={len}, too long for its address"))
    }

    fn addr(&self, key: &str) -> IpAddr {
        assert!(
            self.env.contains_key(key) || !key.ends_with('6'),
            "lab {} has no IPv6 ({key}): make it with Lab::up_for(.., Family::V6)",
            self.id
        );
        let v = self.get(key);
        v.parse()
            .unwrap_or_else(|e| panic!("deploy/lab printed {key}={v}: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A lab value from `up`'s lines; the caller forgets it (no lab to take
    /// down).
    fn lab(lines: &str) -> Lab {
        Lab {
            id: String::new(),
            env: lines
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn families_pick_their_keys() {
        let l = lab(
            "LAB_DUT_ADDR=198.18.0.1\nLAB_PEER_ADDR=198.18.0.2\nLAB_PREFIX_LEN=24\n\
                     LAB_DUT_ADDR6=2001:db8::1\nLAB_PEER_ADDR6=2001:db8::2\nLAB_PREFIX_LEN6=64\n",
        );
        assert_eq!(l.dut_addr(Family::V4).to_string(), "198.18.0.1");
        assert_eq!(l.peer_addr(Family::V6).to_string(), "2001:db8::2");
        assert_eq!(l.dut_prefix(Family::V4).to_string(), "198.18.0.1/24");
        assert_eq!(l.dut_prefix(Family::V6).to_string(), "2001:db8::1/64");
        std::mem::forget(l);
        // A lab made without --ipv6 says so.
        let v4_only = lab("LAB_DUT_ADDR=198.18.0.1\n");
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v4_only.dut_addr(Family::V6)
        }))
        .unwrap_err();
        let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("has no IPv6"), "{msg}");
        std::mem::forget(v4_only);
        assert_eq!("v6".parse::<Family>(), Ok(Family::V6));
        assert_eq!("ipv4".parse::<Family>(), Ok(Family::V4));
        assert!("v5".parse::<Family>().unwrap_err().contains("v4 or v6"));
        assert_eq!(Family::default(), Family::V4);
        assert_eq!(Family::V6.to_string(), "v6");
        assert_eq!(Family::of("2001:db8::1".parse().unwrap()), Family::V6);
        assert_eq!(Family::of("198.18.0.1".parse().unwrap()), Family::V4);
    }
}
