//! System tests of `gen-lab`'s kernel side: the devices under test
//! (`generator::dut`: the kernel server, nginx, HAProxy in HTTP and TCP
//! mode) and the kernel-socket generator (`generator::kernel`), each on a
//! lab of its own.
//!
//! Every device is started in the dut namespace, answers kernel sockets
//! from the peer with exactly the response length it reported, and is left
//! with no socket in any state but LISTEN and TIME-WAIT once they closed.
//! The kernel generator opens 2,000 connections to the kernel device and
//! aborts them (every one reset at the device), then closes others
//! gracefully, half-closes against nginx, and waits for HAProxy's `timeout
//! client` in `peer` mode. Correctness, never timings. They need root and
//! network namespaces, so they are ignored unless asked for (`--ignored`);
//! without root, or without nginx and haproxy, they fail.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lingerd_bench::generator::Close;
use lingerd_bench::generator::dut::{self, Dut, DutConfig, DutKind, REQUEST};
use lingerd_bench::generator::kernel::{self, KernelGenConfig, KernelOutcome};
use lingerd_lab::Lab;

const DUT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lingerd-bench"))
}

fn config(lab: &Lab, scratch: &tempfile::TempDir, connections: usize) -> DutConfig {
    DutConfig {
        ns: lab.get("LAB_DUT_NS"),
        listen: SocketAddrV4::new(DUT_ADDR, 80),
        connections,
        response_bytes: 300,
        client_timeout: None,
        scratch: scratch.path().to_owned(),
        bin: bin(),
    }
}

/// Waits (at most 10 s) until the namespace's sockets leave nothing but
/// LISTEN and TIME-WAIT; returns the last count.
fn settle(ns: &str) -> BTreeMap<String, u64> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let states = dut::sockets_by_state(ns).expect("ss");
        if dut::leftover(&states) == 0 || Instant::now() >= until {
            return states;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Opens `n` kernel connections from the peer namespace, sends the request
/// on each, reads exactly `len` bytes, then closes each (our FIN) and reads
/// the device's EOF.
fn exchange(peer_ns: &str, to: SocketAddrV4, n: usize, len: u64) {
    let ns = peer_ns.to_owned();
    std::thread::spawn(move || {
        lingerd_dataplane::sys::netns::enter(&ns).expect("entering the peer namespace");
        let mut conns: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)).unwrap())
            .collect();
        for c in &mut conns {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(REQUEST).unwrap();
        }
        for c in &mut conns {
            let mut got = vec![0u8; len as usize];
            c.read_exact(&mut got).expect("the whole response");
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).expect("the device's FIN");
            assert!(rest.is_empty(), "{} bytes past the response", rest.len());
        }
    })
    .join()
    .expect("the client thread");
}

#[test]
#[ignore = "needs root, netns, nginx and haproxy"]
fn every_device_answers_and_is_left_with_nothing() {
    let lab = lingerd_lab::need(
        "every_device_answers_and_is_left_with_nothing",
        &lingerd_lab::unique_id("gd"),
        1,
    );
    let (dut_ns, peer_ns) = (lab.get("LAB_DUT_NS"), lab.get("LAB_PEER_NS"));
    for kind in DutKind::ALL {
        let scratch = tempfile::tempdir().unwrap();
        let d = Dut::start(kind, &config(&lab, &scratch, 100))
            .unwrap_or_else(|e| panic!("starting {kind}: {e:#}"));
        let len = d.response_len().expect("a measured response");
        if kind == DutKind::Kernel || kind == DutKind::HaproxyTcp {
            assert_eq!(len, 300, "{kind}");
        } else {
            assert!((100..=600).contains(&len), "{kind}: {len}");
        }
        let pids = d.pids();
        let want = if kind == DutKind::Kernel { 1 } else { 2 };
        assert!(pids.len() >= want, "{kind}: {pids:?}");
        exchange(&peer_ns, d.listen(), 8, len);
        let states = settle(&dut_ns);
        assert_eq!(dut::leftover(&states), 0, "{kind}: {states:?}");
        assert!(
            states.get("LISTEN").copied().unwrap_or(0) >= 1,
            "{states:?}"
        );
        assert!(d.cpu_time().is_ok());
        drop(d);
        // Dropped: every process gone, nothing listening.
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z ")),
                "{kind}: process {pid} outlived the device"
            );
        }
        let states = dut::sockets_by_state(&dut_ns).unwrap();
        assert_eq!(states.get("LISTEN"), None, "{kind}: {states:?}");
    }
}

