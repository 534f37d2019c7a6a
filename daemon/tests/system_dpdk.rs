//! System tests: the real `lingerd run` on DPDK (`port: dpdk`, feature
//! `dpdk`) against the Linux kernel.
//!
//! Each test makes its own lab (`lingerd_lab`, removed even on panic) and
//! runs `lingerd run` in the dut namespace on DPDK's `net_af_packet` bound
//! to the dut end of the veth (`af_packet:iface=…`): DPDK owns the queue,
//! no XDP program is attached, and lingerd's engine answers ARP for
//! 198.18.0.3, an address the dut's kernel does not have. A client attached
//! with the client library (in this process) listens, accepts and closes
//! in each mode; kernel sockets in the peer namespace judge what arrived
//! (threads that `setns` into it, or the kernel-peer child role of this
//! binary for the 10,000-connection case). Every daemon runs with
//! `idle: sleep` (no busy polling) and is stopped with SIGTERM or SIGINT;
//! each stop must exit 0 and leave neither the EAL's runtime directory nor
//! (memif) the socket file behind. One case runs two queue pairs
//! (af_packet `qpairs=2`): frames the kernel's fanout puts on the other
//! queue reach their owner over the hand-off ring.
//!
//! Every test is ignored unless asked for (`--ignored`; `deploy/test` runs
//! them in its DPDK system stage): it needs root and network namespaces,
//! and one that cannot make its lab fails. Every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lingerd_client::Outcome;
use lingerd_config::{Config, Idle, PortKind};
use lingerd_lab::daemon::{Daemon, Launch};
use lingerd_lab::proc::Stderr;
use lingerd_lab::{Family, Lab};

mod app;
mod child;
use app::{App, PORT, STEP, connect, engine, engine_ip, in_peer};
use child::field;

fn main() -> ExitCode {
    child::main(
        &[
            ("dpdk_abort_resets_the_kernel", dpdk_abort_resets_the_kernel),
            (
                "dpdk_graceful_close_kernel_reads_all_then_eof",
                dpdk_graceful_close_kernel_reads_all_then_eof,
            ),
            (
                "dpdk_linger_zero_window_rst_after_deadline",
                dpdk_linger_zero_window_rst_after_deadline,
            ),
            (
                "dpdk_close_with_unread_data_resets",
                dpdk_close_with_unread_data_resets,
            ),
            ("dpdk_abort_10k_connections", dpdk_abort_10k_connections),
            (
                "dpdk_two_queues_echo_and_abort",
                dpdk_two_queues_echo_and_abort,
            ),
            (
                "dpdk_memif_stop_on_sigint_leaves_nothing_behind",
                dpdk_memif_stop_on_sigint_leaves_nothing_behind,
            ),
        ],
        &[(child::KERNEL_PEER, child::kernel_peer)],
    )
}

/// The lab of `test` (`prefix`: its id's letters), one queue.
fn lab(test: &str, prefix: &str) -> Lab {
    lingerd_lab::need(test, &lingerd_lab::unique_id(prefix), 1)
}

/// `/var/run/dpdk/lingerd-PID`: the runtime directory of the EAL of the
/// daemon whose pid is `pid` (lingerd's `--file-prefix`).
fn eal_runtime_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/var/run/dpdk/lingerd-{pid}"))
}

/// `lingerd run` on DPDK in the lab's dut namespace.
struct Lingerd {
    d: Daemon,
    pid: u32,
}

impl Lingerd {
    /// Starts lingerd with `device` (the short form) on one queue; checks
    /// its start-up lines name the device.
    fn start(lab: &Lab, device: &str) -> Lingerd {
        Lingerd::start_queues(lab, device, 1, |_| {})
    }

