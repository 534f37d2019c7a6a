//! The impairment stage's one door to the OS: AF_PACKET sockets bound to
//! one interface, and `poll` on two of them.
//!
//! Every call goes through [`check`], which turns -1 into an error naming
//! the call. It owns the socket descriptors and nothing else: no frame
//! parsing, no timing, no decisions.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Turns a -1 return into an error naming `call`.
fn check(call: &'static str, ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{call}: {e}")));
    }
    Ok(ret)
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    value: i32,
    call: &'static str,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and the length passed is its
    // size; `fd` is an open descriptor borrowed for the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    check(call, ret.into()).map(drop)
}

/// The index of interface `name` in this network namespace.
pub(super) fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("if_nametoindex({name}): {e}"),
        ));
    }
    Ok(idx)
}

/// What one receive gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recv {
    /// A frame of this length is in the buffer.
    Frame(usize),
    /// A frame longer than the buffer (its real length); dropped.
    Truncated(usize),
    /// A frame this host sent out of the interface; not for the stage.
    Outgoing,
    /// Nothing queued.
    Empty,
}

/// A non-blocking raw AF_PACKET socket bound to one interface: it sees
/// every frame that arrives there and sends whole Ethernet frames.
#[derive(Debug)]
pub(super) struct PacketSocket {
    fd: OwnedFd,
}

const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// Socket buffers: large enough that a burst never overflows them while
/// the stage sleeps (the stage's own loss would hide the spec's).
const SOCKET_BUFFER: i32 = 8 << 20;

impl PacketSocket {
    /// Opens a socket on interface `ifindex`.
    pub(super) fn open(ifindex: u32) -> io::Result<PacketSocket> {
        // Protocol 0 until bound, so no frame of another interface queues
        // up in between.
        // SAFETY: plain syscall with constant arguments; no memory passed.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        let raw = check("socket(AF_PACKET)", raw.into())? as i32;
        // SAFETY: `raw` is a descriptor socket() just returned and nothing
        // else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt_int(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            1,
            "setsockopt(PACKET_IGNORE_OUTGOING)",
        )?;
        // FORCE variants need CAP_NET_ADMIN, which the stage has; fall back
        // to the capped ones otherwise.
        if setsockopt_int(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            SOCKET_BUFFER,
            "setsockopt(SO_RCVBUFFORCE)",
        )
        .is_err()
        {
            setsockopt_int(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                SOCKET_BUFFER,
                "setsockopt(SO_RCVBUF)",
            )?;
        }
        if setsockopt_int(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            SOCKET_BUFFER,
            "setsockopt(SO_SNDBUFFORCE)",
        )
        .is_err()
        {
            setsockopt_int(
                &fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                SOCKET_BUFFER,
                "setsockopt(SO_SNDBUF)",
            )?;
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL_BE;
        sll.sll_ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        // SAFETY: `sll` is a complete sockaddr_ll that outlives the call and
        // the length passed is its size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check("bind(AF_PACKET)", ret.into())?;
        Ok(PacketSocket { fd })
    }

    /// Receives one frame into `buf`.
    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for `buf.len()` bytes, `from` and `len`
        // are valid for writes and describe `from`'s size; all outlive the
        // call.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                (&raw mut from).cast(),
                &raw mut len,
            )
        };
        match check("recvfrom(AF_PACKET)", n as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Recv::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Recv::Empty),
            Err(e) => Err(e),
            Ok(_) if from.sll_pkttype == libc::PACKET_OUTGOING => Ok(Recv::Outgoing),
            Ok(n) if n as usize > buf.len() => Ok(Recv::Truncated(n as usize)),
            Ok(n) => Ok(Recv::Frame(n as usize)),
        }
    }

    /// Sends one whole Ethernet frame out of the interface, without
    /// waiting; an error means the frame is lost.
    pub(super) fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is readable for `frame.len()` bytes during the
        // call; the socket is bound, so no address is needed.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        check("send(AF_PACKET)", n as libc::c_long).map(drop)
    }

    /// Frames the kernel dropped because this socket's buffer was full,
    /// since the last call (the kernel resets its count on every read).
    pub(super) fn take_kernel_drops(&self) -> io::Result<u64> {
        // SAFETY: tpacket_stats is plain data; all-zero is a valid value.
        let mut st: libc::tpacket_stats = unsafe { zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes and `len` is `st`'s
        // size; both outlive the call.
        let ret = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        };
        check("getsockopt(PACKET_STATISTICS)", ret.into())?;
        Ok(u64::from(st.tp_drops))
    }
}

/// Waits until `sock` is readable, `timeout` passes (to the nanosecond,
/// not rounded to milliseconds), or a signal arrives; returns whether it is
/// readable.
pub(super) fn poll_readable(sock: &PacketSocket, timeout: Duration) -> io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd: sock.fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `fds` is an array of one initialised pollfd and `ts` a valid
    // timespec, both outliving the call; the count passed is `fds`'s
    // length and a null signal mask leaves the mask as it is.
    let ret = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &raw const ts,
            std::ptr::null(),
        )
    };
    match check("ppoll", ret.into()) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
        Ok(_) => Ok(fds[0].revents != 0),
    }
}
