//! `lingerd run`: from a configuration file to pinned dataplane threads,
//! and back to exit status 0 on SIGTERM/SIGINT.
//!
//! Start-up, in order, each failure a clear error before anything is
//! attached: root; the interface exists (in this network namespace); every
//! configured queue is below the interface's rx queue count; every core is
//! in the allowed CPU mask (a NUMA mismatch with the NIC is a warning).
//! Then lingerd's XDP program is attached once ([`Steering`]) and one thread
//! per queue pins itself, binds its AF_XDP socket, registers it, builds its
//! `QueueEngine` ([`crate::convert`]), opens the `listen:` ports as the
//! admin client and runs the shell loop with the daemon's app
//! ([`crate::app`]). Each queue prints one start-up line (native or generic
//! XDP, copy or zero-copy). With several queues, frames that reach the
//! wrong queue move to their owner over `port::handoff`.
//!
//! Clients: the control socket ([`lingerd_daemon::attach`]), the ctl
//! socket ([`lingerd_daemon::ctl`]) and the `/metrics` listener are bound
//! before any queue starts; `lingerd ctl` sessions reach the cores through
//! the same command channels as attach and detach. The main thread
//! then serves attach and hang-up events, handing each core an attach or
//! detach command ([`lingerd_daemon::cores`]); each core takes its clients'
//! requests every loop iteration and routes completions to their rings (the
//! daemon's own app is the admin client). Cores publish their figures to
//! the metrics hub every 100 ms; connection states are counted by a census
//! that walks the table in bounded slices. systemd hears READY=1 once every
//! queue runs, and WATCHDOG=1 from the main loop when a watchdog is set.
//! Each queue's loop also shows it the port's statistics every 100 ms
//! (`LoopView::stats`), published as the `lingerd_xdp_*` series.
//!
//! Reload: SIGHUP sets a flag the main loop looks at every 100 ms. It tells
//! systemd RELOADING=1, re-reads the file and decides with
//! [`crate::reload`]: a file that does not load or that changes a
//! restart-only field is reported and the running configuration stays,
//! whole; otherwise the engines' tunables go to every core as a
//! `CoreCommand::Retune` (and the main loop waits, bounded, until each has
//! applied them), the exit rule, `allow_uids` and the log level change
//! here. Then READY=1, whatever the outcome: the daemon runs on.
//!
//! Shutdown: SIGTERM or SIGINT sets a flag; each thread closes its
//! listeners (stop accepting), applies `close.on_client_exit` to the
//! connections it and every attached client hold, keeps running until those closes completed and
//! their frames left (bounded by the longest default linger plus a second),
//! and returns; the program is detached when the last socket is gone.
//!
//! It owns the threads, the signal flag and the steering program; protocol
//! work is the engine's, per-connection behaviour the app's.

use std::cell::RefCell;
use std::fs;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lingerd_abi::layout::Layout;
use lingerd_config::{Config, GatewayMac};
use lingerd_daemon::attach::{Acceptor, AcceptorConfig, AttachEvent};
use lingerd_daemon::cores::{CoreClients, CoreCommand};
use lingerd_daemon::ctl::server::{CtlConfig, CtlListener, CtlServer};
use lingerd_daemon::metrics::{CoreSnapshot, MetricsHub, MetricsServer, xdp_series};
use lingerd_dataplane::engine::api::ADMIN_CLIENT;
use lingerd_dataplane::engine::config::Tunables;
use lingerd_dataplane::engine::{Census, QueueEngine};
use lingerd_dataplane::port::afxdp::{AfXdpPort, IdleMode, Steering, run_engine_with};
use lingerd_dataplane::port::handoff::Handoff;
use lingerd_dataplane::wire::EthernetAddress;

use crate::app::{App, Command};
use crate::convert::{self, ExitRule, QueuePlan, Secrets};
use crate::log::log;
use crate::pin::{self, PinError};
use crate::reload::{self, Decision};

/// `EX_NOPERM`.
const EX_NOPERM: u8 = 77;
/// `EX_UNAVAILABLE`.
const EX_UNAVAILABLE: u8 = 69;
/// `EX_CONFIG`.
const EX_CONFIG: u8 = 78;

