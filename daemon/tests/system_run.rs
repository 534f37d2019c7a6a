//! System tests: the real `lingerd run` on AF_XDP against the Linux kernel.
//!
//! Each test makes its own lab (`lingerd_lab`, removed even on panic), runs
//! `lingerd run --config … --test-app` in the dut namespace (the hidden,
//! test-only control path of `daemon/src/app.rs`: echo plus commands on
//! stdin, `@` lines on stdout), and judges with kernel sockets in the peer
//! namespace (threads that `setns` into it, or child processes of this very
//! test binary under `ip netns exec` for the 10,000-connection test, since
//! one process may hold at most 20,000 descriptors). lingerd answers for
//! 198.18.0.3, an address the dut's kernel does not have.
//!
//! Without root or a lab each test prints SKIPPED, unless
//! `LINGERD_REQUIRE_SYSTEM_TESTS=1`, where it fails. Every wait is bounded.
//!
//! Reload tests rewrite the daemon's file and send SIGHUP; they judge by
//! the log (standard error, line by line), by systemd's notifications (a
//! datagram socket of the test's as `NOTIFY_SOCKET`) and by what the kernel
//! sees. The metrics test scrapes `/metrics` on the dut's loopback.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_dataplane::sys::{netns, xsk};
use lingerd_dataplane::wire::{ControlSegment, EthernetAddress, RstTemplate, SeqNumber};
use lingerd_lab::Lab;
use lingerd_testkit::sys::xsk_bare;

mod child;
use child::{Helper, PEER_ENV, field};

const ENGINE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 7;
const STEP: Duration = Duration::from_secs(10);

/// A running `lingerd run --test-app`; SIGKILLed on drop if still alive.
struct Daemon {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Standard error, line by line, as it comes.
    log: mpsc::Receiver<String>,
    /// A log line read past the end of the previous entry.
    held: Option<String>,
    /// All of standard error, once the daemon has exited.
    stderr: thread::JoinHandle<String>,
    queues: usize,
    config: PathBuf,
    /// The file as started (what `rewrite` edits).
    yaml: String,
    /// The client socket.
    socket: PathBuf,
    /// Where `/metrics` listens (in the dut namespace), when asked for.
    metrics: Option<SocketAddr>,
    /// The daemon's client runtime directory, removed on drop.
    runtime: Option<PathBuf>,
}

/// What a test changes in the daemon's start.
#[derive(Default)]
struct Setup<'a> {
    /// YAML appended to the generated file.
    extra: &'a str,
    /// Serve `/metrics` on the dut's loopback, on a port the kernel picks.
    metrics: bool,
    /// `NOTIFY_SOCKET` for the daemon.
    notify: Option<&'a Path>,
}

impl Daemon {
    /// Starts lingerd on the lab's dut end with `queues` queues and `extra`
    /// YAML appended; waits for its "running" line.
    fn start(lab: &Lab, queues: usize, extra: &str) -> Daemon {
        Daemon::start_with(
            lab,
            queues,
            Setup {
                extra,
                ..Setup::default()
            },
        )
    }

