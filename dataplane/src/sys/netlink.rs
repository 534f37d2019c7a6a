//! Just enough rtnetlink to take an XDP program off an interface.
//!
//! Used by the AF_XDP port at start-up, after a crash: a program attached
//! through a bpf_link (what aya does on kernels ≥ 5.9) goes away with the
//! process that held the link, but one attached through netlink (aya's
//! fallback, `ip link set xdp`, libxdp, a crashed older lingerd) stays on the
//! interface and makes the next bpf_link attach fail with EBUSY. This module
//! sends `RTM_SETLINK` with `IFLA_XDP { IFLA_XDP_FD = -1, IFLA_XDP_FLAGS =
//! mode }` and reads the kernel's acknowledgement. It owns one netlink socket
//! per call and touches no other interface state. Messages are built and
//! parsed in safe code; only the socket calls are `unsafe`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_SETLINK: u16 = 19;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 2;
const IFLA_XDP: u16 = 43;
const NLA_F_NESTED: u16 = 1 << 15;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;

/// `XDP_FLAGS_SKB_MODE`.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The index of interface `name` in the calling thread's network namespace.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call, which
    // only reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The request: nlmsghdr, ifinfomsg, IFLA_XDP { FD = -1, FLAGS = flags }.
fn detach_request(if_index: u32, flags: u32) -> Vec<u8> {
    let mut nested = Vec::new();
    push_attr(&mut nested, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    push_attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    let mut body = Vec::new();
    // struct ifinfomsg: family, pad, type, index, flags, change.
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    body.extend_from_slice(&(if_index as i32).to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut body, IFLA_XDP | NLA_F_NESTED, &nested);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_SETLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend(body);
    msg
}

/// The errno of an `NLMSG_ERROR` acknowledgement (0 = success).
fn parse_ack(reply: &[u8]) -> io::Result<i32> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short netlink reply");
    let kind = u16::from_ne_bytes(
        reply
            .get(4..6)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    if kind != NLMSG_ERROR {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("netlink reply of type {kind}, expected an acknowledgement"),
        ));
    }
    let err = i32::from_ne_bytes(
        reply
            .get(16..20)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    Ok(-err)
}

/// Detaches the XDP program attached through netlink in mode `flags`
/// ([`XDP_FLAGS_SKB_MODE`] or [`XDP_FLAGS_DRV_MODE`]) from `if_index`.
/// Succeeds when there was none. EBUSY means a bpf_link (a live process)
/// holds the interface.
pub fn detach_xdp(if_index: u32, flags: u32) -> io::Result<()> {
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor socket(2) just returned, owned by no one
    // else; the OwnedFd closes it once.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let msg = detach_request(if_index, flags);
    // SAFETY: `msg` is a live buffer of `msg.len()` bytes, only read.
    let sent = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    // SAFETY: `reply` is a live, writable buffer of `reply.len()` bytes.
    let got = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    match parse_ack(&reply[..got as usize])? {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = detach_request(7, XDP_FLAGS_SKB_MODE);
        // 16 header + 16 ifinfomsg + 4 nest header + 8 fd + 8 flags.
        assert_eq!(m.len(), 52);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 52);
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(
            u16::from_ne_bytes(m[34..36].try_into().unwrap()),
            IFLA_XDP | NLA_F_NESTED
        );
        assert_eq!(i32::from_ne_bytes(m[40..44].try_into().unwrap()), -1);
        assert_eq!(
            u32::from_ne_bytes(m[48..52].try_into().unwrap()),
            XDP_FLAGS_SKB_MODE
        );
    }

    #[test]
    fn ack_parse() {
        let mut r = [0u8; 36];
        r[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        r[16..20].copy_from_slice(&(-16i32).to_ne_bytes());
        assert_eq!(parse_ack(&r).unwrap(), 16);
        assert!(parse_ack(&r[..10]).is_err());
    }
}
