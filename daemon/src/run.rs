//! `lingerd run` as a library: [`Daemon::start`], [`Daemon::serve`] and
//! [`Daemon::shutdown`], from a configuration file to pinned dataplane
//! threads and back to a clean stop on SIGTERM/SIGINT.
//!
//! Start-up ([`Daemon::start`]), in order, each failure a clear error
//! ([`RunError`], with its sysexits(3) status) before anything is attached:
//! root; every core is in the allowed CPU mask (a NUMA mismatch with the
//! NIC is a warning); for `port: afxdp` the interface exists (in this
//! network namespace) and every configured queue is below its rx queue
//! count. Then the port: lingerd's XDP program is attached once
//! ([`Steering`]), or, for `port: dpdk` (feature `dpdk`), the EAL starts
//! once from the `dpdk:` section and the device is opened with one RX/TX
//! queue pair per core (its MAC is the engines'; no XDP program, no
//! steering: the engine answers ARP and drops what is not its own). Then
//! the control socket ([`crate::attach`]), the ctl socket ([`crate::ctl`])
//! and the `/metrics` listener are bound, and one thread per queue
//! (`queue`) pins itself, binds its AF_XDP socket (or registers as a DPDK
//! lcore and takes its queue pair) and runs the per-core loop. Each queue prints one start-up line (native or generic
//! XDP, copy or zero-copy); then the daemon prints where clients and
//! `lingerd ctl` reach it, and systemd hears READY=1. With several queues,
//! frames that reach the wrong queue move to their owner over
//! `port::handoff`.
//!
//! Serving ([`Daemon::serve`]): the calling thread serves attach and
//! hang-up events, handing each core an attach or detach command
//! ([`crate::cores`]); `lingerd ctl` sessions reach the cores through the
//! same command channels. It tells systemd WATCHDOG=1 when a watchdog is
//! set, and returns once SIGTERM or SIGINT arrived ([`Daemon::stop`] does
//! the same from code) or a dataplane thread ended.
//!
//! Reload: SIGHUP sets a flag the serving loop looks at every 100 ms. It
//! tells systemd RELOADING=1, re-reads the file and decides with
//! `reload`: a file that does not load or that changes a
//! restart-only field is reported and the running configuration stays,
//! whole; otherwise the engines' tunables go to every core as a
//! `CoreCommand::Retune` (and the loop waits, bounded, until each has
//! applied them), the exit rule, `allow_uids` and the log level change
//! here. Then READY=1, whatever the outcome: the daemon runs on.
//!
//! Shutdown ([`Daemon::shutdown`]): systemd hears STOPPING=1; each core
//! closes its listeners (stop accepting), applies `close.on_client_exit`
//! to the connections it and every attached client hold, keeps running
//! until those closes completed and their frames left (bounded by the
//! longest default linger plus a second), and returns its summary line;
//! the program is detached when the last socket is gone. With DPDK, each
//! core closes its queue pair as it ends (the last one stops and closes
//! the device, which removes a memif server's socket file), then the EAL
//! is shut down (`rte_eal_cleanup`, its runtime directory removed).
//!
//! It owns the threads, the signal flags, the steering program and the EAL;
//! protocol work is the engine's, per-connection behaviour the core's
//! (`queue`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lingerd_abi::layout::Layout;
use lingerd_config::{Build, Config, GatewayMac, PortKind};
use lingerd_dataplane::engine::config::Tunables;
use lingerd_dataplane::port::Port;
use lingerd_dataplane::port::afxdp::{AfXdpConfig, AfXdpPort, Steering};
#[cfg(feature = "dpdk")]
use lingerd_dataplane::port::dpdk::{DpdkPort, Eal};
use lingerd_dataplane::port::handoff::Handoff;
use lingerd_dataplane::wire::EthernetAddress;

