//! Client attach: the `SOCK_SEQPACKET` control socket, credentials, and one
//! sealed shared region per client, which the daemon treats as hostile.
//!
//! [`Acceptor`] owns the listening socket, the control connection of every
//! attached client, and the runtime directory checks. The control thread
//! calls [`Acceptor::poll`] (non-blocking with a zero timeout) and gets
//! [`AttachEvent`]s: `New` hands over a client's region, layout and
//! eventfds for the dataplane to build its `ClientRings`; `Gone` says its
//! control socket hung up, so the daemon applies `close.on_client_exit`.
//! This module may not touch the rings or connections themselves, and it
//! maps memory only through `crate::sys`.
//!
//! The exchange itself (hello, welcome, refused) is defined once in
//! `lingerd_abi::attach`. Per connection:
//!
//! 1. `accept`, then `SO_PEERCRED` (the credentials of the client as of its
//!    `connect()`, man 7 socket). The connection waits, bounded by
//!    [`AcceptorConfig::hello_timeout`] and [`AcceptorConfig::max_pending`],
//!    for the client's hello.
//! 2. The hello is read *before* any answer, also when the uid is refused,
//!    so that closing never discards an unread message (Linux would then
//!    report ECONNRESET to the client instead of our answer).
//! 3. A uid not in `allow_uids`, another ABI version or a malformed hello:
//!    a `Refused` answer, then close.
//! 4. Otherwise: a memfd sized to the layout and sealed
//!    `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` (the client cannot truncate
//!    it to make the daemon take SIGBUS, nor grow it, nor remove the
//!    seals), mapped, the header written, and a `Welcome` sent with the
//!    memfd, the wake eventfd (daemon → client) and the doorbell eventfd
//!    (client → daemon) as `SCM_RIGHTS`.
//! 5. From then on the client must stay silent: its hang-up (EOF, POLLHUP,
//!    an error) or any message is [`AttachEvent::Gone`].
//!
//! ## Runtime directory and socket file
//!
//! The socket's parent directory is the runtime directory. When it does not
//! exist, [`Acceptor::bind`] creates it with mode 0700 (its parent must
//! exist). When it exists it must be a real directory (not a symlink), owned
//! by the daemon's effective uid, and writable by nobody else (mode
//! `& 0o022 == 0`); otherwise `bind` refuses to start and says why, and
//! never changes the directory. So the operator may make it 0711 or 0755 on
//! purpose (systemd's `RuntimeDirectoryMode=`) to let the non-root uids of
//! `allow_uids` reach the socket; with the default 0700 only root can.
//! The socket file itself is made 0666: who may connect is decided by the
//! directory's mode, and who may attach by `SO_PEERCRED`.
//!
//! A file already at the socket path is removed only when it is a socket
//! that nobody listens on (connecting to it is refused): a stale socket of
//! a daemon that died. A live socket (another daemon) or anything that is
//! not a socket makes `bind` fail. On drop, the acceptor removes the socket
//! file if it is still the one it bound.
//!
//! ## Client ids
//!
//! Ids are handed out in increasing order, skipping ids in use and the
//! admin ids ([`ADMIN_CLIENT`], [`CTL_CLIENT`]), and wrap only after 65,533
//! attaches, so the id of a
//! client that just left (whose connections may still be closing under its
//! id) is not given to the next one.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerd_abi::attach::{
    FD_DOORBELL, FD_REGION, FD_WAKE, Hello, MAX_MESSAGE, RefuseReason, Refused, Welcome,
};
use lingerd_abi::layout::{HEADER_BYTES, Layout, VERSION};
use lingerd_abi::sys::SharedRegion;
use lingerd_dataplane::engine::api::ClientId;
#[cfg(doc)]
use lingerd_dataplane::engine::api::{ADMIN_CLIENT, CTL_CLIENT};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::fs::{MemfdFlags, SealFlags, fcntl_add_seals, memfd_create};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType, accept_with, bind, connect, listen, sendmsg, socket_with, sockopt,
};

/// Accepts handled per [`Acceptor::poll`] call, so a flood of connections
/// cannot starve the attached clients' hang-up detection.
const ACCEPTS_PER_POLL: usize = 16;
/// The listening socket's backlog.
const LISTEN_BACKLOG: i32 = 64;