    /// [`Daemon::start`] with more to set.
    fn start_with(lab: &Lab, queues: usize, setup: Setup<'_>) -> Daemon {
        let extra = setup.extra;
        let qs: Vec<String> = (0..queues).map(|q| q.to_string()).collect();
        let cores: Vec<String> = (0..queues).map(|q| ((q + 1) % 2).to_string()).collect();
        // Each daemon gets its own client socket (a filesystem path, shared
        // by every namespace) and, unless asked for, no metrics listener.
        let runtime = std::env::temp_dir().join(format!("lingerd-run-{}", lab.id()));
        let socket = runtime.join("lingerd.sock");
        let yaml = format!(
            "interface: {}\nqueues: [{}]\ncores: [{}]\naddresses: [{ENGINE_IP}/24]\n\
             listen: [{{port: {PORT}, backlog: 65536}}]\n\
             xdp: {{zero_copy: off, frames: 4096, idle: sleep}}\n\
             clients: {{socket: {}, allow_uids: [0]}}\nmetrics: {{listen: {}}}\n{extra}",
            lab.get("LAB_DUT_IF"),
            qs.join(", "),
            cores.join(", "),
            socket.display(),
            if setup.metrics { "127.0.0.1:0" } else { "null" }
        );
        let config = std::env::temp_dir().join(format!("lingerd-{}.yaml", lab.id()));
        std::fs::write(&config, &yaml).unwrap();
        // LINGERD_BIN: another build (release, for figures).
        let bin = std::env::var("LINGERD_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_lingerd").to_owned());
        let mut command = lab.command(
            "LAB_DUT_NS",
            &bin,
            &["run", "--config", config.to_str().unwrap(), "--test-app"],
        );
        if let Some(notify) = setup.notify {
            command.env("NOTIFY_SOCKET", notify);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lingerd");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (log_tx, log) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let mut pipe = BufReader::new(&mut stderr_pipe);
            let mut line = String::new();
            while pipe.read_line(&mut line).is_ok_and(|n| n > 0) {
                let _ = log_tx.send(line.trim_end().to_owned());
                s.push_str(&line);
                line.clear();
            }
            s
        });
        let mut d = Daemon {
            child,
            stdin,
            lines,
            log,
            held: None,
            stderr,
            queues,
            config,
            yaml,
            socket,
            metrics: None,
            runtime: Some(runtime),
        };
        let mut started = 0;
        let until = Instant::now() + STEP;
        loop {
            let line = d.next_line(until).unwrap_or_else(|| {
                let _ = d.child.kill();
                panic!("lingerd did not start: {:?}", d.child.wait())
            });
            eprintln!("{line}");
            if line.starts_with("lingerd: queue ") {
                started += 1;
            }
            if line.starts_with("lingerd: running") {
                break;
            }
        }
        assert_eq!(started, queues, "one start-up line per queue");
        if setup.metrics {
            let line = d.expect("lingerd: metrics at http://");
            let addr = line
                .trim_start_matches("lingerd: metrics at http://")
                .trim_end_matches("/metrics");
            d.metrics = Some(addr.parse().expect("the metrics address"));
        }
        d
    }

    /// Writes the started file with each `(from, to)` edit (`from` must
    /// occur) and `extra` appended, then sends SIGHUP.
    fn reload(&self, edits: &[(&str, &str)], extra: &str) {
        let mut yaml = self.yaml.clone();
        for (from, to) in edits {
            assert!(yaml.contains(from), "{from:?} not in {yaml}");
            yaml = yaml.replacen(from, to, 1);
        }
        yaml.push_str(extra);
        std::fs::write(&self.config, yaml).unwrap();
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success());
    }

    /// The next log entry whose first line contains `needle` (within
    /// `STEP`), with the indented lines that follow it.
    fn expect_log(&mut self, needle: &str) -> String {
        let until = Instant::now() + STEP;
        let mut entry = loop {
            let next = match self.held.take() {
                Some(l) => Ok(l),
                None => self
                    .log
                    .recv_timeout(until.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(l) if l.contains(needle) => break l,
                Ok(l) => eprintln!("{l}"),
                Err(_) => panic!("no log line with {needle:?} within {STEP:?}"),
            }
        };
        // The rest of the entry was written with the same call.
        while let Ok(l) = self.log.recv_timeout(Duration::from_millis(200)) {
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

    /// Whether the process still runs.
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn next_line(&self, until: Instant) -> Option<String> {
        self.lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    }

    fn cmd(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("lingerd's stdin");
    }

    /// The next line starting with `prefix`, within `STEP`.
    fn expect(&self, prefix: &str) -> String {
        let until = Instant::now() + STEP;
        loop {
            match self.next_line(until) {
                Some(l) if l.starts_with(prefix) => return l,
                Some(_) => {}
                None => panic!("no {prefix:?} line from lingerd within {STEP:?}"),
            }
        }
    }

    /// `count`, summed over queues: the value of `key=`.
    fn count(&mut self, key: &str) -> u64 {
        self.cmd("count");
        (0..self.queues)
            .map(|_| field(&self.expect("@count "), key))
            .sum()
    }

    /// Polls `count` until `key` reaches `want` (within `STEP`).
    fn wait_count(&mut self, key: &str, want: u64) {
        let until = Instant::now() + STEP;
        loop {
            let got = self.count(key);
            if got == want {
                return;
            }
            assert!(Instant::now() < until, "{key}: {got}, wanted {want}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status and stderr (bounded).
    fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + STEP;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < until, "lingerd did not stop on SIGTERM");
            thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::mem::replace(&mut self.stderr, thread::spawn(String::new));
        (status, stderr.join().unwrap_or_default())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
        if let Some(dir) = self.runtime.as_deref() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `f` in a thread inside the lab's peer namespace.
fn in_peer<T: Send + 'static>(
    lab: &Lab,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let ns = lab.get("LAB_PEER_NS");
    thread::spawn(move || {
        netns::enter(&ns).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
        f()
    })
}

fn connect() -> TcpStream {
    let to = SocketAddr::V4(SocketAddrV4::new(ENGINE_IP, PORT));
    let s = TcpStream::connect_timeout(&to, STEP).expect("connect to lingerd");
    s.set_read_timeout(Some(STEP)).unwrap();
    s
}

/// Lab or skip: `None` means the test returns.
fn lab(test: &str, prefix: &str, queues: u32) -> Option<Lab> {
    if std::env::var_os(PEER_ENV).is_some() {
        return None; // a helper child runs only `peer_helper`
    }
    lingerd_lab::need(test, &lingerd_lab::unique_id(prefix), queues)
}

#[test]
fn graceful_close_kernel_reads_all_then_eof() {
    let Some(lab) = lab("graceful_close", "gc", 1) else {
        return;
    };
    let mut d = Daemon::start(&lab, 1, "tcp: {send_buffer: 1048576}\n");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = in_peer(&lab, move || {
        let mut s = connect();
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        let r = s.read_to_end(&mut all);
        (r.map_err(|e| e.kind()), all)
    });
    d.wait_count("established", 1);
    go_tx.send(()).unwrap();
    d.cmd("send 300000");
    d.cmd("close");
    let (r, data) = client.join().unwrap();
    assert_eq!(
        r,
        Ok(300_000),
        "the kernel reads everything, then EOF (got {})",
        data.len()
    );
    assert!(
        data.iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 16384 % 251) as u8)
    );
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn linger_zero_window_rst_after_deadline() {
    let Some(lab) = lab("linger_zero_window", "lz", 1) else {
        return;
    };
    // The peer's receive buffer is tiny and nobody reads: the window closes.
    let out = lab.exec(
        "LAB_PEER_NS",
        "sysctl",
        &["-qw", "net.ipv4.tcp_rmem=4096 4096 4096"],
    );
    assert!(out.status.success(), "{out:?}");
    let mut d = Daemon::start(&lab, 1, "tcp: {send_buffer: 1048576}\n");
    let (t0_tx, t0_rx) = mpsc::channel::<Instant>();
    let client = in_peer(&lab, move || {
        let s = connect();
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
    d.wait_count("established", 1);
    d.cmd("send 1000000");
    thread::sleep(Duration::from_millis(500)); // window closes; lingerd probes
    let t0 = Instant::now();
    d.cmd("linger 2000");
    t0_tx.send(t0).unwrap();
    let (kind, after) = client.join().unwrap();
    eprintln!("linger 2000 ms: the kernel saw the RST after {after:?}");
    assert_eq!(kind, ErrorKind::ConnectionReset);
    assert!(
        after >= Duration::from_millis(1990),
        "RST before the deadline: {after:?}"
    );
    assert!(after < Duration::from_millis(2300), "RST late: {after:?}");
    d.expect("@closed outcome=AbortedLinger");
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn shutdown_send_kernel_reads_eof_lingerd_still_receives() {
    let Some(lab) = lab("shutdown_send", "ss", 1) else {
        return;
    };
    let mut d = Daemon::start(&lab, 1, "");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let client = in_peer(&lab, move || {
        let mut s = connect();
        go_rx.recv().unwrap();
        let mut buf = [0u8; 16];
        let eof = s.read(&mut buf).map_err(|e| e.kind());
        s.write_all(&[7u8; 5000]).unwrap();
        go_rx.recv().unwrap(); // keep the socket until lingerd counted
        eof
    });
    d.wait_count("established", 1);
    d.cmd("shutdown send");
    go_tx.send(()).unwrap();
    d.wait_count("bytes_in", 5000);
    go_tx.send(()).unwrap();
    assert_eq!(client.join().unwrap(), Ok(0), "EOF after shutdown(SEND)");
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn close_with_unread_data_resets() {
    let Some(lab) = lab("close_unread", "cu", 1) else {
        return;
    };
    let mut d = Daemon::start(&lab, 1, "");
    d.cmd("echo off");
    // Commands apply in order: once `count` answers, echo is off (else data
    // arriving in the same loop iteration could still be echoed).
    d.count("bytes_in");
    let client = in_peer(&lab, move || {
        let mut s = connect();
        s.write_all(b"never read by anyone").unwrap();
        let mut buf = [0u8; 16];
        s.read(&mut buf).map_err(|e| e.kind())
    });
    d.wait_count("bytes_in", 20);
    d.cmd("close");
    assert_eq!(client.join().unwrap(), Err(ErrorKind::ConnectionReset));
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn active_open_to_kernel_server() {
    let Some(lab) = lab("active_open", "ao", 1) else {
        return;
    };
    let mut d = Daemon::start(&lab, 1, "");
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = in_peer(&lab, move || {
        let l = TcpListener::bind((PEER_IP, 8080)).unwrap();
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
    d.cmd(&format!("connect {PEER_IP}:8080"));
    let line = d.expect("@connected ");
    let port = field(&line, "port") as u16;
    d.wait_count("bytes_in", 10); // the server's greeting, echoed back
    d.cmd("close");
    let (from, r, got) = server.join().unwrap();
    assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(ENGINE_IP, port)));
    assert_eq!(r, Ok(10), "echo, then our FIN");
    assert_eq!(got, b"hi lingerd");
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// Not a test on its own: with `LINGERD_PEER_HELPER=ip:port:count` set it
/// is a kernel client holding `count` connections (run as a child process
/// under `ip netns exec` by `abort_10k_connections`; see
/// [`child::hold_kernel_connections`]).
#[test]
fn peer_helper() {
    child::hold_kernel_connections(STEP);
}

fn parse_mac(s: &str) -> EthernetAddress {
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).unwrap();
    }
    EthernetAddress(mac)
}

/// The bare xsk-rs sender on the dut's queue 0 for `secs`: frames per
/// second the peer's veth received (the ceiling of this run).
fn xsk_ceiling(lab: &Lab, secs: f64) -> f64 {
    let tmpl = RstTemplate::new(
        parse_mac(&lab.get("LAB_DUT_MAC")),
        parse_mac(&lab.get("LAB_PEER_MAC")),
        ENGINE_IP,
    );
    let mut frame = [0u8; lingerd_dataplane::wire::RST_FRAME_LEN];
    // To a port nobody listens on: the peer's kernel drops it quietly.
    tmpl.build_array(
        &mut frame,
        &ControlSegment::rst(PEER_IP, 40_000, 9, SeqNumber(1)),
    );
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

#[test]
fn abort_10k_connections() {
    const PER: usize = 5_000;
    const HELPERS: usize = 2;
    let Some(lab) = lab("abort_10k", "ab", 1) else {
        return;
    };
    let mut d = Daemon::start(
        &lab,
        1,
        "tcp: {max_connections: 65536, time_wait_ms: 1000}\n",
    );
    let t_connect = Instant::now();
    let to = SocketAddrV4::new(ENGINE_IP, PORT);
    let helpers: Vec<Helper> = (0..HELPERS)
        .map(|_| child::spawn_kernel_peer(&lab, to, PER))
        .collect();
    for h in &helpers {
        h.expect("PEER connected 5000", Duration::from_secs(60));
    }
    d.wait_count("established", (PER * HELPERS) as u64);
    eprintln!(
        "abort_10k: {} connections established in {:?}",
        PER * HELPERS,
        t_connect.elapsed()
    );
    let before = lab.peer_stat("rx_packets").unwrap();
    d.cmd("abort");
    let done = d.expect("@abort-done ");
    let us = field(&done, "us");
    let n = field(&done, "n");
    assert_eq!(n, (PER * HELPERS) as u64);
    let on_wire = lab.peer_stat("rx_packets").unwrap() - before;
    let mut resets = 0;
    for mut h in helpers {
        h.say("check");
        let l = h.expect("PEER reset=", STEP + Duration::from_secs(5));
        assert_eq!(field(&l, "other"), 0, "{l}");
        resets += field(&l, "reset");
        let _ = h.child.wait();
    }
    assert_eq!(
        resets,
        (PER * HELPERS) as u64,
        "every kernel socket saw ECONNRESET"
    );
    let ss = lab.exec("LAB_PEER_NS", "ss", &["-Htn", "state", "established"]);
    let left = String::from_utf8_lossy(&ss.stdout).lines().count();
    assert_eq!(left, 0, "established connections left in the peer");
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");

    // The same lab, the engine gone: the bare AF_XDP sender's ceiling.
    let ceiling = xsk_ceiling(&lab, 1.0);
    let rate = on_wire as f64 / (us.max(1) as f64 / 1e6);
    eprintln!(
        "abort_10k: {on_wire} frames on the wire in {us} us with the engine in the loop = {:.3} M RST/s; \
         xsk ceiling (bare loop, same lab, same run) {:.3} M frames/s; ratio {:.2}",
        rate / 1e6,
        ceiling / 1e6,
        rate / ceiling
    );
    assert!(
        on_wire >= (PER * HELPERS) as u64,
        "RSTs counted at the peer: {on_wire}"
    );
}

#[test]
fn two_queues_echo_abort_and_connect() {
    const CONNS: usize = 64;
    let Some(lab) = lab("two_queues", "tq", 2) else {
        return;
    };
    let mut d = Daemon::start(&lab, 2, "");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (echoed_tx, echoed_rx) = mpsc::channel::<()>();
    let clients = in_peer(&lab, move || {
        let mut socks: Vec<TcpStream> = (0..CONNS).map(|_| connect()).collect();
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
    echoed_rx.recv_timeout(STEP).expect("64 echoes");
    d.wait_count("established", CONNS as u64);
    // Active opens from both queues: each picks a port whose answers hash
    // to itself.
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = in_peer(&lab, move || {
        let l = TcpListener::bind((PEER_IP, 8081)).unwrap();
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
    d.cmd(&format!("connect {PEER_IP}:8081"));
    d.expect("@connected ");
    d.expect("@connected ");
    assert_eq!(server.join().unwrap().len(), 2, "one active open per queue");
    d.cmd("abort");
    d.expect("@abort-done ");
    d.expect("@abort-done ");
    go_tx.send(()).unwrap();
    assert_eq!(clients.join().unwrap(), CONNS, "every connection reset");
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

#[test]
fn run_refuses_queue_out_of_range() {
    let Some(lab) = lab("queue_range", "qr", 1) else {
        return;
    };
    let yaml = format!(
        "interface: {}\nqueues: [3]\ncores: [0]\naddresses: [{ENGINE_IP}/24]\n",
        lab.get("LAB_DUT_IF")
    );
    let config = std::env::temp_dir().join(format!("lingerd-{}.yaml", lab.id()));
    std::fs::write(&config, yaml).unwrap();
    let out = lab.exec(
        "LAB_DUT_NS",
        env!("CARGO_BIN_EXE_lingerd"),
        &["run", "--config", config.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("queue 3 is out of range") && stderr.contains("has 1 rx queue(s)"),
        "{stderr}"
    );
}

/// The real pair of processes: `lingerd run` (no test app, no listeners of
/// its own) in the dut namespace, and a client attached to it over the
/// control socket with `lingerd-client`, as a load balancer would. The
/// client listens, accepts a Linux kernel connection, reads its bytes and
/// aborts: the kernel's read fails with ECONNRESET. A second connection is
/// left open when the client hangs up: the exit policy (default: each
/// connection's own linger setting, off = graceful) closes it with a FIN,
/// so the kernel reads EOF. Then SIGTERM stops the daemon with exit 0.
#[test]
fn attached_client_aborts_and_its_exit_closes_the_rest() {
    let Some(lab) = lab("attached_client", "ac", 1) else {
        return;
    };
    let runtime = std::env::temp_dir().join(format!("lingerd-run-{}", lab.id()));
    let socket = runtime.join("lingerd.sock");
    let yaml = format!(
        "interface: {}\nqueues: [0]\ncores: [1]\naddresses: [{ENGINE_IP}/24]\n\
         xdp: {{zero_copy: off, frames: 4096, idle: sleep}}\n\
         clients: {{socket: {}, allow_uids: [0]}}\nmetrics: {{listen: null}}\n",
        lab.get("LAB_DUT_IF"),
        socket.display()
    );
    let config = std::env::temp_dir().join(format!("lingerd-{}.yaml", lab.id()));
    std::fs::write(&config, yaml).unwrap();
    let mut child = lab
        .command(
            "LAB_DUT_NS",
            env!("CARGO_BIN_EXE_lingerd"),
            &["run", "--config", config.to_str().unwrap()],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lingerd");
    struct Cleanup(Option<Child>, std::path::PathBuf, std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut()
                && c.try_wait().ok().flatten().is_none()
            {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_file(&self.1);
            let _ = std::fs::remove_dir_all(&self.2);
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut guard = Cleanup(Some(child), config, runtime);
    let mut lines = BufReader::new(stdout).lines();
    let until = Instant::now() + STEP;
    loop {
        assert!(
            Instant::now() < until,
            "lingerd did not say where clients attach"
        );
        match lines.next() {
            Some(Ok(l)) if l.contains("clients attach at") => break,
            Some(Ok(_)) => {}
            _ => panic!("lingerd exited before it was ready"),
        }
    }

    let mut client = lingerd::Client::attach(&socket).expect("attach to the daemon");
    let listener = client.listen(PORT, 16).expect("listen through the daemon");
    let first = in_peer(&lab, || {
        let mut s = connect();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 16];
        s.read(&mut buf).map_err(|e| e.kind())
    });
    let (h, _) = client.accept(listener, STEP).expect("accept");
    let mut buf = [0u8; 16];
    let n = client.recv(h, &mut buf, STEP).expect("recv");
    assert_eq!(&buf[..n], b"hello");
    let outcome = client.abort(h).expect("abort");
    assert_eq!(outcome, lingerd::Outcome::Aborted);
    assert_eq!(
        first.join().unwrap(),
        Err(ErrorKind::ConnectionReset),
        "the kernel saw the RST"
    );

    let second = in_peer(&lab, || {
        let mut s = connect();
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

    let mut child = guard.0.take().unwrap();
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let until = Instant::now() + STEP;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "lingerd did not stop on SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
}

/// A datagram socket standing in for systemd's notify socket; removed on
/// drop.
struct Notify {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn new(lab: &Lab) -> Notify {
        let path = std::env::temp_dir().join(format!("lingerd-notify-{}.sock", lab.id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(STEP)).unwrap();
        Notify { socket, path }
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

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A kernel client that connects, waits for `go`, then reads to the end:
/// `Ok(0)` is a FIN (graceful close), `Err(ConnectionReset)` an RST.
fn reader(
    lab: &Lab,
) -> (
    mpsc::Sender<()>,
    thread::JoinHandle<Result<usize, ErrorKind>>,
) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h = in_peer(lab, move || {
        let mut s = connect();
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).map_err(|e| e.kind())
    });
    (go_tx, h)
}

/// One connection, closed by the daemon's `close` command (the connection's
/// own linger setting, i.e. the default linger it was accepted with): what
/// the kernel saw.
fn close_one(d: &mut Daemon, lab: &Lab) -> Result<usize, ErrorKind> {
    let (go, h) = reader(lab);
    d.wait_count("established", 1);
    go.send(()).unwrap();
    d.cmd("close");
    let r = h.join().unwrap();
    d.wait_count("established", 0);
    r
}

/// SIGHUP with only reloadable changes: every one is applied live and
/// logged, systemd hears RELOADING=1 then READY=1, and the behaviour
/// changes: the default linger (cores: the next accepted connection's
/// close is an RST, which the kernel sees), the log level (debug lines for
/// attaches appear) and `allow_uids` (root may no longer attach).
#[test]
fn reload_applies_reloadable_fields_live() {
    let Some(lab) = lab("reload_applies", "rl", 1) else {
        return;
    };
    let notify = Notify::new(&lab);
    let mut d = Daemon::start_with(
        &lab,
        1,
        Setup {
            notify: Some(&notify.path),
            ..Setup::default()
        },
    );
    assert_eq!(notify.next(), "READY=1");
    assert_eq!(
        close_one(&mut d, &lab),
        Ok(0),
        "default linger off: FIN, the kernel reads EOF"
    );
    drop(lingerd::Client::attach(&d.socket).expect("root may attach"));

    d.reload(
        &[],
        "close: {default_linger: {on: true, secs: 0}}\nlog: {level: debug}\n",
    );
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
        close_one(&mut d, &lab),
        Err(ErrorKind::ConnectionReset),
        "default linger {{on, 0}} after the reload: the close is an RST"
    );
    let client = lingerd::Client::attach(&d.socket).expect("root may attach");
    d.expect_log("lingerd: debug: client ");
    drop(client);
    d.expect_log("lingerd: debug: client ");

    d.reload(
        &[("allow_uids: [0]", "allow_uids: [4242]")],
        "close: {default_linger: {on: true, secs: 0}}\nlog: {level: debug}\n",
    );
    let report = d.expect_log("lingerd: info: reload of ");
    assert!(
        report.contains("\n  clients.allow_uids: applied"),
        "{report}"
    );
    assert!(
        lingerd::Client::attach(&d.socket).is_err(),
        "uid 0 is no longer allowed"
    );
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// SIGHUP with a file that does not parse, then with one that changes a
/// restart-only field: each time the daemon logs why (file:line:column;
/// "needs restart"), keeps running on the old configuration, whole (the
/// reloadable change in the second file is not applied either: the close
/// stays graceful), and tells systemd READY=1 again.
#[test]
fn reload_keeps_the_running_config_on_a_bad_file() {
    let Some(lab) = lab("reload_keeps", "rk", 1) else {
        return;
    };
    let notify = Notify::new(&lab);
    let mut d = Daemon::start_with(
        &lab,
        1,
        Setup {
            notify: Some(&notify.path),
            ..Setup::default()
        },
    );
    assert_eq!(notify.next(), "READY=1");
    let config = d.config.display().to_string();

    // Line 9 of the file: the first appended one.
    d.reload(&[], "tcp: {time_wait_ms: soon}\n");
    assert!(notify.next().starts_with("RELOADING=1"));
    let report = d.expect_log("lingerd: error: reload of ");
    assert!(
        report.contains(&format!(
            "failed, the running configuration is kept: {config}: invalid configuration at line 9 column 21"
        )),
        "{report}"
    );
    assert!(report.contains(&format!("--> {config}:9:21")), "{report}");
    assert!(
        notify.next().starts_with("READY=1\nSTATUS=reload failed"),
        "READY=1 after a failed reload too"
    );
    assert!(d.alive(), "a bad file does not stop the daemon");

    d.reload(
        &[("frames: 4096", "frames: 8192")],
        "close: {default_linger: {on: true, secs: 0}}\n",
    );
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
    assert!(d.alive());
    assert_eq!(
        close_one(&mut d, &lab),
        Ok(0),
        "the running configuration (linger off) is still in force: FIN"
    );
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

/// The value of an unlabelled sample.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` of the real daemon carries the AF_XDP series (port counters
/// and the kernel's XDP_STATISTICS), each with HELP and TYPE, and frames
/// counted in both directions after an echo exchange.
#[test]
fn metrics_export_xdp_statistics() {
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
    let Some(lab) = lab("metrics_xdp", "mx", 1) else {
        return;
    };
    let d = Daemon::start_with(
        &lab,
        1,
        Setup {
            metrics: true,
            ..Setup::default()
        },
    );
    let addr = d.metrics.expect("the metrics address");
    let echo = in_peer(&lab, || {
        let mut s = connect();
        s.write_all(&[5u8; 1000]).unwrap();
        let mut back = [0u8; 1000];
        s.read_exact(&mut back).map(|()| back == [5u8; 1000])
    });
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
        let family = format!("lingerd_xdp_{name}_total");
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(
            text.contains(&format!("# TYPE {family} counter")),
            "{family}"
        );
        assert!(sample(&text, &family).is_some(), "{family} has a sample");
    }
    assert!(sample(&text, "lingerd_xdp_loops_total").unwrap() > 0);
    assert!(
        sample(&text, "lingerd_xdp_sleeps_total").unwrap() > 0,
        "idle: sleep"
    );
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
}

/// `lingerd ctl ARGS` against `d`, as its own process in the dut namespace
/// (the ctl socket is a path, like the attach socket).
fn ctl(lab: &Lab, d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut all = vec!["ctl", "--config", d.config.to_str().unwrap()];
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
fn ctl_rows(lab: &Lab, d: &Daemon, args: &[&str]) -> Vec<serde_json::Value> {
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

/// Kernel connections in the peer namespace that each report how their
/// first read ended (data is echoed, so they read until EOF or error).
fn peers(lab: &Lab, n: usize) -> Vec<thread::JoinHandle<Result<usize, ErrorKind>>> {
    (0..n)
        .map(|_| {
            in_peer(lab, || {
                let mut s = connect();
                let mut all = Vec::new();
                s.read_to_end(&mut all).map_err(|e| e.kind())
            })
        })
        .collect()
}

#[test]
fn ctl_lists_kills_and_reports_stats() {
    let Some(lab) = lab("ctl", "ct", 1) else {
        return;
    };
    let mut d = Daemon::start(&lab, 1, "close: {on_client_exit: abort}\n");
    // The ctl socket is 0600 beside the attach socket.
    let sock = d.runtime.as_ref().unwrap().join("lingerd.ctl");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", sock.display());

    // conns: three kernel connections and the daemon's listener.
    let first = peers(&lab, 3);
    d.wait_count("established", 3);
    let rows = ctl_rows(&lab, &d, &[]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let estab: Vec<_> = rows.iter().filter(|r| r["state"] == "ESTAB").collect();
    assert_eq!(estab.len(), 3, "{rows:?}");
    for r in &estab {
        assert_eq!(r["local"], format!("{ENGINE_IP}:{PORT}"));
        assert!(r["remote"].as_str().unwrap().starts_with("198.18.0.2:"));
        assert_eq!(r["owner"], 65535, "the daemon's own listener accepted it");
        assert_eq!(r["queue"], 0);
    }
    let listen = ctl_rows(&lab, &d, &["--state", "listening"]);
    assert_eq!(listen.len(), 1);
    assert_eq!(
        listen[0]["local"],
        format!("0.0.0.0:{PORT}"),
        "a wildcard listener"
    );
    assert_eq!(ctl_rows(&lab, &d, &["--dst", "198.18.1.0/24"]).len(), 0);
    assert_eq!(
        ctl_rows(&lab, &d, &["--dst", "198.18.0.2", "--sport", "7"]).len(),
        3
    );
    // The table has a header and one line each.
    let out = ctl(&lab, &d, &["conns", "--state", "established"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("State "), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("ESTAB")).count(), 3);

    // kill --mode abort: every kernel socket sees ECONNRESET.
    let out = ctl(
        &lab,
        &d,
        &[
            "kill",
            "--dst",
            "198.18.0.0/24",
            "--mode",
            "abort",
            "--json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["closed"], 3, "{v}");
    for p in first {
        assert_eq!(p.join().unwrap(), Err(ErrorKind::ConnectionReset));
    }
    // The owner (the daemon's app) was told, and let go of its handles.
    d.wait_count("conns", 0);
    assert_eq!(ctl_rows(&lab, &d, &["--state", "connected"]).len(), 0);

    // kill --mode graceful, paced at 2/s: EOF at the kernel, spread in time.
    let second = peers(&lab, 3);
    d.wait_count("established", 3);
    let t0 = Instant::now();
    let out = ctl(
        &lab,
        &d,
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
    let out = ctl(&lab, &d, &["stats", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queues"], serde_json::json!([0]));
    assert!(v["metrics"]["rst_abort"][0].as_u64().unwrap() >= 3, "{v}");
    assert!(
        v["metrics"]["connections_listen"][0].as_u64().unwrap() == 1,
        "{v}"
    );
    let out = ctl(&lab, &d, &["stats"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rst_abort"));

    // Refusals come back as errors (exit 1), not as silence.
    let out = ctl(&lab, &d, &["kill", "--mode", "abort"]);
    assert_eq!(out.status.code(), Some(1));
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "the ctl socket is removed at exit");
}
