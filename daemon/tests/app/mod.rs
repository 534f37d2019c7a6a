//! The application side of the kernel-judged system tests: a client
//! attached to the daemon under test ([`App`]: listen on [`PORT`] through
//! every ring, accept, read, echo, abort in bulk), the kernel peer's
//! helpers ([`in_peer`], [`connect`]), `lingerd ctl` against the daemon
//! ([`ctl`], [`ctl_rows`], [`ctl_until`]), and the cases judged the same
//! way whatever the port ([`graceful_close_kernel_reads_all_then_eof`],
//! [`linger_zero_window_rst_after_deadline`],
//! [`close_with_unread_data_resets`]), each for either address family
//! ([`Family`]: lingerd answers for [`engine_ip`] of it). Shared by `system_run` (AF_XDP) and
//! `system_dpdk`; it starts no daemon and no lab: the callers do, and stop
//! them.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_client::{Client, Done, Errno, Outcome, Request};
use lingerd_config::Prefix;
use lingerd_dataplane::sys::netns;
use lingerd_lab::daemon::Daemon;
use lingerd_lab::{Family, Lab};

/// lingerd's IPv4 address in the lab (the dut's kernel does not have it).
pub(crate) const ENGINE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// lingerd's IPv6 address in a dual-stack lab (the dut's kernel does not
/// have it either).
pub(crate) const ENGINE_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
/// The port the application (or the daemon's own listener) serves.
pub(crate) const PORT: u16 = 7;
/// The most any one step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// lingerd's address of `family` in the lab.
pub(crate) fn engine_ip(family: Family) -> IpAddr {
    match family {
        Family::V4 => ENGINE_IP.into(),
        Family::V6 => ENGINE_IP6.into(),
    }
}

/// lingerd's address of `family` with the lab link's prefix length
/// (`198.18.0.3/24`, `2001:db8::3/64`), as `addresses` takes it.
pub(crate) fn engine(family: Family) -> Prefix {
    let len = match family {
        Family::V4 => 24,
        Family::V6 => 64,
    };
    Prefix::new(engine_ip(family), len).expect("a prefix length of its family")
}

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