/// How long start-up may take per queue (bind, register, first listen).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why `run` could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// Not root.
    #[error(
        "must run as root: AF_XDP sockets and XDP programs need CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF"
    )]
    NotRoot,
    /// The interface is missing.
    #[error(
        "interface {0} does not exist in this network namespace (see `ip link`; in a lab, run under `ip netns exec`)"
    )]
    NoInterface(String),
    /// A queue beyond the interface's.
    #[error("queue {queue} is out of range: {iface} has {have} rx queue(s), 0..={max}", max = .have.saturating_sub(1))]
    QueueOutOfRange {
        /// The interface.
        iface: String,
        /// The queue asked for.
        queue: u32,
        /// Its rx queue count.
        have: u32,
    },
    /// Pinning.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The AF_XDP port or the XDP program.
    #[error("dataplane: {0}")]
    Port(String),
}

impl RunError {
    /// The sysexits(3) status for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            RunError::NotRoot => EX_NOPERM,
            RunError::QueueOutOfRange { .. } | RunError::Pin(PinError::NotAllowed { .. }) => {
                EX_CONFIG
            }
            RunError::NoInterface(_) | RunError::Pin(_) | RunError::Port(_) => EX_UNAVAILABLE,
        }
    }
}

/// Options of `run` beyond the configuration.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RunOptions {
    /// Test only: echo and obey commands on stdin ([`crate::app`]).
    pub(crate) test_app: bool,
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(EthernetAddress(mac))
}

/// What the host says about the interface.
struct Nic {
    mac: EthernetAddress,
    rx_queues: u32,
}

