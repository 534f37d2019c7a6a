//! The core side of `lingerd ctl`: the listings and kills one dataplane
//! core is running for ctl sessions.
//!
//! [`CtlJobs`] lives inside the core's [`crate::cores::CoreClients`] and
//! runs in its loop. A listing walks the engine's table in bounded slices
//! ([`LIST_SLOTS`] slots and [`LIST_ROWS`] rows per job per loop
//! iteration, through `QueueEngine::list_connections`), so millions of
//! connections never stall the core. A kill is one `CloseMatching` request
//! as [`CTL_CLIENT`] whose `user_data` is the job id: the engine paces it
//! and runs it in slices. Its progress (each loop iteration, from
//! `QueueEngine::match_progress`) and its end (its completion, through
//! [`CtlJobs::deliver`]) go into the job's shared record
//! ([`super::jobs::KillJob`]), where sessions read them, so a kill is
//! tracked whether or not the session that started it is still there. A
//! cancel ([`CtlCommand::Cancel`]) stops the engine's job
//! (`QueueEngine::cancel_match`); its completion then says so.
//!
//! Listing replies go over a bounded channel per session and are only ever
//! `try_send`: a full channel (a slow `lingerd ctl`) pauses that listing
//! where it is (its cursor kept, one batch held) instead of blocking the
//! core or buffering without bound. A session that went away (its receiver
//! dropped) ends its listing. It may not touch sockets (the session's,
//! [`super::server`]) nor make protocol decisions (the engine's).

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{
    CTL_CLIENT, CloseMode, Completion, ConnInfo, Detail, Filter, Request,
};

use super::jobs::{CoreEnd, KillJob};

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
        /// The job: its id is the request's `user_data`; this core's
        /// progress and end go into it.
        job: Arc<KillJob>,
        /// Which connections.
        filter: Filter,
        /// How.
        mode: CloseMode,
        /// Closes per second on this core; 0 = unpaced.
        pace_per_s: u32,
    },
    /// Stop kill `job` on this core (nothing if it is not running here).
    Cancel {
        /// The job id.
        job: u64,
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

/// The ctl jobs of one core.
#[derive(Debug)]
pub struct CtlJobs {
    core: u32,
    lists: Vec<ListJob>,
    kills: Vec<Arc<KillJob>>,
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
            } => {
                let id = job.id;
                if self.kills.iter().any(|k| k.id == id) {
                    // The server never reuses an id; refuse rather than
                    // confuse two jobs' completions.
                    job.finish(self.core as usize, CoreEnd::Refused, 0);
                    return;
                }
                self.kills.push(job);
                engine.handle_request(
                    now,
                    CTL_CLIENT,
                    id,
                    Request::CloseMatching {
                        filter,
                        mode,
                        pace_per_s,
                    },
                );
            }
            CtlCommand::Cancel { job } => {
                if self.kills.iter().any(|k| k.id == job) {
                    // Its completion (OPERATION_ABORTED) ends it here, in
                    // `deliver`; none if it had already finished.
                    let _ = engine.cancel_match(CTL_CLIENT, job);
                }
            }
        }
    }

    /// One loop iteration: a bounded slice of every listing, another try
    /// for listing batches that did not fit before, and each kill's
    /// progress into its record.
    pub fn poll(&mut self, engine: &QueueEngine, now: Instant) {
        for k in &self.kills {
            if let Some(p) = engine.match_progress(CTL_CLIENT, k.id) {
                let permille = u64::from(p.walked) * 1000 / u64::from(p.slots.max(1));
                k.report(self.core as usize, p.closed, permille.min(1000) as u32);
            }
        }
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
    }

    /// A completion of [`CTL_CLIENT`]: a kill's progress or its end, into
    /// the job's record.
    pub fn deliver(&mut self, c: Completion) {
        let Some(i) = self.kills.iter().position(|k| k.id == c.user_data) else {
            return; // not a job of this core's
        };
        let closed = match c.detail {
            Detail::Count(n) => n,
            _ => 0,
        };
        let core = self.core as usize;
        if c.is_event {
            self.kills[i].report_closed(core, closed);
            return;
        }
        let end = match c.result {
            Errno::Ok => CoreEnd::Done,
            Errno::OperationAborted => CoreEnd::Cancelled,
            _ => CoreEnd::Refused,
        };
        self.kills.swap_remove(i).finish(core, end, closed);
    }
}