/// A kernel connection to lingerd's `PORT` over `family` (from the peer
/// namespace: call it inside [`in_peer`]).
pub(crate) fn connect(family: Family) -> TcpStream {
    let to = SocketAddr::new(engine_ip(family), PORT);
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
        self.abort_all_within(STEP)
    }

    /// [`App::abort_all`], the last answer within `within` (a paced abort
    /// answers when its RST leaves).
    pub(crate) fn abort_all_within(&mut self, within: Duration) -> (u64, u64) {
        let t0 = Instant::now();
        let until = t0 + within;
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

/// `lingerd ctl ARGS` against the daemon `d`, as its own process in the dut
/// namespace (the ctl socket is a path, like the attach socket).
pub(crate) fn ctl(lab: &Lab, d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut all = vec!["ctl", "--config", d.config_file().to_str().unwrap()];
    all.extend_from_slice(args);
    let mut child = lab
        .command("LAB_DUT_NS", env!("CARGO_BIN_EXE_lingerd"), &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lingerd ctl");
    let until = Instant::now() + STEP;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= until {
            let _ = child.kill();
            panic!("lingerd ctl {args:?} did not finish within {STEP:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "lingerd ctl {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ctl conns --json ARGS`: one JSON object per line.
pub(crate) fn ctl_rows(lab: &Lab, d: &Daemon, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["conns", "--json"];
    all.extend_from_slice(args);
    let out = ctl(lab, d, &all);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Polls `ctl conns --json ARGS` until `ok` holds for the rows (within
/// `STEP`); returns them.
pub(crate) fn ctl_until(
    lab: &Lab,
    d: &Daemon,
    args: &[&str],
    ok: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let until = Instant::now() + STEP;
    loop {
        let rows = ctl_rows(lab, d, args);
        if ok(&rows) {
            return rows;
        }
        assert!(Instant::now() < until, "ctl conns {args:?}: {rows:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Graceful close with linger off, on the running daemon `d` (a send buffer
/// of at least 300 kB): the kernel reads all 300,000 bytes in order, then
/// EOF, while the close has returned BACKGROUND at once.
pub(crate) fn graceful_close_kernel_reads_all_then_eof(lab: &Lab, d: &Daemon, family: Family) {
    let mut app = App::attach(d.socket());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = in_peer(lab, move || {
        let mut s = connect(family);
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        let r = s.read_to_end(&mut all);
        (r.map_err(|e| e.kind()), all)
    });
    let h = app.one();
    go_tx.send(()).unwrap();
    let data: Vec<u8> = (0..300_000).map(|i| (i % 16384 % 251) as u8).collect();
    assert_eq!(app.client.send(h, &data), Ok(300_000));
    assert_eq!(
        app.client.close(h, true),
        Ok(Outcome::Background),
        "linger off: the graceful close goes on in the background"
    );
    let (r, got) = client.join().unwrap();
    assert_eq!(
        r,
        Ok(300_000),
        "the kernel reads everything, then EOF (got {})",
        got.len()
    );
    assert!(got == data, "the bytes arrived in order");
}

/// Linger {on, 2 s} against a zero window, on the running daemon `d` (a
/// send buffer of at least 1 MB): the peer's receive buffer is tiny and
/// nobody reads, so the window closes; the kernel sees the RST no sooner
/// than the deadline and within 300 ms after it, and the close completes
/// ABORTED_LINGER. Sets the peer namespace's `tcp_rmem`.
pub(crate) fn linger_zero_window_rst_after_deadline(lab: &Lab, d: &Daemon, family: Family) {
    let out = lab.exec(
        "LAB_PEER_NS",
        "sysctl",
        &["-qw", "net.ipv4.tcp_rmem=4096 4096 4096"],
    );
    assert!(out.status.success(), "{out:?}");
    let mut app = App::attach(d.socket());
    let (t0_tx, t0_rx) = mpsc::channel::<Instant>();
    let client = in_peer(lab, move || {
        let s = connect(family);
        let t0 = t0_rx.recv().unwrap();
        let until = t0 + Duration::from_secs(6);
        // SO_ERROR, polled without reading (a read would open the window).
        loop {
            if let Some(e) = s.take_error().unwrap() {
                return (e.kind(), t0.elapsed());
            }
            assert!(Instant::now() < until, "no RST within 6 s of the close");
            thread::sleep(Duration::from_millis(5));
        }
    });
    let h = app.one();
    // The send buffer takes it all; the peer's window closes on it.
    assert_eq!(app.client.send(h, &vec![0x5a; 1_000_000]), Ok(1_000_000));
    thread::sleep(Duration::from_millis(500)); // window closes; lingerd probes
    app.client.set_linger_ms(h, true, 2000).expect("SO_LINGER");
    let t0 = Instant::now();
    t0_tx.send(t0).unwrap();
    let outcome = app.client.close(h, true);
    let (kind, after) = client.join().unwrap();
    eprintln!("linger 2000 ms: the kernel saw the RST after {after:?}");
    assert_eq!(kind, ErrorKind::ConnectionReset);
    assert!(
        after >= Duration::from_millis(1990),
        "RST before the deadline: {after:?}"
    );
    assert!(after < Duration::from_millis(2300), "RST late: {after:?}");
    assert_eq!(outcome, Ok(Outcome::AbortedLinger));
}

/// A close with data never read, on the running daemon `d`: once lingerd
/// counts the 20 bytes in the connection's receive queue (`ctl conns`),
/// the close is ABORTED and the kernel's read fails with ECONNRESET.
pub(crate) fn close_with_unread_data_resets(lab: &Lab, d: &Daemon, family: Family) {
    let mut app = App::attach(d.socket());
    let client = in_peer(lab, move || {
        let mut s = connect(family);
        s.write_all(b"never read by anyone").unwrap();
        let mut buf = [0u8; 16];
        s.read(&mut buf).map_err(|e| e.kind())
    });
    let h = app.one();
    // The 20 bytes are in the client's RX chunks, unread: lingerd counts
    // them in the connection's receive queue.
    ctl_until(lab, d, &["--state", "established"], |rows| {
        rows.len() == 1 && rows[0]["recv_q"] == 20
    });
    assert_eq!(app.client.close(h, true), Ok(Outcome::Aborted));
    assert_eq!(client.join().unwrap(), Err(ErrorKind::ConnectionReset));
}
