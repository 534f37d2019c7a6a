//! The core side of `lingerd ctl`: the listings and kills one dataplane
//! core is running for ctl sessions.
//!
//! [`CtlJobs`] lives inside the core's [`crate::cores::CoreClients`] and
//! runs in its loop. A listing walks the engine's table in bounded slices
//! ([`LIST_SLOTS`] slots and [`LIST_ROWS`] rows per job per loop
//! iteration, through `QueueEngine::list_connections`), so millions of
//! connections never stall the core. A kill is one `CloseMatching` request
//! as [`CTL_CLIENT`]: the engine paces it and runs it in slices; its
//! progress events and its completion come back here
//! ([`CtlJobs::deliver`]) and go on to the session.
//!
//! Replies go over a bounded channel per session and are only ever
//! `try_send`: a full channel (a slow `lingerd ctl`) pauses that listing
//! where it is (its cursor kept, one batch held) instead of blocking the
//! core or buffering without bound; a progress report that does not fit is
//! dropped (the next one supersedes it), a final report is held and retried.
//! A session that went away (its receiver dropped) ends its listing; a kill
//! still runs to its end in the engine, as `close_matching` always does.
//! It may not touch sockets (the session's, [`super::server`]) nor make
//! protocol decisions (the engine's).

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{
    CTL_CLIENT, CloseMode, Completion, ConnInfo, Detail, Filter, Request,
};

/// Table slots a listing examines per loop iteration.
pub const LIST_SLOTS: u32 = 4096;
/// Connections a listing reports per loop iteration (one batch).
pub const LIST_ROWS: usize = 256;

/// What a ctl session asks of one core.
#[derive(Debug)]
pub enum CtlCommand {
    /// List the connections matching `filter`.
    List {
        /// The session's job id.
        job: u64,
        /// Which connections.
        filter: Filter,
        /// Where the rows go.
        reply: SyncSender<CoreReply>,
    },
    /// `close_matching(filter, mode, pace)` as the operator.
    Kill {
        /// The session's job id (the request's `user_data`).
        job: u64,
        /// Which connections.
        filter: Filter,
        /// How.
        mode: CloseMode,
        /// Closes per second on this core; 0 = unpaced.
        pace_per_s: u32,
        /// Where progress and the count go.
        reply: SyncSender<CoreReply>,
    },
}

/// What a core tells a ctl session.
#[derive(Debug, PartialEq, Eq)]
pub enum CoreReply {
    /// Some matching connections (at most [`LIST_ROWS`]).
    Rows {
        /// The core (ring index).
        core: u32,
        /// The connections.
        rows: Vec<ConnInfo>,
    },
    /// This core's table has been walked.
    ListEnd {
        /// The core.
        core: u32,
    },
    /// A kill's closes so far on this core.
    Progress {
        /// The core.
        core: u32,
        /// Closes so far.
        closed: u64,
    },
    /// A kill completed on this core.
    Killed {
        /// The core.
        core: u32,
        /// OK, or why the engine refused it (EINVAL).
        result: Errno,
        /// Closes.
        closed: u64,
    },
}

#[derive(Debug)]
struct ListJob {
    filter: Filter,
    cursor: u32,
    reply: SyncSender<CoreReply>,
    /// A batch the channel had no room for.
    held: Option<CoreReply>,
    /// The walk is over; only `held` (the end, or the last rows) remains.
    walked: bool,
}

#[derive(Debug)]
struct KillJob {
    job: u64,
    reply: SyncSender<CoreReply>,
    /// The final report, when the channel had no room for it.
    held: Option<CoreReply>,
}

/// The ctl jobs of one core.
#[derive(Debug)]
pub struct CtlJobs {
    core: u32,
    lists: Vec<ListJob>,
    kills: Vec<KillJob>,
}

/// Sends or gives the message back; `Err(None)` when the receiver is gone.
fn offer(reply: &SyncSender<CoreReply>, msg: CoreReply) -> Result<(), Option<CoreReply>> {
    match reply.try_send(msg) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(m)) => Err(Some(m)),
        Err(TrySendError::Disconnected(_)) => Err(None),
    }
}

