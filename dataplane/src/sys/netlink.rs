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
//! parsed here; the socket calls are rustix's safe wrappers.

use std::io;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netdevice, recv, send,
    socket_with,
};

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
/// (`SIOCGIFINDEX` on a throwaway datagram socket, as `if_nametoindex(3)`
/// does).
pub fn if_index(name: &str) -> io::Result<u32> {
    let sock = socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok(netdevice::name_to_index(&sock, name)?)
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
    // NETLINK_ROUTE is protocol 0, which rustix spells `None`.
    let sock = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let msg = detach_request(if_index, flags);
    send(&sock, &msg, SendFlags::empty())?;
    let mut reply = [0u8; 1024];
    let (got, _) = recv(&sock, &mut reply[..], RecvFlags::empty())?;
    match parse_ack(&reply[..got])? {
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