#[test]
fn devices_refuse_what_they_cannot_hold() {
    let scratch = tempfile::tempdir().unwrap();
    let cfg = DutConfig {
        ns: "lgd-not-a-lab".into(),
        listen: SocketAddrV4::new(DUT_ADDR, 80),
        connections: 20_000,
        response_bytes: 300,
        client_timeout: None,
        scratch: scratch.path().to_owned(),
        bin: bin(),
    };
    let e = Dut::start(DutKind::Haproxy, &cfg).unwrap_err().to_string();
    assert!(e.contains("cannot hold 20000"), "{e}");
    let e = Dut::start(DutKind::Kernel, &cfg).unwrap_err().to_string();
    assert!(e.contains("no network namespace"), "{e}");
}

fn gen_config(lab: &Lab, d: &Dut, connections: usize, close: Close) -> KernelGenConfig {
    KernelGenConfig {
        ns: lab.get("LAB_PEER_NS"),
        sources: vec![PEER_ADDR],
        targets: vec![d.listen()],
        connections,
        request: Some(REQUEST.to_vec()),
        expect_bytes: d.response_len().unwrap(),
        close,
        close_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        bin: bin(),
    }
}

fn run(cfg: &KernelGenConfig) -> KernelOutcome {
    kernel::run(cfg, |s| eprintln!("{s}")).unwrap_or_else(|e| panic!("{}: {e:#}", cfg.close))
}

fn assert_all_closed(o: &KernelOutcome, n: u64) {
    assert_eq!(o.established, n, "{o:?}");
    assert_eq!(o.answered, n, "{o:?}");
    assert_eq!(o.failed, 0, "{o:?}");
    assert_eq!(o.closes, n, "{o:?}");
    assert_eq!(o.confirmed, n, "{o:?}");
    assert_eq!(o.timeouts, 0, "{o:?}");
    assert_eq!(o.lost, 0, "{o:?}");
    assert!(
        o.closes_per_s > 0.0 && o.last_close_ns >= o.first_close_ns,
        "{o:?}"
    );
}

#[test]
#[ignore = "needs root and netns"]
fn kernel_generator_against_the_kernel_device() {
    let lab = lingerd_lab::need(
        "kernel_generator_against_the_kernel_device",
        &lingerd_lab::unique_id("gk"),
        1,
    );
    let dut_ns = lab.get("LAB_DUT_NS");
    let scratch = tempfile::tempdir().unwrap();
    let mut d = Dut::start(DutKind::Kernel, &config(&lab, &scratch, 2000)).unwrap();

    let o = run(&gen_config(&lab, &d, 2000, Close::Abort));
    assert_all_closed(&o, 2000);
    assert_eq!(o.device_resets, 0, "{o:?}");
    let states = settle(&dut_ns);
    assert_eq!(dut::leftover(&states), 0, "{states:?}");
    let s = d.server_stats().unwrap();
    assert_eq!((s.accepted, s.answered), (2001, 2001), "{s:?}"); // + the probe
    assert_eq!(
        s.resets, 2000,
        "every abort seen reset at the device: {s:?}"
    );
    assert_eq!(s.open, 0, "{s:?}");

    let o = run(&gen_config(&lab, &d, 500, Close::Graceful));
    assert_all_closed(&o, 500);
    let states = settle(&dut_ns);
    assert_eq!(dut::leftover(&states), 0, "{states:?}");
    let s = d.server_stats().unwrap();
    assert_eq!(s.eofs, 501, "every graceful close seen as EOF: {s:?}");

    // A device that never closes: peer mode times out and resets them all;
    // a port where nothing listens: every connection fails.
    let mut cfg = gen_config(&lab, &d, 50, Close::Peer);
    cfg.timeout = Duration::from_secs(2);
    let o = run(&cfg);
    assert_eq!((o.established, o.answered, o.closes), (50, 50, 50), "{o:?}");
    assert_eq!((o.confirmed, o.timeouts, o.lost), (0, 50, 50), "{o:?}");
    assert!(o.first_close_ns > 0 && o.last_close_ns >= o.first_close_ns);
    let mut cfg = gen_config(&lab, &d, 10, Close::Abort);
    cfg.targets = vec![SocketAddrV4::new(DUT_ADDR, 81)];
    let o = run(&cfg);
    assert_eq!(
        (o.established, o.failed, o.closes, o.lost),
        (0, 10, 0, 0),
        "{o:?}"
    );
    assert_eq!(dut::leftover(&settle(&dut_ns)), 0);
    assert_eq!(d.server_stats().unwrap().resets, 2050);

    // The device closes first (idle for 1 s): peer mode sees every FIN.
    drop(d);
    let scratch = tempfile::tempdir().unwrap();
    let mut cfg = config(&lab, &scratch, 300);
    cfg.client_timeout = Some(Duration::from_secs(1));
    let d = Dut::start(DutKind::Kernel, &cfg).unwrap();
    let o = run(&gen_config(&lab, &d, 300, Close::Peer));
    assert_all_closed(&o, 300);
    assert_eq!(o.device_resets, 0, "{o:?}");
    assert_eq!(dut::leftover(&settle(&dut_ns)), 0);
}

