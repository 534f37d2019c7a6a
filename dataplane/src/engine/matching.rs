//! Bulk teardown: `close_matching(filter, mode, pace)` (docs/close-semantics.md#bulk-close).
//!
//! It owns the jobs: a resumable cursor over the table's slots, a token
//! bucket for pacing, and the running count. Each `handle_timeout` runs a
//! bounded slice of every job, so packet processing on the core is never
//! starved. A slot is visited once per job, and a connection the job closes
//! is marked closed by the client, so no close is lost or done twice.
//! Connections created behind the cursor after the job started are not
//! visited (the job closes what existed when it passed). A job can be
//! stopped midway ([`QueueEngine::cancel_match`]): what it closed stays
//! closed, the slots it has not reached are left alone.

use lingerd_abi::Errno;

use super::QueueEngine;
use super::api::{
    ClientExitPolicy, ClientId, CloseMode, Completion, Detail, Filter, MatchProgress,
};
use crate::table::{FourTuple, Handle};
use crate::tcp::close;
use crate::tcp::state::State;
use crate::tcp::tcb::Tcb;

/// Slots examined per job per slice.
const SLOTS_PER_SLICE: u32 = 16_384;
/// Closes per job per slice when unpaced.
const CLOSES_PER_SLICE: u64 = 4_096;
/// How far ahead of the cursor a job's walk asks for a slot's line.
const SLOT_AHEAD: u32 = 32;
/// How far ahead of the cursor it asks for the index bucket a close of
/// that slot will delete from (the slot's key, read for the hash, was
/// asked for `SLOT_AHEAD - BUCKET_AHEAD` slots earlier).
const BUCKET_AHEAD: u32 = 16;

/// What a job does to each connection it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobKind {
    /// `close_matching` with this mode; completes with the count.
    Match(CloseMode),
    /// A client went away: apply the policy to everything it owned,
    /// listeners included; nobody is told.
    ClientExit(ClientExitPolicy),
}

/// One running `close_matching` or client-exit sweep.
#[derive(Debug)]
pub(super) struct MatchJob {
    client: ClientId,
    user_data: u64,
    filter: Filter,
    kind: JobKind,
    pace_per_s: u32,
    cursor: u32,
    count: u64,
    /// Tokens in thousandths of a close (pace × elapsed ms).
    tokens_milli: u64,
    last_refill_ms: u64,
    next_run_ms: u64,
}

impl MatchJob {
    /// When the job can next make progress.
    pub(super) fn next_run_ms(&self) -> u64 {
        self.next_run_ms
    }

    /// Whether this is the `close_matching` `client` started with `user_data`.
    fn is_match(&self, client: ClientId, user_data: u64) -> bool {
        matches!(self.kind, JobKind::Match(_))
            && self.client == client
            && self.user_data == user_data
    }

    fn matches(&self, tuple: &FourTuple, tcb: &Tcb, now_ms: u64) -> bool {
        let f = &self.filter;
        if let JobKind::ClientExit(_) = self.kind {
            // Everything the client still holds, dead handles and listeners
            // included; connections it already closed run their course.
            return tcb.owner == self.client
                && !tcb.flags.contains(crate::tcp::tcb::TcbFlags::ORPHAN);
        }
        if tcb.state == State::Listen || tcb.closed_by_client() || tcb.state == State::Closed {
            return false;
        }
        if !self.client.is_admin() && tcb.owner != self.client {
            return false;
        }
        f.matches(tuple, tcb.state, now_ms.saturating_sub(tcb.last_active))
    }
}

impl QueueEngine {
    pub(super) fn start_match(
        &mut self,
        now_ms: u64,
        client: ClientId,
        user_data: u64,
        filter: Filter,
        mode: CloseMode,
        pace_per_s: u32,
    ) {
        let bad_mode = matches!(
            mode,
            CloseMode::Linger { ms } | CloseMode::Deadline { ms }
                if ms > crate::tcp::linger::MAX_LINGER_MS
        );
        if bad_mode {
            return self.complete(
                client,
                user_data,
                Handle::from_raw(0),
                Errno::Inval,
                Detail::None,
            );
        }
        self.push_job(
            client,
            user_data,
            filter,
            JobKind::Match(mode),
            pace_per_s,
            now_ms,
        );
    }

