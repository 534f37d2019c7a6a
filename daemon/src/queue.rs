//! One dataplane core: its thread and the [`CoreShell`] the per-core loop
//! calls every iteration.
//!
//! [`queue_thread`] pins itself, opens its port with the opener it is given
//! (an AF_XDP socket registered in the shared steering program, or a DPDK
//! queue pair with the thread registered as an lcore), reports its start-up
//! line, builds its `QueueEngine`, opens the `listen:` ports as the admin
//! client and runs [`core_loop::run`] with a [`CoreShell`]. Both are generic
//! over the [`Port`]: the shell only needs its statistics to be
//! [`PortFigures`]. The shell owns what the daemon
//! does on a core besides frames and timers: the daemon's own app
//! ([`App`]), the attached clients' rings ([`CoreClients`]), the state
//! census (the table walked in bounded slices, spaced in time), the
//! publication of the core's figures to the metrics hub every 100 ms
//! (with the port's statistics the loop shows it), and the shutdown: once
//! SIGTERM or SIGINT is seen it closes the listeners, applies
//! `close.on_client_exit` to every connection the app and the clients
//! hold, and says done when those closes completed and their frames left
//! (or the drain bound passed).
//!
//! It may not make protocol decisions (the engine's) nor touch the control
//! socket, the ctl socket or signals (the main thread's, [`crate::run`]).

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use lingerd_dataplane::engine::api::{ADMIN_CLIENT, Completion};
use lingerd_dataplane::engine::{Census, QueueEngine};
use lingerd_dataplane::port::handoff::Handoff;
use lingerd_dataplane::port::{CoreIo, Hooks, IdleMode, LoopView, Port, core_loop};

use crate::app::App;
use crate::convert::{ExitRule, QueuePlan};
use crate::cores::{CoreClients, CoreCommand};
use crate::metrics::{CoreSnapshot, MetricsHub, PortFigures};
use crate::pin;

/// How often a core publishes its figures for `/metrics`.
const METRICS_EVERY: Duration = Duration::from_millis(100);
/// Records a core examines in one slice of the state census.
const CENSUS_SLOTS: u32 = 512;
/// How often a core takes a census slice: 512 records every 128 µs is about
/// 4M records a second (a full pass over 1M connections in a quarter of a
/// second), each slice a few microseconds. Walking the table on every loop
/// iteration instead cost more than the requests it served.
const CENSUS_EVERY: Duration = Duration::from_micros(128);

/// What every queue's thread shares with the main thread.
pub(crate) struct Shared {
    /// Set on SIGTERM or SIGINT (or by [`crate::run::Daemon::stop`]), and
    /// when a queue fails: every core starts its shutdown.
    pub(crate) signal: Arc<AtomicBool>,
    /// The cores' idle behaviour.
    pub(crate) idle: IdleMode,
    /// Reloadable: read when a core starts its shutdown.
    pub(crate) exit: Mutex<ExitRule>,
    /// `listen:` ports and their backlogs.
    pub(crate) listen: Vec<(u16, u32)>,
    /// Where cores publish their figures.
    pub(crate) metrics: Arc<MetricsHub>,
}

/// A queue's start-up report: its index and its start-up line, or why it
/// could not start.
pub(crate) type Ready = (u8, Result<String, String>);

/// The state census in progress and the last complete one.
#[derive(Debug, Default)]
struct CensusWalk {
    /// The next slot to examine.
    cursor: u32,
    /// The pass in progress.
    partial: Census,
    /// The last complete pass (what is published).
    last: Census,
}

impl CensusWalk {
    /// Examines one slice; a finished pass replaces [`CensusWalk::last`].
    fn step(&mut self, engine: &QueueEngine) {
        match engine.count_states(self.cursor, CENSUS_SLOTS, &mut self.partial) {
            Some(next) => self.cursor = next,
            None => {
                self.last = std::mem::take(&mut self.partial);
                self.cursor = 0;
            }
        }
    }
}

