//! The daemon side of `lingerd ctl`: the ctl socket and one short-lived
//! session thread per request.
//!
//! [`CtlListener::bind`] makes the `SOCK_SEQPACKET` socket
//! (`clients.socket` with the extension `ctl`, beside the attach socket, in
//! the same runtime directory and under the same directory rules as
//! [`crate::attach`]) and makes it **0600**: whatever mode the operator gave
//! the runtime directory so that non-root clients may attach, only the
//! daemon's own uid and root can connect here, because `kill` closes
//! everyone's connections. A connecting process must also pass the attach
//! rule: its `SO_PEERCRED` uid must be in `clients.allow_uids`.
//! [`CtlListener::serve`] starts the accept thread.
//!
//! A session reads one request (bounded by [`REQUEST_TIMEOUT`] and
//! [`proto::MAX_REQUEST`]), checks it, hands every core a
//! [`CtlCommand`] over the cores' command channels (a listing with one
//! bounded reply channel), relays what the cores report, and ends with the
//! last reply. A kill is registered in [`Jobs`] under a fresh id first
//! (at most [`super::jobs::MAX_JOBS`] at once) and the cores write its
//! progress there: its session reads it, and so do `jobs` and `cancel`
//! from other sessions; when its session goes, the kill goes on. A cancel
//! reaches every core and waits (at most [`CANCEL_WAIT`]) until each has
//! confirmed.
//! At most [`MAX_SESSIONS`] run at once (more get a `busy` error), and at
//! most [`MAX_THREADS`] connections are being served or refused at once
//! (beyond that they are closed at once). A session ends early when its
//! peer hangs up, when a send stays blocked for [`SEND_TIMEOUT`], or when
//! the daemon stops. It may not touch engines (the cores run the jobs) nor
//! the attach socket.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno as SysErrno;
use rustix::net::{RecvFlags, SendFlags, SocketFlags, accept_with, listen, sockopt};

use super::core::{CoreReply, CtlCommand};
use super::jobs::{CoreEnd, Jobs, KillJob};
use super::proto::{self, Body, FilterSpec, JobRow, Metric, Op, Reply, Row};
use crate::attach::{AttachError, bind_socket, timespec};
use crate::cores::CoreCommand;
use crate::metrics::{self, MetricsHub};
use crate::stoppable::StoppableThread;
use lingerd_abi::vocab::CloseMode;

/// How long a new connection may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one reply may wait for room in the peer's receive queue.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions running at once.
pub const MAX_SESSIONS: usize = 8;
/// Connections being served or refused at once.
pub const MAX_THREADS: usize = 16;
/// Reports a session's reply channel holds (per core, see [`session`]).
const REPLY_SLOTS_PER_CORE: usize = 4;
/// How often a kill reports its progress, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often a kill's session reads its job's progress.
const JOB_POLL: Duration = Duration::from_millis(20);
/// How long a cancel waits for every core to confirm.
pub const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// The accept thread's poll period (how soon it sees a stop).
pub(super) const TICK: Duration = Duration::from_millis(100);

/// What the ctl socket needs to know.
#[derive(Clone, Debug)]
pub struct CtlConfig {
    /// The socket path (`Clients::ctl_socket`).
    pub socket: PathBuf,
    /// Uids allowed (`clients.allow_uids`).
    pub allow_uids: Vec<u32>,
    /// The NIC queue of each core, by ring index.
    pub queues: Vec<u32>,
}

