//! System tests with two processes: the real `lingerd run` on AF_XDP in the
//! lab's dut namespace, and a separate client process attached to it with
//! `lingerd-client` (this very test binary re-run as the `client` child
//! role, in the host namespace: the attach socket is a filesystem path).
//!
//! - `ring_overflow_no_loss`: the client submits requests
//!   without reaping until both of its rings are full; the daemon must stop
//!   taking requests (its `ring_full` counter grows while nothing else
//!   does), and once the client reaps, every one of 20,000 requests through
//!   64-entry rings gets exactly one completion.
//! - `client_sigkill_cleanup`: the client accepts 10,000
//!   kernel connections (two kernel-peer child processes of 5,000 in the peer
//!   namespace, under the 20,000-descriptor limit) and is SIGKILLed; with
//!   `on_client_exit: abort` every kernel socket sees ECONNRESET within
//!   1 s, and the daemon keeps nothing of the client: no connection or
//!   listener, no mapping of its memfd, no descriptor. It runs once per
//!   address family (`::v4`, `::v6`: lingerd on 2001:db8::3 in a
//!   dual-stack lab).
//!
//! The daemon's figures come from its `/metrics` (served on 127.0.0.1
//! inside the dut namespace, read by a thread that enters it) and from
//! `/proc/<pid>`. Every test is ignored unless asked for (`--ignored`): it
//! needs root and network namespaces, and one that cannot make its lab
//! fails. Every wait is bounded.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant};

use lingerd_client::{Client, Done, Errno, Request};
use lingerd_config::{ClientExitPolicy, Config, Idle, ZeroCopy};
use lingerd_dataplane::sys::netns;
use lingerd_lab::daemon::{Daemon, Launch};
use lingerd_lab::proc::{Proc, Stderr};
use lingerd_lab::{Family, Lab};

mod app;
mod child;
use app::{PORT, STEP, engine, engine_ip};
use child::{field, lab};

/// The attached-client child role: `mode:socket:count`.
const CLIENT: &str = "client";
/// Ring entries of the flood test's region.
const FLOOD_RING: u64 = 64;
/// Requests the flood test pushes through those rings in all.
const FLOOD_TOTAL: u64 = 20_000;

fn main() -> ExitCode {
    child::main_families(
        &[("ring_overflow_no_loss", ring_overflow_no_loss)],
        &[("client_sigkill_cleanup", client_sigkill_cleanup)],
        &[
            (CLIENT, client_role),
            (child::KERNEL_PEER, child::kernel_peer),
        ],
    )
}

/// `lingerd run` (no listeners of its own) in the dut namespace, with
/// metrics on 127.0.0.1 there: one queue on core 1, AF_XDP in copy mode
/// with 4096 frames and asleep when idle, the rest lingerd's defaults and
/// a test's own edits.
struct Dut {
    d: Daemon,
    lab_dut_ns: String,
}

impl Dut {
    fn start(lab: &Lab, family: Family, edit: impl FnOnce(&mut Config)) -> Dut {
        let mut config = Config::with_defaults(lab.get("LAB_DUT_IF"), vec![engine(family)]);
        config.queues = vec![0];
        config.cores = vec![1];
        config.xdp.zero_copy = ZeroCopy::Off;
        config.xdp.frames = 4096;
        config.xdp.idle = Idle::Sleep;
        // A port the kernel picks.
        config.metrics.listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        edit(&mut config);
        let d = Daemon::start(
            lab,
            &Launch {
                bin: Path::new(env!("CARGO_BIN_EXE_lingerd")),
                config: &config,
                env: &[],
                stderr: Stderr::Capture,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for l in d.startup() {
            eprintln!("{l}");
        }
        // `ip netns exec` execs lingerd itself: this pid is the daemon's.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.pid())).unwrap();
        assert_eq!(comm.trim(), "lingerd");
        Dut {
            d,
            lab_dut_ns: lab.get("LAB_DUT_NS"),
        }
    }

    fn pid(&self) -> u32 {
        self.d.pid()
    }

    fn socket(&self) -> &Path {
        self.d.socket()
    }

    /// `/metrics`, fetched from inside the dut namespace.
    fn metrics(&self) -> String {
        let ns = self.lab_dut_ns.clone();
        let to: SocketAddr = self.d.metrics().expect("metrics are served");
        thread::spawn(move || {
            netns::enter(&ns).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
            let mut s = TcpStream::connect_timeout(&to, STEP).expect("connect to /metrics");
            s.set_read_timeout(Some(STEP)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: lingerd\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).expect("read /metrics");
            body
        })
        .join()
        .expect("the metrics scrape")
    }
    /// One metric's value, summed over its label sets: `name`, or
    /// `name{key="value"}` for the series that have that label.
    fn metric(&self, selector: &str) -> u64 {
        let body = self.metrics();
        let (name, label) = selector
            .split_once('{')
            .map_or((selector, ""), |(n, l)| (n, l.trim_end_matches('}')));
        let mut found = false;
        let sum = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (key, v) = l.rsplit_once(' ')?;
                let base = key.split('{').next()?;
                (base == name && key.contains(label)).then(|| v.parse::<u64>().ok())?
            })
            .inspect(|_| found = true)
            .sum();
        assert!(found, "no {selector} in /metrics:\n{body}");
        sum
    }