fn inspect(sys_net: &Path, iface: &str) -> Result<Nic, RunError> {
    let dir = sys_net.join(iface);
    if !dir.exists() {
        return Err(RunError::NoInterface(iface.to_owned()));
    }
    let mac = fs::read_to_string(dir.join("address"))
        .ok()
        .as_deref()
        .and_then(parse_mac)
        .ok_or_else(|| RunError::Port(format!("{iface}: no Ethernet address in sysfs")))?;
    let rx_queues = fs::read_dir(dir.join("queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1);
    Ok(Nic { mac, rx_queues })
}

fn secrets() -> Result<Secrets> {
    let mut b = [0u8; 40];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for the ISN and SYN-cookie secrets")?;
    let word = |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    Ok(Secrets {
        isn: [word(0), word(1)],
        hash: word(2),
        cookie: [word(3), word(4)],
    })
}

/// One queue's thread: what it needs beyond its plan.
struct Shared {
    steering: Arc<Mutex<Steering>>,
    signal: Arc<AtomicBool>,
    idle: IdleMode,
    /// Reloadable: read when a queue stops.
    exit: Mutex<ExitRule>,
    listen: Vec<(u16, u32)>,
    test_app: bool,
    metrics: Arc<MetricsHub>,
}

/// How often a core publishes its figures for `/metrics`.
const METRICS_EVERY: Duration = Duration::from_millis(100);
/// Records a core examines in one slice of the state census.
const CENSUS_SLOTS: u32 = 512;
/// How often a core takes a census slice: 512 records every 128 µs is about
/// 4M records a second (a full pass over 1M connections in a quarter of a
/// second), each slice a few microseconds. Walking the table on every loop
/// iteration instead cost more than the requests it served.
const CENSUS_EVERY: Duration = Duration::from_micros(128);

fn queue_thread(
    plan: QueuePlan,
    shared: Arc<Shared>,
    mut handoff: Option<Handoff>,
    commands: mpsc::Receiver<Command>,
    client_commands: mpsc::Receiver<CoreCommand>,
    ready: mpsc::Sender<(u8, Result<String, String>)>,
) -> Result<String, String> {
    let index = plan.index;
    let fail = |e: String| {
        let _ = ready.send((index, Err(e.clone())));
        shared.signal.store(true, Ordering::Relaxed);
        Err(e)
    };
    if let Err(e) = pin::pin_current(plan.cpu) {
        return fail(format!("queue {}: core {}: {e}", plan.queue, plan.cpu));
    }
    let opened = {
        let mut s = shared.steering.lock().unwrap_or_else(|e| e.into_inner());
        AfXdpPort::open_queue(&plan.port, &mut s)
    };
    let mut port = match opened {
        Ok(p) => p,
        Err(e) => return fail(format!("queue {}: {e}", plan.queue)),
    };
    let _ = ready.send((
        index,
        Ok(format!(
            "queue {} on core {}: {}",
            plan.queue,
            plan.cpu,
            port.info()
        )),
    ));
    let t0 = Instant::now();
    let mut engine = QueueEngine::new(plan.engine, t0);
    let app = RefCell::new(App::new(index, shared.test_app));
    app.borrow_mut().listen(&mut engine, t0, &shared.listen);
    let clients = RefCell::new(CoreClients::new(u32::from(index), client_commands));
    let mut census = (0u32, Census::default(), Census::default());
    let mut census_at = t0;
    let mut xdp = None;
    let mut published = t0;
    let done = AtomicBool::new(false);
    let mut deadline: Option<Instant> = None;
    let result = run_engine_with(
        &mut port,
        &mut engine,
        shared.idle,
        &done,
        handoff.as_mut(),
        |c| {
            // The daemon's own app is the admin client; everything else
            // belongs to an attached client's rings.
            // (Delivered here, published once per iteration below: one
            // release store and at most one wakeup for a whole burst.)
            if c.client == ADMIN_CLIENT {
                app.borrow_mut().on_completion(c);
            } else {
                clients.borrow_mut().deliver(c);
            }
        },
        |engine, now, view| {
            {
                let mut clients = clients.borrow_mut();
                clients.flush();
                clients.poll(engine, now);
            }
            // The state census walks the table in small slices, spaced in
            // time; a full pass replaces the published histogram.
            if now.saturating_duration_since(census_at) >= CENSUS_EVERY {
                census_at = now;
                match engine.count_states(census.0, CENSUS_SLOTS, &mut census.1) {
                    Some(next) => census.0 = next,
                    None => {
                        census.2 = std::mem::take(&mut census.1);
                        census.0 = 0;
                    }
                }
            }
            if view.stats.is_some() {
                xdp = view.stats;
            }
            if now.saturating_duration_since(published) >= METRICS_EVERY {
                published = now;
                shared.metrics.publish(
                    usize::from(index),
                    CoreSnapshot {
                        counters: engine.counters().clone(),
                        states: census.2.states,
                        linger_timers_armed: census.2.linger_armed,
                        timers_armed: engine.timers_armed() as u64,
                        rings: clients.borrow().stats(),
                        xdp: xdp.as_ref().map(xdp_series).unwrap_or_default(),
                    },
                );
            }
            let mut app = app.borrow_mut();
            app.step(engine, now, view.tx_in_flight, commands.try_iter());
            if deadline.is_none() && shared.signal.load(Ordering::Relaxed) {
                let rule = *shared.exit.lock().unwrap_or_else(|e| e.into_inner());
                app.shutdown(engine, now, rule.policy);
                clients.borrow_mut().detach_all(engine, now, rule.policy);
                deadline = Some(now + rule.drain_cap);
            }
            if let Some(d) = deadline
                // Done when every close completed (the exit sweeps too) and
                // its frames have left: the engine's queue is empty and the
                // kernel has completed
                // every TX descriptor (closing the socket earlier would drop
                // RSTs still in the TX ring).
                && ((app.pending_closes() == 0
                    && engine.pending_jobs() == 0
                    && engine.tx_backlog() == 0
                    && view.tx_in_flight == 0)
                    || now >= d)
            {
                done.store(true, Ordering::Relaxed);
            }
        },
    );
    let c = engine.counters();
    let stats = port.stats().map(|s| format!("{s:?}")).unwrap_or_default();
    let held = app.borrow().connections();
    let summary = format!(
        "queue {}: {held} connection(s) left, {} RST sent for aborts, handoff {:?}, port {stats}",
        plan.queue,
        c.rst_abort,
        handoff.as_ref().map(Handoff::counters)
    );
    match result {
        Ok(()) => Ok(summary),
        Err(e) => {
            shared.signal.store(true, Ordering::Relaxed);
            Err(format!("queue {}: {e}", plan.queue))
        }
    }
}

/// `lingerd run --config path`.
pub(crate) fn run(path: &Path, opts: RunOptions) -> Result<()> {
    let config = Config::load(path)?;
    crate::log::set_level(config.log.level);
    if !is_root() {
        return Err(RunError::NotRoot.into());
    }
    let sys_net = PathBuf::from("/sys/class/net");
    let nic = inspect(&sys_net, &config.interface)?;
    for &queue in &config.queues {
        if queue >= nic.rx_queues {
            return Err(RunError::QueueOutOfRange {
                iface: config.interface.clone(),
                queue,
                have: nic.rx_queues,
            }
            .into());
        }
    }
    let allowed = pin::allowed_cpus().map_err(RunError::from)?;
    let warnings = pin::check_cores(
        &config.cores,
        &allowed,
        pin::nic_node(&sys_net, &config.interface),
        |cpu| pin::cpu_node(Path::new("/sys/devices/system/cpu"), cpu),
    )
    .map_err(RunError::from)?;
    for w in warnings {
        log!(Warn, "{w}");
    }
    if let Some(gw) = &config.gateway
        && let GatewayMac::Fixed(mac) = gw.mac
    {
        log!(
            Warn,
            "gateway.mac {mac} is not used yet: the gateway is resolved with ARP"
        );
    }
    let plans = convert::plan(&config, nic.mac, secrets()?);
    let first = plans.first().context("no queue configured")?;
    let steering = Steering::attach(
        &config.interface,
        first.port.attach,
        &first.port.addrs,
        &first.port.ports,
        first.port.ephemeral,
    )
    .map_err(|e| RunError::Port(e.to_string()))?;

    let signal = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, signal.clone()).context("installing signal handlers")?;
    }
    // Registered before READY=1: from then on SIGHUP never kills the daemon.
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .context("installing the SIGHUP handler")?;
    let shared = Arc::new(Shared {
        steering: Arc::new(Mutex::new(steering)),
        signal: signal.clone(),
        idle: convert::idle_mode(config.xdp.idle),
        exit: Mutex::new(convert::exit_rule(&config)),
        listen: config.listen.iter().map(|l| (l.port, l.backlog)).collect(),
        test_app: opts.test_app,
        metrics: Arc::new(MetricsHub::new(plans.len())),
    });
    let mut handoffs: Vec<Option<Handoff>> = if plans.len() > 1 {
        Handoff::group(plans.iter().filter_map(|p| p.engine.flow.clone()).collect())
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None]
    };
    let n = plans.len();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    // Bound before any queue thread starts, so a start-up error leaves
    // nothing running.
    // Clients attach over the control socket; each gets rings on every core.
    let layout = Layout::new(config.layout_params())
        .map_err(|e| anyhow::anyhow!("the client region layout: {e:?}"))?;
    let mut acceptor_cfg = AcceptorConfig::new(
        config.clients.socket.clone(),
        config.clients.allow_uids.clone(),
        layout,
    );
    acceptor_cfg.cores = plans.iter().map(|p| p.index).collect();
    let mut acceptor = Acceptor::bind(acceptor_cfg)
        .with_context(|| format!("client socket {}", config.clients.socket.display()))?;
    // `lingerd ctl` (ctl::server): bound now, served once the cores' command
    // channels exist.
    let ctl = CtlListener::bind(CtlConfig {
        socket: config.clients.ctl_socket(),
        allow_uids: config.clients.allow_uids.clone(),
        queues: plans.iter().map(|p| p.queue).collect(),
    })
    .with_context(|| format!("ctl socket {}", config.clients.ctl_socket().display()))?;
    let metrics_server = match config.metrics.listen {
        Some(addr) => {
            let server = MetricsServer::start(addr, shared.metrics.clone())
                .with_context(|| format!("metrics on {addr}"))?;
            Some(server)
        }
        None => None,
    };
    let mut client_senders = Vec::new();
    for (plan, handoff) in plans.into_iter().zip(handoffs.drain(..)) {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        senders.push(cmd_tx);
        let (client_tx, client_rx) = mpsc::channel();
        client_senders.push(client_tx);
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let name = format!("lingerd-q{}", plan.queue);
        threads.push(
            thread::Builder::new()
                .name(name)
                .spawn(move || queue_thread(plan, shared, handoff, cmd_rx, client_rx, ready))
                .context("spawning a dataplane thread")?,
        );
    }
    drop(ready_tx);
    let ctl = ctl
        .serve(client_senders.clone(), shared.metrics.clone())
        .context("starting the ctl thread")?;

    let mut reports: Vec<(u8, Result<String, String>)> = Vec::new();
    let until = Instant::now() + START_TIMEOUT;
    while reports.len() < n {
        match ready_rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(r) => reports.push(r),
            Err(_) => break,
        }
    }
    reports.sort_by_key(|r| r.0);
    let mut failed = None;
    for (_, r) in &reports {
        match r {
            Ok(line) => println!("lingerd: {line}"),
            Err(e) => failed = failed.or(Some(e.clone())),
        }
    }
    if failed.is_none() && reports.len() < n {
        failed = Some(format!("a queue did not start within {START_TIMEOUT:?}"));
    }
    if let Some(e) = failed {
        signal.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        return Err(RunError::Port(e).into());
    }
    println!(
        "lingerd: running on {} with {n} queue(s){}; SIGTERM or SIGINT stops",
        config.interface,
        if opts.test_app {
            " (TEST APP: echo + stdin commands)"
        } else {
            ""
        }
    );
    if opts.test_app {
        spawn_stdin_reader(senders);
    }
    println!(
        "lingerd: clients attach at {}; lingerd ctl at {}",
        config.clients.socket.display(),
        config.clients.ctl_socket().display()
    );
    if let Some(server) = &metrics_server {
        println!("lingerd: metrics at http://{}/metrics", server.addr());
    }
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let mut running = config;
    let watchdog = sd_notify::watchdog_enabled().map(|usec| usec / 2);
    let mut petted = Instant::now();
    while !signal.load(Ordering::Relaxed) && !threads.iter().any(|t| t.is_finished()) {
        match acceptor.poll(Duration::from_millis(100)) {
            Some(AttachEvent::New {
                client,
                uid,
                pid,
                region,
                layout,
                wake,
                ..
            }) => {
                log!(Debug, "client {} attached (uid {uid}, pid {pid})", client.0);
                let wake = Arc::new(wake);
                for tx in &client_senders {
                    let _ = tx.send(CoreCommand::Attach {
                        client,
                        region: region.clone(),
                        layout,
                        wake: wake.clone(),
                    });
                }
            }
            Some(AttachEvent::Gone(client)) => {
                let policy = shared.exit.lock().unwrap_or_else(|e| e.into_inner()).policy;
                log!(
                    Debug,
                    "client {} detached: on_client_exit {} applies",
                    client.0,
                    format!("{policy:?}").to_lowercase()
                );
                for tx in &client_senders {
                    let _ = tx.send(CoreCommand::Detach { client, policy });
                }
            }
            None => {}
        }
        if hangup.swap(false, Ordering::Relaxed) {
            on_reload(
                path,
                &mut running,
                &mut acceptor,
                &ctl,
                &client_senders,
                &shared.exit,
            );
        }
        if let Some(every) = watchdog
            && petted.elapsed() >= every
        {
            notify_systemd(&[sd_notify::NotifyState::Watchdog]);
            petted = Instant::now();
        }
    }
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    // A dataplane thread that ended on its own failed: stop the others.
    signal.store(true, Ordering::Relaxed);
    drop(acceptor);
    ctl.stop();
    let mut first_error = None;
    for t in threads {
        match t.join() {
            Ok(Ok(summary)) => eprintln!("lingerd: {summary}"),
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some("a dataplane thread panicked".into())),
        }
    }
    if let Some(e) = first_error {
        return Err(RunError::Port(e).into());
    }
    if let Some(server) = metrics_server {
        server.stop();
    }
    eprintln!("lingerd: stopped");
    Ok(())
}