/// The socket file we bound; removed on drop if it is still ours.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    /// (device, inode) at bind time.
    bound: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.bound
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The ctl socket, bound and listening, not yet served (its file is
/// removed if it is dropped unserved).
#[derive(Debug)]
pub struct CtlListener {
    cfg: CtlConfig,
    listener: OwnedFd,
    file: SocketFile,
}

impl CtlListener {
    /// Checks the runtime directory (the rules of [`crate::attach`]),
    /// clears a stale socket file, binds, makes the socket 0600, listens.
    pub fn bind(cfg: CtlConfig) -> Result<CtlListener, AttachError> {
        // 0600 before listen(): nobody can connect with another mode.
        let (listener, bound) = bind_socket(&cfg.socket, 0o600)?;
        listen(&listener, 16).map_err(|e| AttachError::Io {
            call: "listen",
            source: e.into(),
        })?;
        Ok(CtlListener {
            file: SocketFile {
                path: cfg.socket.clone(),
                bound,
            },
            cfg,
            listener,
        })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.cfg.socket
    }

    /// Starts serving: sessions reach core `i` through `cores[i]` and read
    /// figures from `hub`.
    pub fn serve(
        self,
        cores: Vec<Sender<CoreCommand>>,
        hub: Arc<MetricsHub>,
    ) -> io::Result<CtlServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let allow = Arc::new(Mutex::new(self.cfg.allow_uids.clone()));
        let ctx = Arc::new(Ctx {
            cores,
            queues: self.cfg.queues.clone(),
            hub,
            allow: allow.clone(),
            stop: stop.clone(),
            sessions: AtomicUsize::new(0),
            next_job: AtomicU64::new(1),
            jobs: Jobs::default(),
            capturing: AtomicBool::new(false),
        });
        let listener = self.listener;
        let thread =
            StoppableThread::spawn("lingerd-ctl", stop, move || accept_loop(&listener, &ctx))?;
        Ok(CtlServer {
            thread,
            allow,
            _file: self.file,
        })
    }
}

/// The running ctl socket; stops and removes its socket file on drop.
#[derive(Debug)]
pub struct CtlServer {
    /// Joined first on drop (fields drop in order), so that the socket
    /// file below goes only once nothing serves it.
    thread: StoppableThread,
    allow: Arc<Mutex<Vec<u32>>>,
    _file: SocketFile,
}

impl CtlServer {
    /// Replaces the allowed uids (a reload); checked at each later request.
    pub fn set_allow_uids(&self, uids: Vec<u32>) {
        *self.allow.lock().unwrap_or_else(|e| e.into_inner()) = uids;
    }

    /// Stops accepting and ends every session (within about
    /// [`SEND_TIMEOUT`] at worst, 100 ms usually); dropping does the same.
    pub fn stop(mut self) {
        self.thread.stop();
    }
}

/// What every session shares.
pub(super) struct Ctx {
    /// The cores' command channels, by ring index.
    pub(super) cores: Vec<Sender<CoreCommand>>,
    /// The NIC queue of each core, by ring index.
    pub(super) queues: Vec<u32>,
    hub: Arc<MetricsHub>,
    allow: Arc<Mutex<Vec<u32>>>,
    /// Set when the daemon stops.
    pub(super) stop: Arc<AtomicBool>,
    sessions: AtomicUsize,
    pub(super) next_job: AtomicU64,
    /// The kills running.
    jobs: Jobs,
    /// A capture is running (one at a time).
    pub(super) capturing: AtomicBool,
}

