//! The daemon side of `lingerd ctl capture`: one session that installs a
//! capture tap on the chosen cores, forwards their batches to `lingerd
//! ctl` as they fill, and ends with every core's figures.
//!
//! One capture runs at a time (a second is refused: two would double the
//! copies a core makes). The session checks the request first (the filter
//! program, the queues), makes each core's tap and buffer pool
//! ([`TAP_BATCHES`] batches of `tap::BATCH_BYTES` per core, allocated here,
//! never by a core), hands them over and waits until every core has
//! installed its tap, then says `capture_started`. It forwards batches
//! unchanged (cut at `--count`), and stops at the count, at the duration,
//! when `lingerd ctl` shuts its end (Ctrl-C), when a send to it fails,
//! or when the daemon stops. Then every core finishes its tap (its last
//! batch, its final counts), the session forwards what is left and ends
//! with `captured`. A slow `lingerd ctl` only makes cores drop copies,
//! which the counts report. It may not touch engines or ports: the cores
//! own their taps.

use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lingerd_dataplane::capture::batch::{self, Batch};
use lingerd_dataplane::capture::tap::{CaptureReader, TapConfig, capture};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::RecvFlags;

use super::proto::{Body, CaptureSpec, QueueCapture, Reply};
use super::server::{Ctx, STOPPING, TICK, error, queue_of, send, send_bytes};
use crate::attach::timespec;
use crate::cores::CoreCommand;

/// Batch buffers per core: 16 MiB of backlog before copies are dropped.
const TAP_BATCHES: usize = 256;
/// How long the cores may take to install or finish their taps.
const CORE_WAIT: Duration = Duration::from_secs(5);
/// How long the session sleeps when no batch is waiting.
const IDLE_POLL: Duration = Duration::from_millis(2);

/// Clears the "a capture runs" flag when the session ends, however.
struct Running<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// One core's part of the capture.
struct Part {
    queue: u32,
    reader: CaptureReader,
    written: u64,
}

/// Ends the capture on every core it was installed on when dropped, so
/// that no path out of the session leaves a tap behind.
struct Installed<'a> {
    ctx: &'a Ctx,
    id: u64,
    cores: Vec<usize>,
}