    /// The `close_matching` that `client` started with `user_data`, if it is
    /// still running: its closes so far and how far it walked the table.
    pub fn match_progress(&self, client: ClientId, user_data: u64) -> Option<MatchProgress> {
        let job = self.find_match(client, user_data)?;
        Some(MatchProgress {
            closed: job.count,
            walked: job.cursor,
            slots: self.table.slots_in_use(),
        })
    }

    /// Stops the `close_matching` that `client` started with `user_data`
    /// (docs/close-semantics.md#bulk-close): connections it already closed
    /// stay closed (their FINs, deadlines and queued RSTs run their
    /// course), those it has not reached stay open. Its completion is
    /// posted now: OPERATION_ABORTED with the count so far. Returns that
    /// count, or `None` when no such job is running (it finished, or never
    /// started): then nothing is posted.
    pub fn cancel_match(&mut self, client: ClientId, user_data: u64) -> Option<u64> {
        let i = self
            .jobs
            .iter()
            .position(|j| j.is_match(client, user_data))?;
        let job = self.jobs.remove(i)?;
        self.completions.push_back(Completion {
            client,
            user_data,
            handle: Handle::from_raw(0),
            result: Errno::OperationAborted,
            detail: Detail::Count(job.count),
            is_event: false,
        });
        Some(job.count)
    }

    fn find_match(&self, client: ClientId, user_data: u64) -> Option<&MatchJob> {
        self.jobs.iter().find(|j| j.is_match(client, user_data))
    }

    /// A client went away (its control socket hung up): every connection and
    /// listener it holds gets `policy` (docs/close-semantics.md#client-exit), in bounded
    /// slices like `close_matching`. No completion is posted: there is no one
    /// to receive it, and the rings layer drops anything still addressed to
    /// the client.
    pub fn handle_client_exit(
        &mut self,
        now: std::time::Instant,
        client: ClientId,
        policy: ClientExitPolicy,
    ) {
        let now_ms = self.enter(now);
        self.push_job(
            client,
            0,
            Filter::default(),
            JobKind::ClientExit(policy),
            0,
            now_ms,
        );
    }

    fn push_job(
        &mut self,
        client: ClientId,
        user_data: u64,
        filter: Filter,
        kind: JobKind,
        pace_per_s: u32,
        now_ms: u64,
    ) {
        self.jobs.push_back(MatchJob {
            client,
            user_data,
            filter,
            kind,
            pace_per_s,
            cursor: 0,
            count: 0,
            tokens_milli: 0,
            last_refill_ms: now_ms,
            next_run_ms: now_ms,
        });
    }

    /// Runs one bounded slice of every job that can make progress.
    pub(super) fn run_jobs(&mut self, now_ms: u64) {
        for _ in 0..self.jobs.len() {
            let Some(mut job) = self.jobs.pop_front() else {
                break;
            };
            if job.next_run_ms > now_ms {
                self.jobs.push_back(job);
                continue;
            }
            if self.run_slice(&mut job, now_ms) {
                if let JobKind::ClientExit(_) = job.kind {
                    continue;
                }
                self.completions.push_back(Completion {
                    client: job.client,
                    user_data: job.user_data,
                    handle: Handle::from_raw(0),
                    result: Errno::Ok,
                    detail: Detail::Count(job.count),
                    is_event: false,
                });
            } else {
                self.jobs.push_back(job);
            }
        }
    }