/// Everything the daemon does on one core besides frames and timers (see
/// the module documentation). `S`: the port's statistics.
pub(crate) struct CoreShell<S> {
    index: u8,
    shared: Arc<Shared>,
    app: App,
    clients: CoreClients,
    census: CensusWalk,
    census_at: Instant,
    /// The port's statistics as last shown by the loop.
    port: Option<S>,
    /// The loop's busy time as last shown ([`LoopView::busy`]).
    busy: Duration,
    published: Instant,
    /// When the shutdown gives up waiting; `None` until it starts.
    deadline: Option<Instant>,
    done: bool,
}

impl<S: PortFigures> CoreShell<S> {
    /// The shell of core `index`, its clients fed by `commands`; `t0` is
    /// the engine's start.
    pub(crate) fn new(
        index: u8,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<CoreCommand>,
        t0: Instant,
    ) -> io::Result<CoreShell<S>> {
        Ok(CoreShell {
            index,
            shared,
            app: App::new(index),
            clients: CoreClients::new(u32::from(index), commands)?,
            census: CensusWalk::default(),
            census_at: t0,
            port: None,
            busy: Duration::ZERO,
            published: t0,
            deadline: None,
            done: false,
        })
    }

    /// Opens the `listen:` ports as the admin client.
    pub(crate) fn listen(&mut self, engine: &mut QueueEngine, now: Instant) {
        let ports = self.shared.listen.clone();
        self.app.listen(engine, now, &ports);
    }

    /// Connections the daemon's own app still holds.
    pub(crate) fn connections(&self) -> usize {
        self.app.connections()
    }

    fn publish(&mut self, engine: &QueueEngine) {
        let core = usize::from(self.index);
        let mut snapshot = CoreSnapshot {
            counters: engine.counters().clone(),
            states: self.census.last.states,
            linger_timers_armed: self.census.last.linger_armed,
            timers_armed: engine.timers_armed() as u64,
            reasm: engine.reasm_usage(),
            rsts_paced_waiting: engine.paced_rsts_waiting() as u64,
            rst_paced_wait_max_ms: engine.paced_rst_wait_max_ms(),
            rings: self.clients.stats(),
            loop_busy_ns: u64::try_from(self.busy.as_nanos()).unwrap_or(u64::MAX),
            ..CoreSnapshot::default()
        };
        if let Some(stats) = &self.port {
            stats.publish_into(core, &mut snapshot);
        }
        self.shared.metrics.publish(core, snapshot);
    }

    /// Starts the shutdown once the signal is seen, and says done when it
    /// has finished.
    fn shutdown_step(&mut self, engine: &mut QueueEngine, now: Instant, tx_in_flight: usize) {
        if self.deadline.is_none() && self.shared.signal.load(Ordering::Relaxed) {
            let rule = *self.shared.exit.lock().unwrap_or_else(|e| e.into_inner());
            self.app.shutdown(engine, now, rule.policy);
            self.clients.detach_all(engine, now, rule.policy);
            self.deadline = Some(now + rule.drain_cap);
        }
        let Some(d) = self.deadline else {
            return;
        };
        // RSTs still waiting for a pacing token when the drain time is up
        // leave at once, unpaced: late RSTs beat lost ones.
        if now >= d && engine.paced_rsts_waiting() > 0 {
            let n = engine.release_paced_rsts(now);
            log::warn!(
                "core {}: drain time up, {n} paced RSTs sent without waiting for their tokens",
                self.index
            );
        }
        // Done when every close completed (the exit sweeps too) and its
        // frames have left: the engine's queues (paced RSTs included) are
        // empty and the port has completed every TX descriptor (closing the
        // socket earlier would drop RSTs still in the TX ring).
        if (self.app.pending_closes() == 0
            && engine.pending_jobs() == 0
            && engine.tx_backlog() == 0
            && engine.paced_rsts_waiting() == 0
            && tx_in_flight == 0)
            || now >= d
        {
            self.done = true;
        }
    }
}

