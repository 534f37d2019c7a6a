//! System tests: the real `lingerd run` on AF_XDP against the Linux kernel.
//!
//! Each test makes its own lab (`lingerd_lab`, removed even on panic), runs
//! `lingerd run --config …` in the dut namespace (`lingerd_lab::daemon`),
//! and plays the application itself: a client attached with the client
//! library (`lingerd`, in this process: the attach socket is a filesystem
//! path) listens, accepts, reads, sends, shuts down and closes in each
//! mode, or `lingerd ctl` lists and kills. It judges with kernel sockets in
//! the peer namespace (threads that `setns` into it, or the kernel-peer
//! child role of this very binary under `ip netns exec` for the
//! 10,000-connection test, since one process may hold at most 20,000
//! descriptors). lingerd answers for 198.18.0.3, an address the dut's
//! kernel does not have.
//!
//! The kernel-judged tests run once per address family, as `NAME::v4`
//! and `NAME::v6` (one body given a `Family`): the v6 run makes a
//! dual-stack lab (`Lab::up_for`), lingerd has only 2001:db8::3/64 and the
//! kernel peer is 2001:db8::2. The impaired-path, paced-abort, ctl jobs
//! and queue-range tests run over IPv4 only.
//!
//! Every test is ignored unless asked for (`--ignored`; `deploy/test` runs
//! them when it can make a lab, and must with
//! `LINGERD_REQUIRE_SYSTEM_TESTS=1`): it needs root and network namespaces,
//! and one that cannot make its lab fails. Every wait is bounded.
//!
//! The daemon's configuration is a `lingerd_config::Config` value
//! ([`config`], each test's edits on top), written as YAML by
//! `Config::to_yaml`. Reload tests rewrite the daemon's file (an edited
//! copy of the running value; the bad-file test, text that does not parse)
//! and send SIGHUP; they judge by the log (standard error, line by line),
//! by systemd's notifications (a datagram socket of the test's as
//! `NOTIFY_SOCKET`) and by what the kernel sees. The metrics test scrapes
//! `/metrics` on the dut's loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_client::{Client, Errno, Outcome, Shutdown};
use lingerd_config::{ClientExitPolicy, Config, Idle, Linger, Listen, LogLevel, ZeroCopy};
use lingerd_dataplane::sys::{netns, xsk};
use lingerd_dataplane::wire::{EthernetAddress, SeqNumber};
use lingerd_lab::daemon::{Daemon, Launch};
use lingerd_lab::proc::{Proc, Stderr};
use lingerd_lab::{Family, Lab};
use lingerd_testkit::sys::xsk_bare;

mod app;
mod child;
use app::{App, PORT, STEP, connect, ctl, ctl_rows, ctl_until, engine, engine_ip, in_peer};
use child::{field, lab};

fn main() -> ExitCode {
    child::main_families(
        &[
            ("abort_paced_rst_per_sec", abort_paced_rst_per_sec),
            (
                "echo_through_an_impaired_path_keeps_every_byte_in_order",
                echo_through_an_impaired_path_keeps_every_byte_in_order,
            ),
            (
                "close_modes_through_an_impaired_path_end_right",
                close_modes_through_an_impaired_path_end_right,
            ),
            (
                "run_refuses_queue_out_of_range",
                run_refuses_queue_out_of_range,
            ),
            (
                "ctl_jobs_lists_and_cancel_stops_a_paced_kill",
                ctl_jobs_lists_and_cancel_stops_a_paced_kill,
            ),
        ],
        &[
            (
                "graceful_close_kernel_reads_all_then_eof",
                graceful_close_kernel_reads_all_then_eof,
            ),
            (
                "linger_zero_window_rst_after_deadline",
                linger_zero_window_rst_after_deadline,
            ),
            (
                "shutdown_send_kernel_reads_eof_lingerd_still_receives",
                shutdown_send_kernel_reads_eof_lingerd_still_receives,
            ),
            (
                "close_with_unread_data_resets",
                close_with_unread_data_resets,
            ),
            ("active_open_to_kernel_server", active_open_to_kernel_server),
            ("abort_10k_connections", abort_10k_connections),
            (
                "two_queues_echo_abort_and_connect",
                two_queues_echo_abort_and_connect,
            ),
            (
                "attached_client_aborts_and_its_exit_closes_the_rest",
                attached_client_aborts_and_its_exit_closes_the_rest,
            ),
            (
                "reload_applies_reloadable_fields_live",
                reload_applies_reloadable_fields_live,
            ),
            (
                "reload_keeps_the_running_config_on_a_bad_file",
                reload_keeps_the_running_config_on_a_bad_file,
            ),
            (
                "metrics_export_xdp_statistics",
                metrics_export_xdp_statistics,
            ),
            (
                "capture_counts_every_rst_the_peer_saw",
                capture_counts_every_rst_the_peer_saw,
            ),
            (
                "ctl_lists_kills_and_reports_stats",
                ctl_lists_kills_and_reports_stats,
            ),
        ],
        &[(child::KERNEL_PEER, child::kernel_peer)],
    )
}

/// The `lingerd` binary: `$LINGERD_BIN` (another build, release for
/// figures) or this package's.
fn bin() -> PathBuf {
    std::env::var_os("LINGERD_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_lingerd")),
        PathBuf::from,
    )
}

/// The daemon's configuration before a test's own edits: `queues` queues
/// on the lab's dut end (pinned to cores 1, 0, 1, …), lingerd's address of
/// `family` (`app::engine`: 198.18.0.3/24 or 2001:db8::3/64) and no
/// other, no listener of its own, AF_XDP in copy mode with 4096 frames and
/// asleep when idle, no `/metrics`; the rest lingerd's defaults (root may
/// attach).
fn config(lab: &Lab, queues: usize, family: Family) -> Config {
    let mut c = Config::with_defaults(lab.get("LAB_DUT_IF"), vec![engine(family)]);
    c.queues = (0..queues as u32).collect();
    c.cores = (0..queues as u32).map(|q| (q + 1) % 2).collect();
    c.xdp.zero_copy = ZeroCopy::Off;
    c.xdp.frames = 4096;
    c.xdp.idle = Idle::Sleep;
    c.metrics.listen = None;
    c
}

/// The daemon of one test, and what its log has shown so far.
struct Lingerd {
    d: Daemon,
    /// A log line read past the end of the previous entry.
    held: Option<String>,
}

impl Lingerd {
    /// Starts lingerd on the lab's dut end for `family` with `queues`
    /// queues and [`config`] as `edit` changes it.
    fn start(lab: &Lab, family: Family, queues: usize, edit: impl FnOnce(&mut Config)) -> Lingerd {
        let mut c = config(lab, queues, family);
        edit(&mut c);
        Lingerd::launch(lab, &c, None)
    }

    /// Starts lingerd for `family` with one queue and [`config`] as it is,
    /// with `notify` as its `NOTIFY_SOCKET`.
    fn start_notified(lab: &Lab, family: Family, notify: &Path) -> Lingerd {
        Lingerd::launch(lab, &config(lab, 1, family), Some(notify))
    }

