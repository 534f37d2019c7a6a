//! Attaching to the daemon: the client half of `lingerd_abi::attach`.
//!
//! It owns the control socket's one exchange (hello out, welcome or refusal
//! in, with the region memfd and two eventfds as `SCM_RIGHTS`) and the
//! checks on what arrives before anything is mapped: exactly three
//! descriptors, a memfd sealed `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`
//! of exactly the size the header announces, and a header in the region
//! identical to the one in the welcome. It may not touch the rings; the
//! result is handed to `client`.

use std::fmt;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_abi::attach::{
    AttachDecodeError, FD_DOORBELL, FD_REGION, FD_WAKE, Hello, MAX_MESSAGE, RefuseReason, Reply,
    WELCOME_FDS, Welcome,
};
use lingerd_abi::layout::{HEADER_BYTES, Header, Layout};
use lingerd_abi::sys::SharedRegion;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{SealFlags, fcntl_get_seals};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags,
    SocketAddrUnix, SocketFlags, SocketType, connect, recvmsg, send, socket_with,
};

/// Why attaching failed.
#[derive(Debug)]
pub enum AttachError {
    /// The socket could not be reached (no daemon, no permission on the
    /// runtime directory, bad path).
    Connect(io::Error),
    /// A system call failed during the exchange or the mapping.
    Io {
        /// Which.
        call: &'static str,
        /// Why.
        source: io::Error,
    },
    /// No answer within the timeout.
    TimedOut,
    /// The daemon refused.
    Refused(RefuseReason),
    /// The daemon's answer is malformed.
    Protocol(AttachDecodeError),
    /// The descriptors or the region are not what the welcome promised.
    Region(&'static str),
}

impl AttachError {
    /// The closest error code (what `ld_last_error()` reports).
    pub fn errno(&self) -> Errno {
        match self {
            AttachError::Refused(RefuseReason::UidNotAllowed) => Errno::Perm,
            AttachError::Refused(RefuseReason::Resources) => Errno::NoBufs,
            AttachError::Refused(_) | AttachError::Protocol(_) | AttachError::Region(_) => {
                Errno::Inval
            }
            AttachError::TimedOut => Errno::TimedOut,
            AttachError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Errno::ConnRefused
            }
            AttachError::Connect(_) | AttachError::Io { .. } => Errno::NetDown,
        }
    }
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Connect(e) => write!(f, "cannot reach the lingerd socket: {e}"),
            AttachError::Io { call, source } => write!(f, "{call}: {source}"),
            AttachError::TimedOut => f.write_str("the daemon did not answer in time"),
            AttachError::Refused(r) => write!(f, "the daemon refused to attach us: {r:?}"),
            AttachError::Protocol(e) => write!(f, "malformed answer from the daemon: {e:?}"),
            AttachError::Region(what) => write!(f, "unacceptable shared region: {what}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::Connect(e) | AttachError::Io { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

fn io_err(call: &'static str) -> impl FnOnce(rustix::io::Errno) -> AttachError {
    move |e| AttachError::Io {
        call,
        source: e.into(),
    }
}

/// Everything a successful attach yields.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) ctl: OwnedFd,
    pub(crate) memfd: File,
    pub(crate) wake: OwnedFd,
    pub(crate) doorbell: OwnedFd,
    pub(crate) region: Arc<SharedRegion>,
    pub(crate) layout: Layout,
    pub(crate) welcome: Welcome,
}

/// Connects to `path`, says hello, and validates and maps what comes back.
pub(crate) fn attach(path: &Path, timeout: Duration) -> Result<Attachment, AttachError> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddrUnix::new(path).map_err(|e| AttachError::Connect(e.into()))?;
    let ctl = socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(io_err("socket(AF_UNIX, SOCK_SEQPACKET)"))?;
    // Non-blocking: a full backlog is EAGAIN, not an unbounded wait.
    connect(&ctl, &addr).map_err(|e| AttachError::Connect(e.into()))?;
    match send(&ctl, &Hello::current().encode(), SendFlags::NOSIGNAL) {
        Ok(16) => {}
        // The daemon may have answered and closed already: read its answer.
        Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => {}
        Ok(_) => return Err(AttachError::Region("short hello send")),
        Err(e) => return Err(io_err("send(hello)")(e)),
    }
    let (msg, fds) = receive_reply(&ctl, deadline)?;
    let welcome = match Reply::decode(&msg).map_err(AttachError::Protocol)? {
        Reply::Refused(r) => return Err(AttachError::Refused(r.reason)),
        Reply::Welcome(w) => w,
    };
    if fds.len() != WELCOME_FDS {
        return Err(AttachError::Region(
            "the welcome did not carry three descriptors",
        ));
    }
    let mut fds = fds.into_iter();
    let (Some(f0), Some(f1), Some(f2)) = (fds.next(), fds.next(), fds.next()) else {
        return Err(AttachError::Region(
            "the welcome did not carry three descriptors",
        ));
    };
    const _: () = assert!(FD_REGION == 0 && FD_WAKE == 1 && FD_DOORBELL == 2);
    let (memfd, wake, doorbell) = (File::from(f0), f1, f2);
    let layout = welcome.layout;
    let memfd = check_memfd(memfd, &welcome.welcome.header)?;
    let region =
        lingerd_abi::sys::map_region(&memfd, layout.total).map_err(|source| AttachError::Io {
            call: "mmap(region)",
            source,
        })?;
    let mut hb = [0u8; HEADER_BYTES];
    if !region.read(0..HEADER_BYTES, &mut hb) {
        return Err(AttachError::Region("region smaller than its header"));
    }
    match Header::decode(&hb) {
        Ok((h, l)) if h == welcome.welcome.header && l == layout => {}
        _ => {
            return Err(AttachError::Region(
                "the region's header differs from the welcome's",
            ));
        }
    }
    Ok(Attachment {
        ctl,
        memfd,
        wake,
        doorbell,
        region,
        layout,
        welcome: welcome.welcome,
    })
}