use crate::attach::{Acceptor, AcceptorConfig, AttachEvent};
use crate::convert::{self, ExitRule, QueuePlan, Secrets};
use crate::cores::{CoreCommand, Peer};
use crate::ctl::server::{CtlConfig, CtlListener, CtlServer};
use crate::logging;
use crate::metrics::{MetricsHub, MetricsServer, PortFigures};
use crate::pin::{self, PinError};
use crate::queue::{Opened, Ready, Shared, queue_thread};
use crate::reload::{self, Decision};

/// `EX_UNAVAILABLE`: a required service (the dataplane port, or the
/// daemon for `ctl`) is unavailable.
pub const EX_UNAVAILABLE: u8 = 69;
/// `EX_NOPERM`: not allowed (not root).
pub const EX_NOPERM: u8 = 77;
/// `EX_CONFIG`: the configuration is missing, unreadable, invalid, or does
/// not fit this host.
pub const EX_CONFIG: u8 = 78;

/// What this binary can run: `port: dpdk` only with the `dpdk` feature
/// (`check-config` and `run` load files with it).
pub const BUILD: Build = Build {
    dpdk: cfg!(feature = "dpdk"),
};

/// How long start-up may take per queue (bind, register, first listen).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the serving loop waits for an attach event before it looks at
/// the signal flags again.
const TICK: Duration = Duration::from_millis(100);

/// Why the daemon could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::NotRoot => EX_NOPERM,
            RunError::QueueOutOfRange { .. } | RunError::Pin(PinError::NotAllowed { .. }) => {
                EX_CONFIG
            }
            RunError::NoInterface(_) | RunError::Pin(_) | RunError::Port(_) => EX_UNAVAILABLE,
        }
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// What the host says about the interface.
#[derive(Clone, Copy, Debug)]
pub struct Nic {
    /// Its Ethernet address.
    pub mac: EthernetAddress,
    /// Its receive queues (`queues/rx-*`; 1 when sysfs does not say).
    pub rx_queues: u32,
}

/// Reads `iface`'s address and receive queues from `sys_net`
/// (`/sys/class/net`, the calling process's network namespace as mounted).
pub fn inspect(sys_net: &Path, iface: &str) -> Result<Nic, RunError> {
    let dir = sys_net.join(iface);
    if !dir.exists() {
        return Err(RunError::NoInterface(iface.to_owned()));
    }
    let mac = fs::read_to_string(dir.join("address"))
        .ok()
        .as_deref()
        .and_then(|s| s.trim().parse::<EthernetAddress>().ok())
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

/// Draws the per-start secrets from the kernel's CSPRNG, each key on its
/// own.
fn secrets() -> Result<Secrets> {
    let word = || getrandom::u64().context("drawing a secret from getrandom(2)");
    Ok(Secrets {
        isn: [word()?, word()?],
        hash: word()?,
        cookie: [word()?, word()?],
    })
}

/// A running daemon: its cores, its sockets and the configuration in force.
///
/// [`Daemon::start`] returns once every queue runs; [`Daemon::serve`]
/// serves clients and reloads until a stop is asked for;
/// [`Daemon::shutdown`] drains the cores and reports. Dropping a `Daemon`
/// without `shutdown` still stops and joins its cores, without the report.
pub struct Daemon {
    /// The configuration file, re-read on SIGHUP.
    path: PathBuf,
    /// The configuration in force.
    running: Config,
    shared: Arc<Shared>,
    hangup: Arc<AtomicBool>,
    /// `None` once shut down (also for the ones below).
    acceptor: Option<Acceptor>,
    ctl: Option<CtlServer>,
    metrics: Option<MetricsServer>,
    cores: Vec<mpsc::Sender<CoreCommand>>,
    threads: Vec<QueueHandle>,
    /// The EAL (`port: dpdk`), shut down after the cores are gone; last, so
    /// that it drops after everything else.
    #[cfg(feature = "dpdk")]
    dpdk: Option<DpdkEnv>,
}

/// A dataplane thread: its summary line, or why it failed.
type QueueHandle = JoinHandle<Result<String, String>>;

/// The opened port before the queue threads start.
enum Ports {
    /// The XDP program and each queue's socket configuration.
    AfXdp {
        steering: Arc<Mutex<Steering>>,
        configs: Vec<AfXdpConfig>,
    },
    /// The EAL and each queue pair of the device.
    #[cfg(feature = "dpdk")]
    Dpdk {
        eal: &'static Eal,
        ports: Vec<DpdkPort>,
    },
}

/// Starts the thread of `plan`'s queue, which opens its port with `open`.
fn spawn_queue<P, G>(
    plan: QueuePlan,
    shared: &Arc<Shared>,
    handoff: Option<Handoff>,
    ready: &mpsc::Sender<Ready>,
    open: impl FnOnce() -> Result<Opened<P, G>, String> + Send + 'static,
) -> Result<(mpsc::Sender<CoreCommand>, QueueHandle)>
where
    P: Port,
    P::Stats: PortFigures,
{
    let (core_tx, core_rx) = mpsc::channel();
    let shared = shared.clone();
    let ready = ready.clone();
    let thread = thread::Builder::new()
        .name(format!("lingerd-q{}", plan.queue))
        .spawn(move || queue_thread(plan, shared, handoff, core_rx, ready, open))
        .context("spawning a dataplane thread")?;
    Ok((core_tx, thread))
}

/// The process's EAL for `port: dpdk`: shut down (`rte_eal_cleanup`, the
/// runtime directory removed) once the ports are closed, at the latest when
/// this drops.
#[cfg(feature = "dpdk")]
struct DpdkEnv {
    eal: &'static Eal,
}

#[cfg(feature = "dpdk")]
impl DpdkEnv {
    /// Shuts the EAL down (every port must be closed: their threads ended).
    fn shutdown(&self) -> Result<(), String> {
        self.eal
            .shutdown()
            .map_err(|e| format!("DPDK shutdown: {e}"))
    }
}

#[cfg(feature = "dpdk")]
impl Drop for DpdkEnv {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::error!("{e}");
        }
    }
}