    /// Polls `metric` until `ok` holds or `limit` passes; returns the last
    /// value and whether it held.
    fn wait_metric(&self, name: &str, limit: Duration, ok: impl Fn(u64) -> bool) -> (u64, bool) {
        let until = Instant::now() + limit;
        loop {
            let v = self.metric(name);
            if ok(v) || Instant::now() >= until {
                return (v, ok(v));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mappings of client memfds in the daemon.
    fn memfd_mappings(&self) -> usize {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid()))
            .unwrap()
            .lines()
            .filter(|l| l.contains("memfd:lingerd-client"))
            .count()
    }

    /// Open descriptors of the daemon.
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// SIGTERM; asserts exit 0.
    fn stop(mut self) {
        let (status, stderr) = self.d.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "lingerd exit {status:?}: {stderr}"
        );
    }
}

/// An attached client in a process of its own (host namespace).
fn spawn_client(mode: &str, socket: &Path, count: u64) -> Proc {
    child::spawn_role(
        Command::new(child::this_exe()),
        CLIENT,
        &format!("{mode}:{}:{count}", socket.display()),
    )
}

/// Reads one line of the parent's commands.
fn read_command() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// The `client` child role (`mode:socket:count`): the attached client of
/// the tests below.
///
/// - `flood`: listens on `PORT`, then submits `GetLinger` on that listener
///   (answered ENOTSOCK at once, nothing else happens)
///   without reaping until both rings stay full for 300 ms, prints
///   `CLIENT flooded submitted=N`, waits for `reap`, then alternates
///   reaping and submitting until `count` requests went through and prints
///   `CLIENT done submitted= completed= duplicate= unknown= bad= missing=`.
/// - `hold`: listens on `PORT` (`CLIENT listening`), accepts `count`
///   connections (`CLIENT holding N`), then sleeps until killed (60 s at
///   most).
fn client_role(spec: &str) {
    let mut parts = spec.splitn(2, ':');
    let mode = parts.next().unwrap().to_owned();
    let (socket, count) = parts.next().unwrap().rsplit_once(':').unwrap();
    let count: u64 = count.parse().unwrap();
    let mut client = Client::attach(socket).expect("attach to lingerd");
    let listener = client.listen(PORT, 65_535).expect("listen through lingerd");
    match mode.as_str() {
        "flood" => flood(&mut client, listener, count),
        "hold" => {
            println!("CLIENT listening");
            let until = Instant::now() + Duration::from_secs(60);
            let mut held = Vec::with_capacity(count as usize);
            while (held.len() as u64) < count {
                assert!(Instant::now() < until, "accepted only {}", held.len());
                if let Ok((h, _)) = client.accept(listener, Duration::from_secs(1)) {
                    held.push(h);
                }
            }
            println!("CLIENT holding {}", held.len());
            thread::sleep(Duration::from_secs(60));
        }
        _ => panic!("unknown mode {mode}"),
    }
}

