//! Test-side helpers for driving a lingerd [`QueueEngine`]: a standard
//! configuration on the test subnet, request submission with fresh
//! `user_data`, and completion collection.
//!
//! It owns nothing of the engine's logic; it only saves each test from
//! repeating set-up lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Completion, Detail, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::wire::EthernetAddress;

/// The client id tests use.
pub(crate) const CLIENT: ClientId = ClientId(7);

/// An engine at 198.18.0.`host`/24 (and, in a run over IPv6, also at
/// 2001:db8::`host`/64) with MAC 02:00:00:00:00:`host` (the same scheme as
/// `SmolConfig::host`).
pub(crate) fn config(host: u8) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        0,
        EthernetAddress([2, 0, 0, 0, 0, host]),
        Prefix::new(Ipv4Addr::new(198, 18, 0, host).into(), 24).expect("an IPv4 prefix length"),
    );
    if super::raw_peer::family_is_v6() {
        cfg.addrs
            .push(Prefix::new(v6_host(host).into(), 64).expect("an IPv6 prefix length"));
    }
    cfg.isn_secret = [u64::from(host), 0x5eed];
    cfg.hash_key = 0xfeed ^ u64::from(host);
    cfg
}

/// An engine with [`config`].
pub(crate) fn engine(host: u8, t0: Instant) -> QueueEngine {
    QueueEngine::new(config(host), t0)
}

/// `2001:db8::<host>`: `host`'s address in a run over IPv6.
pub(crate) fn v6_host(host: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host))
}

/// The address of `host`'s `port`: 198.18.0.`host`, or in a run over IPv6
/// (`support::raw_peer::FAMILY_ENV`) `[2001:db8::<host>]`.
pub(crate) fn addr(host: u8, port: u16) -> SocketAddr {
    let ip = if super::raw_peer::family_is_v6() {
        IpAddr::V6(v6_host(host))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, host))
    };
    SocketAddr::new(ip, port)
}

/// Drains the engine's completions.
pub(crate) fn drain(e: &mut QueueEngine) -> Vec<Completion> {
    std::iter::from_fn(|| e.poll_completion()).collect()
}

/// Submits `req` as [`CLIENT`] with `user_data` and returns the completions
/// it produced at once.
pub(crate) fn submit(
    e: &mut QueueEngine,
    now: Instant,
    user_data: u64,
    req: Request,
) -> Vec<Completion> {
    e.handle_request(now, CLIENT, user_data, req);
    drain(e)
}

/// Submits `req` and expects exactly one immediate completion, returned.
pub(crate) fn call(e: &mut QueueEngine, now: Instant, user_data: u64, req: Request) -> Completion {
    let mut c = submit(e, now, user_data, req);
    assert_eq!(c.len(), 1, "expected one completion, got {c:?}");
    let c = c.remove(0);
    assert_eq!(c.user_data, user_data);
    assert!(!c.is_event);
    c
}

/// Opens a listener and returns its handle.
pub(crate) fn listen(e: &mut QueueEngine, now: Instant, port: u16) -> Handle {
    let c = call(e, now, 1, Request::Listen { port, backlog: 128 });
    assert_eq!(c.result, Errno::Ok);
    c.handle
}

/// The handle of the first `Accepted` event in `events`.
pub(crate) fn accepted(events: &[Completion]) -> Option<Handle> {
    events
        .iter()
        .find(|c| matches!(c.detail, Detail::Accepted { .. }))
        .map(|c| c.handle)
}

/// All bytes of `Data` events for `h`, concatenated.
pub(crate) fn data_for(events: &[Completion], h: Handle) -> Vec<u8> {
    events
        .iter()
        .filter(|c| c.handle == h)
        .filter_map(|c| match &c.detail {
            Detail::Data(d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Moves frames both ways until both engines are quiet.
pub(crate) fn pump(a: &mut QueueEngine, b: &mut QueueEngine, now: Instant) {
    let mut buf = [0u8; 2048];
    loop {
        let mut moved = false;
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            b.handle_rx(now, &buf[..len]);
            moved = true;
        }
        while let Some(len) = b.poll_transmit(now, &mut buf) {
            a.handle_rx(now, &buf[..len]);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// The destination port of an RST frame, `None` for other frames.
pub(crate) fn rst_port(frame: &[u8]) -> Option<u16> {
    let sliced = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    match sliced.transport? {
        etherparse::TransportSlice::Tcp(tcp) if tcp.rst() => Some(tcp.destination_port()),
        _ => None,
    }
}

/// `a` listens on `port`, and `b` opens `n` connections to it from its
/// ports `first_port..` (frames moving every 512 connects). Returns A's
/// accepted handles in accept order, and B's handle and local port of each
/// of its connections.
pub(crate) fn connect_many(
    a: &mut QueueEngine,
    b: &mut QueueEngine,
    port: u16,
    n: usize,
    first_port: u16,
    now: Instant,
) -> (Vec<Handle>, Vec<(Handle, u16)>) {
    let c = call(
        a,
        now,
        1,
        Request::Listen {
            port,
            backlog: 1 << 16,
        },
    );
    assert_eq!(c.result, Errno::Ok);
    for i in 0..n {
        b.handle_request(
            now,
            CLIENT,
            i as u64,
            Request::Connect {
                remote: addr(1, port),
                local_port: Some(first_port + i as u16),
                local_addr: None,
            },
        );
        if i % 512 == 511 {
            pump(a, b, now);
        }
    }
    pump(a, b, now);
    let accepted: Vec<Handle> = drain(a)
        .iter()
        .filter(|c| matches!(c.detail, Detail::Accepted { .. }))
        .map(|c| c.handle)
        .collect();
    assert_eq!(accepted.len(), n, "connections established");
    let connected: Vec<(Handle, u16)> = drain(b)
        .iter()
        .filter_map(|c| match c.detail {
            Detail::Connected { local_port } => Some((c.handle, local_port)),
            _ => None,
        })
        .collect();
    assert_eq!(connected.len(), n, "connections completed at B");
    (accepted, connected)
}
