//! `lingerd ctl`'s socket and per-core jobs, in process: the real
//! [`CtlListener`] on a real socket, sessions reaching a core thread that
//! runs `CoreClients` (and so `CtlJobs`) over a `QueueEngine` holding a few
//! thousand listeners, and hostile requests written to the socket by hand.
//! No root and no network: the AF_XDP end-to-end test is
//! `system_run::ctl_lists_kills_and_reports_stats`.
//!
//! It owns only scaffolding: a scratch directory removed on drop and the
//! core thread, stopped and joined on drop (its loop is bounded).

mod support;

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lingerd_abi::vocab::CloseMode;
use lingerd_daemon::cores::{CoreClients, CoreCommand};
use lingerd_daemon::ctl::client::CtlClient;
use lingerd_daemon::ctl::core::{CoreReply, CtlCommand, CtlJobs};
use lingerd_daemon::ctl::jobs::{CoreEnd, Jobs};
use lingerd_daemon::ctl::proto::{self, Body, FilterSpec, Op, Request};
use lingerd_daemon::ctl::server::{CtlConfig, CtlListener, CtlServer};
use lingerd_daemon::metrics::MetricsHub;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ADMIN_CLIENT, Filter, Request as EngineRequest};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::wire::EthernetAddress;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketType};
use support::Scratch;

/// Listeners the engine holds: more than one slice, one batch and one
/// message of rows.
const LISTENERS: u16 = 3000;