/// How long a reload waits for every core to apply new tunables.
const RETUNE_TIMEOUT: Duration = Duration::from_secs(1);

/// SIGHUP: re-reads `path`, applies what the reload rule allows (see the
/// module docs), logs what happened, and tells systemd RELOADING=1 then
/// READY=1.
fn on_reload(
    path: &Path,
    running: &mut Config,
    acceptor: &mut Acceptor,
    ctl: &CtlServer,
    cores: &[mpsc::Sender<CoreCommand>],
    exit: &Mutex<ExitRule>,
) {
    let mut reloading = vec![sd_notify::NotifyState::Reloading];
    // systemd (Type=notify-reload, v253+) wants the time with RELOADING=1.
    reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
    notify_systemd(&reloading);
    let decision = reload::check(running, path);
    if let Decision::Apply { config, .. } = &decision {
        let tunables = convert::tunables(config);
        if tunables != convert::tunables(running) {
            retune(cores, tunables);
        }
        {
            let mut rule = exit.lock().unwrap_or_else(|e| e.into_inner());
            *rule = rule.reloaded(convert::exit_rule(config));
        }
        acceptor.set_allow_uids(config.clients.allow_uids.clone());
        ctl.set_allow_uids(config.clients.allow_uids.clone());
    }
    let report = decision.report(path);
    if decision.keeps_running() {
        log!(Error, "{report}");
    } else {
        log!(Info, "{report}");
    }
    let status = decision.status();
    if let Decision::Apply { config, .. } = decision {
        // Last, so that the report prints at the level it was sent under.
        crate::log::set_level(config.log.level);
        *running = *config;
    }
    notify_systemd(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Sends `tunables` to every core and waits (bounded) until each has
/// applied them.
fn retune(cores: &[mpsc::Sender<CoreCommand>], tunables: Tunables) {
    let (applied, acks) = mpsc::channel();
    let mut waiting: Vec<u32> = Vec::new();
    for (core, tx) in cores.iter().enumerate() {
        let sent = tx.send(CoreCommand::Retune {
            tunables,
            applied: applied.clone(),
        });
        if sent.is_ok() {
            waiting.push(core as u32);
        }
    }
    drop(applied);
    let until = Instant::now() + RETUNE_TIMEOUT;
    while !waiting.is_empty() {
        match acks.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(core) => waiting.retain(|&c| c != core),
            Err(_) => break,
        }
    }
    if !waiting.is_empty() {
        log!(
            Warn,
            "reload: core(s) {waiting:?} did not confirm the new values within {RETUNE_TIMEOUT:?}; they apply them at their next loop iteration"
        );
    }
}

/// Tells systemd (`Type=notify`) about our state; nothing without
/// `NOTIFY_SOCKET`.
fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        log!(Warn, "sd_notify: {e}");
    }
}