/// What the acceptor needs to know.
#[derive(Clone, Debug)]
pub struct AcceptorConfig {
    /// The socket path (`clients.socket`); its parent is the runtime
    /// directory.
    pub socket: PathBuf,
    /// Uids allowed to attach (`clients.allow_uids`).
    pub allow_uids: Vec<u32>,
    /// Every client's region layout (`Config::layout_params`).
    pub layout: Layout,
    /// Per ring index, the core tag of the handles that ring's engine makes
    /// (`layout.params.cores` entries, distinct).
    pub cores: Vec<u8>,
    /// How long a connection may take to send its hello.
    pub hello_timeout: Duration,
    /// Connections waiting for their hello; more are closed at once.
    pub max_pending: usize,
    /// Attached clients; more are refused (`Resources`).
    pub max_clients: usize,
}

impl AcceptorConfig {
    /// A configuration with the default limits (5 s hello timeout, 64
    /// pending connections, 1,024 clients) and ring `i` serving core tag `i`.
    pub fn new(socket: impl Into<PathBuf>, allow_uids: Vec<u32>, layout: Layout) -> AcceptorConfig {
        AcceptorConfig {
            socket: socket.into(),
            allow_uids,
            cores: (0..layout.params.cores).map(|c| c as u8).collect(),
            layout,
            hello_timeout: Duration::from_secs(5),
            max_pending: 64,
            max_clients: 1024,
        }
    }
}

