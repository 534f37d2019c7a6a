//! Child processes of the system tests: this very test binary re-run with
//! one test selected (`--exact NAME`) and an environment variable that
//! gives it its role. A child talks in lines on stdout (`PEER …`,
//! `CLIENT …`) and takes lines on stdin ([`Helper`]). The kernel-peer role,
//! a process holding many kernel connections (one process may hold at most
//! 20,000 descriptors here), is shared by `system_run` and
//! `system_clients` ([`hold_kernel_connections`], [`spawn_kernel_peer`]).
//!
//! It owns the child processes (killed on drop) and their reader threads;
//! where a child runs (which namespace) is the caller's `Command`'s
//! business. Every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_lab::Lab;

/// Turns the `peer_helper` test into a kernel client: `ip:port:count`.
pub(crate) const PEER_ENV: &str = "LINGERD_PEER_HELPER";

/// The longest a kernel peer waits to connect one socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A child: this binary running one test with one variable set; killed on
/// drop if still running.
pub(crate) struct Helper {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    /// Runs `cmd` (this binary, perhaps under `ip netns exec`) as the
    /// single test `test` with `env` set.
    pub(crate) fn spawn(mut cmd: Command, test: &str, env: (&str, String)) -> Helper {
        let mut child = cmd
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(env.0, env.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn helper");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            // libtest may print "test … " before a line on the same line.
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = l.find("CLIENT ").or_else(|| l.find("PEER "));
                if let Some(i) = at
                    && tx.send(l[i..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Helper { child, lines }
    }

    /// The helper's next line, which must start with `prefix`.
    pub(crate) fn expect(&self, prefix: &str, within: Duration) -> String {
        let l = self
            .lines
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("helper said nothing within {within:?} ({prefix})"));
        assert!(l.starts_with(prefix), "wanted {prefix:?}, got {l:?}");
        eprintln!("{l}");
        l
    }

    /// Sends the helper one line.
    pub(crate) fn say(&mut self, line: &str) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").expect("helper's stdin");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A kernel client in the lab's peer namespace holding `count` connections
/// to `to` (the calling binary must have a `peer_helper` test that calls
/// [`hold_kernel_connections`]).
pub(crate) fn spawn_kernel_peer(lab: &Lab, to: SocketAddrV4, count: usize) -> Helper {
    let exe = std::env::current_exe().unwrap();
    Helper::spawn(
        lab.command("LAB_PEER_NS", exe.to_str().unwrap(), &[]),
        "peer_helper",
        (PEER_ENV, format!("{to}:{count}")),
    )
}

/// The kernel-peer role, when [`PEER_ENV`] is set (else nothing): connects
/// `count` sockets, prints `PEER connected N`, waits for a line on stdin,
/// then polls SO_ERROR of every socket for at most `window` and prints
/// `PEER reset=R other=O pending=P ms=T` (T: until the last one failed).
pub(crate) fn hold_kernel_connections(window: Duration) {
    let Ok(spec) = std::env::var(PEER_ENV) else {
        return;
    };
    let (to, count) = spec.rsplit_once(':').unwrap();
    let to: SocketAddr = to.parse().unwrap();
    let count: usize = count.parse().unwrap();
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

/// `key=value` in a helper's (or the daemon's) line.
pub(crate) fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}