impl Installed<'_> {
    fn end(&mut self) {
        for core in self.cores.drain(..) {
            if let Some(tx) = self.ctx.cores.get(core) {
                let _ = tx.send(CoreCommand::CaptureEnd { id: self.id });
            }
        }
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

/// Runs one capture session (see the module documentation).
pub(super) fn serve(fd: &OwnedFd, ctx: &Ctx, spec: &CaptureSpec) {
    let filter = match spec.filter() {
        Ok(f) => f,
        Err(e) => return error(fd, ctx, e),
    };
    let mut cores = Vec::new();
    if spec.queues.is_empty() {
        cores.extend(0..ctx.cores.len());
    } else {
        for q in &spec.queues {
            match (0..ctx.cores.len()).find(|&c| queue_of(ctx, c as u32) == *q) {
                Some(c) if !cores.contains(&c) => cores.push(c),
                Some(_) => {}
                None => {
                    return error(
                        fd,
                        ctx,
                        format!("queue {q} is not one of this daemon's ({:?})", ctx.queues),
                    );
                }
            }
        }
    }
    if ctx
        .capturing
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return error(
            fd,
            ctx,
            "busy: a capture is already running; one at a time".into(),
        );
    }
    let running = Running(&ctx.capturing);
    let snaplen = spec.snaplen();
    let unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let clock = (Instant::now(), unix_ns);
    let id = ctx.next_job.fetch_add(1, Ordering::Relaxed);
    let (installed_tx, installed_rx) = mpsc::channel();
    let mut installed = Installed {
        ctx,
        id,
        cores: Vec::new(),
    };
    let mut parts = Vec::new();
    for &core in &cores {
        let queue = queue_of(ctx, core as u32);
        let (tap, reader) = capture(TapConfig {
            queue,
            filter: filter.clone(),
            snaplen,
            batches: TAP_BATCHES,
            clock,
        });
        let sent = ctx.cores.get(core).is_some_and(|tx| {
            tx.send(CoreCommand::Capture {
                id,
                tap: Box::new(tap),
                installed: installed_tx.clone(),
            })
            .is_ok()
        });
        if !sent {
            return error(fd, ctx, STOPPING.into());
        }
        installed.cores.push(core);
        parts.push(Part {
            queue,
            reader,
            written: 0,
        });
    }
    // Every core polls its commands each loop iteration.
    let until = Instant::now() + CORE_WAIT;
    let mut ready = 0;
    while ready < parts.len() {
        let left = until.saturating_duration_since(Instant::now());
        match installed_rx.recv_timeout(left.min(TICK)) {
            Ok(_) => ready += 1,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {
                if ctx.stop.load(Ordering::Relaxed) {
                    return error(fd, ctx, STOPPING.into());
                }
            }
            Err(_) => {
                return error(
                    fd,
                    ctx,
                    format!("the cores did not start the capture within {CORE_WAIT:?}"),
                );
            }
        }
    }
    let queues: Vec<u32> = parts.iter().map(|p| p.queue).collect();
    let started = Reply::new(Body::CaptureStarted { queues, snaplen });
    if send(fd, ctx, &started).is_err() {
        return;
    }
    let deadline =
        (spec.duration_ms > 0).then(|| Instant::now() + Duration::from_millis(spec.duration_ms));
    let mut flow = Flow {
        fd,
        ctx,
        limit: (spec.count > 0).then_some(spec.count),
        written: 0,
        peer_ok: true,
    };
    let reason = loop {
        // Every core's batches, each round (no core starves another).
        let moved = parts.iter_mut().map(|p| flow.forward(p)).sum::<usize>() > 0;
        if flow.limit.is_some_and(|l| flow.written >= l) {
            break "count reached";
        }
        if !flow.peer_ok {
            break "lingerd ctl went away";
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break "duration reached";
        }
        if ctx.stop.load(Ordering::Relaxed) {
            break STOPPING;
        }
        if parts.iter().any(|p| p.reader.finished()) {
            break "a core stopped";
        }
        if !moved && peer_ended(fd, IDLE_POLL) {
            break "lingerd ctl asked to stop";
        }
    };
    // Every core finishes its tap: its last batch and final counts.
    installed.end();
    let until = Instant::now() + CORE_WAIT;
    while parts.iter().any(|p| !p.reader.finished()) && Instant::now() < until {
        for p in &mut parts {
            flow.forward(p);
        }
        std::thread::sleep(IDLE_POLL);
    }
    for p in &mut parts {
        flow.forward(p);
    }
    if !flow.peer_ok {
        return;
    }
    let per_queue = parts
        .iter()
        .map(|p| {
            let s = p.reader.stats();
            QueueCapture {
                queue: p.queue,
                seen: s.seen,
                matched: s.matched,
                dropped: s.dropped,
                written: p.written,
            }
        })
        .collect();
    // The slot is free before the end is told: a `lingerd ctl` that starts
    // the next capture as soon as it reads this one's end must not find it
    // still taken.
    drop(running);
    let _ = send(
        fd,
        ctx,
        &Reply::new(Body::Captured {
            written: flow.written,
            per_queue,
            reason: reason.into(),
        }),
    );
}

/// Where batches go, and how many packets went.
struct Flow<'a> {
    fd: &'a OwnedFd,
    ctx: &'a Ctx,
    limit: Option<u64>,
    written: u64,
    /// Sends to `lingerd ctl` still work.
    peer_ok: bool,
}

impl Flow<'_> {
    /// Forwards the batches waiting in `part` (cut at the count, then none
    /// more); returns how many were taken.
    fn forward(&mut self, part: &mut Part) -> usize {
        let mut taken = 0;
        while let Some(mut b) = part.reader.next_batch() {
            taken += 1;
            let left = self
                .limit
                .map_or(u64::MAX, |l| l.saturating_sub(self.written));
            let count = Batch::parse(&b).map_or(0, |batch| batch.count);
            let keep = u64::from(count).min(left);
            if self.peer_ok && keep > 0 {
                if keep < u64::from(count) {
                    // `keep` < `count` fits a u32.
                    let keep32 = keep as u32;
                    let len = Batch::parse(&b).map_or(b.len(), |batch| batch.prefix_len(keep32));
                    b.truncate(len);
                    batch::set_count(&mut b, keep32);
                }
                if send_bytes(self.fd, self.ctx, &b).is_ok() {
                    self.written += keep;
                    part.written += keep;
                } else {
                    self.peer_ok = false;
                }
            }
            part.reader.recycle(b);
        }
        taken
    }
}

/// Whether `lingerd ctl` shut its end (Ctrl-C: it reads on until
/// `captured`) or hung up, waiting at most `wait` for it. It sends nothing
/// after its request, so anything readable is the end.
fn peer_ended(fd: &OwnedFd, wait: Duration) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    match poll(&mut fds, Some(&timespec(wait))) {
        Ok(n) if n > 0 => {
            let r = fds[0].revents();
            if r.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP) {
                return true;
            }
            // Readable: the end of its stream (0 bytes) or a stray message,
            // which breaks the protocol: either way, stop.
            let mut byte = [0u8; 1];
            !matches!(
                rustix::net::recv(fd, &mut byte, RecvFlags::DONTWAIT),
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR)
            )
        }
        _ => false,
    }
}