fn flood(client: &mut Client, listener: u64, total: u64) {
    let req = Request::GetLinger { handle: listener };
    let mut outstanding = HashSet::new();
    let mut submitted = 0u64;
    // Phase 1: submit, never reap, until the rings stay full for 300 ms.
    let mut full_since = None;
    let until = Instant::now() + STEP;
    loop {
        match client.submit(req) {
            Ok(t) => {
                submitted += 1;
                outstanding.insert(t.0);
                full_since = None;
            }
            Err(Errno::NoBufs) => {
                let since = *full_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(300) {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("submit: {e:?}"),
        }
        assert!(Instant::now() < until, "the rings never filled");
    }
    println!("CLIENT flooded submitted={submitted}");
    assert_eq!(read_command(), "reap");
    // Phase 2: reap, submit until full again, until `total` went through.
    let (mut completed, mut duplicate, mut unknown, mut bad) = (0u64, 0u64, 0u64, 0u64);
    let mut done: Vec<Done> = Vec::new();
    let mut answered = HashSet::new();
    let until = Instant::now() + STEP;
    while completed < total && Instant::now() < until {
        done.clear();
        client.poll_completions(&mut done).expect("reap");
        for d in &done {
            if outstanding.remove(&d.ticket.0) {
                completed += 1;
                answered.insert(d.ticket.0);
            } else if answered.contains(&d.ticket.0) {
                duplicate += 1;
            } else {
                unknown += 1;
            }
            // The engine answers linger queries on a listener ENOTSOCK (it
            // keeps linger per connection): the same answer every time.
            if d.result != Errno::NotSock || d.body != lingerd_client::Body::Reply {
                if bad == 0 {
                    eprintln!("CLIENT first bad answer {d:?}");
                }
                bad += 1;
            }
        }
        while submitted < total {
            match client.submit(req) {
                Ok(t) => {
                    submitted += 1;
                    outstanding.insert(t.0);
                }
                Err(Errno::NoBufs) => break,
                Err(e) => panic!("submit: {e:?}"),
            }
        }
        if done.is_empty() {
            client.wait(Duration::from_millis(5)).expect("wait");
        }
    }
    println!(
        "CLIENT done submitted={submitted} completed={completed} duplicate={duplicate} \
         unknown={unknown} bad={bad} missing={}",
        outstanding.len()
    );
}

fn ring_overflow_no_loss() {
    let lab = lab("completion_ring_flood", "rf", 1, Family::V4);
    let d = Dut::start(&lab, Family::V4, |c| {
        c.clients.ring_entries = FLOOD_RING as u32
    });
    let mut client = spawn_client("flood", d.socket(), FLOOD_TOTAL);
    let flooded = child::expect(&mut client, "CLIENT flooded", STEP);
    // The daemon took what the completion ring could answer (64) and the
    // request ring holds 64 more: twice the completion ring, then it stops.
    assert_eq!(
        field(&flooded, "submitted"),
        2 * FLOOD_RING,
        "requests accepted before both rings stayed full"
    );
    // Metrics are published every 100 ms: wait for the stalled figures.
    let (requests, ok) =
        d.wait_metric("lingerd_ring_requests_total", STEP, |v| v == 1 + FLOOD_RING);
    assert!(
        ok,
        "requests taken while the client reaps nothing: {requests}"
    );
    let full_before = d.metric("lingerd_ring_full_total");
    thread::sleep(Duration::from_millis(300));
    let full_after = d.metric("lingerd_ring_full_total");
    assert!(
        full_after > full_before && full_before > 0,
        "ring_full counts the stalled intake: {full_before} then {full_after}"
    );
    assert_eq!(
        d.metric("lingerd_ring_requests_total"),
        1 + FLOOD_RING,
        "no request taken while the completion ring is full"
    );
    assert_eq!(d.metric("lingerd_ring_completions_total"), 1 + FLOOD_RING);

    child::say(&mut client, "reap");
    let done = child::expect(&mut client, "CLIENT done", STEP + Duration::from_secs(5));
    assert_eq!(field(&done, "submitted"), FLOOD_TOTAL, "{done}");
    assert_eq!(
        field(&done, "completed"),
        FLOOD_TOTAL,
        "one answer each: {done}"
    );
    for key in ["duplicate", "unknown", "bad", "missing"] {
        assert_eq!(field(&done, key), 0, "{key}: {done}");
    }
    let _ = client.wait_exit(STEP);
    let (requests, ok) = d.wait_metric("lingerd_ring_requests_total", STEP, |v| {
        v == 1 + FLOOD_TOTAL
    });
    assert!(
        ok,
        "daemon took {requests} requests, the client made {}",
        1 + FLOOD_TOTAL
    );
    assert_eq!(d.metric("lingerd_ring_completions_total"), 1 + FLOOD_TOTAL);
    assert_eq!(d.metric("lingerd_ring_invalid_requests_total"), 0);
    d.stop();
}

fn client_sigkill_cleanup(family: Family) {
    const PER: usize = 5_000;
    const HELPERS: usize = 2;
    const TOTAL: u64 = (PER * HELPERS) as u64;
    let lab = lab("sigkill_client_10k", "sk", 1, family);
    let d = Dut::start(&lab, family, |c| {
        c.tcp.max_connections = 65_536;
        c.close.on_client_exit = ClientExitPolicy::Abort;
    });
    let fds_alone = d.fds();
    assert_eq!(d.memfd_mappings(), 0);
    let mut client = spawn_client("hold", d.socket(), TOTAL);
    child::expect(&mut client, "CLIENT listening", STEP);
    let t_connect = Instant::now();
    let mut peers: Vec<Proc> = (0..HELPERS)
        .map(|_| {
            child::spawn_kernel_peer(
                &lab,
                SocketAddr::new(engine_ip(family), PORT),
                PER,
                Duration::from_secs(5),
            )
        })
        .collect();
    for p in &mut peers {
        child::expect(p, &format!("PEER connected {PER}"), Duration::from_secs(60));
    }
    child::expect(&mut client, &format!("CLIENT holding {TOTAL}"), STEP);
    eprintln!(
        "sigkill_client_10k: {TOTAL} connections accepted in {:?}",
        t_connect.elapsed()
    );
    let (established, ok) = d.wait_metric("lingerd_connections", STEP, |v| v == TOTAL + 1);
    assert!(
        ok,
        "records (10,000 connections + the listener): {established}"
    );
    assert!(d.memfd_mappings() > 0, "the client's region is mapped");
    assert!(d.fds() > fds_alone, "the client's descriptors are held");

    for p in &mut peers {
        child::say(p, "check");
    }
    let t_kill = Instant::now();
    client.kill(); // SIGKILL, reaped
    let mut resets = 0;
    for p in &mut peers {
        let l = child::expect(p, "PEER reset=", STEP);
        assert_eq!(field(&l, "other"), 0, "{l}");
        assert_eq!(field(&l, "pending"), 0, "{l}");
        assert!(
            field(&l, "ms") <= 1_000,
            "the last RST arrived {} ms after the kill: {l}",
            field(&l, "ms")
        );
        resets += field(&l, "reset");
    }
    assert_eq!(resets, TOTAL, "every kernel socket saw ECONNRESET");
    eprintln!(
        "sigkill_client_10k: {TOTAL} resets seen within {:?}",
        t_kill.elapsed()
    );

    // Nothing of the client left in the daemon.
    let (records, ok) = d.wait_metric("lingerd_connections", Duration::from_secs(1), |v| v == 0);
    assert!(ok, "records left after the exit policy: {records}");
    let until = Instant::now() + Duration::from_secs(1);
    while (d.memfd_mappings() > 0 || d.fds() != fds_alone) && Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(d.memfd_mappings(), 0, "the client's memfd is still mapped");
    assert_eq!(d.fds(), fds_alone, "descriptors before the attach vs now");
    assert_eq!(
        d.metric("lingerd_rst_sent_total{reason=\"abort\"}"),
        TOTAL,
        "one RST per connection"
    );
    // The slot is free: a new client attaches and can listen on the port.
    let mut again = Client::attach(d.socket()).expect("attach after the kill");
    again.listen(PORT, 16).expect("the port is free again");
    drop(again);
    d.stop();
}
