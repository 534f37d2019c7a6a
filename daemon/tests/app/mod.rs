//! The application side of the kernel-judged system tests: a client
//! attached to the daemon under test ([`App`]: listen on [`PORT`] through
//! every ring, accept, read, echo, abort in bulk), and the kernel peer's
//! helpers ([`in_peer`], [`connect`]). Shared by `system_run` and
//! `system_dpdk`; it owns no daemon and no lab.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_client::{Client, Done, Errno, Request};
use lingerd_dataplane::sys::netns;
use lingerd_lab::Lab;

/// lingerd's address in the lab.
pub(crate) const ENGINE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// The port the application (or the daemon's own listener) serves.
pub(crate) const PORT: u16 = 7;
/// The most any one step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Runs `f` in a thread inside the lab's peer namespace.
pub(crate) fn in_peer<T: Send + 'static>(
    lab: &Lab,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let ns = lab.get("LAB_PEER_NS");
    thread::spawn(move || {
        netns::enter(&ns).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
        f()
    })
}

pub(crate) fn connect() -> TcpStream {
    let to = SocketAddr::V4(SocketAddrV4::new(ENGINE_IP, PORT));
    let s = TcpStream::connect_timeout(&to, STEP).expect("connect to lingerd");
    s.set_read_timeout(Some(STEP)).unwrap();
    s
}

/// The application of a test: a client attached to the daemon, listening
/// on `PORT` through every ring, and the connections it accepted.
pub(crate) struct App {
    /// The attached client.
    pub(crate) client: Client,
    /// Its listener on each ring.
    pub(crate) listeners: Vec<u64>,
    /// The connections it accepted and still holds.
    pub(crate) conns: Vec<u64>,
}

impl App {
    /// Attaches to the daemon at `socket` and listens on `PORT` through
    /// each of its rings.
    pub(crate) fn attach(socket: &Path) -> App {
        let mut client = Client::attach(socket).expect("attach to lingerd");
        let listeners = (0..client.cores().len())
            .map(|ring| {
                client
                    .listen_on(ring, PORT, 65_535)
                    .expect("listen through lingerd")
            })
            .collect();
        App {
            client,
            listeners,
            conns: Vec::new(),
        }
    }

    /// Takes every connection waiting on a listener; returns how many.
    pub(crate) fn accept_waiting(&mut self) -> usize {
        let before = self.conns.len();
        for &l in &self.listeners {
            while let Ok((h, _)) = self.client.accept(l, Duration::ZERO) {
                self.conns.push(h);
            }
        }
        self.conns.len() - before
    }

    /// Accepts until `n` connections are held (within `within`).
    pub(crate) fn accept_until(&mut self, n: usize, within: Duration) {
        let until = Instant::now() + within;
        while self.conns.len() < n {
            self.accept_waiting();
            if self.conns.len() >= n {
                break;
            }
            assert!(
                Instant::now() < until,
                "accepted {} of {n} within {within:?}",
                self.conns.len()
            );
            self.client.wait(Duration::from_millis(5)).expect("wait");
        }
    }

    /// The one connection (accepted within `STEP`).
    pub(crate) fn one(&mut self) -> u64 {
        self.accept_until(1, STEP);
        self.conns[0]
    }

    /// Reads `h` until `n` bytes came (within `STEP`); returns them.
    pub(crate) fn read_exact(&mut self, h: u64, n: usize) -> Vec<u8> {
        let until = Instant::now() + STEP;
        let mut got = Vec::with_capacity(n);
        let mut buf = [0u8; 4096];
        while got.len() < n {
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "read {} of {n} bytes", got.len());
            let want = (n - got.len()).min(buf.len());
            match self.client.recv(h, &mut buf[..want], left) {
                Ok(0) => panic!("EOF after {} of {n} bytes", got.len()),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(Errno::WouldBlock | Errno::TimedOut) => {}
                Err(e) => panic!("recv: {e:?}"),
            }
        }
        got
    }

    /// Echoes what arrives on every connection (accepting new ones) until
    /// `done` holds (within `STEP`).
    pub(crate) fn echo_until(&mut self, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + STEP;
        let mut buf = [0u8; 4096];
        while !done() {
            assert!(Instant::now() < until, "echo: not done within {STEP:?}");
            self.accept_waiting();
            let mut moved = false;
            for i in 0..self.conns.len() {
                let h = self.conns[i];
                if let Ok(n @ 1..) = self.client.recv(h, &mut buf, Duration::ZERO) {
                    assert_eq!(self.client.send(h, &buf[..n]), Ok(n), "echo");
                    moved = true;
                }
            }
            if !moved {
                self.client.wait(Duration::from_millis(2)).expect("wait");
            }
        }
    }

    /// Aborts every connection at once (one request each, without waiting
    /// between them); returns how many answered and the microseconds from
    /// the first request to the last answer.
    pub(crate) fn abort_all(&mut self) -> (u64, u64) {
        let t0 = Instant::now();
        let until = t0 + STEP;
        let mut pending = std::collections::HashSet::new();
        let mut done: Vec<Done> = Vec::new();
        let mut next = 0;
        let mut answered = 0u64;
        while next < self.conns.len() || !pending.is_empty() {
            assert!(
                Instant::now() < until,
                "aborts: {answered} answered, {} pending",
                pending.len()
            );
            while next < self.conns.len() {
                match self.client.submit(Request::Abort {
                    handle: self.conns[next],
                }) {
                    Ok(t) => {
                        pending.insert(t.0);
                        next += 1;
                    }
                    Err(Errno::NoBufs) => break,
                    Err(e) => panic!("submit abort: {e:?}"),
                }
            }
            done.clear();
            self.client.poll_completions(&mut done).expect("reap");
            for d in &done {
                if pending.remove(&d.ticket.0) {
                    assert_eq!(d.result, Errno::Ok, "{d:?}");
                    answered += 1;
                }
            }
            if done.is_empty() {
                self.client.wait(Duration::from_millis(1)).expect("wait");
            }
        }
        self.conns.clear();
        (answered, t0.elapsed().as_micros() as u64)
    }
}
