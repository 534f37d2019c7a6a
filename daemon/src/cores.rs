//! The clients side of one dataplane core: every attached client's rings on
//! this core, fed by attach/detach commands from the control thread.
//!
//! [`CoreClients`] owns, per client, the [`ClientRings`] of this core, the
//! wake eventfd to signal after publishing completions, and the client's
//! doorbell in this core's epoll: before the core sleeps it sets
//! NEED_WAKEUP on every request ring and the loop's wait watches the epoll,
//! so a client's next request wakes it at once. Each loop
//! iteration it applies pending commands, takes a bounded number of
//! requests from each client into the engine, and routes the engine's
//! completions back to their client's ring (dropping those of clients that
//! are gone). A client that goes away gets the exit policy applied to its
//! connections on this core. A reload reaches the core's engine through
//! the same channel ([`CoreCommand::Retune`]), so it applies between two
//! loop iterations, in order with attaches and detaches. The operator's
//! `lingerd ctl` jobs (listings, kills) run here too, in [`CtlJobs`], and
//! the engine's completions for [`CTL_CLIENT`] go to them; so does the
//! core's end of a `lingerd ctl capture` ([`CoreCommand::Capture`]), which
//! the shell lends the loop with the rings ([`CoreClients::io`]). It may not make
//! protocol decisions (the engine's) nor touch the control or ctl sockets
//! (`attach`'s, `ctl`'s).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use lingerd_abi::layout::Layout;
use lingerd_abi::sys::SharedRegion;
use lingerd_dataplane::capture::CaptureTap;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{CTL_CLIENT, ClientExitPolicy, ClientId, Completion, Detail};
use lingerd_dataplane::engine::config::Tunables;
use lingerd_dataplane::port::CoreIo;
use lingerd_dataplane::rings::{ClientRings, RingStats};
use lingerd_dataplane::shared::RxSink;
use rustix::event::{Timespec, epoll};

use crate::attach::EventFd;
use crate::ctl::core::{CtlCommand, CtlJobs};

/// Requests taken from one client per loop iteration, so that one busy
/// client cannot starve the others or the packets.
pub const REQUESTS_PER_CLIENT: u32 = 256;

/// What the control thread tells a core.
#[derive(Debug)]
pub enum CoreCommand {
    /// A client attached: build its rings on this core.
    Attach {
        /// The client.
        client: ClientId,
        /// Who it is, for the misbehaviour report.
        peer: Peer,
        /// Its shared region.
        region: Arc<SharedRegion>,
        /// The region's layout.
        layout: Layout,
        /// Signalled after publishing completions the client waits for.
        wake: Arc<EventFd>,
        /// Signalled by the client after publishing requests to a ring
        /// that asked for it (one per client, shared by every core).
        doorbell: Arc<EventFd>,
    },
    /// A client went away: drop its rings, apply `policy` to its connections.
    Detach {
        /// The client.
        client: ClientId,
        /// `close.on_client_exit`.
        policy: ClientExitPolicy,
    },
    /// A reload: the engine takes these values
    /// ([`QueueEngine::retune`]), then the core sends its index on
    /// `applied` (the control thread waits for every core before it tells
    /// systemd the reload is done).
    Retune {
        /// The new values.
        tunables: Tunables,
        /// Told once they are in force.
        applied: Sender<u32>,
    },
    /// A `lingerd ctl` session's listing or kill.
    Ctl(CtlCommand),
    /// A `lingerd ctl capture` starts on this core: the loop offers `tap`
    /// every frame until [`CoreCommand::CaptureEnd`] with the same `id`
    /// (a tap already installed is finished first). The core sends its
    /// index on `installed` once the tap is in place.
    Capture {
        /// The capture's id.
        id: u64,
        /// The core's end of it.
        tap: Box<CaptureTap>,
        /// Told when the tap is installed.
        installed: Sender<u32>,
    },
    /// The capture `id` ends here: its tap hands over its last batch and
    /// final counts ([`CaptureTap::finish`]).
    CaptureEnd {
        /// The capture's id.
        id: u64,
    },
}