    /// One slice; returns true when the job has walked the whole table.
    fn run_slice(&mut self, job: &mut MatchJob, now_ms: u64) -> bool {
        let allowance = if job.pace_per_s == 0 {
            CLOSES_PER_SLICE
        } else {
            let elapsed = now_ms.saturating_sub(job.last_refill_ms);
            job.last_refill_ms = now_ms;
            // Burst at most 10 ms worth of closes (at least one).
            let cap = (u64::from(job.pace_per_s) * 10).max(1000);
            job.tokens_milli = job
                .tokens_milli
                .saturating_add(elapsed.saturating_mul(u64::from(job.pace_per_s)))
                .min(cap);
            (job.tokens_milli / 1000).min(CLOSES_PER_SLICE)
        };
        let before = job.count;
        let end = self.table.slots_in_use();
        let stop = job.cursor.saturating_add(SLOTS_PER_SLICE).min(end);
        let mut closed = 0u64;
        while job.cursor < stop && closed < allowance {
            let slot = job.cursor;
            job.cursor += 1;
            self.table.prefetch_slot_at(slot.saturating_add(SLOT_AHEAD));
            self.table
                .prefetch_remove_at(slot.saturating_add(BUCKET_AHEAD));
            let Some(handle) = self.table.handle_at(slot) else {
                continue;
            };
            let (Some(tuple), Some(tcb)) = (self.table.tuple(handle), self.table.get(handle))
            else {
                continue;
            };
            if !job.matches(&tuple, tcb, now_ms) {
                continue;
            }
            let owner = tcb.owner;
            let is_listener = tcb.state == State::Listen;
            let kind = job.kind;
            let d = self.with_conn(handle, now_ms, |tcb, cx| match kind {
                JobKind::Match(mode) => {
                    if owner != job.client {
                        // Someone else's connection (admin kill): tell its
                        // owner, as `ss -K` does with ECONNABORTED.
                        cx.event(tcb, Errno::ConnAborted, Detail::Reset);
                    }
                    close::close_for_match(tcb, cx, mode)
                }
                JobKind::ClientExit(policy) => close::client_exit(tcb, cx, policy),
            });
            if is_listener {
                self.drop_listener(handle);
            } else {
                self.apply(handle, d, now_ms);
            }
            closed += 1;
        }
        job.count += closed;
        if job.pace_per_s != 0 {
            job.tokens_milli -= closed * 1000;
        }
        let done = job.cursor >= self.table.slots_in_use();
        if !done && job.count != before && matches!(job.kind, JobKind::Match(_)) {
            self.completions.push_back(Completion {
                client: job.client,
                user_data: job.user_data,
                handle: Handle::from_raw(0),
                result: Errno::Ok,
                detail: Detail::Count(job.count),
                is_event: true,
            });
        }
        job.next_run_ms = if job.pace_per_s == 0 || closed < allowance || job.tokens_milli >= 1000 {
            now_ms
        } else {
            // Wait until the next close's token has accrued.
            let missing = 1000 - job.tokens_milli;
            now_ms + missing.div_ceil(u64::from(job.pace_per_s)).max(1)
        };
        done
    }
}

impl QueueEngine {
    /// Lists up to `max` connections matching `filter` (listeners and
    /// orphans included, as `ss` shows them), examining at most
    /// `max_slots` slots from slot `cursor`. Returns the next cursor, or
    /// `None` when the table has been walked: a caller pages through
    /// millions of connections in bounded slices between loop iterations,
    /// so listing never stalls the core.
    pub fn list_connections(
        &self,
        now: std::time::Instant,
        filter: &Filter,
        cursor: u32,
        max: usize,
        max_slots: u32,
        out: &mut Vec<super::api::ConnInfo>,
    ) -> Option<u32> {
        let now_ms = self.now_ms(now);
        let end = self.table.slots_in_use();
        let stop = cursor.saturating_add(max_slots).min(end);
        let mut slot = cursor;
        while slot < stop && out.len() < max {
            let handle = self.table.handle_at(slot);
            slot += 1;
            let Some(handle) = handle else { continue };
            let (Some(tuple), Some(tcb)) = (self.table.tuple(handle), self.table.get(handle))
            else {
                continue;
            };
            let idle_ms = now_ms.saturating_sub(tcb.last_active);
            if !filter.matches(&tuple, tcb.state, idle_ms) {
                continue;
            }
            out.push(super::api::ConnInfo {
                handle,
                tuple,
                state: tcb.state,
                owner: tcb.owner,
                orphan: tcb.flags.contains(crate::tcp::tcb::TcbFlags::ORPHAN),
                idle_ms,
                send_queue: tcb.queued() as u32,
                recv_queue: tcb.unconsumed,
                linger: tcb.linger,
                close_in_ms: remaining(tcb.close_at, now_ms),
                // A blocking linger close waits on `close_at`; a
                // background one (docs/close-semantics.md#non-blocking,
                // `close_matching` linger or deadline) is marked.
                lingering: (tcb.pending == crate::tcp::tcb::Pending::Close
                    || tcb.flags.intersects(
                        crate::tcp::tcb::TcbFlags::LINGER_DEADLINE
                            | crate::tcp::tcb::TcbFlags::HARD_DEADLINE,
                    ))
                    && tcb.close_at.is_set(),
                rtx_in_ms: remaining(tcb.rtx_at, now_ms),
            });
        }
        (slot < end).then_some(slot)
    }
}

/// Milliseconds from `now_ms` to `deadline`, `None` when it is not armed.
fn remaining(deadline: crate::tcp::tcb::Deadline, now_ms: u64) -> Option<u64> {
    deadline.ms().map(|d| d.saturating_sub(now_ms))
}