/// An eventfd, used as a doorbell between the daemon and one client.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<EventFd> {
        Ok(EventFd(eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?))
    }

    /// Adds one to the counter (wakes a `poll`er). A counter about to
    /// overflow (EAGAIN) already wakes the reader, so that is success.
    pub fn signal(&self) -> io::Result<()> {
        match rustix::io::write(&self.0, &1u64.to_ne_bytes()) {
            Ok(_) | Err(Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads and resets the counter; 0 when it was not signalled.
    pub fn drain(&self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        match rustix::io::read(&self.0, &mut b) {
            Ok(8) => Ok(u64::from_ne_bytes(b)),
            Ok(_) => Err(io::Error::other("short eventfd read")),
            Err(Errno::AGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits up to `timeout` for a signal, then drains; returns the count.
    pub fn wait(&self, timeout: Duration) -> io::Result<u64> {
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        let ts = timespec(timeout);
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(Errno::INTR) => self.drain(),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What the control thread learns from [`Acceptor::poll`].
#[derive(Debug)]
pub enum AttachEvent {
    /// A client attached: build its rings on every core.
    New {
        /// Its id (the engine's owner of its connections).
        client: ClientId,
        /// Its uid and pid as `SO_PEERCRED` reported them at `connect()`.
        uid: u32,
        /// See `uid`.
        pid: i32,
        /// Its region; the mapping lives as long as the last clone.
        region: Arc<SharedRegion>,
        /// The region's layout.
        layout: Layout,
        /// Signal after publishing completions while the client's
        /// completion ring has NEED_WAKEUP set.
        wake: EventFd,
        /// The client signals it after publishing requests while a request
        /// ring has NEED_WAKEUP set.
        doorbell: EventFd,
    },
    /// The client's control socket hung up (or it broke the protocol):
    /// apply `on_client_exit` to its connections, drop its rings.
    Gone(ClientId),
}

/// Counters of the acceptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachStats {
    /// Connections accepted on the socket.
    pub accepted: u64,
    /// Clients attached.
    pub attached: u64,
    /// Refused: uid not allowed.
    pub refused_uid: u64,
    /// Refused: another ABI version.
    pub refused_version: u64,
    /// Refused: a malformed hello.
    pub malformed: u64,
    /// Refused: out of client ids, memory or descriptors.
    pub refused_resources: u64,
    /// Closed without an answer: no hello in time, hung up first, or too
    /// many pending connections.
    pub dropped: u64,
    /// Attached clients that went away.
    pub gone: u64,
}

/// Why the acceptor could not start.
#[derive(Debug)]
pub enum AttachError {
    /// The runtime directory or the socket path is not acceptable.
    Path {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A system call failed.
    Io {
        /// Which.
        call: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The configuration is inconsistent (core list vs layout).
    Config(&'static str),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Path { path, problem } => write!(f, "{}: {problem}", path.display()),
            AttachError::Io { call, source } => write!(f, "{call}: {source}"),
            AttachError::Config(what) => write!(f, "attach configuration: {what}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(call: &'static str) -> impl FnOnce(Errno) -> AttachError {
    move |e| AttachError::Io {
        call,
        source: e.into(),
    }
}

/// A connection waiting for its hello.
#[derive(Debug)]
struct Pending {
    fd: OwnedFd,
    uid: u32,
    pid: i32,
    deadline: Instant,
}

/// An attached client's control connection.
#[derive(Debug)]
struct Attached {
    id: ClientId,
    fd: OwnedFd,
}

/// The attach socket and every client's control connection.
#[derive(Debug)]
pub struct Acceptor {
    cfg: AcceptorConfig,
    listener: OwnedFd,
    /// (device, inode) of the socket file we bound, to remove only it.
    bound: (u64, u64),
    pending: Vec<Pending>,
    clients: Vec<Attached>,
    next_id: u16,
    events: VecDeque<AttachEvent>,
    stats: AttachStats,
}

impl Acceptor {
    /// Prepares the runtime directory, clears a stale socket file, binds
    /// and listens (see the module documentation for the rules).
    pub fn bind(cfg: AcceptorConfig) -> Result<Acceptor, AttachError> {
        let cores = &cfg.cores;
        if cores.len() != cfg.layout.params.cores as usize {
            return Err(AttachError::Config("one core tag per ring is needed"));
        }
        if (1..cores.len()).any(|i| cores[..i].contains(&cores[i])) {
            return Err(AttachError::Config("core tags must be distinct"));
        }
        let (listener, bound) = bind_socket(&cfg.socket, 0o666)?;
        listen(&listener, LISTEN_BACKLOG).map_err(io_err("listen"))?;
        Ok(Acceptor {
            cfg,
            listener,
            bound,
            pending: Vec::new(),
            clients: Vec::new(),
            next_id: 1,
            events: VecDeque::new(),
            stats: AttachStats::default(),
        })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.cfg.socket
    }

    /// Counters.
    pub fn stats(&self) -> AttachStats {
        self.stats
    }

    /// Clients attached now.
    pub fn attached(&self) -> usize {
        self.clients.len()
    }

    /// Replaces the allowed uids (a reload); checked at each later attach.
    pub fn set_allow_uids(&mut self, uids: Vec<u32>) {
        self.cfg.allow_uids = uids;
    }

    /// The next event. When none is queued, waits up to `timeout` (zero:
    /// not at all) for the socket or a client, handles what is ready, and
    /// returns the first event that produced, if any.
    pub fn poll(&mut self, timeout: Duration) -> Option<AttachEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        self.poll_io(timeout);
        self.events.pop_front()
    }

    fn poll_io(&mut self, timeout: Duration) {
        let now = Instant::now();
        let wait = self
            .pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .fold(timeout, Duration::min);
        let (listener_ready, pending_ready, clients_ready) = {
            let mut fds = Vec::with_capacity(1 + self.pending.len() + self.clients.len());
            fds.push(PollFd::new(&self.listener, PollFlags::IN));
            fds.extend(
                self.pending
                    .iter()
                    .map(|p| PollFd::new(&p.fd, PollFlags::IN)),
            );
            fds.extend(
                self.clients
                    .iter()
                    .map(|c| PollFd::new(&c.fd, PollFlags::IN)),
            );
            if poll(&mut fds, Some(&timespec(wait))).is_err() {
                // EINTR or ENOMEM: nothing is ready; the caller polls again.
                return;
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            let p = self.pending.len();
            (ready[0], ready[1..1 + p].to_vec(), ready[1 + p..].to_vec())
        };
        // Clients first (their indices are still valid), then pending
        // connections, then new ones.
        for i in (0..clients_ready.len()).rev() {
            if clients_ready[i] && self.client_hung_up(i) {
                let c = self.clients.swap_remove(i);
                self.stats.gone += 1;
                self.events.push_back(AttachEvent::Gone(c.id));
            }
        }
        for i in (0..pending_ready.len()).rev() {
            if pending_ready[i] {
                let p = self.pending.swap_remove(i);
                self.answer_hello(p);
            }
        }
        let now = Instant::now();
        let before = self.pending.len();
        self.pending.retain(|p| p.deadline > now);
        self.stats.dropped += (before - self.pending.len()) as u64;
        if listener_ready {
            self.accept_some(now);
        }
    }

    /// Whether the attached client `i` has gone: EOF, an error, or any
    /// message at all (the protocol has none after the welcome).
    fn client_hung_up(&self, i: usize) -> bool {
        let mut buf = [0u8; 16];
        !matches!(
            rustix::net::recv(&self.clients[i].fd, &mut buf, RecvFlags::DONTWAIT),
            Err(Errno::AGAIN | Errno::INTR)
        )
    }

    fn accept_some(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_POLL {
            let fd = match accept_with(&self.listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK)
            {
                Ok(fd) => fd,
                // EAGAIN: none left. Anything else (ECONNABORTED, EMFILE):
                // try again at the next poll.
                Err(_) => return,
            };
            self.stats.accepted += 1;
            let Ok(cred) = sockopt::socket_peercred(&fd) else {
                self.stats.dropped += 1;
                continue;
            };
            if self.pending.len() >= self.cfg.max_pending {
                self.stats.dropped += 1;
                continue;
            }
            self.pending.push(Pending {
                fd,
                uid: cred.uid.as_raw(),
                pid: cred.pid.as_raw_nonzero().get(),
                deadline: now + self.cfg.hello_timeout,
            });
        }
    }

    /// Reads the hello of a pending connection and answers it; the
    /// connection is then attached or closed.
    fn answer_hello(&mut self, p: Pending) {
        let mut buf = [0u8; MAX_MESSAGE + 1];
        let hello = match rustix::net::recv(&p.fd, &mut buf, RecvFlags::DONTWAIT | RecvFlags::TRUNC)
        {
            Err(Errno::AGAIN | Errno::INTR) => {
                self.pending.push(p);
                return;
            }
            // EOF or an error: the client left before saying anything.
            Ok((_, 0)) | Err(_) => {
                self.stats.dropped += 1;
                return;
            }
            // `real` is the message's length (MSG_TRUNC), `got` what fit.
            Ok((got, real)) if real > got => Err(()),
            Ok((got, _)) => Hello::decode(&buf[..got]).map_err(|_| ()),
        };
        let refuse = |reason| Refused {
            reason,
            abi_version: VERSION,
        };
        let answer = match hello {
            Err(()) => {
                self.stats.malformed += 1;
                refuse(RefuseReason::Malformed)
            }
            Ok(h) if h.abi_version != VERSION => {
                self.stats.refused_version += 1;
                refuse(RefuseReason::AbiVersion)
            }
            Ok(_) if !self.cfg.allow_uids.contains(&p.uid) => {
                self.stats.refused_uid += 1;
                refuse(RefuseReason::UidNotAllowed)
            }
            Ok(_) => match self.welcome(p) {
                Ok(()) => return,
                Err((p, _why)) => {
                    self.stats.refused_resources += 1;
                    let _ = send_plain(&p.fd, &refuse(RefuseReason::Resources).encode());
                    return;
                }
            },
        };
        let _ = send_plain(&p.fd, &answer.encode());
        // `p` drops here: the connection closes with nothing unread.
    }

    /// Creates the client's region and eventfds and sends the welcome.
    /// On failure the connection comes back for a `Resources` refusal.
    fn welcome(&mut self, p: Pending) -> Result<(), (Pending, io::Error)> {
        if self.clients.len() >= self.cfg.max_clients {
            return Err((p, io::Error::other("too many clients")));
        }
        let Some(id) = self.take_id() else {
            return Err((p, io::Error::other("no client id free")));
        };
        let layout = self.cfg.layout;
        let made = (|| -> io::Result<_> {
            let memfd = create_sealed_memfd(id, layout.total)?;
            let region = lingerd_abi::sys::map_region(&memfd, layout.total)?;
            if !region.write(0..HEADER_BYTES, &layout.header().encode()) {
                return Err(io::Error::other("region too small for its header"));
            }
            let wake = EventFd::new()?;
            let doorbell = EventFd::new()?;
            let msg = Welcome {
                client_id: u32::from(id.0),
                header: layout.header(),
                cores: self.cfg.cores.clone(),
            }
            .encode()
            .ok_or_else(|| io::Error::other("inconsistent welcome"))?;
            const _: () = assert!(FD_REGION == 0 && FD_WAKE == 1 && FD_DOORBELL == 2);
            send_with_fds(
                &p.fd,
                &msg,
                &[memfd.as_fd(), wake.as_fd(), doorbell.as_fd()],
            )?;
            Ok((region, wake, doorbell))
        })();
        match made {
            Ok((region, wake, doorbell)) => {
                self.stats.attached += 1;
                self.events.push_back(AttachEvent::New {
                    client: id,
                    uid: p.uid,
                    pid: p.pid,
                    region,
                    layout,
                    wake,
                    doorbell,
                });
                self.clients.push(Attached { id, fd: p.fd });
                Ok(())
            }
            Err(e) => Err((p, e)),
        }
    }

    /// The next free client id (see "Client ids" above).
    fn take_id(&mut self) -> Option<ClientId> {
        for _ in 0..u16::MAX {
            let id = self.next_id;
            self.next_id = match self.next_id.wrapping_add(1) {
                n if ClientId(n).is_admin() => 1,
                n => n,
            };
            if id != 0 && !ClientId(id).is_admin() && !self.clients.iter().any(|c| c.id.0 == id) {
                return Some(ClientId(id));
            }
        }
        None
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        // Remove the socket file only if it is still the one we bound.
        if let Ok(m) = fs::symlink_metadata(&self.cfg.socket)
            && (m.dev(), m.ino()) == self.bound
        {
            let _ = fs::remove_file(&self.cfg.socket);
        }
    }
}

pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Binds a non-blocking `SOCK_SEQPACKET` socket at `path` (not yet
/// listening, so nobody can connect before the mode is set): the runtime
/// directory checked (see "Runtime directory and socket file"), a stale
/// socket file removed, the new file made `mode`. Returns the socket and
/// the file's (device, inode), so that only this file is removed later.
pub(crate) fn bind_socket(path: &Path, mode: u32) -> Result<(OwnedFd, (u64, u64)), AttachError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| AttachError::Path {
            path: path.to_owned(),
            problem: "the socket path has no parent directory".into(),
        })?;
    prepare_runtime_dir(dir)?;
    let addr = SocketAddrUnix::new(path).map_err(|e| AttachError::Path {
        path: path.to_owned(),
        problem: format!("not usable as a Unix socket path: {e}"),
    })?;
    remove_stale_socket(path, &addr)?;
    let socket = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(io_err("socket(AF_UNIX, SOCK_SEQPACKET)"))?;
    bind(&socket, &addr).map_err(io_err("bind"))?;
    let meta = fs::symlink_metadata(path).map_err(|source| AttachError::Io {
        call: "stat(socket)",
        source,
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
        AttachError::Io {
            call: "chmod(socket)",
            source,
        }
    })?;
    Ok((socket, (meta.dev(), meta.ino())))
}

/// Creates or checks the runtime directory (module documentation).
fn prepare_runtime_dir(dir: &Path) -> Result<(), AttachError> {
    let problem = |problem: String| AttachError::Path {
        path: dir.to_owned(),
        problem,
    };
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                // Someone made it meanwhile: judge it like any other.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(problem(format!("cannot create the runtime directory: {e}"))),
            }
        }
        Err(e) => {
            return Err(problem(format!(
                "cannot inspect the runtime directory: {e}"
            )));
        }
        Ok(_) => {}
    }
    let m = fs::symlink_metadata(dir)
        .map_err(|e| problem(format!("cannot inspect the runtime directory: {e}")))?;
    if !m.file_type().is_dir() {
        return Err(problem(
            "the runtime directory is not a directory (symlinks are refused)".into(),
        ));
    }
    let euid = rustix::process::geteuid().as_raw();
    if m.uid() != euid {
        return Err(problem(format!(
            "the runtime directory is owned by uid {}, not by the daemon's uid {euid}; \
             remove it or chown it",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(problem(format!(
            "the runtime directory has mode {:04o}: group or others may write to it \
             (and replace the socket); make it 0700 (or 0711/0755 to let allowed \
             non-root uids reach the socket)",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Removes a socket file nobody listens on; refuses anything else.
fn remove_stale_socket(path: &Path, addr: &SocketAddrUnix) -> Result<(), AttachError> {
    let m = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(AttachError::Io {
                call: "stat(socket)",
                source,
            });
        }
        Ok(m) => m,
    };
    let refuse = |problem: &str| AttachError::Path {
        path: path.to_owned(),
        problem: problem.into(),
    };
    if !m.file_type().is_socket() {
        return Err(refuse("exists and is not a socket; not removing it"));
    }
    let probe = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io_err("socket(AF_UNIX, SOCK_SEQPACKET)"))?;
    match connect(&probe, addr) {
        Ok(()) => Err(refuse("another daemon is listening on this socket")),
        Err(Errno::CONNREFUSED) => fs::remove_file(path).map_err(|source| AttachError::Io {
            call: "unlink(stale socket)",
            source,
        }),
        Err(e) => Err(AttachError::Path {
            path: path.to_owned(),
            problem: format!("cannot tell whether the socket is stale: {e}"),
        }),
    }
}

/// A memfd of `len` bytes sealed against shrinking, growing and sealing.
fn create_sealed_memfd(id: ClientId, len: usize) -> io::Result<File> {
    let memfd = File::from(memfd_create(
        format!("lingerd-client-{}", id.0),
        MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC,
    )?);
    memfd.set_len(len as u64)?;
    fcntl_add_seals(
        &memfd,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(memfd)
}

fn send_plain(fd: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    send_with_fds(fd, msg, &[])
}

fn send_with_fds(fd: &OwnedFd, msg: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let n = sendmsg(
        fd,
        &[io::IoSlice::new(msg)],
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?;
    if n != msg.len() {
        return Err(io::Error::other("short send on a SOCK_SEQPACKET socket"));
    }
    Ok(())
}