    /// [`Lingerd::start`] with `queues` queue pairs (queue q on core
    /// (q + 1) mod 2) and `edit` applied to the configuration last.
    fn start_queues(
        lab: &Lab,
        device: &str,
        queues: usize,
        edit: impl FnOnce(&mut Config),
    ) -> Lingerd {
        let mut config = Config::with_defaults("", vec![engine(Family::V4)]);
        config.port = PortKind::Dpdk;
        config.queues = (0..queues as u32).collect();
        config.cores = (0..queues as u32).map(|q| (q + 1) % 2).collect();
        config.dpdk.device = Some(device.parse().unwrap_or_else(|e| panic!("{device}: {e}")));
        config.dpdk.idle = Idle::Sleep;
        config.metrics.listen = None;
        edit(&mut config);
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_lingerd"));
        let d = Daemon::start(
            lab,
            &Launch {
                bin: &bin,
                config: &config,
                env: &[],
                stderr: Stderr::Capture,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for l in d.startup() {
            eprintln!("{l}");
        }
        let started = d
            .startup()
            .iter()
            .filter(|l| l.starts_with("lingerd: queue ") && l.contains(": DPDK "))
            .count();
        assert_eq!(
            started,
            queues,
            "one start-up line per queue: {:?}",
            d.startup()
        );
        assert!(
            d.startup()
                .iter()
                .any(|l| l.starts_with("lingerd: running on DPDK device ")),
            "{:?}",
            d.startup()
        );
        let pid = d.pid();
        assert!(
            eal_runtime_dir(pid).is_dir(),
            "the EAL's runtime directory {} while running",
            eal_runtime_dir(pid).display()
        );
        Lingerd { d, pid }
    }

    /// lingerd on the lab's dut veth through `net_af_packet`.
    fn on_veth(lab: &Lab, edit: impl FnOnce(&mut Config)) -> Lingerd {
        let device = format!("af_packet:iface={}", lab.get("LAB_DUT_IF"));
        Lingerd::start_queues(lab, &device, 1, edit)
    }

    /// SIGTERM; it must exit 0, say it stopped, and leave no EAL runtime
    /// directory. Returns its standard error.
    fn stop(mut self) -> String {
        let (status, stderr) = self.d.stop();
        let status = status.unwrap_or_else(|| panic!("lingerd did not stop on SIGTERM: {stderr}"));
        self.judge_stop(status, stderr)
    }

    fn judge_stop(&self, status: std::process::ExitStatus, stderr: String) -> String {
        eprintln!("{stderr}");
        assert!(status.success(), "{status}: {stderr}");
        assert!(stderr.contains("lingerd: stopped"), "{stderr}");
        assert!(
            !stderr.contains("DPDK shutdown"),
            "the EAL did not shut down cleanly: {stderr}"
        );
        assert!(
            !eal_runtime_dir(self.pid).exists(),
            "{} left behind",
            eal_runtime_dir(self.pid).display()
        );
        stderr
    }
}

fn dpdk_abort_resets_the_kernel() {
    let lab = lab("dpdk_abort", "da");
    let d = Lingerd::on_veth(&lab, |_| {});
    let mut app = App::attach(d.d.socket());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = in_peer(&lab, move || {
        let mut s = connect(Family::V4);
        s.write_all(b"hello over DPDK").unwrap();
        go_rx.recv().unwrap();
        s.read(&mut [0u8; 16]).map_err(|e| e.kind())
    });
    let h = app.one();
    let mut buf = [0u8; 15];
    let mut got = 0;
    while got < buf.len() {
        match app.client.recv(h, &mut buf[got..], STEP) {
            Ok(0) => panic!("EOF after {got} bytes"),
            Ok(n) => got += n,
            Err(e) => panic!("recv: {e:?}"),
        }
    }
    assert_eq!(&buf, b"hello over DPDK");
    go_tx.send(()).unwrap();
    assert_eq!(app.client.abort(h), Ok(Outcome::Aborted));
    assert_eq!(
        client.join().unwrap(),
        Err(ErrorKind::ConnectionReset),
        "the kernel saw the RST"
    );
    drop(app);
    d.stop();
}

fn dpdk_graceful_close_kernel_reads_all_then_eof() {
    let lab = lab("dpdk_graceful", "dg");
    let d = Lingerd::on_veth(&lab, |c| c.tcp.send_buffer = 1 << 20);
    app::graceful_close_kernel_reads_all_then_eof(&lab, &d.d, Family::V4);
    d.stop();
}

fn dpdk_linger_zero_window_rst_after_deadline() {
    let lab = lab("dpdk_linger_zero_window", "dl");
    let d = Lingerd::on_veth(&lab, |c| c.tcp.send_buffer = 1 << 20);
    app::linger_zero_window_rst_after_deadline(&lab, &d.d, Family::V4);
    d.stop();
}

fn dpdk_close_with_unread_data_resets() {
    let lab = lab("dpdk_close_unread", "du");
    let d = Lingerd::on_veth(&lab, |_| {});
    app::close_with_unread_data_resets(&lab, &d.d, Family::V4);
    d.stop();
}

fn dpdk_abort_10k_connections() {
    const PER: usize = 5_000;
    const HELPERS: usize = 2;
    let lab = lab("dpdk_abort_10k", "dk");
    let d = Lingerd::on_veth(&lab, |c| {
        c.tcp.max_connections = 65_536;
        c.tcp.time_wait = lingerd_config::Duration::from_secs(1);
    });
    let mut app = App::attach(d.d.socket());
    let t_connect = Instant::now();
    let to = SocketAddr::new(engine_ip(Family::V4), PORT);
    let mut helpers: Vec<_> = (0..HELPERS)
        .map(|_| child::spawn_kernel_peer(&lab, to, PER, STEP))
        .collect();
    for h in &mut helpers {
        child::expect(h, "PEER connected 5000", Duration::from_secs(60));
    }
    app.accept_until(PER * HELPERS, STEP);
    eprintln!(
        "dpdk_abort_10k: {} connections established in {:?}",
        PER * HELPERS,
        t_connect.elapsed()
    );
    let t0 = Instant::now();
    assert_eq!(app.abort_all().0, (PER * HELPERS) as u64);
    let mut resets = 0;
    for mut h in helpers {
        child::say(&mut h, "check");
        let l = child::expect(&mut h, "PEER reset=", STEP + Duration::from_secs(5));
        assert_eq!(field(&l, "other"), 0, "{l}");
        resets += field(&l, "reset");
        let _ = h.wait_exit(STEP);
    }
    eprintln!(
        "dpdk_abort_10k: {resets} ECONNRESET at the kernel peer {:?} after the first abort",
        t0.elapsed()
    );
    assert_eq!(
        resets,
        (PER * HELPERS) as u64,
        "every kernel socket saw ECONNRESET"
    );
    let ss = lab.exec("LAB_PEER_NS", "ss", &["-Htn", "state", "established"]);
    let left = String::from_utf8_lossy(&ss.stdout).lines().count();
    assert_eq!(left, 0, "established connections left in the peer");
    drop(app);
    let stderr = d.stop();
    assert!(
        stderr.contains(&format!("{} RST sent for aborts", PER * HELPERS)),
        "{stderr}"
    );
}

/// Two queue pairs on one af_packet device (`qpairs=2`, the kernel's
/// fanout spreads flows over them): every connection is served whichever
/// queue its frames reach (the hand-off ring moves them to their owner),
/// echoes, and is aborted with ECONNRESET at the kernel.
fn dpdk_two_queues_echo_and_abort() {
    const CONNS: usize = 32;
    let lab = lab("dpdk_two_queues", "dq");
    let device = format!("af_packet:iface={}", lab.get("LAB_DUT_IF"));
    let d = Lingerd::start_queues(&lab, &device, 2, |_| {});
    let mut app = App::attach(d.d.socket());
    assert_eq!(app.listeners.len(), 2, "one ring per queue");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (echoed_tx, echoed_rx) = mpsc::channel::<()>();
    let clients = in_peer(&lab, move || {
        let mut socks: Vec<TcpStream> = (0..CONNS).map(|_| connect(Family::V4)).collect();
        for (i, s) in socks.iter_mut().enumerate() {
            let msg = format!("conn {i:03}");
            s.write_all(msg.as_bytes()).unwrap();
            let mut buf = [0u8; 8];
            s.read_exact(&mut buf).expect("echo");
            assert_eq!(&buf, msg.as_bytes());
        }
        echoed_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        socks
            .iter_mut()
            .map(|s| s.read(&mut [0u8; 8]).map_err(|e| e.kind()))
            .filter(|r| *r == Err(ErrorKind::ConnectionReset))
            .count()
    });
    let until = Instant::now() + STEP;
    let mut buf = [0u8; 64];
    while echoed_rx.try_recv().is_err() {
        assert!(Instant::now() < until, "echo: not done within {STEP:?}");
        for &l in &app.listeners {
            while let Ok((h, _)) = app.client.accept(l, Duration::ZERO) {
                app.conns.push(h);
            }
        }
        let mut moved = false;
        for i in 0..app.conns.len() {
            let h = app.conns[i];
            if let Ok(n @ 1..) = app.client.recv(h, &mut buf, Duration::ZERO) {
                assert_eq!(app.client.send(h, &buf[..n]), Ok(n), "echo");
                moved = true;
            }
        }
        if !moved {
            app.client.wait(Duration::from_millis(2)).expect("wait");
        }
    }
    app.accept_until(CONNS, STEP);
    assert_eq!(app.abort_all().0, CONNS as u64, "every abort answered");
    go_tx.send(()).unwrap();
    assert_eq!(clients.join().unwrap(), CONNS, "every connection reset");
    drop(app);
    let stderr = d.stop();
    let summaries = stderr
        .lines()
        .filter(|l| l.starts_with("lingerd: queue ") && l.contains("handoff Some"))
        .count();
    assert_eq!(
        summaries, 2,
        "both queues ran with a hand-off ring: {stderr}"
    );
    let forwarded: u64 = stderr
        .lines()
        .filter_map(|l| l.split("forwarded: ").nth(1))
        .filter_map(|v| v.split(',').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        forwarded > 0,
        "no frame was handed between queues: {stderr}"
    );
}

/// A memif server device: its socket file exists while lingerd runs, and
/// SIGINT stops it cleanly, removing the socket file and the EAL's
/// runtime directory.
fn dpdk_memif_stop_on_sigint_leaves_nothing_behind() {
    let lab = lab("dpdk_memif_stop", "dm");
    let dir = tempfile::Builder::new()
        .prefix("lingerd-memif-")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("memif0.sock");
    let device = format!("memif:socket={},role=server", socket.display());
    let mut d = Lingerd::start(&lab, &device);
    assert!(socket_exists(&socket), "{} while running", socket.display());
    d.d.proc().signal(rustix::process::Signal::INT);
    let status =
        d.d.proc()
            .wait_exit(STEP)
            .unwrap_or_else(|| panic!("lingerd did not stop on SIGINT"));
    let (_, stderr) = d.d.stop();
    d.judge_stop(status, stderr);
    assert!(
        !socket_exists(&socket),
        "the memif socket {} left behind",
        socket.display()
    );
}

fn socket_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