#[test]
#[ignore = "needs root, netns, nginx and haproxy"]
fn kernel_generator_half_against_nginx_and_peer_against_haproxy() {
    let lab = lingerd_lab::need(
        "kernel_generator_half_against_nginx_and_peer_against_haproxy",
        &lingerd_lab::unique_id("gh"),
        1,
    );
    let dut_ns = lab.get("LAB_DUT_NS");
    let scratch = tempfile::tempdir().unwrap();
    let d = Dut::start(DutKind::Nginx, &config(&lab, &scratch, 1000)).unwrap();
    let o = run(&gen_config(&lab, &d, 1000, Close::Half));
    assert_all_closed(&o, 1000);
    let states = settle(&dut_ns);
    assert_eq!(dut::leftover(&states), 0, "nginx: {states:?}");
    drop(d);

    for kind in [DutKind::Haproxy, DutKind::HaproxyTcp] {
        let scratch = tempfile::tempdir().unwrap();
        let mut cfg = config(&lab, &scratch, 500);
        cfg.client_timeout = Some(Duration::from_secs(1));
        let d = Dut::start(kind, &cfg).unwrap();
        let o = run(&gen_config(&lab, &d, 500, Close::Peer));
        assert_all_closed(&o, 500);
        assert_eq!(o.device_resets, 0, "{kind}: {o:?}");
        let states = settle(&dut_ns);
        assert_eq!(dut::leftover(&states), 0, "{kind}: {states:?}");
    }
}

#[test]
#[ignore = "needs root, netns and nginx"]
fn several_processes_each_side() {
    let lab = lingerd_lab::need(
        "several_processes_each_side",
        &lingerd_lab::unique_id("gs"),
        1,
    );
    let dut_ns = lab.get("LAB_DUT_NS");
    // 30,000: three kernel server processes, two generator workers.
    let scratch = tempfile::tempdir().unwrap();
    let mut d = Dut::start(DutKind::Kernel, &config(&lab, &scratch, 30_000)).unwrap();
    assert_eq!(d.pids().len(), 3);
    let o = run(&gen_config(&lab, &d, 30_000, Close::Abort));
    assert_eq!(o.processes, 2);
    assert_all_closed(&o, 30_000);
    assert_eq!(dut::leftover(&settle(&dut_ns)), 0);
    let s = d.server_stats().unwrap();
    assert_eq!((s.accepted, s.resets, s.open), (30_001, 30_000, 0), "{s:?}");
    assert!(d.cpu_time().unwrap() > Duration::ZERO);
    drop(d);

    // nginx with 20,000 graceful closes: two workers, every request
    // answered, nothing left at nginx.
    let scratch = tempfile::tempdir().unwrap();
    let d = Dut::start(DutKind::Nginx, &config(&lab, &scratch, 20_000)).unwrap();
    assert!(
        d.pids().len() >= 3,
        "a master and two workers: {:?}",
        d.pids()
    );
    let o = run(&gen_config(&lab, &d, 20_000, Close::Graceful));
    assert_all_closed(&o, 20_000);
    let states = settle(&dut_ns);
    assert_eq!(dut::leftover(&states), 0, "{states:?}");
    assert!(d.cpu_time().unwrap() > Duration::ZERO);
}