fn accept_loop(listener: &OwnedFd, ctx: &Arc<Ctx>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !ctx.stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        if poll(&mut fds, Some(&timespec(TICK))).is_err() {
            continue; // EINTR
        }
        threads.retain(|t| !t.is_finished());
        for _ in 0..MAX_THREADS {
            let Ok(fd) = accept_with(listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) else {
                break; // EAGAIN, or retry at the next tick
            };
            if threads.len() >= MAX_THREADS {
                continue; // dropped: closes at once
            }
            let Ok(cred) = sockopt::socket_peercred(&fd) else {
                continue;
            };
            let uid = cred.uid.as_raw();
            let ctx = ctx.clone();
            if let Ok(t) = std::thread::Builder::new()
                .name("lingerd-ctl-session".into())
                .spawn(move || session(&fd, uid, &ctx))
            {
                threads.push(t);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Counts a running session while alive.
struct SessionSlot<'a>(&'a AtomicUsize);

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection: a request, its replies, done.
fn session(fd: &OwnedFd, uid: u32, ctx: &Ctx) {
    let request = match read_request(fd, ctx) {
        Some(Ok(r)) => r,
        Some(Err(message)) => return error(fd, ctx, message),
        None => return, // hung up, or timed out, before asking
    };
    let allowed = ctx
        .allow
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&uid);
    if !allowed {
        return error(
            fd,
            ctx,
            format!("uid {uid} may not use lingerd ctl: it is not in clients.allow_uids"),
        );
    }
    let _slot = SessionSlot(&ctx.sessions);
    if ctx.sessions.fetch_add(1, Ordering::Relaxed) >= MAX_SESSIONS {
        return error(
            fd,
            ctx,
            format!("busy: {MAX_SESSIONS} ctl requests are running; try again"),
        );
    }
    match request.op {
        Op::Stats => {
            let _ = send(fd, ctx, &Reply::new(stats(ctx)));
        }
        Op::Conns { filter } => list(fd, ctx, &filter),
        Op::Kill { filter, mode, pace } => kill(fd, ctx, filter, mode, pace),
        Op::Jobs => {
            let _ = send(fd, ctx, &Reply::new(jobs(ctx)));
        }
        Op::Cancel { job } => cancel(fd, ctx, job),
        Op::Capture(spec) => super::capture::serve(fd, ctx, &spec),
    }
}

/// The request, `Some(Err)` when it is not one we accept, `None` when the
/// peer left or said nothing in time.
fn read_request(fd: &OwnedFd, ctx: &Ctx) -> Option<Result<proto::Request, String>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; proto::MAX_REQUEST];
    loop {
        match rustix::net::recv(fd, &mut buf, RecvFlags::DONTWAIT | RecvFlags::TRUNC) {
            Ok((_, 0)) => return None,
            // `real` is the message's length (MSG_TRUNC), `got` what fit.
            Ok((got, real)) if real > got => {
                return Some(Err(format!(
                    "request of {real} bytes is longer than {} bytes",
                    proto::MAX_REQUEST
                )));
            }
            Ok((got, _)) => return Some(proto::decode_request(&buf[..got])),
            Err(SysErrno::AGAIN | SysErrno::INTR) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline || ctx.stop.load(Ordering::Relaxed) {
            return None;
        }
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let _ = poll(&mut fds, Some(&timespec(TICK.min(deadline - now))));
    }
}

pub(super) fn error(fd: &OwnedFd, ctx: &Ctx, message: String) {
    let _ = send(fd, ctx, &Reply::new(Body::Error { message }));
}

/// Sends one message, waiting for room at most [`SEND_TIMEOUT`].
pub(super) fn send(fd: &OwnedFd, ctx: &Ctx, reply: &Reply) -> io::Result<()> {
    send_bytes(fd, ctx, &proto::encode(reply))
}

/// Sends one message of raw bytes (a capture batch), waiting for room at
/// most [`SEND_TIMEOUT`].
pub(super) fn send_bytes(fd: &OwnedFd, ctx: &Ctx, bytes: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + SEND_TIMEOUT;
    loop {
        match rustix::net::send(fd, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(SysErrno::AGAIN | SysErrno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "lingerd ctl does not read",
            ));
        }
        if ctx.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("the daemon is stopping"));
        }
        let mut fds = [PollFd::new(fd, PollFlags::OUT)];
        let _ = poll(&mut fds, Some(&timespec(TICK.min(deadline - now))));
    }
}

/// Whether the peer hung up (or broke the protocol by saying more).
fn peer_gone(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    match poll(&mut fds, Some(&timespec(Duration::ZERO))) {
        Ok(n) => n > 0 && !fds[0].revents().is_empty(),
        Err(_) => false,
    }
}

/// Hands every core `make(job, reply)`; returns the receiver and how many
/// cores took it (none: the daemon is stopping).
fn to_cores(
    ctx: &Ctx,
    make: impl Fn(mpsc::SyncSender<CoreReply>) -> CtlCommand,
) -> Option<(mpsc::Receiver<CoreReply>, usize)> {
    let (tx, rx) = mpsc::sync_channel(REPLY_SLOTS_PER_CORE.saturating_mul(ctx.cores.len().max(1)));
    let taken = ctx
        .cores
        .iter()
        .filter(|c| c.send(CoreCommand::Ctl(make(tx.clone()))).is_ok())
        .count();
    (taken > 0).then_some((rx, taken))
}

pub(super) const STOPPING: &str = "the daemon is stopping";

pub(super) fn queue_of(ctx: &Ctx, core: u32) -> u32 {
    ctx.queues.get(core as usize).copied().unwrap_or(core)
}