fn engine(t0: Instant) -> QueueEngine {
    let mut cfg = EngineConfig::new(
        0,
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        Prefix::new(Ipv4Addr::new(198, 18, 0, 1).into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.isn_secret = [1, 2];
    let mut e = QueueEngine::new(cfg, t0);
    for port in 1..=LISTENERS {
        e.handle_request(
            t0,
            ADMIN_CLIENT,
            u64::from(port),
            EngineRequest::Listen { port, backlog: 16 },
        );
    }
    while e.poll_completion().is_some() {}
    e
}

/// A core thread and a served ctl socket.
struct Harness {
    socket: std::path::PathBuf,
    server: Option<CtlServer>,
    stop: Arc<AtomicBool>,
    core: Option<JoinHandle<()>>,
    _scratch: Scratch,
}

impl Harness {
    fn start(allow_uids: Vec<u32>) -> Harness {
        let scratch = Scratch::new("ctl", 0o700);
        let socket = scratch.join("run/lingerd.ctl");
        let listener = CtlListener::bind(CtlConfig {
            socket: socket.clone(),
            allow_uids,
            queues: vec![5],
        })
        .expect("bind the ctl socket");
        let (tx, rx) = mpsc::channel::<CoreCommand>();
        let stop = Arc::new(AtomicBool::new(false));
        let core = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut e = engine(t0);
                let mut clients = CoreClients::new(0, rx).unwrap();
                while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(120) {
                    let now = Instant::now();
                    clients.poll(&mut e, now);
                    e.handle_timeout(now);
                    clients.drain(&mut e);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let server = listener
            .serve(vec![tx], Arc::new(MetricsHub::new(1)))
            .expect("serve");
        Harness {
            socket,
            server: Some(server),
            stop,
            core: Some(core),
            _scratch: scratch,
        }
    }

    fn ask(&self, op: Op) -> Vec<Body> {
        let mut c = CtlClient::connect(&self.socket, Some(Duration::from_secs(10))).unwrap();
        c.send(&Request {
            v: proto::VERSION,
            op,
        })
        .unwrap();
        let mut all = Vec::new();
        loop {
            let b = c.next_reply().unwrap();
            let last = !matches!(
                b,
                Body::Rows { .. } | Body::Progress { .. } | Body::Started { .. }
            );
            all.push(b);
            if last {
                return all;
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.core.take() {
            let _ = t.join();
        }
    }
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// A raw connection, to say what `CtlClient` never would.
fn raw(path: &Path) -> OwnedFd {
    let fd = rustix::net::socket(AddressFamily::UNIX, SocketType::SEQPACKET, None).unwrap();
    rustix::net::connect(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    fd
}

fn raw_exchange(path: &Path, msg: &[u8]) -> Body {
    let fd = raw(path);
    rustix::net::send(&fd, msg, SendFlags::NOSIGNAL).unwrap();
    let mut buf = vec![0u8; proto::MAX_REPLY];
    let (n, _) = rustix::net::recv(&fd, &mut buf, RecvFlags::empty()).unwrap();
    proto::decode_reply(&buf[..n]).unwrap().body
}

fn error_of(b: &Body) -> &str {
    match b {
        Body::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn conns_pages_through_every_connection_once() {
    let h = Harness::start(vec![uid()]);
    let mode = std::fs::metadata(&h.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let replies = h.ask(Op::Conns {
        filter: FilterSpec::default(),
    });
    let rows: Vec<_> = replies
        .iter()
        .flat_map(|b| match b {
            Body::Rows { rows } => rows.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert!(
        replies.len() > 2,
        "several messages of at most {} rows",
        proto::ROWS_PER_MESSAGE
    );
    assert_eq!(
        replies.last(),
        Some(&Body::End {
            count: u64::from(LISTENERS)
        })
    );
    let mut ports: Vec<u16> = rows
        .iter()
        .map(|r| r.local.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), usize::from(LISTENERS), "each once");
    assert!(rows.iter().all(|r| r.state == "LISTEN" && r.queue == 5));
    // A filter is applied by the core.
    let one = h.ask(Op::Conns {
        filter: FilterSpec {
            local_port: Some(77),
            ..FilterSpec::default()
        },
    });
    assert_eq!(one.last(), Some(&Body::End { count: 1 }));
}

#[test]
fn kill_completes_through_the_core_and_stats_answer() {
    let h = Harness::start(vec![uid()]);
    // Listeners are not killed (close_matching closes connections).
    let replies = h.ask(Op::Kill {
        filter: FilterSpec {
            states: vec!["all".into()],
            ..FilterSpec::default()
        },
        mode: CloseMode::Abort,
        pace: 0,
    });
    let Some(&Body::Started { job }) = replies.first() else {
        panic!("a kill starts with its job id: {replies:?}");
    };
    assert_eq!(
        replies.last(),
        Some(&Body::Killed {
            job,
            closed: 0,
            per_queue: vec![(5, 0)],
            errors: vec![],
            cancelled: false,
        })
    );
    // It is over: no longer listed, and cannot be cancelled.
    assert_eq!(h.ask(Op::Jobs), [Body::Jobs { jobs: vec![] }]);
    let refused = h.ask(Op::Cancel { job });
    assert!(error_of(&refused[0]).contains(&format!("no kill job {job} is running")));
    // The next kill gets another id.
    let again = h.ask(Op::Kill {
        filter: FilterSpec {
            local_port: Some(1),
            ..FilterSpec::default()
        },
        mode: CloseMode::Abort,
        pace: 0,
    });
    assert!(matches!(again.first(), Some(&Body::Started { job: j }) if j > job));
    match h.ask(Op::Stats).as_slice() {
        [Body::Stats { queues, metrics }] => {
            assert_eq!(queues, &[5]);
            assert!(metrics.iter().any(|m| m.name == "rst_sent_abort"));
            assert!(metrics.iter().any(|m| m.name == "close_to_wire_rst_count"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_and_refused_requests_get_errors_and_the_socket_lives_on() {
    let h = Harness::start(vec![uid()]);
    let p = h.socket.as_path();
    assert!(error_of(&raw_exchange(p, b"\xff\x00garbage")).contains("not a ctl request"));
    assert!(error_of(&raw_exchange(p, br#"{"v":9,"op":"stats"}"#)).contains("version 9"));
    assert!(error_of(&raw_exchange(p, br#"{"v":2,"op":"reboot"}"#)).contains("malformed"));
    assert!(error_of(&raw_exchange(p, br#"{"v":1,"op":"stats"}"#)).contains("version 1"));
    let bad_job = br#"{"v":2,"op":{"cancel":{"job":"all"}}}"#;
    assert!(error_of(&raw_exchange(p, bad_job)).contains("malformed"));
    let no_job = br#"{"v":2,"op":{"cancel":{"job":18446744073709551615}}}"#;
    assert!(error_of(&raw_exchange(p, no_job)).contains("no kill job"));
    let big = vec![b' '; proto::MAX_REQUEST + 1];
    assert!(error_of(&raw_exchange(p, &big)).contains("longer than"));
    let bad_prefix = br#"{"v":2,"op":{"conns":{"filter":{"local":"198.18.0.0/99"}}}}"#;
    assert!(error_of(&raw_exchange(p, bad_prefix)).contains("0..=32"));
    let no_filter = br#"{"v":2,"op":{"kill":{"filter":{},"mode":"abort","pace":0}}}"#;
    assert!(error_of(&raw_exchange(p, no_filter)).contains("kill needs a filter"));
    let long_linger =
        br#"{"v":2,"op":{"kill":{"filter":{"local_port":1},"mode":"linger=4294967295ms","pace":0}}}"#;
    assert!(error_of(&raw_exchange(p, long_linger)).contains("longest linger"));
    // Connections that say nothing and hang up, or say nothing at all.
    drop(raw(p));
    let _silent = raw(p);
    // Still serving.
    assert!(matches!(h.ask(Op::Stats).as_slice(), [Body::Stats { .. }]));
}

#[test]
fn a_uid_outside_allow_uids_is_refused() {
    let h = Harness::start(vec![uid().wrapping_add(4242)]);
    let b = raw_exchange(
        &h.socket,
        &proto::encode(&Request {
            v: proto::VERSION,
            op: Op::Stats,
        }),
    );
    assert!(error_of(&b).contains("not in clients.allow_uids"), "{b:?}");
}

#[test]
fn a_slow_reader_pauses_the_listing_without_losing_rows() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut jobs = CtlJobs::new(0);
    let (tx, rx) = mpsc::sync_channel(1);
    jobs.handle_command(
        CtlCommand::List {
            job: 1,
            filter: Filter::default(),
            reply: tx,
        },
        &mut e,
        t0,
    );
    // Nobody reads: the job sends one batch, then holds one and waits.
    for _ in 0..100 {
        jobs.poll(&e, t0);
    }
    assert_eq!(jobs.len(), 1);
    let mut rows = 0usize;
    let mut ended = false;
    for _ in 0..10_000 {
        jobs.poll(&e, t0);
        match rx.try_recv() {
            Ok(CoreReply::Rows { rows: r, .. }) => {
                assert!(r.len() <= lingerd_daemon::ctl::core::LIST_ROWS);
                rows += r.len();
            }
            Ok(CoreReply::ListEnd { core: 0 }) => {
                ended = true;
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => {}
        }
    }
    assert!(ended);
    assert_eq!(rows, usize::from(LISTENERS));
    jobs.poll(&e, t0);
    assert!(jobs.is_empty(), "a finished listing is gone");

    // A session that goes away ends its listing at the next slice.
    let (tx, rx) = mpsc::sync_channel(1);
    jobs.handle_command(
        CtlCommand::List {
            job: 2,
            filter: Filter::default(),
            reply: tx,
        },
        &mut e,
        t0,
    );
    jobs.poll(&e, t0);
    drop(rx);
    jobs.poll(&e, t0);
    jobs.poll(&e, t0);
    assert!(jobs.is_empty());

    // A kill's completion is routed by its job id into the job's record.
    let registry = Jobs::default();
    let job = registry
        .start(3, FilterSpec::default(), CloseMode::Abort, 0, 1)
        .unwrap();
    jobs.handle_command(
        CtlCommand::Kill {
            job: job.clone(),
            filter: Filter::default(),
            mode: CloseMode::Abort,
            pace_per_s: 0,
        },
        &mut e,
        t0,
    );
    assert!(!job.is_over());
    // A second kill under the same id is refused, not mixed up.
    let twin = registry
        .start(3, FilterSpec::default(), CloseMode::Abort, 0, 1)
        .unwrap();
    jobs.handle_command(
        CtlCommand::Kill {
            job: twin.clone(),
            filter: Filter::default(),
            mode: CloseMode::Abort,
            pace_per_s: 0,
        },
        &mut e,
        t0,
    );
    assert_eq!(twin.ends(), [CoreEnd::Refused]);
    e.handle_timeout(t0 + Duration::from_millis(1));
    while let Some(c) = e.poll_completion() {
        jobs.deliver(c);
    }
    assert_eq!(job.ends(), [CoreEnd::Done]);
    assert_eq!(job.closed(), [0]);
    assert!(jobs.is_empty());
}