/// A client process as `SO_PEERCRED` named it at attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its pid.
    pub pid: i32,
    /// Its uid.
    pub uid: u32,
}

/// At most one report line per client per this interval, so that a
/// hostile client cannot flood the journal.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

struct Attached {
    rings: ClientRings,
    wake: Arc<EventFd>,
    /// In this core's [`Doorbells`] for as long as the client is attached.
    doorbell: Arc<EventFd>,
    peer: Peer,
    /// The counters as of the last report.
    reported: RingStats,
    /// When the last report was logged.
    reported_at: Option<Instant>,
}

/// The attached clients of one core, as the receive sink the loop writes
/// payload through.
struct Attachments(Vec<Attached>);

impl std::ops::Deref for Attachments {
    type Target = Vec<Attached>;
    fn deref(&self) -> &Vec<Attached> {
        &self.0
    }
}

impl std::ops::DerefMut for Attachments {
    fn deref_mut(&mut self) -> &mut Vec<Attached> {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a Attachments {
    type Item = &'a Attached;
    type IntoIter = std::slice::Iter<'a, Attached>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a mut Attachments {
    type Item = &'a mut Attached;
    type IntoIter = std::slice::IterMut<'a, Attached>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

/// One epoll, edge-triggered, over the doorbells of a core's clients: it
/// becomes readable when any of them rings.
///
/// The eventfds' counters are never read. A doorbell is shared by every
/// core the client uses; each write is an edge that every core's epoll
/// sees, while reading the counter on one core could hide that edge from
/// another that has not looked yet. Waking consumes only this epoll's own
/// ready list ([`consume`](Doorbells::consume)).
struct Doorbells {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
}

impl Doorbells {
    fn new() -> io::Result<Doorbells> {
        Ok(Doorbells {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(64),
        })
    }

    fn add(&self, doorbell: &EventFd, client: ClientId) -> io::Result<()> {
        let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
        let data = epoll::EventData::new_u64(u64::from(client.0));
        Ok(epoll::add(&self.epoll, doorbell, data, flags)?)
    }

    fn remove(&self, doorbell: &EventFd) {
        // Only fails if it was never added (the attach's add failed).
        let _ = epoll::delete(&self.epoll, doorbell);
    }

    /// Empties the ready list, so the epoll is readable again only when a
    /// doorbell rings anew.
    fn consume(&mut self) {
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            self.events.clear();
            let full = match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut self.events),
                Some(&now),
            ) {
                Ok(n) => n == self.events.capacity(),
                Err(_) => false,
            };
            if !full {
                break;
            }
        }
    }
}

/// The attached clients of one core.
pub struct CoreClients {
    core: u32,
    clients: Attachments,
    /// Their doorbells, watched while the core sleeps.
    doorbells: Doorbells,
    commands: Receiver<CoreCommand>,
    /// Counters of rings that were dropped, kept so totals never go down.
    retired: RingStats,
    /// Completions for clients no longer attached (dropped, counted).
    orphaned: u64,
    /// `lingerd ctl` jobs.
    ctl: CtlJobs,
    /// The `lingerd ctl capture` running here, with its id.
    capture: Option<(u64, CaptureTap)>,
}