/// `conns`: relays every core's rows, then the count.
fn list(fd: &OwnedFd, ctx: &Ctx, spec: &FilterSpec) {
    let filter = match spec.to_filter() {
        Ok(f) => f,
        Err(e) => return error(fd, ctx, e),
    };
    let job = ctx.next_job.fetch_add(1, Ordering::Relaxed);
    let Some((rx, cores)) = to_cores(ctx, |reply| CtlCommand::List {
        job,
        filter: filter.clone(),
        reply,
    }) else {
        return error(fd, ctx, STOPPING.into());
    };
    let (mut ended, mut count) = (0usize, 0u64);
    while ended < cores {
        match rx.recv_timeout(TICK) {
            Ok(CoreReply::Rows { core, rows }) => {
                let queue = queue_of(ctx, core);
                for chunk in rows.chunks(proto::ROWS_PER_MESSAGE) {
                    let rows = chunk.iter().map(|c| Row::from_info(queue, c)).collect();
                    if send(fd, ctx, &Reply::new(Body::Rows { rows })).is_err() {
                        return; // dropping `rx` ends the listings
                    }
                }
                count = count.saturating_add(rows.len() as u64);
            }
            Ok(CoreReply::ListEnd { .. }) => ended += 1,
            Err(RecvTimeoutError::Timeout) => {
                if ctx.stop.load(Ordering::Relaxed) || peer_gone(fd) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return error(fd, ctx, format!("{STOPPING}: listing cut short"));
            }
        }
    }
    let _ = send(fd, ctx, &Reply::new(Body::End { count }));
}

/// `kill`: a job id, one `close_matching` per core, progress, then the
/// counts (or, when it was cancelled, what it had closed).
fn kill(fd: &OwnedFd, ctx: &Ctx, spec: FilterSpec, mode: CloseMode, pace: u32) {
    if spec.is_empty() {
        return error(
            fd,
            ctx,
            "kill needs a filter; to close every connection say so with `--state all`".into(),
        );
    }
    // `mode` came through its text form, which refuses a linger beyond
    // the longest (and the engine answers EINVAL to one built otherwise).
    let filter = match spec.to_filter() {
        Ok(f) => f,
        Err(e) => return error(fd, ctx, e),
    };
    let n = ctx.cores.len();
    let per_core = pace.div_ceil(u32::try_from(n.max(1)).unwrap_or(u32::MAX));
    let id = ctx.next_job.fetch_add(1, Ordering::Relaxed);
    let job = match ctx.jobs.start(id, spec, mode, pace, n) {
        Ok(j) => j,
        Err(e) => return error(fd, ctx, e),
    };
    let mut taken = 0;
    for (core, c) in ctx.cores.iter().enumerate() {
        let cmd = CtlCommand::Kill {
            job: job.clone(),
            filter: filter.clone(),
            mode,
            pace_per_s: per_core,
        };
        if c.send(CoreCommand::Ctl(cmd)).is_ok() {
            taken += 1;
        } else {
            job.finish(core, CoreEnd::NotStarted, 0);
        }
    }
    if taken == 0 {
        return error(fd, ctx, STOPPING.into());
    }
    if send(fd, ctx, &Reply::new(Body::Started { job: id })).is_err() {
        return; // the kill goes on; `jobs` shows it
    }
    let mut reported = (0u64, Instant::now());
    while !job.is_over() {
        std::thread::sleep(JOB_POLL);
        if ctx.stop.load(Ordering::Relaxed) || peer_gone(fd) {
            // The engines finish the kill (or a cancel stops it); `jobs`
            // and `cancel` still reach it.
            return;
        }
        let sum = job.closed().iter().fold(0u64, |a, &b| a.saturating_add(b));
        if sum != reported.0 && reported.1.elapsed() >= PROGRESS_EVERY {
            reported = (sum, Instant::now());
            if send(fd, ctx, &Reply::new(Body::Progress { closed: sum })).is_err() {
                return;
            }
        }
    }
    let ends = job.ends();
    let closed = job.closed();
    let errors = ends
        .iter()
        .enumerate()
        .filter_map(|(core, end)| {
            let queue = queue_of(ctx, core as u32);
            match end {
                CoreEnd::Refused => Some(format!(
                    "queue {queue}: the engine refused the request (EINVAL)"
                )),
                CoreEnd::NotStarted => Some(format!("queue {queue}: {STOPPING}")),
                _ => None,
            }
        })
        .collect();
    let _ = send(
        fd,
        ctx,
        &Reply::new(Body::Killed {
            job: id,
            closed: closed.iter().fold(0u64, |a, &b| a.saturating_add(b)),
            per_queue: per_queue(ctx, &closed),
            errors,
            cancelled: ends.contains(&CoreEnd::Cancelled),
        }),
    );
}