impl Daemon {
    /// Loads `path`, checks the host, attaches the XDP program, binds the
    /// client, ctl and metrics sockets and starts one pinned thread per
    /// queue; prints the start-up lines and tells systemd READY=1.
    ///
    /// Errors: a [`lingerd_config::ConfigError`] for a bad file, a
    /// [`RunError`] when the host or the dataplane refuses (each with its
    /// exit status), anything else for the sockets. Nothing stays running
    /// after an error.
    pub fn start(path: &Path) -> Result<Daemon> {
        let config = Config::load_for(path, BUILD)?;
        logging::init(config.log.level);
        if !is_root() {
            return Err(RunError::NotRoot.into());
        }
        let sys_net = PathBuf::from("/sys/class/net");
        let nic_node = match config.port {
            PortKind::Afxdp => pin::nic_node(&sys_net, &config.interface),
            PortKind::Dpdk => None,
        };
        let allowed = pin::allowed_cpus().map_err(RunError::from)?;
        let warnings = pin::check_cores(&config.cores, &allowed, nic_node, |cpu| {
            pin::cpu_node(Path::new("/sys/devices/system/cpu"), cpu)
        })
        .map_err(RunError::from)?;
        for w in warnings {
            log::warn!("{w}");
        }
        for gw in config.gateway.iter() {
            if let GatewayMac::Fixed(mac) = gw.mac {
                log::warn!(
                    "gateway {} mac {mac} is not used yet: the gateway is resolved with ARP or Neighbor Discovery",
                    gw.ip
                );
            }
        }
        // The port: the XDP program attached (AF_XDP, each queue binds its
        // socket in its thread), or the EAL started and every queue pair
        // of the device opened (DPDK). `dpdk_env` shuts the EAL down when
        // it drops, after the ports (declared before them).
        #[cfg(feature = "dpdk")]
        let mut dpdk_env: Option<DpdkEnv> = None;
        let (ports, mac, label) = match config.port {
            PortKind::Afxdp => {
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
                let configs: Vec<_> = config
                    .queues
                    .iter()
                    .map(|&q| convert::afxdp_port(&config, q))
                    .collect();
                let first = configs.first().context("no queue configured")?;
                let steering = Steering::attach(
                    &config.interface,
                    first.attach,
                    &first.addrs,
                    &first.ports,
                    first.ephemeral,
                )
                .map_err(|e| RunError::Port(e.to_string()))?;
                let ports = Ports::AfXdp {
                    steering: Arc::new(Mutex::new(steering)),
                    configs,
                };
                (ports, nic.mac, config.interface.clone())
            }
            #[cfg(feature = "dpdk")]
            PortKind::Dpdk => {
                let plan = convert::dpdk_plan(&config).map_err(RunError::Port)?;
                let eal = Eal::init(&plan.eal).map_err(|e| RunError::Port(e.to_string()))?;
                let env = dpdk_env.insert(DpdkEnv { eal });
                let ports = DpdkPort::open_queues(env.eal, &plan.port).map_err(|e| {
                    RunError::Port(format!("DPDK device {}: {e}", plan.port.device))
                })?;
                let first = ports.first().context("no queue configured")?;
                let mac = EthernetAddress(first.info().device.mac);
                let label = format!("DPDK device {}", first.info().device.name);
                (Ports::Dpdk { eal, ports }, mac, label)
            }
            #[cfg(not(feature = "dpdk"))]
            PortKind::Dpdk => {
                return Err(RunError::Port(
                    "this binary was built without the `dpdk` feature".to_owned(),
                )
                .into());
            }
        };
        let plans = convert::plan(&config, mac, secrets()?);

        let signal = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, signal.clone())
                .context("installing signal handlers")?;
        }
        // Registered before READY=1: from then on SIGHUP never kills the
        // daemon.
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
            .context("installing the SIGHUP handler")?;
        let shared = Arc::new(Shared {
            signal: signal.clone(),
            idle: convert::port_idle(&config),
            exit: Mutex::new(convert::exit_rule(&config)),
            listen: config.listen.iter().map(|l| (l.port, l.backlog)).collect(),
            metrics: Arc::new(MetricsHub::with_queues(
                plans.iter().map(|p| p.queue).collect(),
            )),
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
        // Bound before any queue thread starts, so a start-up error leaves
        // nothing running. Clients attach over the control socket; each
        // gets rings on every core.
        let layout = Layout::new(config.layout_params())
            .map_err(|e| anyhow::anyhow!("the client region layout: {e:?}"))?;
        let mut acceptor_cfg = AcceptorConfig::new(
            config.clients.socket.clone(),
            config.clients.allow_uids.clone(),
            layout,
        );
        acceptor_cfg.cores = plans.iter().map(|p| p.index).collect();
        let acceptor = Acceptor::bind(acceptor_cfg)
            .with_context(|| format!("client socket {}", config.clients.socket.display()))?;
        // `lingerd ctl` (ctl::server): bound now, served once the cores'
        // command channels exist.
        let ctl = CtlListener::bind(CtlConfig {
            socket: config.clients.ctl_socket(),
            allow_uids: config.clients.allow_uids.clone(),
            queues: plans.iter().map(|p| p.queue).collect(),
        })
        .with_context(|| format!("ctl socket {}", config.clients.ctl_socket().display()))?;
        let metrics = match config.metrics.listen {
            Some(addr) => Some(
                MetricsServer::start(addr, shared.metrics.clone())
                    .with_context(|| format!("metrics on {addr}"))?,
            ),
            None => None,
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>();
        let mut cores = Vec::new();
        let mut threads = Vec::new();
        let mut spawn = |queue: Result<(mpsc::Sender<CoreCommand>, QueueHandle)>| {
            queue.map(|(tx, thread)| {
                cores.push(tx);
                threads.push(thread);
            })
        };
        match ports {
            Ports::AfXdp { steering, configs } => {
                for ((plan, handoff), cfg) in plans.into_iter().zip(handoffs.drain(..)).zip(configs)
                {
                    let steering = steering.clone();
                    spawn(spawn_queue(plan, &shared, handoff, &ready_tx, move || {
                        let port = {
                            let mut s = steering.lock().unwrap_or_else(|e| e.into_inner());
                            AfXdpPort::open_queue(&cfg, &mut s).map_err(|e| e.to_string())?
                        };
                        // Each queue keeps the program attached until its
                        // socket is gone: it is detached with the last one.
                        Ok(Opened {
                            info: port.info().to_string(),
                            port,
                            guard: steering,
                        })
                    }))?;
                }
            }
            #[cfg(feature = "dpdk")]
            Ports::Dpdk { eal, ports } => {
                for ((plan, handoff), port) in plans.into_iter().zip(handoffs.drain(..)).zip(ports)
                {
                    spawn(spawn_queue(plan, &shared, handoff, &ready_tx, move || {
                        // Pinned already: the lcore takes this CPU.
                        let guard = eal.register_thread().map_err(|e| e.to_string())?;
                        Ok(Opened {
                            info: port.info().to_string(),
                            port,
                            guard,
                        })
                    }))?;
                }
            }
        }
        drop(ready_tx);
        let ctl = ctl
            .serve(cores.clone(), shared.metrics.clone())
            .context("starting the ctl thread")?;

        let mut reports: Vec<Ready> = Vec::new();
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
        println!("lingerd: running on {label} with {n} queue(s); SIGTERM or SIGINT stops");
        println!(
            "lingerd: clients attach at {}; lingerd ctl at {}",
            config.clients.socket.display(),
            config.clients.ctl_socket().display()
        );
        if let Some(server) = &metrics {
            println!("lingerd: metrics at http://{}/metrics", server.addr());
        }
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        Ok(Daemon {
            path: path.to_owned(),
            running: config,
            shared,
            hangup,
            acceptor: Some(acceptor),
            ctl: Some(ctl),
            metrics,
            cores,
            threads,
            #[cfg(feature = "dpdk")]
            dpdk: dpdk_env,
        })
    }

    /// Asks the daemon to stop, as SIGTERM does: [`Daemon::serve`] returns
    /// at its next tick and every core starts its shutdown.
    pub fn stop(&self) {
        self.shared.signal.store(true, Ordering::Relaxed);
    }

    /// Serves attach and detach events, SIGHUP reloads and the systemd
    /// watchdog until a stop is asked for (SIGTERM, SIGINT,
    /// [`Daemon::stop`]) or a dataplane thread ends on its own.
    pub fn serve(&mut self) {
        let watchdog = sd_notify::watchdog_enabled().map(|usec| usec / 2);
        let mut petted = Instant::now();
        while !self.shared.signal.load(Ordering::Relaxed)
            && !self.threads.iter().any(|t| t.is_finished())
        {
            let event = self.acceptor.as_mut().and_then(|a| a.poll(TICK));
            match event {
                Some(AttachEvent::New {
                    client,
                    uid,
                    pid,
                    region,
                    layout,
                    wake,
                    doorbell,
                }) => {
                    log::debug!("client {} attached (uid {uid}, pid {pid})", client.0);
                    let wake = Arc::new(wake);
                    let doorbell = Arc::new(doorbell);
                    for tx in &self.cores {
                        let _ = tx.send(CoreCommand::Attach {
                            client,
                            peer: Peer { pid, uid },
                            region: region.clone(),
                            layout,
                            wake: wake.clone(),
                            doorbell: doorbell.clone(),
                        });
                    }
                }
                Some(AttachEvent::Gone(client)) => {
                    let policy = self.exit_rule().policy;
                    log::debug!(
                        "client {} detached: on_client_exit {} applies",
                        client.0,
                        format!("{policy:?}").to_lowercase()
                    );
                    for tx in &self.cores {
                        let _ = tx.send(CoreCommand::Detach { client, policy });
                    }
                }
                None => {}
            }
            if self.hangup.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if let Some(every) = watchdog
                && petted.elapsed() >= every
            {
                notify_systemd(&[sd_notify::NotifyState::Watchdog]);
                petted = Instant::now();
            }
        }
    }

    /// Stops: tells systemd STOPPING=1, lets every core drain (see the
    /// module documentation), prints each core's summary and returns the
    /// first core's error, if any.
    pub fn shutdown(mut self) -> Result<()> {
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        // A dataplane thread that ended on its own failed: stop the others.
        self.stop();
        drop(self.acceptor.take());
        if let Some(ctl) = self.ctl.take() {
            ctl.stop();
        }
        let mut first_error = None;
        for t in std::mem::take(&mut self.threads) {
            match t.join() {
                Ok(Ok(summary)) => eprintln!("lingerd: {summary}"),
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => first_error = first_error.or(Some("a dataplane thread panicked".into())),
            }
        }
        #[cfg(feature = "dpdk")]
        if let Some(env) = self.dpdk.take()
            && let Err(e) = env.shutdown()
        {
            first_error = first_error.or(Some(e));
        }
        if let Some(e) = first_error {
            return Err(RunError::Port(e).into());
        }
        if let Some(server) = self.metrics.take() {
            server.stop();
        }
        eprintln!("lingerd: stopped");
        Ok(())
    }

    fn exit_rule(&self) -> ExitRule {
        *self.shared.exit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SIGHUP: re-reads the file, applies what the reload rule allows (see
    /// the module docs), logs what happened, and tells systemd RELOADING=1
    /// then READY=1.
    fn reload(&mut self) {
        let mut reloading = vec![sd_notify::NotifyState::Reloading];
        // systemd (Type=notify-reload, v253+) wants the time with
        // RELOADING=1.
        reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
        notify_systemd(&reloading);
        let path = &self.path;
        let decision = reload::check(&self.running, path);
        if let Decision::Apply { config, .. } = &decision {
            let tunables = convert::tunables(config);
            if tunables != convert::tunables(&self.running) {
                retune(&self.cores, tunables);
            }
            {
                let mut rule = self.shared.exit.lock().unwrap_or_else(|e| e.into_inner());
                *rule = rule.reloaded(convert::exit_rule(config));
            }
            if let Some(acceptor) = &mut self.acceptor {
                acceptor.set_allow_uids(config.clients.allow_uids.clone());
            }
            if let Some(ctl) = &self.ctl {
                ctl.set_allow_uids(config.clients.allow_uids.clone());
            }
        }
        let report = decision.report(path);
        if decision.keeps_running() {
            log::error!("{report}");
        } else {
            log::info!("{report}");
        }
        let status = decision.status();
        if let Decision::Apply { config, .. } = decision {
            // Last, so that the report prints at the level it was sent
            // under.
            logging::set_level(config.log.level);
            self.running = *config;
        }
        notify_systemd(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }
}

impl Drop for Daemon {
    /// Stops and joins whatever [`Daemon::shutdown`] did not.
    fn drop(&mut self) {
        self.stop();
        drop(self.acceptor.take());
        if let Some(ctl) = self.ctl.take() {
            ctl.stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// How long a reload waits for every core to apply new tunables.
const RETUNE_TIMEOUT: Duration = Duration::from_secs(1);

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
        log::warn!(
            "reload: core(s) {waiting:?} did not confirm the new values within {RETUNE_TIMEOUT:?}; they apply them at their next loop iteration"
        );
    }
}

/// Tells systemd (`Type=notify`) about our state; nothing without
/// `NOTIFY_SOCKET`.
fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        log::warn!("sd_notify: {e}");
    }
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
        assert!("02:00:00:00:00".parse::<EthernetAddress>().is_err());
        assert!("02:00:00:00:00:01:02".parse::<EthernetAddress>().is_err());
    }
}