impl std::fmt::Debug for CoreClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreClients")
            .field("core", &self.core)
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl CoreClients {
    /// The clients of core `core` (its index in the region's ring list),
    /// commanded through `commands`. Fails only if the doorbells' epoll
    /// cannot be made.
    pub fn new(core: u32, commands: Receiver<CoreCommand>) -> io::Result<CoreClients> {
        Ok(CoreClients {
            core,
            clients: Attachments(Vec::new()),
            doorbells: Doorbells::new()?,
            commands,
            retired: RingStats::default(),
            orphaned: 0,
            ctl: CtlJobs::new(core),
            capture: None,
        })
    }

    /// The core is about to sleep: asks every client to ring its doorbell
    /// with its next request, then looks once more. False: requests came
    /// in meanwhile (and can be answered), so the core must not sleep.
    pub fn arm_doorbells(&mut self) -> bool {
        let mut idle = true;
        for c in &mut self.clients {
            idle &= !c.rings.arm_doorbell();
        }
        idle
    }

    /// What the core's wait watches besides frames: readable when a client
    /// rang its doorbell.
    pub fn doorbells(&self) -> BorrowedFd<'_> {
        self.doorbells.epoll.as_fd()
    }

    /// The core is awake: clients need not ring; the doorbells' ready list
    /// is emptied.
    pub fn disarm_doorbells(&mut self) {
        for c in &self.clients {
            c.rings.disarm_doorbell();
        }
        self.doorbells.consume();
    }

    /// What the loop lends for a burst: the clients' receive memory, and
    /// the capture running here, if any.
    pub fn io(&mut self) -> CoreIo<'_> {
        CoreIo {
            sink: Some(&mut self.clients),
            capture: self.capture.as_mut().map(|(_, tap)| tap),
        }
    }

    /// Clients attached on this core.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is attached.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Ring counters summed over current and past clients.
    pub fn stats(&self) -> RingStats {
        let mut s = self.retired;
        for c in &self.clients {
            s.add(c.rings.stats());
        }
        s
    }

    /// Completions dropped because their client had gone.
    pub fn orphaned_completions(&self) -> u64 {
        self.orphaned
    }

    /// One iteration's client work before the engine's timers: commands,
    /// then up to [`REQUESTS_PER_CLIENT`] requests from each client, then
    /// one bounded slice of each `lingerd ctl` listing. It
    /// does not touch the engine's completions: the shell routes those
    /// ([`deliver`](Self::deliver) for clients' ones, the daemon's own to
    /// its app); [`drain`](Self::drain) is for a loop with no other user.
    pub fn poll(&mut self, engine: &mut QueueEngine, now: Instant) {
        // Empty and Disconnected both mean "nothing more now".
        while let Ok(cmd) = self.commands.try_recv() {
            self.apply(cmd, engine, now);
        }
        for c in &mut self.clients {
            c.rings.poll_requests(engine, now, REQUESTS_PER_CLIENT);
        }
        self.ctl.poll(engine, now);
    }

    /// One line for the log per client that sent malformed entries, made
    /// requests on handles it does not own or wrote out-of-range ring
    /// indexes since its last report: pid, uid, client id, what and how
    /// many. At most one line per client per [`REPORT_EVERY`]; what happens
    /// in between is in the next line's counts. The shell calls it on its
    /// publishing cadence and logs the lines.
    pub fn misbehaviour_reports(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for c in &mut self.clients {
            let s = c.rings.stats();
            let (invalid, refused, hostile) = (
                s.invalid - c.reported.invalid,
                s.refused - c.reported.refused,
                s.hostile_indexes - c.reported.hostile_indexes,
            );
            if invalid + refused + hostile == 0
                || c.reported_at.is_some_and(|t| now < t + REPORT_EVERY)
            {
                continue;
            }
            lines.push(format!(
                "client {} (pid {}, uid {}) on queue {}: {invalid} malformed request entries, \
                 {refused} requests on handles it does not own, {hostile} out-of-range ring \
                 indexes since its last report (totals {}, {}, {})",
                c.rings.client().0,
                c.peer.pid,
                c.peer.uid,
                self.core,
                s.invalid,
                s.refused,
                s.hostile_indexes
            ));
            c.reported = s;
            c.reported_at = Some(now);
        }
        lines
    }

    /// `lingerd ctl` jobs running on this core.
    pub fn ctl_jobs(&self) -> usize {
        self.ctl.len()
    }

    /// Routes every pending engine completion to its client's ring and
    /// publishes, waking clients that sleep (for a loop in which attached
    /// clients are the engine's only users).
    pub fn drain(&mut self, engine: &mut QueueEngine) {
        while let Some(c) = engine.poll_completion() {
            self.deliver(c);
        }
        self.flush();
    }

    /// Queues one engine completion for its client (dropped if gone), or
    /// hands it to the ctl job it belongs to.
    pub fn deliver(&mut self, c: Completion) {
        if c.client == CTL_CLIENT {
            return self.ctl.deliver(c);
        }
        match self
            .clients
            .iter_mut()
            .find(|a| a.rings.client() == c.client)
        {
            Some(a) => a.rings.deliver(c),
            None => self.orphaned += 1,
        }
    }

    /// Publishes queued completions and signals clients that asked for it.
    pub fn flush(&mut self) {
        for c in &mut self.clients {
            if c.rings.flush() {
                let _ = c.wake.signal();
            }
        }
    }

    /// Every attached client goes away at once (the daemon stops): each
    /// one's connections get `policy`, their rings are dropped.
    pub fn detach_all(&mut self, engine: &mut QueueEngine, now: Instant, policy: ClientExitPolicy) {
        for gone in std::mem::take(&mut self.clients.0) {
            let client = gone.rings.client();
            self.doorbells.remove(&gone.doorbell);
            self.retired.add(gone.rings.stats());
            engine.handle_client_exit(now, client, policy);
        }
    }

    fn apply(&mut self, cmd: CoreCommand, engine: &mut QueueEngine, now: Instant) {
        match cmd {
            CoreCommand::Attach {
                client,
                peer,
                region,
                layout,
                wake,
                doorbell,
            } => {
                match ClientRings::new(client, self.core, region, layout) {
                    Ok(rings) => {
                        if let Err(e) = self.doorbells.add(&doorbell, client) {
                            // Its requests then wait for the idle cap.
                            eprintln!(
                                "lingerd: core {}: cannot watch client {client:?}'s doorbell: {e}",
                                self.core
                            );
                        }
                        self.clients.push(Attached {
                            rings,
                            wake,
                            doorbell,
                            peer,
                            reported: RingStats::default(),
                            reported_at: None,
                        });
                    }
                    Err(_) => {
                        // The attach path built the region for this layout,
                        // so this is a bug, not a client's fault: say so.
                        eprintln!(
                            "lingerd: core {}: cannot place client {client:?}'s rings",
                            self.core
                        );
                    }
                }
            }
            CoreCommand::Detach { client, policy } => {
                if let Some(i) = self.clients.iter().position(|a| a.rings.client() == client) {
                    let gone = self.clients.swap_remove(i);
                    self.doorbells.remove(&gone.doorbell);
                    self.retired.add(gone.rings.stats());
                }
                engine.handle_client_exit(now, client, policy);
            }
            CoreCommand::Retune { tunables, applied } => {
                engine.retune(tunables);
                // The control thread may have stopped waiting: nothing to do.
                let _ = applied.send(self.core);
            }
            CoreCommand::Ctl(cmd) => self.ctl.handle_command(cmd, engine, now),
            CoreCommand::Capture { id, tap, installed } => {
                if let Some((_, old)) = self.capture.replace((id, *tap)) {
                    old.finish();
                }
                // The session may have given up waiting: nothing to do.
                let _ = installed.send(self.core);
            }
            CoreCommand::CaptureEnd { id } => {
                if self
                    .capture
                    .as_ref()
                    .is_some_and(|(running, _)| *running == id)
                    && let Some((_, tap)) = self.capture.take()
                {
                    tap.finish();
                }
            }
        }
    }
}

/// Received payload goes straight into the RX chunk of the client that
/// owns the connection (one copy, no allocation); the engine keeps a copy
/// only when that client has no free chunk.
impl RxSink for Attachments {
    fn place(&mut self, client: ClientId, data: &[u8]) -> Option<Detail> {
        self.iter_mut()
            .find(|a| a.rings.client() == client)?
            .rings
            .place(client, data)
    }
}

/// As the attached clients' sink (for a loop that lends no capture).
impl RxSink for CoreClients {
    fn place(&mut self, client: ClientId, data: &[u8]) -> Option<Detail> {
        self.clients.place(client, data)
    }
}
