//! The harness of the system tests, and their child roles.
//!
//! A system-test binary (`harness = false`) runs [`main`]: with
//! [`ROLE_ENV`] set it is a child role, not a test run, and does only that
//! role; otherwise it lists its tests to libtest-mimic (a test of both
//! families twice, `NAME::v4` and `NAME::v6`), every one ignored
//! unless asked for (`--ignored`, `--include-ignored`): they need root and
//! network namespaces, and one that cannot make its lab fails. A role is
//! this very binary re-run by a test ([`spawn_role`]) with the role's name
//! and argument in the environment; it talks in lines on stdout (`PEER …`,
//! `CLIENT …`) and takes lines on stdin, through `lingerd_lab`'s child
//! helper. The kernel-peer role, a process holding many kernel connections
//! (one process may hold at most 20,000 descriptors here), is shared by
//! `system_run` and `system_clients`.
//!
//! It owns the dispatch and the kernel-peer role; where a child runs
//! (which namespace) is the caller's `Command`'s business. Every wait is
//! bounded.
#![allow(dead_code)]

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant};

use lingerd_lab::proc::{Ending, Proc, Stderr};
use lingerd_lab::{Family, Lab};

/// Names the role a child plays.
pub(crate) const ROLE_ENV: &str = "LINGERD_TEST_ROLE";
/// The role's argument.
pub(crate) const ROLE_ARG_ENV: &str = "LINGERD_TEST_ROLE_ARG";

/// A test: its name and body.
pub(crate) type Test = (&'static str, fn());
/// A test run once per address family, as `NAME::v4` and `NAME::v6`: its
/// name and body (given the family).
pub(crate) type FamilyTest = (&'static str, fn(Family));
/// A child role: its name and body (given its argument).
pub(crate) type Role = (&'static str, fn(&str));

/// The test binary's entry: a child role when [`ROLE_ENV`] names one,
/// else the tests, each ignored unless asked for (it needs root and netns).
pub(crate) fn main(tests: &[Test], roles: &[Role]) -> ExitCode {
    main_families(tests, &[], roles)
}

/// [`main`] with tests that run for both families too: each of
/// `per_family` is listed twice, `NAME::v4` and `NAME::v6`, one body given
/// the family.
pub(crate) fn main_families(tests: &[Test], per_family: &[FamilyTest], roles: &[Role]) -> ExitCode {
    if let Ok(name) = std::env::var(ROLE_ENV) {
        let arg = std::env::var(ROLE_ARG_ENV).unwrap_or_default();
        let Some((_, run)) = roles.iter().find(|(n, _)| *n == name) else {
            eprintln!("unknown child role {name:?}");
            return ExitCode::FAILURE;
        };
        run(&arg);
        return ExitCode::SUCCESS;
    }
    let args = libtest_mimic::Arguments::from_args();
    let trials = tests
        .iter()
        .map(|&(name, body)| {
            libtest_mimic::Trial::test(name, move || {
                body();
                Ok(())
            })
            .with_ignored_flag(true)
        })
        .chain(per_family.iter().flat_map(|&(name, body)| {
            Family::ALL.map(|family| {
                libtest_mimic::Trial::test(format!("{name}::{family}"), move || {
                    body(family);
                    Ok(())
                })
                .with_ignored_flag(true)
            })
        }))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// The lab of `test` for `family` with `queues` queues (`prefix`: its
/// id's letters, ≤ 3; a dual-stack lab's id ends in 6, so a test's two
/// families never share one); a lab it cannot make fails the test.
pub(crate) fn lab(test: &str, prefix: &str, queues: u32, family: Family) -> Lab {
    let prefix = match family {
        Family::V4 => prefix.to_owned(),
        Family::V6 => format!("{prefix}6"),
    };
    lingerd_lab::need_for(test, &lingerd_lab::unique_id(&prefix), queues, family)
}

/// Runs this binary as `role` with `arg` (`cmd`: this binary, perhaps
/// under `ip netns exec`; see [`this_exe`]).
pub(crate) fn spawn_role(mut cmd: Command, role: &str, arg: &str) -> Proc {
    cmd.env(ROLE_ENV, role).env(ROLE_ARG_ENV, arg);
    Proc::spawn(role, cmd, Stderr::Inherit, Ending::EofThenKill).expect("spawn a child role")
}

/// This test binary's path.
pub(crate) fn this_exe() -> String {
    std::env::current_exe()
        .unwrap()
        .to_str()
        .expect("a UTF-8 path")
        .to_owned()
}

/// The child's next line, which must start with `prefix` (echoed to
/// stderr).
pub(crate) fn expect(child: &mut Proc, prefix: &str, within: Duration) -> String {
    let l = child
        .expect(prefix, within)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{l}");
    l
}

/// Sends the child one line.
pub(crate) fn say(child: &mut Proc, line: &str) {
    child.say(line).expect("the child's stdin");
}

/// The longest a kernel peer waits to connect one socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The kernel-peer role's name.
pub(crate) const KERNEL_PEER: &str = "kernel-peer";

/// A kernel client in the lab's peer namespace holding `count` connections
/// to `to`, which after `check` watches them for at most `window` (the
/// calling binary must list the [`KERNEL_PEER`] role, [`kernel_peer`]).
pub(crate) fn spawn_kernel_peer(lab: &Lab, to: SocketAddr, count: usize, window: Duration) -> Proc {
    spawn_role(
        lab.command("LAB_PEER_NS", &this_exe(), &[]),
        KERNEL_PEER,
        &format!("{to} {count} {}", window.as_millis()),
    )
}

/// The kernel-peer role (`ADDR COUNT WINDOW_MS`): connects `COUNT`
/// sockets, prints `PEER connected N`, waits for a line on stdin, then
/// polls SO_ERROR of every socket for at most the window and prints
/// `PEER reset=R other=O pending=P ms=T` (T: until the last one failed).
pub(crate) fn kernel_peer(arg: &str) {
    let mut words = arg.split_whitespace();
    let mut next = || words.next().expect("ADDR COUNT WINDOW_MS");
    let to: SocketAddr = next().parse().unwrap();
    let count: usize = next().parse().unwrap();
    let window = Duration::from_millis(next().parse().unwrap());
    let mut socks: Vec<TcpStream> = (0..count)
        .map(|i| {
            TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)
                .unwrap_or_else(|e| panic!("peer connect {i}: {e}"))
        })
        .collect();
    println!("PEER connected {}", socks.len());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let t0 = Instant::now();
    let (mut reset, mut other, mut last) = (0, 0, Duration::ZERO);
    while !socks.is_empty() && t0.elapsed() < window {
        socks.retain(|s| match s.take_error() {
            Ok(Some(e)) if e.kind() == ErrorKind::ConnectionReset => {
                reset += 1;
                false
            }
            Ok(Some(_)) | Err(_) => {
                other += 1;
                false
            }
            Ok(None) => true,
        });
        last = t0.elapsed();
        thread::sleep(Duration::from_millis(5));
    }
    println!(
        "PEER reset={reset} other={other} pending={} ms={}",
        socks.len(),
        last.as_millis()
    );
}

/// `key=value` in a child's line.
pub(crate) fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}