/// Waits (until `deadline`) for the daemon's one message and its
/// descriptors. A message or descriptor list that did not fit is an error.
fn receive_reply(ctl: &OwnedFd, deadline: Instant) -> Result<(Vec<u8>, Vec<OwnedFd>), AttachError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttachError::TimedOut);
        }
        let mut pfd = [PollFd::new(ctl, PollFlags::IN)];
        match poll(&mut pfd, Some(&timespec(left))) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(io_err("poll(control socket)")(e)),
        }
        let mut buf = [0u8; MAX_MESSAGE + 1];
        // Room for one descriptor more than expected, so that an extra one
        // is seen (and closed) rather than silently cut off.
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(WELCOME_FDS + 1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let r = match recvmsg(
            ctl,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        ) {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io_err("recvmsg(reply)")(e)),
            Ok(r) => r,
        };
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                fds.extend(rights);
            }
        }
        if r.bytes == 0 {
            return Err(AttachError::Connect(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the daemon closed the socket without answering",
            )));
        }
        if r.bytes > MAX_MESSAGE || r.flags.contains(ReturnFlags::TRUNC) {
            return Err(AttachError::Protocol(AttachDecodeError::Length));
        }
        if r.flags.contains(ReturnFlags::CTRUNC) {
            return Err(AttachError::Region("descriptors were truncated"));
        }
        return Ok((buf[..r.bytes].to_vec(), fds));
    }
}

/// Checks that `file` is a memfd of exactly the header's size whose seals
/// forbid shrinking, growing and changing the seals.
fn check_memfd(file: File, header: &Header) -> Result<File, AttachError> {
    // F_GET_SEALS fails (EINVAL) on anything but a memfd.
    let seals =
        fcntl_get_seals(&file).map_err(|_| AttachError::Region("the region is not a memfd"))?;
    if !seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL) {
        return Err(AttachError::Region(
            "the region is not sealed against shrink, grow and reseal",
        ));
    }
    let len = file
        .metadata()
        .map_err(|source| AttachError::Io {
            call: "fstat(region)",
            source,
        })?
        .len();
    if len != header.total_size {
        return Err(AttachError::Region(
            "the memfd's size differs from the header's",
        ));
    }
    Ok(file)
}

pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