impl CtlJobs {
    /// No jobs, on core `core` (its ring index).
    pub fn new(core: u32) -> CtlJobs {
        CtlJobs {
            core,
            lists: Vec::new(),
            kills: Vec::new(),
        }
    }

    /// Jobs running (listings and kills not yet reported).
    pub fn len(&self) -> usize {
        self.lists.len() + self.kills.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts what a session asked for.
    pub fn handle_command(&mut self, cmd: CtlCommand, engine: &mut QueueEngine, now: Instant) {
        match cmd {
            CtlCommand::List { filter, reply, .. } => self.lists.push(ListJob {
                filter,
                cursor: 0,
                reply,
                held: None,
                walked: false,
            }),
            CtlCommand::Kill {
                job,
                filter,
                mode,
                pace_per_s,
                reply,
            } => {
                self.kills.push(KillJob {
                    job,
                    reply,
                    held: None,
                });
                engine.handle_request(
                    now,
                    CTL_CLIENT,
                    job,
                    Request::CloseMatching {
                        filter,
                        mode,
                        pace_per_s,
                    },
                );
            }
        }
    }

    /// One loop iteration: a bounded slice of every listing, and another
    /// try for reports that did not fit before.
    pub fn poll(&mut self, engine: &QueueEngine, now: Instant) {
        let core = self.core;
        self.lists.retain_mut(|j| {
            if let Some(m) = j.held.take() {
                match offer(&j.reply, m) {
                    Ok(()) => {}
                    Err(Some(m)) => {
                        j.held = Some(m);
                        return true;
                    }
                    Err(None) => return false,
                }
            }
            if j.walked {
                return false;
            }
            let mut rows = Vec::new();
            let next =
                engine.list_connections(now, &j.filter, j.cursor, LIST_ROWS, LIST_SLOTS, &mut rows);
            let msg = match next {
                Some(c) => {
                    j.cursor = c;
                    if rows.is_empty() {
                        return true;
                    }
                    CoreReply::Rows { core, rows }
                }
                None if rows.is_empty() => {
                    j.walked = true;
                    CoreReply::ListEnd { core }
                }
                None => {
                    // The last rows now; from a cursor past the end, the
                    // next iteration finds nothing and sends the end.
                    j.cursor = u32::MAX;
                    CoreReply::Rows { core, rows }
                }
            };
            match offer(&j.reply, msg) {
                Ok(()) => !j.walked,
                Err(Some(m)) => {
                    j.held = Some(m);
                    true
                }
                Err(None) => false,
            }
        });
        self.kills.retain_mut(|k| match k.held.take() {
            None => true,
            Some(m) => match offer(&k.reply, m) {
                Err(Some(m)) => {
                    k.held = Some(m);
                    true
                }
                // Sent (the kill is reported) or nobody to tell.
                Ok(()) | Err(None) => false,
            },
        });
    }

    /// A completion of [`CTL_CLIENT`]: a kill's progress or its end.
    pub fn deliver(&mut self, c: Completion) {
        let Some(i) = self.kills.iter().position(|k| k.job == c.user_data) else {
            return; // its session is gone and so is the job
        };
        let closed = match c.detail {
            Detail::Count(n) => n,
            _ => 0,
        };
        let core = self.core;
        if c.is_event {
            // Progress is advisory: dropped when there is no room.
            if let Err(None) = offer(&self.kills[i].reply, CoreReply::Progress { core, closed }) {
                self.kills.swap_remove(i);
            }
            return;
        }
        let done = CoreReply::Killed {
            core,
            result: c.result,
            closed,
        };
        match offer(&self.kills[i].reply, done) {
            Err(Some(m)) => self.kills[i].held = Some(m),
            Ok(()) | Err(None) => {
                self.kills.swap_remove(i);
            }
        }
    }
}