impl<S: PortFigures> Hooks<S> for CoreShell<S> {
    fn done(&mut self) -> bool {
        self.done
    }

    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, view: LoopView<S>) {
        // Completions delivered last iteration are published here: one
        // release store and at most one wakeup per client for a burst.
        self.clients.flush();
        self.clients.poll(engine, now);
        if now.saturating_duration_since(self.census_at) >= CENSUS_EVERY {
            self.census_at = now;
            self.census.step(engine);
        }
        if view.stats.is_some() {
            self.port = view.stats;
        }
        self.busy = view.busy;
        if now.saturating_duration_since(self.published) >= METRICS_EVERY {
            self.published = now;
            self.publish(engine);
            for line in self.clients.misbehaviour_reports(now) {
                log::warn!("{line}");
            }
        }
        self.app.step(engine, now);
        self.shutdown_step(engine, now, view.tx_in_flight);
    }

    fn on_completion(&mut self, c: Completion) {
        // The daemon's own app is the admin client; everything else belongs
        // to an attached client's rings (or the ctl jobs).
        if c.client == ADMIN_CLIENT {
            self.app.on_completion(c);
        } else {
            self.clients.deliver(c);
        }
    }

    fn io(&mut self) -> CoreIo<'_> {
        self.clients.io()
    }

    fn before_sleep(&mut self) -> bool {
        self.clients.arm_doorbells()
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.clients.doorbells())
    }

    fn after_sleep(&mut self) {
        self.clients.disarm_doorbells();
    }
}

/// A port a queue's thread opened: the port, its start-up description, and
/// what must stay alive on that thread until the port is gone (a DPDK
/// lcore registration; for AF_XDP the steering program, shared by the
/// queues and detached when the last one lets go).
pub(crate) struct Opened<P, G> {
    /// The port.
    pub(crate) port: P,
    /// What it got (driver, mode, MAC…), for the start-up line.
    pub(crate) info: String,
    /// Dropped after the port.
    pub(crate) guard: G,
}

/// One queue's thread, from pinning to its summary line (`Err`: why it
/// failed). Reports its start-up on `ready` either way. `open` runs on
/// this thread once it is pinned.
pub(crate) fn queue_thread<P, G>(
    plan: QueuePlan,
    shared: Arc<Shared>,
    mut handoff: Option<Handoff>,
    commands: mpsc::Receiver<CoreCommand>,
    ready: mpsc::Sender<Ready>,
    open: impl FnOnce() -> Result<Opened<P, G>, String>,
) -> Result<String, String>
where
    P: Port,
    P::Stats: PortFigures,
{
    let index = plan.index;
    let fail = |e: String| {
        let _ = ready.send((index, Err(e.clone())));
        shared.signal.store(true, Ordering::Relaxed);
        Err(e)
    };
    if let Err(e) = pin::pin_current(plan.cpu) {
        return fail(format!("queue {}: core {}: {e}", plan.queue, plan.cpu));
    }
    let t0 = Instant::now();
    let mut shell = match CoreShell::new(index, shared.clone(), commands, t0) {
        Ok(shell) => shell,
        Err(e) => return fail(format!("queue {}: the doorbells' epoll: {e}", plan.queue)),
    };
    let Opened {
        mut port,
        info,
        guard,
    } = match open() {
        Ok(o) => o,
        Err(e) => return fail(format!("queue {}: {e}", plan.queue)),
    };
    let _ = ready.send((
        index,
        Ok(format!("queue {} on core {}: {info}", plan.queue, plan.cpu)),
    ));
    let mut engine = QueueEngine::new(plan.engine, t0);
    shell.listen(&mut engine, t0);
    let result = core_loop::run(
        &mut port,
        &mut engine,
        shared.idle,
        handoff.as_mut(),
        &mut shell,
    );
    let c = engine.counters();
    let stats = port.stats().map(|s| format!("{s:?}")).unwrap_or_default();
    let summary = format!(
        "queue {}: {} connection(s) left, {} RST sent for aborts, handoff {:?}, port {stats}",
        plan.queue,
        shell.connections(),
        c.rst_abort,
        handoff.as_ref().map(Handoff::counters)
    );
    // The port goes first, then what had to outlive it.
    drop(port);
    drop(guard);
    match result {
        Ok(()) => Ok(summary),
        Err(e) => {
            shared.signal.store(true, Ordering::Relaxed);
            Err(format!("queue {}: {e}", plan.queue))
        }
    }
}