/// `[queue, value]` for each core's value.
fn per_queue(ctx: &Ctx, values: &[u64]) -> Vec<(u32, u64)> {
    values
        .iter()
        .enumerate()
        .map(|(core, &v)| (queue_of(ctx, core as u32), v))
        .collect()
}

/// `jobs`: every kill that has not ended.
fn jobs(ctx: &Ctx) -> Body {
    let rows = ctx.jobs.running().iter().map(|j| job_row(ctx, j)).collect();
    Body::Jobs { jobs: rows }
}

fn job_row(ctx: &Ctx, j: &KillJob) -> JobRow {
    let closed = j.closed();
    let total = closed.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let elapsed = j.started.elapsed();
    JobRow {
        job: j.id,
        filter: j.filter.clone(),
        mode: j.mode,
        pace: j.pace,
        elapsed_ms: elapsed.as_millis() as u64,
        closed: total,
        per_queue: per_queue(ctx, &closed),
        walked_percent: j.walked_percent(),
        rate_per_s: total as f64 / elapsed.as_secs_f64().max(1e-3),
        cancelling: j.cancel_requested(),
    }
}

/// `cancel`: stops job `id` on every core and answers with what it had
/// closed, once every core has confirmed.
fn cancel(fd: &OwnedFd, ctx: &Ctx, id: u64) {
    let Some(job) = ctx.jobs.get(id) else {
        return error(
            fd,
            ctx,
            format!("no kill job {id} is running (lingerd ctl jobs lists them)"),
        );
    };
    job.request_cancel();
    for c in &ctx.cores {
        // A core that is gone has stopped every job it ran.
        let _ = c.send(CoreCommand::Ctl(CtlCommand::Cancel { job: id }));
    }
    let until = Instant::now() + CANCEL_WAIT;
    while !job.is_over() {
        if Instant::now() >= until {
            return error(
                fd,
                ctx,
                format!(
                    "job {id}: the cancel was sent, but not every queue confirmed it within \
                     {CANCEL_WAIT:?}"
                ),
            );
        }
        if ctx.stop.load(Ordering::Relaxed) {
            return error(fd, ctx, STOPPING.into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let closed = job.closed();
    let _ = send(
        fd,
        ctx,
        &Reply::new(Body::Cancelled {
            job: id,
            closed: closed.iter().fold(0u64, |a, &b| a.saturating_add(b)),
            per_queue: per_queue(ctx, &closed),
        }),
    );
}

/// `stats`: every figure of every core's latest snapshot, by the names of
/// [`metrics::series`] (the `/metrics` family and label value), and each
/// close histogram's count and sum.
fn stats(ctx: &Ctx) -> Body {
    let snaps = ctx.hub.snapshots();
    let n = snaps.len();
    let mut metrics: Vec<Metric> = Vec::new();
    let mut put = |name: String, core: usize, value: u64| {
        let i = match metrics.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                metrics.push(Metric {
                    name,
                    values: vec![0; n],
                });
                metrics.len() - 1
            }
        };
        metrics[i].values[core] = value;
    };
    for (core, snap) in snaps.iter().enumerate() {
        for x in metrics::series(snap) {
            put(x.stat_name(), core, x.value);
        }
        for h in &metrics::HISTOGRAMS {
            let name = match h.label {
                Some((_, v)) => format!("{}_{v}", h.family),
                None => h.family.to_owned(),
            };
            let hist = (h.of)(&snap.counters);
            put(format!("{name}_count"), core, hist.count());
            put(format!("{name}_sum_us"), core, hist.sum_ns / 1000);
        }
    }
    Body::Stats {
        queues: (0..n as u32).map(|c| queue_of(ctx, c)).collect(),
        metrics,
    }
}