/// Test only: reads commands from stdin and hands each to every queue. EOF
/// ends the reader, not the daemon (systemd gives it /dev/null).
fn spawn_stdin_reader(senders: Vec<mpsc::Sender<Command>>) {
    let _ = thread::Builder::new()
        .name("lingerd-test-ctl".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim().is_empty() {
                    continue;
                }
                match Command::parse(&line) {
                    Ok(cmd) => {
                        for s in &senders {
                            let _ = s.send(cmd.clone());
                        }
                    }
                    Err(e) => println!("@error {e}"),
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_and_exit_right() {
        let e = RunError::QueueOutOfRange {
            iface: "lgd1-d".into(),
            queue: 3,
            have: 2,
        };
        assert_eq!(
            e.to_string(),
            "queue 3 is out of range: lgd1-d has 2 rx queue(s), 0..=1"
        );
        assert_eq!(e.exit_code(), EX_CONFIG);
        assert_eq!(RunError::NotRoot.exit_code(), EX_NOPERM);
        assert_eq!(
            RunError::NoInterface("x".into()).exit_code(),
            EX_UNAVAILABLE
        );
    }

    #[test]
    fn reads_the_interface_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("lingerd-run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("eth7/queues/rx-0")).unwrap();
        fs::create_dir_all(dir.join("eth7/queues/rx-1")).unwrap();
        fs::create_dir_all(dir.join("eth7/queues/tx-0")).unwrap();
        fs::write(dir.join("eth7/address"), "02:6c:67:00:00:01\n").unwrap();
        let nic = inspect(&dir, "eth7").unwrap();
        assert_eq!(nic.rx_queues, 2);
        assert_eq!(nic.mac, EthernetAddress([2, 0x6c, 0x67, 0, 0, 1]));
        assert!(matches!(
            inspect(&dir, "eth8"),
            Err(RunError::NoInterface(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:01:02"), None);
    }
}