    /// Starts lingerd with `config`; checks one start-up line per queue.
    fn launch(lab: &Lab, config: &Config, notify: Option<&Path>) -> Lingerd {
        let env: Vec<(&str, &Path)> = notify.map(|p| ("NOTIFY_SOCKET", p)).into_iter().collect();
        let bin = bin();
        let d = Daemon::start(
            lab,
            &Launch {
                bin: &bin,
                config,
                env: &env,
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
            .filter(|l| l.starts_with("lingerd: queue "))
            .count();
        assert_eq!(started, config.queues.len(), "one start-up line per queue");
        assert!(
            d.startup()
                .iter()
                .any(|l| l.starts_with("lingerd: running")),
            "{:?}",
            d.startup()
        );
        Lingerd { d, held: None }
    }

    /// Writes the running configuration as `edit` changes it, then sends
    /// SIGHUP.
    fn reload(&mut self, edit: impl FnOnce(&mut Config)) {
        let mut c = self.d.config().clone();
        edit(&mut c);
        self.d.reload(&c).expect("rewrite the file, SIGHUP");
    }

    /// The next log entry whose first line contains `needle` (within
    /// `STEP`), with the indented lines that follow it.
    fn expect_log(&mut self, needle: &str) -> String {
        let until = Instant::now() + STEP;
        let mut entry = loop {
            let next = match self.held.take() {
                Some(l) => Some(l),
                None => self.d.proc().log_line(until),
            };
            match next {
                Some(l) if l.contains(needle) => break l,
                Some(l) => eprintln!("{l}"),
                None => panic!("no log line with {needle:?} within {STEP:?}"),
            }
        };
        // The rest of the entry was written with the same call.
        while let Some(l) = self
            .d
            .proc()
            .log_line(Instant::now() + Duration::from_millis(200))
        {
            if !l.starts_with(' ') {
                self.held = Some(l);
                break;
            }
            entry.push('\n');
            entry.push_str(&l);
        }
        eprintln!("{entry}");
        entry
    }

    /// SIGTERM, then the exit status and stderr (bounded).
    fn stop(mut self) -> (ExitStatus, String) {
        let (status, stderr) = self.d.stop();
        (
            status.unwrap_or_else(|| panic!("lingerd did not stop on SIGTERM: {stderr}")),
            stderr,
        )
    }
}

fn graceful_close_kernel_reads_all_then_eof(family: Family) {
    let lab = lab("graceful_close", "gc", 1, family);
    let d = Lingerd::start(&lab, family, 1, |c| c.tcp.send_buffer = 1 << 20);
    app::graceful_close_kernel_reads_all_then_eof(&lab, &d.d, family);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// A kernel client echoes 50 MB through lingerd across the impairment
/// stage (loss 1%, reordering 5%, duplication 1%, delay 10 ms ± 5 ms, each
/// way, a fixed seed): every byte comes back, in order, and the connection
/// still ends with the close the client asks for (an abort: ECONNRESET).
/// The other endings are [`close_modes_through_an_impaired_path_end_right`].
fn echo_through_an_impaired_path_keeps_every_byte_in_order() {
    const N: usize = 50_000_000;
    const BOUND: Duration = Duration::from_secs(400);
    let spec = "loss 1% reorder 5% dup 1% delay 10ms 5ms";
    let id = lingerd_lab::unique_id("ei");
    let lab = lingerd_lab::impair::need_impaired("echo_impaired", &id, 1, spec, Some(7), None);
    let d = Lingerd::start(&lab, Family::V4, 1, |c| c.tcp.send_buffer = 1 << 20);
    let mut app = App::attach(d.d.socket());
    let pattern = |i: usize| (i % 65_521 % 251) as u8;
    let (read_tx, read_rx) = mpsc::channel::<()>();
    let client = in_peer(&lab, move || {
        let s = connect(Family::V4);
        s.set_read_timeout(Some(BOUND)).unwrap();
        let t0 = Instant::now();
        let mut w = s.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let data: Vec<u8> = (0..N).map(pattern).collect();
            w.write_all(&data)
        });
        let mut back = vec![0u8; N];
        let read = (&s).read_exact(&mut back).map_err(|e| e.kind());
        let took = t0.elapsed();
        let wrote = writer.join().unwrap().map_err(|e| e.kind());
        let first_bad = back.iter().enumerate().position(|(i, &b)| b != pattern(i));
        let _ = read_tx.send(());
        // After the abort below: the next read sees the reset.
        let mut one = [0u8; 1];
        let after = (&s).read(&mut one).map_err(|e| e.kind());
        (wrote, read, first_bad, took, after)
    });
    let h = app.one();
    let until = Instant::now() + BOUND;
    let mut buf = [0u8; 16 * 1024];
    let mut echoed = 0;
    while echoed < N {
        assert!(
            Instant::now() < until,
            "echoed {echoed} of {N} bytes within {BOUND:?}"
        );
        match app.client.recv(h, &mut buf, Duration::from_millis(5)) {
            Ok(0) => panic!("EOF after {echoed} bytes"),
            Ok(n) => {
                // The send buffer may take only part of it while the
                // connection is behind (recovering, the peer's window
                // full): the rest goes when room frees up.
                let mut sent = 0;
                while sent < n {
                    assert!(Instant::now() < until, "echo: {sent} of {n} taken");
                    match app.client.send(h, &buf[sent..n]) {
                        Ok(k) => sent += k,
                        Err(Errno::NoBufs | Errno::WouldBlock | Errno::TimedOut) => {}
                        Err(e) => panic!("echo: send: {e:?}"),
                    }
                }
                echoed += n;
            }
            Err(Errno::WouldBlock | Errno::TimedOut) => {}
            Err(e) => panic!("recv: {e:?}"),
        }
    }
    // The kernel has read every byte back (or given up): then the abort.
    read_rx
        .recv_timeout(until.saturating_duration_since(Instant::now()))
        .expect("the kernel reads the echo back");
    assert_eq!(app.client.abort(h), Ok(Outcome::Aborted));
    let (wrote, read, first_bad, took, after) = client.join().unwrap();
    assert_eq!(wrote, Ok(()));
    assert_eq!(read, Ok(()), "the echo came back whole");
    assert_eq!(first_bad, None, "every byte in order");
    assert_eq!(after, Err(std::io::ErrorKind::ConnectionReset));
    let mb_s = 2.0 * N as f64 / took.as_secs_f64() / 1e6;
    eprintln!("echo of {N} bytes through {spec:?}: {took:?} ({mb_s:.2} MB/s both ways)");
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// How the application ends a connection in
/// [`close_modes_through_an_impaired_path_end_right`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseMode {
    /// close(), linger off: in the background, data and FIN delivered.
    Background,
    /// Linger {on, 10 s}, acknowledged in time: GRACEFUL.
    LingerAcked,
    /// shutdown(SEND), then close().
    ShutdownSend,
    /// abort(): an RST at once.
    Abort,
    /// close() with 20 bytes received and never read: an RST.
    Unread,
    /// Linger {on, 2 s} against a window the kernel keeps nearly shut.
    LingerExpired,
}

/// Every close mode through the impairment stage (the echo test's profile,
/// another seed), one connection each: the kernel client writes 256 KiB
/// and reads the echo back whole and in order; then lingerd's application
/// sends a 64 KiB tail (1 MB for the linger deadline) and ends the
/// connection in that mode. The kernel sees the ending the mode promises:
/// the tail and EOF after a graceful close (linger off, linger on and
/// acknowledged, shutdown(SEND)), ECONNRESET after an abort, a close with
/// data unread, or an expired linger deadline. An RST the stage drops is
/// found by the kernel's next segment, which lingerd answers with another
/// (the kernel writes a byte only where a reset is expected: elsewhere
/// data after a close would itself cause one).
fn close_modes_through_an_impaired_path_end_right() {
    const M: usize = 256 << 10;
    const TAIL: usize = 64 << 10;
    let spec = "loss 1% reorder 5% dup 1% delay 10ms 5ms";
    let id = lingerd_lab::unique_id("ci");
    let lab = lingerd_lab::impair::need_impaired("close_impaired", &id, 1, spec, Some(11), None);
    let d = Lingerd::start(&lab, Family::V4, 1, |c| c.tcp.send_buffer = 1 << 20);
    let mut app = App::attach(d.d.socket());
    let pattern = |i: usize| (i % 65_521 % 251) as u8;
    use CloseMode::*;
    for mode in [
        Background,
        LingerAcked,
        ShutdownSend,
        Abort,
        Unread,
        LingerExpired,
    ] {
        if mode == LingerExpired {
            // The kernel's receive buffer (and so its window) stays tiny.
            let out = lab.exec(
                "LAB_PEER_NS",
                "sysctl",
                &["-qw", "net.ipv4.tcp_rmem=4096 4096 4096"],
            );
            assert!(out.status.success(), "{out:?}");
        }
        let expect_reset = matches!(mode, Abort | Unread | LingerExpired);
        let tail = if mode == LingerExpired { 1 << 20 } else { TAIL };
        // With data unread, nothing is echoed: the 20 bytes are all the
        // connection carries (the client library returns its receive
        // chunks whole, so after an echo a part of one would count too).
        let m = if mode == Unread { 0 } else { M };
        let (closed_tx, closed_rx) = mpsc::channel::<()>();
        let (read_tx, read_rx) = mpsc::channel::<()>();
        let client = in_peer(&lab, move || {
            let s = connect(Family::V4);
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut w = s.try_clone().unwrap();
            let extra: &[u8] = if mode == Unread {
                b"never read by anyone"
            } else {
                b""
            };
            let writer = thread::spawn(move || {
                let data: Vec<u8> = (0..m).map(pattern).collect();
                w.write_all(&data)?;
                w.write_all(extra)
            });
            let until = Instant::now() + Duration::from_secs(60);
            let mut back = vec![0u8; m];
            let mut got = 0;
            while got < m {
                assert!(Instant::now() < until, "{mode:?}: {got} of {m} echoed");
                match (&s).read(&mut back[got..]) {
                    Ok(0) => panic!("{mode:?}: EOF after {got} of {m} echoed"),
                    Ok(n) => got += n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("{mode:?}: {e} after {got} of {m} echoed"),
                }
            }
            writer.join().unwrap().expect("write");
            let _ = read_tx.send(());
            let first_bad = back.iter().enumerate().position(|(i, &b)| b != pattern(i));
            if mode == LingerExpired {
                // Read nothing more until the close has returned.
                closed_rx.recv().unwrap();
            }
            let mut after = Vec::new();
            let mut buf = vec![0u8; 64 << 10];
            let ending = loop {
                assert!(Instant::now() < until, "{mode:?}: no ending within 60 s");
                match (&s).read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => after.extend_from_slice(&buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if expect_reset && closed_rx.try_recv().is_ok() {
                            // The close returned: if its RST was lost, this
                            // byte draws another.
                            if let Err(e) = (&s).write(&[0]) {
                                break Err(e.kind());
                            }
                        }
                    }
                    Err(e) => break Err(e.kind()),
                }
            };
            (first_bad, after, ending)
        });
        let h = app.one();
        if m > 0 {
            let echoed = app.read_exact(h, m);
            assert_eq!(app.client.send(h, &echoed), Ok(m), "{mode:?}: echo");
        }
        // The kernel has the whole echo before any ending begins.
        read_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{mode:?}: the kernel reads the echo"));
        let tail_data: Vec<u8> = (0..tail).map(|i| pattern(i + 7)).collect();
        if mode != Abort && mode != Unread {
            let mut sent = 0;
            let until = Instant::now() + STEP;
            while sent < tail {
                assert!(Instant::now() < until, "{mode:?}: tail {sent} of {tail}");
                match app.client.send(h, &tail_data[sent..]) {
                    Ok(k) => sent += k,
                    Err(Errno::NoBufs | Errno::WouldBlock | Errno::TimedOut) => {}
                    Err(e) => panic!("{mode:?}: send: {e:?}"),
                }
            }
        }
        let outcome = match mode {
            Background => app.client.close(h, true),
            LingerAcked => {
                app.client
                    .set_linger_ms(h, true, 10_000)
                    .expect("SO_LINGER");
                app.client.close(h, true)
            }
            ShutdownSend => {
                app.client
                    .shutdown(h, Shutdown::Send)
                    .expect("shutdown(SEND)");
                // The kernel reads the tail and EOF, then closes too.
                let mut one = [0u8; 1];
                let r = app.client.recv(h, &mut one, Duration::from_secs(60));
                assert_eq!(r, Ok(0), "{mode:?}: the kernel's FIN");
                app.client.close(h, true)
            }
            Abort => app.client.abort(h),
            Unread => {
                ctl_until(&lab, &d.d, &["--state", "established"], |rows| {
                    rows.len() == 1 && rows[0]["recv_q"] == 20
                });
                app.client.close(h, true)
            }
            LingerExpired => {
                thread::sleep(Duration::from_millis(500));
                app.client.set_linger_ms(h, true, 2000).expect("SO_LINGER");
                app.client.close(h, true)
            }
        };
        let _ = closed_tx.send(());
        app.conns.clear();
        let (first_bad, after, ending) = client.join().unwrap();
        assert_eq!(first_bad, None, "{mode:?}: the echo came back in order");
        let want = match mode {
            Background => Ok(Outcome::Background),
            LingerAcked => Ok(Outcome::Graceful),
            ShutdownSend => outcome,
            Abort | Unread => Ok(Outcome::Aborted),
            LingerExpired => Ok(Outcome::AbortedLinger),
        };
        assert_eq!(outcome, want, "{mode:?}: the close's outcome");
        if expect_reset {
            assert_eq!(ending, Err(ErrorKind::ConnectionReset), "{mode:?}");
        } else {
            assert_eq!(ending, Ok(()), "{mode:?}: EOF");
            assert!(
                after == tail_data,
                "{mode:?}: the tail whole, then EOF ({} bytes)",
                after.len()
            );
        }
        eprintln!("{mode:?}: {outcome:?}, the kernel saw {ending:?}");
    }
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

fn linger_zero_window_rst_after_deadline(family: Family) {
    let lab = lab("linger_zero_window", "lz", 1, family);
    let d = Lingerd::start(&lab, family, 1, |c| c.tcp.send_buffer = 1 << 20);
    app::linger_zero_window_rst_after_deadline(&lab, &d.d, family);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

fn shutdown_send_kernel_reads_eof_lingerd_still_receives(family: Family) {
    let lab = lab("shutdown_send", "ss", 1, family);
    let d = Lingerd::start(&lab, family, 1, |_| {});
    let mut app = App::attach(d.d.socket());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = in_peer(&lab, move || {
        let mut s = connect(family);
        go_rx.recv().unwrap();
        let mut buf = [0u8; 16];
        let eof = s.read(&mut buf).map_err(|e| e.kind());
        s.write_all(&[7u8; 5000]).unwrap();
        go_rx.recv().unwrap(); // keep the socket until lingerd counted
        eof
    });
    let h = app.one();
    app.client
        .shutdown(h, Shutdown::Send)
        .expect("shutdown(SEND)");
    go_tx.send(()).unwrap();
    assert_eq!(app.read_exact(h, 5000), vec![7u8; 5000]);
    go_tx.send(()).unwrap();
    assert_eq!(client.join().unwrap(), Ok(0), "EOF after shutdown(SEND)");
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

fn close_with_unread_data_resets(family: Family) {
    let lab = lab("close_unread", "cu", 1, family);
    let d = Lingerd::start(&lab, family, 1, |_| {});
    app::close_with_unread_data_resets(&lab, &d.d, family);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

fn active_open_to_kernel_server(family: Family) {
    let lab = lab("active_open", "ao", 1, family);
    let peer = lab.peer_addr(family);
    let d = Lingerd::start(&lab, family, 1, |_| {});
    let mut client = Client::attach(d.d.socket()).expect("attach to lingerd");
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = in_peer(&lab, move || {
        let l = TcpListener::bind((peer, 8080)).unwrap();
        ready_tx.send(()).unwrap();
        l.set_nonblocking(true).unwrap();
        let until = Instant::now() + STEP;
        let (mut s, from) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s.write_all(b"hi lingerd").unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got).map_err(|e| e.kind());
        (from, r, got)
    });
    ready_rx.recv().unwrap();
    let h = client
        .connect(SocketAddr::new(peer, 8080))
        .expect("active open");
    // Which port lingerd picked: its own table says.
    let rows = ctl_rows(&lab, &d.d, &["--dst", &peer.to_string()]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    // `ss`'s notation: `198.18.0.3:PORT`, `[2001:db8::3]:PORT`.
    let local: SocketAddr = rows[0]["local"].as_str().unwrap().parse().unwrap();
    assert_eq!(local.ip(), engine_ip(family));
    // The server's greeting, echoed back.
    let mut greeting = [0u8; 10];
    let mut got = 0;
    while got < greeting.len() {
        match client.recv(h, &mut greeting[got..], STEP) {
            Ok(0) => panic!("EOF before the greeting"),
            Ok(n) => got += n,
            Err(e) => panic!("recv: {e:?}"),
        }
    }
    assert_eq!(client.send(h, &greeting), Ok(10));
    assert_eq!(client.close(h, true), Ok(Outcome::Background));
    let (from, r, got) = server.join().unwrap();
    assert_eq!(from, local);
    assert_eq!(r, Ok(10), "echo, then our FIN");
    assert_eq!(got, b"hi lingerd");
    drop(client);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// The bare xsk-rs sender on the dut's queue 0 for `secs`, RSTs of
/// `family` (54 or 74 bytes) from lingerd's address to the peer's: frames
/// per second the peer's veth received (the ceiling of this run).
fn xsk_ceiling(lab: &Lab, family: Family, secs: f64) -> f64 {
    let mac = |key: &str| {
        lab.get(key)
            .parse::<EthernetAddress>()
            .expect("the lab's MAC")
    };
    // To a port nobody listens on: the peer's kernel drops it quietly.
    let frame = lingerd_testkit::frames::rst_frame(
        mac("LAB_DUT_MAC"),
        mac("LAB_PEER_MAC"),
        (engine_ip(family), 40_000),
        (lab.peer_addr(family), 9),
        SeqNumber(1),
    )
    .expect("two addresses of one family");
    let iface = lab.get("LAB_DUT_IF");
    let ns = lab.get("LAB_DUT_NS");
    let before = lab.peer_stat("rx_packets").unwrap();
    let t0 = thread::spawn(move || {
        netns::enter(&ns).unwrap();
        // The daemon's socket on this queue may still be on its way out
        // (the kernel releases it after the process is gone): retry the
        // bind for at most a second. Failed binds send nothing, so the
        // rate is timed from the attempt that ran.
        let mut attempts = 0;
        loop {
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs_f64(secs);
            match xsk_bare::bare_tx_loop(&iface, 0, &xsk::XskConfig::default(), &frame, deadline) {
                Err(xsk::XskError::Socket { .. }) if attempts < 20 => {
                    attempts += 1;
                    thread::sleep(Duration::from_millis(50));
                }
                other => {
                    other.expect("bare xsk loop");
                    break t0;
                }
            }
        }
    })
    .join()
    .unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    (lab.peer_stat("rx_packets").unwrap() - before) as f64 / elapsed
}

fn abort_10k_connections(family: Family) {
    const PER: usize = 5_000;
    const HELPERS: usize = 2;
    let lab = lab("abort_10k", "ab", 1, family);
    let d = Lingerd::start(&lab, family, 1, |c| {
        c.tcp.max_connections = 65_536;
        c.tcp.time_wait = lingerd_config::Duration::from_secs(1);
    });
    let mut app = App::attach(d.d.socket());
    let t_connect = Instant::now();
    let to = SocketAddr::new(engine_ip(family), PORT);
    let mut helpers: Vec<Proc> = (0..HELPERS)
        .map(|_| child::spawn_kernel_peer(&lab, to, PER, STEP))
        .collect();
    for h in &mut helpers {
        child::expect(h, "PEER connected 5000", Duration::from_secs(60));
    }
    app.accept_until(PER * HELPERS, STEP);
    eprintln!(
        "abort_10k: {} connections established in {:?}",
        PER * HELPERS,
        t_connect.elapsed()
    );
    let before = lab.peer_stat("rx_packets").unwrap();
    let (n, us) = app.abort_all();
    assert_eq!(n, (PER * HELPERS) as u64);
    let mut resets = 0;
    for mut h in helpers {
        child::say(&mut h, "check");
        let l = child::expect(&mut h, "PEER reset=", STEP + Duration::from_secs(5));
        assert_eq!(field(&l, "other"), 0, "{l}");
        resets += field(&l, "reset");
        let _ = h.wait_exit(STEP);
    }
    assert_eq!(
        resets,
        (PER * HELPERS) as u64,
        "every kernel socket saw ECONNRESET"
    );
    // Counted once every kernel socket saw its RST: an answer on the
    // completion ring may come before its frame has left the TX ring.
    let on_wire = lab.peer_stat("rx_packets").unwrap() - before;
    let ss = lab.exec("LAB_PEER_NS", "ss", &["-Htn", "state", "established"]);
    let left = String::from_utf8_lossy(&ss.stdout).lines().count();
    assert_eq!(left, 0, "established connections left in the peer");
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");

    // The same lab, the engine gone: the bare AF_XDP sender's ceiling.
    let ceiling = xsk_ceiling(&lab, family, 1.0);
    let rate = on_wire as f64 / (us.max(1) as f64 / 1e6);
    eprintln!(
        "abort_10k: {on_wire} frames on the wire in {us} us (first abort request to last \
         answer) = {:.3} M RST/s; xsk ceiling (bare loop, same lab, same run) {:.3} M \
         frames/s; ratio {:.2}",
        rate / 1e6,
        ceiling / 1e6,
        rate / ceiling
    );
    assert!(
        on_wire >= (PER * HELPERS) as u64,
        "RSTs counted at the peer: {on_wire}"
    );
}

/// Connections of the paced abort, and the kernel peers holding them (one
/// process may hold at most 20,000 descriptors).
const PACED_CONNS: usize = 50_000;
const PACED_HELPERS: usize = 5;
/// The RST limit of the paced abort: the RSTs take `PACED_CONNS / LIMIT`
/// seconds at the peer.
const PACED_LIMIT: u32 = 10_000;

/// `close.max_rst_per_sec` holds at the kernel peer: aborting
/// `PACED_CONNS` connections at once with a limit of `PACED_LIMIT` RSTs/s
/// resets every one of them, and the last reset comes
/// `PACED_CONNS / PACED_LIMIT` s ± 10% after the aborts were sent. Each
/// abort completes when its RST leaves: the last completion comes at the
/// end of the span too.
fn abort_paced_rst_per_sec() {
    let per = PACED_CONNS / PACED_HELPERS;
    let lab = lab("abort_paced", "ap", 1, Family::V4);
    let d = Lingerd::start(&lab, Family::V4, 1, |c| {
        c.tcp.max_connections = (PACED_CONNS + PACED_CONNS / 4) as u32;
        c.tcp.time_wait = lingerd_config::Duration::from_secs(1);
        c.close.max_rst_per_sec = PACED_LIMIT;
    });
    let mut app = App::attach(d.d.socket());
    // One peer address to one port: the peer namespace's own ephemeral
    // range (28,232 ports by default) must hold every connection.
    let widened = lab.exec(
        "LAB_PEER_NS",
        "sysctl",
        &["-qw", "net.ipv4.ip_local_port_range=1024 65535"],
    );
    assert!(widened.status.success(), "{widened:?}");
    let expect = Duration::from_secs_f64(PACED_CONNS as f64 / f64::from(PACED_LIMIT));
    let window = expect * 3;
    let t_connect = Instant::now();
    let to = SocketAddr::new(engine_ip(Family::V4), PORT);
    let mut helpers: Vec<Proc> = (0..PACED_HELPERS)
        .map(|_| child::spawn_kernel_peer(&lab, to, per, window))
        .collect();
    for h in &mut helpers {
        child::expect(
            h,
            &format!("PEER connected {per}"),
            Duration::from_secs(120),
        );
    }
    app.accept_until(PACED_CONNS, STEP);
    eprintln!(
        "abort_paced: {PACED_CONNS} connections established in {:?}",
        t_connect.elapsed()
    );
    let before = lab.peer_stat("rx_packets").unwrap();
    // The peers start their clocks now: the last reset they see is the
    // pacing's whole span.
    for h in &mut helpers {
        child::say(h, "check");
    }
    let (n, us) = app.abort_all_within(window + STEP);
    assert_eq!(n, PACED_CONNS as u64);
    // The last abort answers when the last RST leaves: not before (the
    // bound that matters), and on a loaded machine the client may reap it
    // late, so the upper bound is loose.
    let answered = Duration::from_micros(us).as_secs_f64();
    assert!(
        answered >= expect.as_secs_f64() * 0.9,
        "aborts complete when their RSTs leave: the last after {answered} s, before {expect:?}"
    );
    eprintln!("abort_paced: the last abort answered after {answered:.3} s");
    let (mut resets, mut last_ms) = (0, 0);
    for mut h in helpers {
        let l = child::expect(&mut h, "PEER reset=", window + STEP);
        assert_eq!(field(&l, "other"), 0, "{l}");
        assert_eq!(field(&l, "pending"), 0, "{l}");
        resets += field(&l, "reset");
        last_ms = last_ms.max(field(&l, "ms"));
        let _ = h.wait_exit(STEP);
    }
    let on_wire = lab.peer_stat("rx_packets").unwrap() - before;
    let span = Duration::from_millis(last_ms);
    eprintln!(
        "abort_paced: {resets} resets at the peer, last after {span:?} (expected {expect:?} at {PACED_LIMIT} RST/s); {on_wire} frames on the wire"
    );
    assert_eq!(
        resets, PACED_CONNS as u64,
        "every kernel socket saw ECONNRESET"
    );
    assert!(
        span.as_secs_f64() >= expect.as_secs_f64() * 0.9
            && span.as_secs_f64() <= expect.as_secs_f64() * 1.1,
        "{span:?} is not {expect:?} ± 10%"
    );
    let ss = lab.exec("LAB_PEER_NS", "ss", &["-Htn", "state", "established"]);
    let left = String::from_utf8_lossy(&ss.stdout).lines().count();
    assert_eq!(left, 0, "established connections left in the peer");
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

fn two_queues_echo_abort_and_connect(family: Family) {
    const CONNS: usize = 64;
    let lab = lab("two_queues", "tq", 2, family);
    let peer = lab.peer_addr(family);
    let d = Lingerd::start(&lab, family, 2, |_| {});
    let mut app = App::attach(d.d.socket());
    assert_eq!(app.listeners.len(), 2, "one ring per queue");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (echoed_tx, echoed_rx) = mpsc::channel::<()>();
    let clients = in_peer(&lab, move || {
        let mut socks: Vec<TcpStream> = (0..CONNS).map(|_| connect(family)).collect();
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
    app.echo_until(|| echoed_rx.try_recv().is_ok());
    app.accept_until(CONNS, STEP);
    assert_eq!(app.conns.len(), CONNS);
    // Active opens from both queues: each picks a port whose answers hash
    // to itself.
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = in_peer(&lab, move || {
        let l = TcpListener::bind((peer, 8081)).unwrap();
        l.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let until = Instant::now() + STEP;
        let mut socks = Vec::new();
        while socks.len() < 2 && Instant::now() < until {
            match l.accept() {
                Ok((s, _)) => socks.push(s),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        socks
    });
    ready_rx.recv().unwrap();
    for ring in 0..2 {
        let h = app
            .client
            .connect_on(ring, SocketAddr::new(peer, 8081), 0)
            .unwrap_or_else(|e| panic!("active open through ring {ring}: {e:?}"));
        app.conns.push(h);
    }
    assert_eq!(server.join().unwrap().len(), 2, "one active open per queue");
    let (n, _) = app.abort_all();
    assert_eq!(n, CONNS as u64 + 2, "every abort answered");
    go_tx.send(()).unwrap();
    assert_eq!(clients.join().unwrap(), CONNS, "every connection reset");
    drop(app);
    let (status, stderr) = d.stop();
    assert!(status.success(), "{status}: {stderr}");
    eprintln!("{stderr}");
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

fn run_refuses_queue_out_of_range() {
    let lab = lab("queue_range", "qr", 1, Family::V4);
    let mut c = Config::with_defaults(lab.get("LAB_DUT_IF"), vec![engine(Family::V4)]);
    c.queues = vec![3];
    c.cores = vec![0];
    let config = tempfile::Builder::new()
        .prefix("lingerd-")
        .suffix(".yaml")
        .tempfile()
        .unwrap();
    std::fs::write(config.path(), c.to_yaml()).unwrap();
    let out = lab.exec(
        "LAB_DUT_NS",
        env!("CARGO_BIN_EXE_lingerd"),
        &["run", "--config", config.path().to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("queue 3 is out of range") && stderr.contains("has 1 rx queue(s)"),
        "{stderr}"
    );
}

/// The real pair of processes: `lingerd run` (no listeners of its own) in
/// the dut namespace, and a client attached to it over the control socket
/// with `lingerd-client`, as a load balancer would. The client listens,
/// accepts a Linux kernel connection, reads its bytes and aborts: the
/// kernel's read fails with ECONNRESET. A second connection is left open
/// when the client hangs up: the exit policy (default: each connection's
/// own linger setting, off = graceful) closes it with a FIN, so the kernel
/// reads EOF. Then SIGTERM stops the daemon with exit 0.
fn attached_client_aborts_and_its_exit_closes_the_rest(family: Family) {
    let lab = lab("attached_client", "ac", 1, family);
    let d = Lingerd::start(&lab, family, 1, |_| {});
    let mut client = Client::attach(d.d.socket()).expect("attach to the daemon");
    let listener = client.listen(PORT, 16).expect("listen through the daemon");
    let first = in_peer(&lab, move || {
        let mut s = connect(family);
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 16];
        s.read(&mut buf).map_err(|e| e.kind())
    });
    let (h, _) = client.accept(listener, STEP).expect("accept");
    let mut buf = [0u8; 16];
    let n = client.recv(h, &mut buf, STEP).expect("recv");
    assert_eq!(&buf[..n], b"hello");
    let outcome = client.abort(h).expect("abort");
    assert_eq!(outcome, Outcome::Aborted);
    assert_eq!(
        first.join().unwrap(),
        Err(ErrorKind::ConnectionReset),
        "the kernel saw the RST"
    );

    let second = in_peer(&lab, move || {
        let mut s = connect(family);
        let mut all = Vec::new();
        s.read_to_end(&mut all).map_err(|e| e.kind())
    });
    let _ = client.accept(listener, STEP).expect("accept the second");
    drop(client); // the control socket hangs up
    assert_eq!(
        second.join().unwrap(),
        Ok(0),
        "graceful close by the exit policy: EOF"
    );
    let (status, _) = d.stop();
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
}

/// A datagram socket standing in for systemd's notify socket, in a scratch
/// directory of its own.
struct Notify {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Notify {
    fn new() -> Notify {
        let dir = tempfile::Builder::new()
            .prefix("lingerd-notify-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(STEP)).unwrap();
        Notify {
            socket,
            path,
            _dir: dir,
        }
    }

    /// The next notification (within `STEP`).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .socket
            .recv(&mut buf)
            .expect("a notification from lingerd");
        // One `KEY=value` line each, newline-terminated.
        String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
    }
}

/// A kernel client that connects, says so on `connected`, waits for `go`,
/// then reads to the end: `Ok(0)` is a FIN (graceful close),
/// `Err(ConnectionReset)` an RST.
fn reader(
    lab: &Lab,
    family: Family,
) -> (
    mpsc::Sender<()>,
    mpsc::Receiver<()>,
    thread::JoinHandle<Result<usize, ErrorKind>>,
) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (connected_tx, connected_rx) = mpsc::channel::<()>();
    let h = in_peer(lab, move || {
        let mut s = connect(family);
        let _ = connected_tx.send(());
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).map_err(|e| e.kind())
    });
    (go_tx, connected_rx, h)
}

/// One connection, accepted by `app` and closed (`closesocket`, blocking:
/// the connection's own linger setting, i.e. the default linger it was
/// accepted with): what the kernel saw.
fn close_one(app: &mut App, d: &Lingerd, lab: &Lab, family: Family) -> Result<usize, ErrorKind> {
    let (go, connected, h) = reader(lab, family);
    app.accept_until(1, STEP);
    let conn = app.conns.pop().expect("accepted");
    // An RST before the kernel client's connect() returned would fail the
    // connect itself (a loaded machine can delay that return).
    connected
        .recv_timeout(STEP)
        .expect("the kernel client connected");
    go.send(()).unwrap();
    app.client.close(conn, true).expect("close");
    let r = h.join().unwrap();
    ctl_until(lab, &d.d, &["--state", "established"], <[_]>::is_empty);
    r
}

/// SIGHUP with only reloadable changes: every one is applied live and
/// logged, systemd hears RELOADING=1 then READY=1, and the behaviour
/// changes: the default linger (cores: the next accepted connection's
/// close is an RST, which the kernel sees), the log level (debug lines for
/// attaches appear) and `allow_uids` (root may no longer attach).
fn reload_applies_reloadable_fields_live(family: Family) {
    let lab = lab("reload_applies", "rl", 1, family);
    let notify = Notify::new();
    let mut d = Lingerd::start_notified(&lab, family, &notify.path);
    assert_eq!(notify.next(), "READY=1");
    let mut app = App::attach(d.d.socket());
    assert_eq!(
        close_one(&mut app, &d, &lab, family),
        Ok(0),
        "default linger off: FIN, the kernel reads EOF"
    );
    drop(lingerd_client::Client::attach(d.d.socket()).expect("root may attach"));

    d.reload(|c| {
        c.close.default_linger = Linger { on: true, ms: 0 };
        c.log.level = LogLevel::Debug;
    });
    let reloading = notify.next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    let report = d.expect_log("lingerd: info: reload of ");
    assert!(report.contains(": applied\n"), "{report}");
    assert!(
        report.contains("\n  close.default_linger: applied to every core"),
        "{report}"
    );
    assert!(report.contains("\n  log.level: applied"), "{report}");
    assert_eq!(notify.next(), "READY=1\nSTATUS=reloaded");
    assert_eq!(
        close_one(&mut app, &d, &lab, family),
        Err(ErrorKind::ConnectionReset),
        "default linger {{on, 0}} after the reload: the close is an RST"
    );
    let client = lingerd_client::Client::attach(d.d.socket()).expect("root may attach");
    d.expect_log("lingerd: debug: client ");
    drop(client);
    d.expect_log("lingerd: debug: client ");

    // The running configuration: the first reload's linger and level kept.
    d.reload(|c| c.clients.allow_uids = vec![4242]);
    let report = d.expect_log("lingerd: info: reload of ");
    assert!(
        report.contains("\n  clients.allow_uids: applied"),
        "{report}"
    );
    assert!(
        lingerd_client::Client::attach(d.d.socket()).is_err(),
        "uid 0 is no longer allowed"
    );
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// SIGHUP with a file that does not parse, then with one that changes a
/// restart-only field: each time the daemon logs why (file:line:column;
/// "needs restart"), keeps running on the old configuration, whole (the
/// reloadable change in the second file is not applied either: the close
/// stays graceful), and tells systemd READY=1 again.
fn reload_keeps_the_running_config_on_a_bad_file(family: Family) {
    let lab = lab("reload_keeps", "rk", 1, family);
    let notify = Notify::new();
    let mut d = Lingerd::start_notified(&lab, family, &notify.path);
    assert_eq!(notify.next(), "READY=1");
    let mut app = App::attach(d.d.socket());
    let config = d.d.config_file().display().to_string();

    // The running file with one value that does not parse; the report
    // names its line, and the column where the value starts.
    let running = d.d.config().to_yaml();
    let field = "  time_wait: ";
    let at = 1 + running
        .find(&format!("\n{field}"))
        .expect("tcp.time_wait in the file");
    let end = at + running[at..].find('\n').expect("a whole line");
    let line = running[..at].lines().count() + 1;
    let column = field.len() + 1;
    let bad = format!("{}{field}soon{}", &running[..at], &running[end..]);
    d.d.reload_text(&bad).expect("rewrite the file, SIGHUP");
    assert!(notify.next().starts_with("RELOADING=1"));
    let report = d.expect_log("lingerd: error: reload of ");
    assert!(
        report.contains(&format!(
            "failed, the running configuration is kept: {config}: invalid configuration at line {line} column {column}"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("--> {config}:{line}:{column}")),
        "{report}"
    );
    assert!(
        notify.next().starts_with("READY=1\nSTATUS=reload failed"),
        "READY=1 after a failed reload too"
    );
    assert!(d.d.alive(), "a bad file does not stop the daemon");

    d.reload(|c| {
        c.xdp.frames = 8192;
        c.close.default_linger = Linger { on: true, ms: 0 };
    });
    let report = d.expect_log("lingerd: error: reload of ");
    assert!(
        report.contains("restart-only field changed: xdp.frames; restart lingerd to apply"),
        "{report}"
    );
    assert!(report.contains("\n  xdp.frames: needs restart"), "{report}");
    assert!(
        report.contains("\n  close.default_linger: reloadable, not applied"),
        "{report}"
    );
    assert!(d.d.alive());
    assert_eq!(
        close_one(&mut app, &d, &lab, family),
        Ok(0),
        "the running configuration (linger off) is still in force: FIN"
    );
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// `GET /metrics` inside the dut namespace, where the daemon listens on
/// loopback.
fn scrape(lab: &Lab, addr: SocketAddr) -> String {
    let ns = lab.get("LAB_DUT_NS");
    thread::spawn(move || {
        netns::enter(&ns).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
        let mut s = TcpStream::connect_timeout(&addr, STEP).expect("connect to /metrics");
        s.set_read_timeout(Some(STEP)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    })
    .join()
    .unwrap()
}

/// The value of `name`, summed over its series (every queue's).
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            (series.split('{').next()? == name).then(|| v.parse::<u64>().ok())?
        })
        .reduce(|a, b| a + b)
}

/// `/metrics` of the real daemon carries the AF_XDP series (port counters
/// and the kernel's XDP_STATISTICS), each with HELP and TYPE, and frames
/// counted in both directions after an echo exchange.
fn metrics_export_xdp_statistics(family: Family) {
    const XDP: [&str; 12] = [
        "rx_frames",
        "tx_frames",
        "tx_no_frame",
        "wakeups",
        "sleeps",
        "loops",
        "rx_dropped",
        "rx_invalid_descs",
        "tx_invalid_descs",
        "rx_ring_full",
        "rx_fill_ring_empty_descs",
        "tx_ring_empty_descs",
    ];
    let lab = lab("metrics_xdp", "mx", 1, family);
    // On the dut's loopback, on a port the kernel picks.
    let d = Lingerd::start(&lab, family, 1, |c| {
        c.metrics.listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    });
    let addr = d.d.metrics().expect("the metrics address");
    let mut app = App::attach(d.d.socket());
    let echo = in_peer(&lab, move || {
        let mut s = connect(family);
        s.write_all(&[5u8; 1000]).unwrap();
        let mut back = [0u8; 1000];
        s.read_exact(&mut back).map(|()| back == [5u8; 1000])
    });
    app.echo_until(|| echo.is_finished());
    assert!(echo.join().unwrap().expect("the echo"), "echoed intact");
    // Cores publish every 100 ms: poll until the exchange shows (bounded).
    let until = Instant::now() + STEP;
    let text = loop {
        let text = scrape(&lab, addr);
        let rx = sample(&text, "lingerd_xdp_rx_frames_total").unwrap_or(0);
        let tx = sample(&text, "lingerd_xdp_tx_frames_total").unwrap_or(0);
        if rx > 0 && tx > 0 {
            break text;
        }
        assert!(
            Instant::now() < until,
            "no XDP frames counted within {STEP:?}:\n{text}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    for name in XDP {
        let family = format!("lingerd_xdp_{name}");
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(
            text.contains(&format!("# TYPE {family} counter")),
            "{family}"
        );
        assert!(
            text.contains(&format!("{family}_total{{queue=\"0\"}} ")),
            "{family} has queue 0's sample"
        );
    }
    assert!(sample(&text, "lingerd_xdp_loops_total").unwrap() > 0);
    assert!(
        sample(&text, "lingerd_xdp_sleeps_total").unwrap() > 0,
        "idle: sleep"
    );
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// Kernel connections in the peer namespace that each report how their
/// first read ended (they send nothing, so they read until EOF or error).
fn peers(lab: &Lab, family: Family, n: usize) -> Vec<thread::JoinHandle<Result<usize, ErrorKind>>> {
    (0..n)
        .map(|_| {
            in_peer(lab, move || {
                let mut s = connect(family);
                let mut all = Vec::new();
                s.read_to_end(&mut all).map_err(|e| e.kind())
            })
        })
        .collect()
}

fn ctl_lists_kills_and_reports_stats(family: Family) {
    let lab = lab("ctl", "ct", 1, family);
    let peer = lab.peer_addr(family);
    // The lab's link, and a network nobody in the lab is on.
    let (link, elsewhere) = match family {
        Family::V4 => ("198.18.0.0/24", "198.18.1.0/24"),
        Family::V6 => ("2001:db8::/64", "2001:db8:1::/64"),
    };
    // The daemon's own listener on `PORT` (its discard service).
    let d = Lingerd::start(&lab, family, 1, |c| {
        c.close.on_client_exit = ClientExitPolicy::Abort;
        c.listen = vec![Listen {
            port: PORT,
            backlog: 65536,
        }];
    });
    // The ctl socket is 0600 beside the attach socket.
    let sock = d.d.runtime().join("lingerd.ctl");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", sock.display());

    // conns: three kernel connections and the daemon's listener.
    let first = peers(&lab, family, 3);
    ctl_until(&lab, &d.d, &["--state", "established"], |r| r.len() == 3);
    let rows = ctl_rows(&lab, &d.d, &[]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let estab: Vec<_> = rows.iter().filter(|r| r["state"] == "ESTAB").collect();
    assert_eq!(estab.len(), 3, "{rows:?}");
    for r in &estab {
        // As `ss` prints them: `198.18.0.3:7`, `[2001:db8::3]:7`.
        assert_eq!(
            r["local"],
            SocketAddr::new(engine_ip(family), PORT).to_string()
        );
        let remote: SocketAddr = r["remote"].as_str().unwrap().parse().unwrap();
        assert_eq!(remote.ip(), peer, "{r}");
        assert_eq!(r["owner"], 65535, "the daemon's own listener accepted it");
        assert_eq!(r["queue"], 0);
    }
    let listen = ctl_rows(&lab, &d.d, &["--state", "listening"]);
    assert_eq!(listen.len(), 1);
    assert_eq!(
        listen[0]["local"],
        format!("0.0.0.0:{PORT}"),
        "a wildcard listener"
    );
    assert_eq!(ctl_rows(&lab, &d.d, &["--dst", elsewhere]).len(), 0);
    assert_eq!(
        ctl_rows(&lab, &d.d, &["--dst", &peer.to_string(), "--sport", "7"]).len(),
        3
    );
    // The table has a header and one line each.
    let out = ctl(&lab, &d.d, &["conns", "--state", "established"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("State "), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("ESTAB")).count(), 3);

    // kill --mode abort: every kernel socket sees ECONNRESET.
    let out = ctl(
        &lab,
        &d.d,
        &["kill", "--dst", link, "--mode", "abort", "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["closed"], 3, "{v}");
    for p in first {
        assert_eq!(p.join().unwrap(), Err(ErrorKind::ConnectionReset));
    }
    // The owner (the daemon's own listener's app) was told: nothing of
    // them is left connected.
    ctl_until(&lab, &d.d, &["--state", "connected"], <[_]>::is_empty);
    assert_eq!(ctl_rows(&lab, &d.d, &["--state", "connected"]).len(), 0);

    // kill --mode graceful, paced at 2/s: EOF at the kernel, spread in time.
    let second = peers(&lab, family, 3);
    ctl_until(&lab, &d.d, &["--state", "established"], |r| r.len() == 3);
    let t0 = Instant::now();
    let out = ctl(
        &lab,
        &d.d,
        &[
            "kill",
            "--sport",
            "7",
            "--state",
            "established",
            "--mode",
            "graceful",
            "--pace",
            "2",
        ],
    );
    let took = t0.elapsed();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with("closed 3 connection(s) (queue 0: 3)"),
        "{said}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "3 closes at 2/s take over a second, not {took:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("closed so far"),
        "a paced kill reports progress"
    );
    for p in second {
        assert_eq!(p.join().unwrap(), Ok(0), "graceful: EOF");
    }

    // stats: the per-queue figures, the aborts and graceful closes among them.
    thread::sleep(Duration::from_millis(200)); // one publish period
    let out = ctl(&lab, &d.d, &["stats", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queues"], serde_json::json!([0]));
    assert!(
        v["metrics"]["rst_sent_abort"][0].as_u64().unwrap() >= 3,
        "{v}"
    );
    assert!(
        v["metrics"]["connections_listen"][0].as_u64().unwrap() == 1,
        "{v}"
    );
    let out = ctl(&lab, &d.d, &["stats"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rst_sent_abort"));

    // Refusals come back as errors (exit 1), not as silence.
    let out = ctl(&lab, &d.d, &["kill", "--mode", "abort"]);
    assert_eq!(out.status.code(), Some(1));
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "the ctl socket is removed at exit");
}

/// What a kernel socket says when read without blocking: nothing yet
/// (still connected), end of stream, or an error (a reset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerSees {
    Connected,
    Eof,
    Error(ErrorKind),
}

fn peer_sees(s: &TcpStream) -> PeerSees {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let seen = match (&*s).read(&mut b) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => PeerSees::Connected,
        Ok(0) => PeerSees::Eof,
        Ok(_) => PeerSees::Error(ErrorKind::InvalidData),
        Err(e) => PeerSees::Error(e.kind()),
    };
    s.set_nonblocking(false).unwrap();
    seen
}

/// `lingerd ctl ARGS --json`'s JSON Lines.
fn ctl_json(lab: &Lab, d: &Lingerd, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ctl(lab, &d.d, &all);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Kill control, judged by the kernel: a kill paced at 2 closes a second
/// prints its job id; `lingerd ctl` is interrupted (Ctrl-C without a
/// terminal) and the kill goes on; `jobs` lists it with its progress;
/// `cancel` stops it: the kernel sockets it closed saw ECONNRESET, the rest
/// are still connected seconds later, and lingerd still has them
/// established. On a terminal (a pty from `script`), Ctrl-C asks "cancel
/// or detach?" and `c` cancels likewise. A detached kill then closes the
/// rest.
fn ctl_jobs_lists_and_cancel_stops_a_paced_kill() {
    const N: usize = 12;
    let lab = lab("ctljobs", "cj", 1, Family::V4);
    let d = Lingerd::start(&lab, Family::V4, 1, |c| {
        c.listen = vec![Listen {
            port: PORT,
            backlog: 65536,
        }];
    });
    // The peer holds N connections and says how each is, when asked.
    let (ask_tx, ask_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel::<Vec<PeerSees>>();
    let peer = in_peer(&lab, move || {
        let socks: Vec<TcpStream> = (0..N).map(|_| connect(Family::V4)).collect();
        while ask_rx.recv().is_ok() {
            seen_tx.send(socks.iter().map(peer_sees).collect()).unwrap();
        }
    });
    let ask = || {
        ask_tx.send(()).unwrap();
        seen_rx.recv_timeout(STEP).expect("the peer answers")
    };
    ctl_until(&lab, &d.d, &["--state", "established"], |r| r.len() == N);
    assert!(ask().iter().all(|&s| s == PeerSees::Connected));

    // A foreground kill, paced; its job id comes first on stderr.
    let filter = ["--sport", "7", "--state", "established", "--mode", "abort"];
    let config = d.d.config_file().to_str().unwrap().to_owned();
    let mut args = vec!["ctl", "--config", &config, "kill"];
    args.extend_from_slice(&filter);
    args.extend_from_slice(&["--pace", "2"]);
    let mut fg = std::process::Command::new(env!("CARGO_BIN_EXE_lingerd"))
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lingerd ctl kill");
    let mut stderr = std::io::BufReader::new(fg.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    eprintln!("lingerd ctl kill: {line}");
    let job: u64 = line
        .split("kill job ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {line:?}"));
    let jobs = ctl_json(&lab, &d, &["jobs"]);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["job"], job);
    assert_eq!(jobs[0]["pace"], 2);
    assert_eq!(jobs[0]["mode"], "abort");
    assert_eq!(jobs[0]["filter"]["local_port"], 7);

    // Ctrl-C without a terminal: `lingerd ctl` ends, the kill goes on.
    let int = std::process::Command::new("kill")
        .args(["-INT", &fg.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let status = fg.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(2),
        "ended by SIGINT: {status}"
    );
    let until = Instant::now() + STEP;
    let closed = loop {
        let jobs = ctl_json(&lab, &d, &["jobs"]);
        assert_eq!(jobs.len(), 1, "still running after Ctrl-C: {jobs:?}");
        let closed = jobs[0]["closed"].as_u64().unwrap();
        if closed >= 3 {
            assert!(jobs[0]["rate_per_s"].as_f64().unwrap() > 0.0, "{jobs:?}");
            break closed;
        }
        assert!(Instant::now() < until, "3 closes at 2/s: {jobs:?}");
        thread::sleep(Duration::from_millis(100));
    };

    // Cancel: what was closed stays closed, the rest stay open.
    let out = ctl_json(&lab, &d, &["cancel", &job.to_string()]);
    assert_eq!(out[0]["job"], job, "{out:?}");
    let k = out[0]["closed"].as_u64().unwrap() as usize;
    assert!(k as u64 >= closed && k < N, "{out:?}");
    assert!(ctl_json(&lab, &d, &["jobs"]).is_empty());
    thread::sleep(Duration::from_millis(1500)); // three more closes at 2/s, were it running
    let seen = ask();
    let reset = seen
        .iter()
        .filter(|&&s| s == PeerSees::Error(ErrorKind::ConnectionReset))
        .count();
    let connected = seen.iter().filter(|&&s| s == PeerSees::Connected).count();
    assert_eq!((reset, connected), (k, N - k), "{seen:?}");
    let estab = ctl_rows(&lab, &d.d, &["--state", "established"]);
    assert_eq!(estab.len(), N - k, "{estab:?}");
    let again = ctl(&lab, &d.d, &["cancel", &job.to_string()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("no kill job {job}")));

    // On a terminal (`script` gives `lingerd ctl` a pty), Ctrl-C asks
    // "cancel or detach?" and `c` cancels.
    let cmd = format!(
        "exec {} ctl --config {config} kill {} --pace 2",
        env!("CARGO_BIN_EXE_lingerd"),
        filter.join(" ")
    );
    let mut tty = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux) runs lingerd ctl on a pty");
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let screen = screen.clone();
        let mut out = tty.stdout.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |what: &str| {
        let until = Instant::now() + STEP;
        loop {
            if screen.lock().unwrap().contains(what) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{what:?} not on the terminal: {:?}",
                screen.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("started (lingerd ctl jobs");
    let until = Instant::now() + STEP;
    while ctl_json(&lab, &d, &["jobs"])
        .first()
        .is_none_or(|j| j["closed"].as_u64() < Some(1))
    {
        assert!(Instant::now() < until, "the terminal's kill closes one");
        thread::sleep(Duration::from_millis(100));
    }
    let mut keys = tty.stdin.take().unwrap();
    keys.write_all(b"\x03").unwrap(); // Ctrl-C
    wait_for("[c]ancel it (the rest stay open) or [d]etach (it goes on)?");
    keys.write_all(b"c\n").unwrap();
    wait_for("; the rest stay open");
    let status = tty.wait().unwrap();
    reader.join().unwrap();
    let text = screen.lock().unwrap().clone();
    eprintln!("on the terminal:\n{text}");
    assert!(status.success(), "{status}");
    let x: usize = text
        .split("cancelled kill job ")
        .nth(1)
        .and_then(|r| r.split("closed ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    assert!(x >= 1 && k + x < N, "{text}");
    assert!(ctl_json(&lab, &d, &["jobs"]).is_empty());
    thread::sleep(Duration::from_millis(1000));
    let seen = ask();
    let reset_now = seen
        .iter()
        .filter(|&&s| s == PeerSees::Error(ErrorKind::ConnectionReset))
        .count();
    let connected = seen.iter().filter(|&&s| s == PeerSees::Connected).count();
    assert_eq!((reset_now, connected), (x, N - k - x), "{seen:?}");

    // A detached kill: its id at once, then the rest reset.
    let mut args = vec!["kill"];
    args.extend_from_slice(&filter);
    args.push("--detach");
    let started = ctl_json(&lab, &d, &args);
    let second = started[0]["job"].as_u64().expect("a job id");
    assert_ne!(second, job);
    ctl_until(&lab, &d.d, &["--state", "established"], <[_]>::is_empty);
    // A socket reports its reset once (reads after it see EOF): each of
    // the rest must report one.
    let mut was_reset: Vec<bool> = seen.iter().map(|&s| s != PeerSees::Connected).collect();
    let until = Instant::now() + STEP;
    while !was_reset.iter().all(|&r| r) {
        assert!(Instant::now() < until, "{was_reset:?}");
        thread::sleep(Duration::from_millis(50));
        for (r, s) in was_reset.iter_mut().zip(ask()) {
            match s {
                PeerSees::Error(ErrorKind::ConnectionReset) => *r = true,
                PeerSees::Connected => {}
                other => assert!(*r, "{other:?} before a reset"),
            }
        }
    }
    drop(ask_tx);
    peer.join().unwrap();
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// Connections the capture test aborts, and the kernel peers holding them.
const CAPTURE_PER: usize = 2_500;
const CAPTURE_HELPERS: usize = 2;

/// `lingerd ctl capture` (in the dut namespace, as `app::ctl` runs it) in
/// the background with `args`, once it says the capture runs.
fn start_capture(lab: &Lab, d: &Lingerd, args: &[&str]) -> Proc {
    let mut all = vec![
        "ctl",
        "--config",
        d.d.config_file().to_str().expect("a UTF-8 path"),
        "capture",
    ];
    all.extend_from_slice(args);
    let bin = bin();
    let cmd = lab.command("LAB_DUT_NS", bin.to_str().expect("a UTF-8 path"), &all);
    let p = Proc::spawn(
        "lingerd ctl capture",
        cmd,
        Stderr::Capture,
        lingerd_lab::proc::Ending::TermThenKill,
    )
    .expect("spawn lingerd ctl capture");
    let until = Instant::now() + STEP;
    loop {
        match p.log_line(until) {
            Some(l) if l.contains("capturing on queue") => {
                eprintln!("{l}");
                return p;
            }
            Some(l) => eprintln!("{l}"),
            None => panic!("lingerd ctl capture did not start within {STEP:?}"),
        }
    }
}

/// Packets of `file` that tcpdump's `filter` matches (tcpdump reads the
/// pcapng file; one line per packet with `-q`).
fn tcpdump_count(file: &Path, filter: &str) -> usize {
    let out = std::process::Command::new("tcpdump")
        .args(["-nn", "-q", "-r"])
        .arg(file)
        .arg(filter)
        .output()
        .expect("run tcpdump (deploy/bootstrap installs it)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// The capture test of issue 15: capture during an abort of
/// `CAPTURE_PER * CAPTURE_HELPERS` kernel connections, then tcpdump counts
/// the RSTs in the file and they equal the resets the kernel peers saw
/// (every one of them, and no copy dropped). Then `-w - | tcpdump -r -`
/// streams a connection's frames through a pipe, and a filter keeps only
/// what it matches.
fn capture_counts_every_rst_the_peer_saw(family: Family) {
    let n = CAPTURE_PER * CAPTURE_HELPERS;
    let lab = lab("capture", "cp", 1, family);
    let d = Lingerd::start(&lab, family, 1, |c| {
        c.tcp.max_connections = 16_384;
        c.tcp.time_wait = lingerd_config::Duration::from_secs(1);
    });
    let mut app = App::attach(d.d.socket());
    let to = SocketAddr::new(engine_ip(family), PORT);
    let mut helpers: Vec<Proc> = (0..CAPTURE_HELPERS)
        .map(|_| child::spawn_kernel_peer(&lab, to, CAPTURE_PER, STEP))
        .collect();
    for h in &mut helpers {
        child::expect(
            h,
            &format!("PEER connected {CAPTURE_PER}"),
            Duration::from_secs(60),
        );
    }
    app.accept_until(n, STEP);

    let dir = tempfile::tempdir().expect("a scratch directory");
    let file = dir.path().join("abort.pcapng");
    let mut cap = start_capture(&lab, &d, &["-w", file.to_str().expect("a UTF-8 path")]);
    for h in &mut helpers {
        child::say(h, "check");
    }
    let (aborted, _) = app.abort_all();
    assert_eq!(aborted, n as u64);
    let mut resets = 0;
    for mut h in helpers {
        let l = child::expect(&mut h, "PEER reset=", STEP + Duration::from_secs(5));
        assert_eq!(field(&l, "other"), 0, "{l}");
        resets += field(&l, "reset");
        let _ = h.wait_exit(STEP);
    }
    assert_eq!(resets, n as u64, "every kernel socket saw ECONNRESET");
    // SIGTERM, as Ctrl-C: the capture ends, its last packets and figures
    // are written, and it says so.
    let (status, stderr) = cap.stop();
    eprintln!("{stderr}");
    assert_eq!(status.map(|s| s.success()), Some(true), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("0 copies dropped")),
        "no copy dropped: {stderr}"
    );
    // tcpdump's `tcp[]` reads only IPv4: over IPv6 the flags byte is 13
    // bytes past the fixed 40-byte header (lingerd sends no extension
    // header), and RST is its bit 2.
    let filter = match family {
        Family::V4 => "tcp[tcpflags] & tcp-rst != 0",
        Family::V6 => "ip6[53] & 4 != 0",
    };
    let rsts = tcpdump_count(&file, filter);
    eprintln!("capture: {rsts} RSTs in the file, {resets} resets at the peer");
    assert_eq!(rsts as u64, resets, "tcpdump counts every RST the peer saw");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("the file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "a capture holds traffic: 0600");

    // `-w - | tcpdump -r -`: one connection's handshake and end, through a
    // pipe, cut at 4 packets by --count, only TCP port PORT by the filter.
    let script = format!(
        "{} ctl --config {} capture -w - --count 4 --filter tcp port {PORT} | tcpdump -nn -q -r -",
        bin().display(),
        d.d.config_file().display()
    );
    let cmd = lab.command("LAB_DUT_NS", "bash", &["-o", "pipefail", "-c", &script]);
    let mut pipe = Proc::spawn(
        "lingerd ctl capture -w - | tcpdump -r -",
        cmd,
        Stderr::Capture,
        lingerd_lab::proc::Ending::TermThenKill,
    )
    .expect("spawn the pipeline");
    let until = Instant::now() + STEP;
    while !pipe
        .log_line(until)
        .expect("the capture starts")
        .contains("capturing on queue")
    {}
    // An ARP (or Neighbor Discovery) exchange may come first; the filter
    // keeps it out.
    let peer = in_peer(&lab, move || {
        let s = connect(family);
        thread::sleep(Duration::from_millis(100));
        drop(s);
    });
    peer.join().expect("the peer's connection");
    app.accept_waiting();
    let status = pipe
        .wait_exit(STEP)
        .expect("the pipeline ends at the count");
    assert!(status.success(), "{status}");
    let mut lines = Vec::new();
    while let Some(l) = pipe.next_line(Instant::now() + Duration::from_millis(200)) {
        lines.push(l);
    }
    eprintln!("{}", lines.join("\n"));
    assert_eq!(
        lines.len(),
        4,
        "tcpdump read 4 packets from the pipe: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!(".{PORT}")) && l.contains(" tcp ")),
        "{lines:?}"
    );
    drop(app);
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}
