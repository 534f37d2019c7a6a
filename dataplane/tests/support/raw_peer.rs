//! `RawPeer`: a scripted TCP peer that talks to one [`QueueEngine`] frame by
//! frame, for scenario tests "state × event" in the smoltcp style.
//!
//! It owns the engine under test, a virtual clock (an `Instant` the test
//! moves with [`RawPeer::advance`]; nothing here reads the OS clock after
//! construction), the peer's own addresses and its sequence bookkeeping, and
//! everything the engine has said that the test has not yet looked at
//! (segments, ARP frames, completions). Frames to the engine are built with
//! etherparse's `PacketBuilder` and frames from it are decoded with
//! etherparse (through `support::summarize`), never with lingerd's `wire`
//! code, so a bug there cannot hide itself. It never reaches into the
//! engine's internals: only the public `handle_*`/`poll_*` calls and the
//! read-only `state`/`counters` accessors.
//!
//! Neighbour resolution: the engine learns the peer's MAC from the Ethernet
//! source of the peer's frames (gleaning), so a passive open needs no ARP
//! or Neighbor Discovery at all; an active open starts with the engine's
//! ARP request or Neighbor Solicitation, which the peer answers (when
//! [`RawPeer::answer_arp`] is set, the default).
//!
//! Family: the peer speaks IPv4 (198.18.0.2 to 198.18.0.1) unless the
//! environment variable [`FAMILY_ENV`] is `v6`, when it speaks IPv6
//! (2001:db8::2 to 2001:db8::1, the engine being dual-stack), so every
//! scenario runs over both families ([`RawPeer::with_family`] picks one
//! explicitly).
//!
//! Bookkeeping: `nxt` is the peer's SND.NXT, `rcv` its RCV.NXT (advanced
//! automatically when the engine's segments arrive in order), `wnd` the
//! window it advertises. [`RawPeer::here`] builds a segment template from
//! them, like smoltcp's `..SEND_TEMPL`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::time::{Duration, Instant};

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement,
    TransportSlice,
};
use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Completion, Detail, Prefix, Request};
use lingerd_dataplane::engine::config::EngineConfig;
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::Linger;

use super::engine::{CLIENT, config};
use super::{Segment, summarize};

/// FIN control bit.
pub(crate) const FIN: u8 = 0x01;
/// SYN control bit.
pub(crate) const SYN: u8 = 0x02;
/// RST control bit.
pub(crate) const RST: u8 = 0x04;
/// PSH control bit.
pub(crate) const PSH: u8 = 0x08;
/// ACK control bit.
pub(crate) const ACK: u8 = 0x10;

/// The engine's listening port in passive scenarios.
pub(crate) const SERVER_PORT: u16 = 80;
/// The peer's port.
pub(crate) const PEER_PORT: u16 = 40_000;
/// The engine's port in active scenarios.
pub(crate) const CLIENT_PORT: u16 = 50_000;
/// The peer's initial sequence number in every scripted handshake.
pub(crate) const PEER_ISS: u32 = 1_000;
/// Bound on frames drained per pump (a runaway engine fails the test).
const MAX_FRAMES_PER_PUMP: usize = 10_000;
/// Bound on timer rounds per [`RawPeer::advance`].
const MAX_TIMER_ROUNDS: usize = 1_000_000;

/// The environment variable that makes [`RawPeer::new`] speak IPv6 (`v6`).
pub(crate) const FAMILY_ENV: &str = "LINGERD_SCENARIO_FAMILY";

/// Whether [`RawPeer::new`] speaks IPv6 in this process.
pub(crate) fn family_is_v6() -> bool {
    std::env::var_os(FAMILY_ENV).is_some_and(|v| v == "v6")
}

/// Runs this test binary again with [`FAMILY_ENV`] = `v6`, skipping the
/// calling test `caller` (so the re-run does not recurse), and returns how
/// many tests passed there; panics, with the re-run's output, if any
/// failed or no summary line was printed.
pub(crate) fn rerun_over_v6(caller: &str) -> usize {
    let me = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(me)
        .env(FAMILY_ENV, "v6")
        .args(["--skip", caller])
        .output()
        .expect("run the tests over IPv6");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tests over IPv6 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("test result: ok. "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no test summary over IPv6:\n{stdout}"))
}

/// The engine's IPv6 address when the peer speaks IPv6.
pub(crate) const ENGINE_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The peer's IPv6 address.
pub(crate) const PEER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// An ARP packet or a Neighbor Solicitation / Advertisement, reduced to
/// what both have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Neighbor {
    /// A request (ARP request, Neighbor Solicitation) or an answer.
    pub(crate) request: bool,
    /// The sender's MAC (the Ethernet source).
    pub(crate) sender_mac: [u8; 6],
    /// The sender's address: an ARP sender, an NS source, an NA target.
    pub(crate) sender_ip: IpAddr,
    /// The address asked about (ARP target, NS target) or, for an
    /// answer, whom it answers (ARP target, NA destination).
    pub(crate) target_ip: IpAddr,
    /// An answer's destination MAC.
    pub(crate) target_mac: [u8; 6],
}

/// A segment the peer will send: `seg(SYN).seq(100).win(65535).mss(1460)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    /// Control bits (`SYN | ACK`, ...).
    pub(crate) flags: u8,
    /// SEG.SEQ.
    pub(crate) seq: u32,
    /// SEG.ACK (sent only with ACK).
    pub(crate) ack: u32,
    /// SEG.WND.
    pub(crate) win: u16,
    /// MSS option.
    pub(crate) mss: Option<u16>,
    /// Payload.
    pub(crate) payload: Vec<u8>,
    /// Source port; `None` = the peer's usual [`PEER_PORT`].
    pub(crate) from_port: Option<u16>,
    /// SACK-permitted option.
    pub(crate) sack_ok: bool,
    /// Timestamps option `(TSval, TSecr)`.
    pub(crate) ts: Option<(u32, u32)>,
    /// SACK blocks `[left, right)` (at most four, three with timestamps).
    pub(crate) sack: Vec<(u32, u32)>,
}

/// A segment with `flags` and every field zero (window 65,535).
pub(crate) fn seg(flags: u8) -> Seg {
    Seg {
        flags,
        seq: 0,
        ack: 0,
        win: 65_535,
        mss: None,
        payload: Vec::new(),
        from_port: None,
        sack_ok: false,
        ts: None,
        sack: Vec::new(),
    }
}

impl Seg {
    /// Sets SEG.SEQ.
    pub(crate) fn seq(mut self, seq: u32) -> Seg {
        self.seq = seq;
        self
    }
    /// Sets SEG.ACK and the ACK bit.
    pub(crate) fn ack(mut self, ack: u32) -> Seg {
        self.ack = ack;
        self.flags |= ACK;
        self
    }
    /// Sets SEG.WND.
    pub(crate) fn win(mut self, win: u16) -> Seg {
        self.win = win;
        self
    }
    /// Adds an MSS option.
    pub(crate) fn mss(mut self, mss: u16) -> Seg {
        self.mss = Some(mss);
        self
    }
    /// Sets the payload.
    pub(crate) fn data(mut self, data: &[u8]) -> Seg {
        self.payload = data.to_vec();
        self
    }
    /// Adds control bits.
    pub(crate) fn flags(mut self, flags: u8) -> Seg {
        self.flags |= flags;
        self
    }
    /// Adds the SACK-permitted option.
    pub(crate) fn sack_ok(mut self) -> Seg {
        self.sack_ok = true;
        self
    }
    /// Adds a timestamps option.
    pub(crate) fn ts(mut self, tsval: u32, tsecr: u32) -> Seg {
        self.ts = Some((tsval, tsecr));
        self
    }
    /// Adds SACK blocks.
    pub(crate) fn sack(mut self, blocks: &[(u32, u32)]) -> Seg {
        self.sack = blocks.to_vec();
        self
    }
    /// Sends from another peer port (a second connection).
    pub(crate) fn sport(mut self, port: u16) -> Seg {
        self.from_port = Some(port);
        self
    }
    /// SEG.LEN: payload plus SYN and FIN.
    pub(crate) fn len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.flags & SYN != 0)
            + u32::from(self.flags & FIN != 0)
    }
}

/// A segment the engine sent, decoded by etherparse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rx {
    /// Header fields (see `support::Segment`).
    pub(crate) seg: Segment,
    /// The payload bytes.
    pub(crate) payload: Vec<u8>,
    /// The MSS option, if any.
    pub(crate) mss: Option<u16>,
    /// When it was sent, ms since the peer's start.
    pub(crate) at_ms: u64,
    /// The SACK-permitted option was present.
    pub(crate) sack_ok: bool,
    /// The timestamps option, if any.
    pub(crate) ts: Option<(u32, u32)>,
    /// SACK blocks, in the order sent.
    pub(crate) sack: Vec<(u32, u32)>,
}

impl Deref for Rx {
    type Target = Segment;
    fn deref(&self) -> &Segment {
        &self.seg
    }
}

impl std::fmt::Display for Rx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.seg.fmt(f)
    }
}

impl Rx {
    /// SEG.LEN.
    pub(crate) fn len(&self) -> u32 {
        self.payload_len as u32 + u32::from(self.flags.syn) + u32::from(self.flags.fin)
    }
    /// `(flags, seq, ack)` for one-line assertions; `ack` is 0 without ACK.
    pub(crate) fn sfa(&self) -> (String, u32, u32) {
        let ack = if self.flags.ack { self.ack } else { 0 };
        (self.flags_str(), self.seq, ack)
    }
}

/// The scripted peer and the engine it talks to.
pub(crate) struct RawPeer {
    /// The engine under test.
    pub(crate) engine: QueueEngine,
    /// The virtual clock.
    pub(crate) now: Instant,
    t0: Instant,
    /// The peer's MAC.
    pub(crate) mac: [u8; 6],
    /// The peer's address.
    pub(crate) ip: IpAddr,
    /// The engine's MAC.
    pub(crate) engine_mac: [u8; 6],
    /// The engine's address (of the peer's family).
    pub(crate) engine_ip: IpAddr,
    /// The engine's port of the scripted connection.
    pub(crate) engine_port: u16,
    /// The peer's SND.NXT.
    pub(crate) nxt: u32,
    /// The peer's RCV.NXT (what it has received in order from the engine).
    pub(crate) rcv: u32,
    /// The engine's ISS, learnt from its SYN or SYN-ACK.
    pub(crate) engine_iss: u32,
    /// The window the peer advertises.
    pub(crate) wnd: u16,
    /// The window the engine advertised last (unscaled: no window scaling
    /// is negotiated in scripted handshakes).
    pub(crate) engine_wnd: u16,
    /// The scripted connection's handle.
    pub(crate) handle: Option<Handle>,
    /// The listener, in passive scenarios.
    pub(crate) listener: Option<Handle>,
    /// Answer the engine's ARP requests (Neighbor Solicitations) for our
    /// address.
    pub(crate) answer_arp: bool,
    /// `user_data` of the pending connect, in active scenarios.
    pub(crate) connect_ud: Option<u64>,
    /// ARP and Neighbor Discovery frames the engine sent, in order.
    pub(crate) arp_seen: Vec<Neighbor>,
    /// Every segment the engine sent, in order (history, for messages).
    pub(crate) log: Vec<Rx>,
    out: VecDeque<Rx>,
    pending: VecDeque<Completion>,
    next_user_data: u64,
}

impl RawPeer {
    /// A peer at 198.18.0.2 (MAC 02:..:02) in front of an engine at
    /// 198.18.0.1 with `support::engine::config(1)` adjusted by `tweak`;
    /// over IPv6 when [`FAMILY_ENV`] says so.
    pub(crate) fn new(tweak: impl FnOnce(&mut EngineConfig)) -> RawPeer {
        RawPeer::with_family(family_is_v6(), tweak)
    }

    /// [`RawPeer::new`] over the family `v6` says: over IPv6 the engine
    /// also has [`ENGINE_IP6`]/64 and the peer is [`PEER_IP6`].
    pub(crate) fn with_family(v6: bool, tweak: impl FnOnce(&mut EngineConfig)) -> RawPeer {
        let mut cfg = config(1);
        if v6 && !cfg.addrs.iter().any(|a| a.addr() == ENGINE_IP6) {
            cfg.addrs
                .push(Prefix::new(ENGINE_IP6.into(), 64).expect("an IPv6 prefix length"));
        }
        tweak(&mut cfg);
        let t0 = Instant::now();
        let engine_ip = cfg
            .addrs
            .iter()
            .map(|a| a.addr())
            .find(|a| a.is_ipv6() == v6)
            .expect("the engine has an address of the peer's family");
        let ip = if v6 {
            IpAddr::V6(PEER_IP6)
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))
        };
        let engine_mac = cfg.mac.0;
        RawPeer {
            engine: QueueEngine::new(cfg, t0),
            now: t0,
            t0,
            mac: [2, 0, 0, 0, 0, 2],
            ip,
            engine_mac,
            engine_ip,
            engine_port: SERVER_PORT,
            nxt: PEER_ISS,
            rcv: 0,
            engine_iss: 0,
            wnd: 65_535,
            engine_wnd: 0,
            handle: None,
            listener: None,
            answer_arp: true,
            connect_ud: None,
            arp_seen: Vec::new(),
            log: Vec::new(),
            out: VecDeque::new(),
            pending: VecDeque::new(),
            next_user_data: 100,
        }
    }

    /// The MSS the engine advertises to this peer: the configured one,
    /// 20 bytes less over IPv6 (its header is 20 bytes longer).
    pub(crate) fn our_mss(&self) -> u16 {
        let mss = self.engine.config().tcp.mss;
        if self.ip.is_ipv6() { mss - 20 } else { mss }
    }

    /// Milliseconds since the start.
    pub(crate) fn ms(&self) -> u64 {
        (self.now - self.t0).as_millis() as u64
    }

    /// The scripted connection's handle.
    pub(crate) fn h(&self) -> Handle {
        self.handle.expect("no connection established yet")
    }

    /// The scripted connection's state (`None` once its record is freed).
    pub(crate) fn state(&self) -> Option<State> {
        self.engine.state(self.h())
    }

    // ----- frames to the engine -----

    /// The Ethernet frame carrying `s` from the peer to the engine.
    pub(crate) fn frame(&self, s: &Seg) -> Vec<u8> {
        let from = s.from_port.unwrap_or(PEER_PORT);
        let eth = PacketBuilder::ethernet2(self.mac, self.engine_mac);
        let ip = match (self.ip, self.engine_ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => eth.ipv4(a.octets(), b.octets(), 64),
            (IpAddr::V6(a), IpAddr::V6(b)) => eth.ipv6(a.octets(), b.octets(), 64),
            _ => panic!("the peer and the engine speak one family"),
        };
        let mut b = ip.tcp(from, self.engine_port, s.seq, s.win);
        if s.flags & SYN != 0 {
            b = b.syn();
        }
        if s.flags & FIN != 0 {
            b = b.fin();
        }
        if s.flags & RST != 0 {
            b = b.rst();
        }
        if s.flags & PSH != 0 {
            b = b.psh();
        }
        if s.flags & ACK != 0 {
            b = b.ack(s.ack);
        }
        let mut options = Vec::new();
        if let Some(mss) = s.mss {
            options.push(TcpOptionElement::MaximumSegmentSize(mss));
        }
        if s.sack_ok {
            options.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if let Some((a, b)) = s.ts {
            options.push(TcpOptionElement::Timestamp(a, b));
        }
        if let Some((&first, rest)) = s.sack.split_first() {
            let mut more = [None; 3];
            for (slot, &b) in more.iter_mut().zip(rest) {
                *slot = Some(b);
            }
            options.push(TcpOptionElement::SelectiveAcknowledgement(first, more));
        }
        if !options.is_empty() {
            b = b.options(&options).expect("the options fit");
        }
        let mut v = Vec::new();
        b.write(&mut v, &s.payload).expect("frame builds");
        v
    }

    /// Hands `s` to the engine at the current time, then collects its output.
    pub(crate) fn send(&mut self, s: Seg) {
        let f = self.frame(&s);
        self.send_frame(&f);
    }

    /// Hands a raw frame to the engine, then collects its output.
    pub(crate) fn send_frame(&mut self, frame: &[u8]) {
        self.engine.handle_rx(self.now, frame);
        self.pump();
    }

    /// An ARP request (IPv4) or a Neighbor Solicitation to the target's
    /// solicited-node group, with our link-layer address (IPv6), from the
    /// peer for `target`.
    pub(crate) fn arp_request(&self, target: IpAddr) -> Vec<u8> {
        let mut v = Vec::new();
        match (self.ip, target) {
            (IpAddr::V4(ip), IpAddr::V4(target)) => {
                let arp = ArpEthIpv4Packet {
                    operation: ArpOperation::REQUEST,
                    sender_mac: self.mac,
                    sender_ipv4: ip.octets(),
                    target_mac: [0; 6],
                    target_ipv4: target.octets(),
                };
                PacketBuilder::ethernet2(self.mac, [0xff; 6])
                    .arp(arp.into())
                    .write(&mut v)
                    .expect("ARP builds");
            }
            (IpAddr::V6(ip), IpAddr::V6(target)) => {
                let t = target.octets();
                let group = [
                    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15],
                ];
                let mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
                let mut body = t.to_vec();
                body.extend_from_slice(&[1, 1]);
                body.extend_from_slice(&self.mac);
                PacketBuilder::ethernet2(self.mac, mac)
                    .ipv6(ip.octets(), group, 255)
                    .icmpv6_raw(135, 0, [0; 4])
                    .write(&mut v, &body)
                    .expect("NS builds");
            }
            _ => panic!("a request of the peer's family"),
        }
        v
    }

    /// Neighbour requests the engine sent: ARP requests and Neighbor
    /// Solicitations.
    pub(crate) fn neighbor_requests_sent(&self) -> u64 {
        let c = self.engine.counters();
        c.arp_requests_sent + c.nd_solicits_sent
    }

    /// Neighbour answers the engine sent: ARP replies and Neighbor
    /// Advertisements.
    pub(crate) fn neighbor_replies_sent(&self) -> u64 {
        let c = self.engine.counters();
        c.arp_replies_sent + c.nd_adverts_sent
    }

    /// A template at the peer's current numbers: `SEQ=nxt, ACK=rcv,
    /// WND=wnd`, ACK set (unless `flags` is a bare SYN).
    pub(crate) fn here(&self, flags: u8) -> Seg {
        let s = seg(flags).seq(self.nxt).win(self.wnd);
        if flags == SYN { s } else { s.ack(self.rcv) }
    }

    /// Sends data at `nxt` (ACKing `rcv`) and advances `nxt`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let s = self.here(ACK | PSH).data(data);
        self.nxt = self.nxt.wrapping_add(data.len() as u32);
        self.send(s);
    }

    /// Sends a pure ACK of everything received.
    pub(crate) fn ack(&mut self) {
        let s = self.here(ACK);
        self.send(s);
    }

    /// Sends FIN|ACK at `nxt` and advances `nxt`.
    pub(crate) fn fin(&mut self) {
        let s = self.here(FIN | ACK);
        self.nxt = self.nxt.wrapping_add(1);
        self.send(s);
    }

    // ----- output of the engine -----

    /// Drains the engine's transmit queue and completion queue into the
    /// peer, answering ARP requests for the peer's address.
    pub(crate) fn pump(&mut self) {
        let mut buf = [0u8; 2048];
        for _ in 0..MAX_FRAMES_PER_PUMP {
            let Some(len) = self.engine.poll_transmit(self.now, &mut buf) else {
                while let Some(c) = self.engine.poll_completion() {
                    self.pending.push_back(c);
                }
                return;
            };
            self.take_frame(&buf[..len]);
        }
        panic!("engine kept transmitting: {}", self.dump());
    }

    fn take_frame(&mut self, frame: &[u8]) {
        let packet = SlicedPacket::from_ethernet(frame).expect("engine frames parse");
        if let Some(TransportSlice::Icmpv6(icmp)) = &packet.transport {
            self.take_nd(frame, icmp.type_u8(), icmp.payload());
            return;
        }
        if let Some(NetSlice::Arp(a)) = &packet.net {
            let arp = a
                .to_packet()
                .try_eth_ipv4()
                .expect("engine ARP is Ethernet/IPv4");
            self.arp_seen.push(Neighbor {
                request: arp.operation == ArpOperation::REQUEST,
                sender_mac: arp.sender_mac,
                sender_ip: Ipv4Addr::from(arp.sender_ipv4).into(),
                target_ip: Ipv4Addr::from(arp.target_ipv4).into(),
                target_mac: arp.target_mac,
            });
            if self.answer_arp
                && arp.operation == ArpOperation::REQUEST
                && IpAddr::from(arp.target_ipv4) == self.ip
            {
                let IpAddr::V4(ip) = self.ip else {
                    unreachable!("an ARP request for an IPv4 peer")
                };
                let reply = ArpEthIpv4Packet {
                    operation: ArpOperation::REPLY,
                    sender_mac: self.mac,
                    sender_ipv4: ip.octets(),
                    target_mac: arp.sender_mac,
                    target_ipv4: arp.sender_ipv4,
                };
                let mut v = Vec::new();
                PacketBuilder::ethernet2(self.mac, arp.sender_mac)
                    .arp(reply.into())
                    .write(&mut v)
                    .expect("ARP builds");
                self.engine.handle_rx(self.now, &v);
            }
            return;
        }
        let seg = summarize(frame).expect("engine sends ARP or TCP only");
        assert!(seg.checksum_ok, "bad checksum from the engine: {seg}");
        let (mut payload, mut mss) = (Vec::new(), None);
        let (mut sack_ok, mut ts, mut sack) = (false, None, Vec::new());
        if let Some(TransportSlice::Tcp(tcp)) = &packet.transport {
            payload = tcp.payload().to_vec();
            for o in tcp.options_iterator() {
                match o {
                    Ok(TcpOptionElement::MaximumSegmentSize(m)) => mss = Some(m),
                    Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => sack_ok = true,
                    Ok(TcpOptionElement::Timestamp(a, b)) => ts = Some((a, b)),
                    Ok(TcpOptionElement::SelectiveAcknowledgement(first, more)) => {
                        sack.push(first);
                        sack.extend(more.into_iter().flatten());
                    }
                    _ => {}
                }
            }
        }
        let rx = Rx {
            seg,
            payload,
            mss,
            at_ms: self.ms(),
            sack_ok,
            ts,
            sack,
        };
        if rx.dst.port() == PEER_PORT && rx.src.port() == self.engine_port && !rx.flags.rst {
            if rx.flags.syn {
                self.engine_iss = rx.seq;
                self.rcv = rx.seq.wrapping_add(1);
                if rx.payload_len > 0 || rx.flags.fin {
                    self.rcv = self.rcv.wrapping_add(rx.len() - 1);
                }
            } else if rx.seq == self.rcv {
                self.rcv = self.rcv.wrapping_add(rx.len());
            }
            self.engine_wnd = rx.window;
        }
        self.log.push(rx.clone());
        self.out.push_back(rx);
    }

    /// A Neighbor Solicitation or Advertisement from the engine: recorded,
    /// and a solicitation for the peer's address answered (with a solicited
    /// advertisement carrying the peer's MAC) when `answer_arp` is set.
    fn take_nd(&mut self, frame: &[u8], kind: u8, body: &[u8]) {
        let packet = SlicedPacket::from_ethernet(frame).expect("engine frames parse");
        let Some(NetSlice::Ipv6(ip)) = &packet.net else {
            panic!("ICMPv6 over IPv6");
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        assert_eq!(
            ip.header().hop_limit(),
            255,
            "ND goes out with hop limit 255"
        );
        let target: [u8; 16] = body
            .get(..16)
            .and_then(|t| t.try_into().ok())
            .expect("ND carries a target");
        let target = Ipv6Addr::from(target);
        // The link-layer address option must be there and name the engine.
        let mut option = vec![if kind == 135 { 1 } else { 2 }, 1];
        option.extend_from_slice(&self.engine_mac);
        assert_eq!(
            body.get(16..24),
            Some(&option[..]),
            "ND from the engine carries its link-layer address option"
        );
        let eth_src: [u8; 6] = frame[6..12].try_into().expect("six bytes");
        let eth_dst: [u8; 6] = frame[..6].try_into().expect("six bytes");
        let request = match kind {
            135 => true,
            136 => false,
            other => panic!("the engine sent ICMPv6 type {other}"),
        };
        self.arp_seen.push(Neighbor {
            request,
            sender_mac: eth_src,
            sender_ip: if request { src.into() } else { target.into() },
            target_ip: if request { target.into() } else { dst.into() },
            target_mac: eth_dst,
        });
        if request && self.answer_arp && IpAddr::V6(target) == self.ip {
            let mut answer = target.octets().to_vec();
            answer.extend_from_slice(&[2, 1]);
            answer.extend_from_slice(&self.mac);
            let mut v = Vec::new();
            PacketBuilder::ethernet2(self.mac, eth_src)
                .ipv6(target.octets(), src.octets(), 255)
                .icmpv6_raw(136, 0, [0x60, 0, 0, 0])
                .write(&mut v, &answer)
                .expect("NA builds");
            self.engine.handle_rx(self.now, &v);
        }
    }

    /// Every segment the engine sent since the last look.
    pub(crate) fn recv_all(&mut self) -> Vec<Rx> {
        self.pump();
        self.out.drain(..).collect()
    }

    /// Exactly one segment was sent since the last look: returns it.
    #[track_caller]
    pub(crate) fn expect_one(&mut self) -> Rx {
        let got = self.recv_all();
        assert_eq!(
            got.len(),
            1,
            "expected exactly one segment at {} ms, got {:?}\n{}",
            self.ms(),
            got.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            self.dump()
        );
        got.into_iter().next().expect("one")
    }

    /// Nothing was sent since the last look.
    #[track_caller]
    pub(crate) fn expect_none(&mut self) {
        let got = self.recv_all();
        assert!(
            got.is_empty(),
            "expected silence at {} ms, got {:?}",
            self.ms(),
            got.iter().map(|r| r.to_string()).collect::<Vec<_>>()
        );
    }

    /// The log, one line per segment, for failure messages.
    pub(crate) fn dump(&self) -> String {
        self.log
            .iter()
            .map(|r| format!("+{}ms {r}\n", r.at_ms))
            .collect()
    }

    // ----- time -----

    /// Moves the clock `ms` forward, running every timer on the way at its
    /// own deadline (so frames carry the time they were really sent).
    pub(crate) fn advance(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        for _ in 0..MAX_TIMER_ROUNDS {
            match self.engine.poll_timeout() {
                Some(t) if t <= target => {
                    // An early wake-up (the wheel reports slot starts) must
                    // still move time forward by at least one tick.
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    self.pump();
                    if self.engine.poll_timeout() == Some(t) {
                        self.now = (self.now + Duration::from_millis(1)).min(target);
                        if self.now == target {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = target;
        self.engine.handle_timeout(self.now);
        self.pump();
    }

    /// Moves the clock `ms` forward without running timers (the next
    /// `handle_*` call sees the new time first): for races at one instant.
    pub(crate) fn jump(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    /// Runs the engine's timers at the current time.
    pub(crate) fn run_timers(&mut self) {
        self.engine.handle_timeout(self.now);
        self.pump();
    }

    /// Advances to `ms` since the start.
    pub(crate) fn advance_to(&mut self, ms: u64) {
        let now = self.ms();
        assert!(ms >= now, "time never goes backwards");
        self.advance(ms - now);
    }

    // ----- requests -----

    /// Submits `req` as [`CLIENT`]; returns its `user_data`.
    pub(crate) fn request(&mut self, req: Request) -> u64 {
        self.request_as(CLIENT, req)
    }

    /// Submits `req` as `client`; returns its `user_data`.
    pub(crate) fn request_as(&mut self, client: ClientId, req: Request) -> u64 {
        self.next_user_data += 1;
        let ud = self.next_user_data;
        self.engine.handle_request(self.now, client, ud, req);
        self.pump();
        ud
    }

    /// Submits `req` and returns its completion, which must come at once.
    #[track_caller]
    pub(crate) fn call(&mut self, req: Request) -> Completion {
        let ud = self.request(req);
        self.answer(ud)
            .unwrap_or_else(|| panic!("no immediate completion for request {ud}"))
    }

    /// Submits `req` as `client` and returns its immediate completion.
    #[track_caller]
    pub(crate) fn call_as(&mut self, client: ClientId, req: Request) -> Completion {
        let ud = self.request_as(client, req);
        self.answer(ud)
            .unwrap_or_else(|| panic!("no immediate completion for request {ud}"))
    }

    /// Takes the completion answering request `ud` (not an event), if it
    /// has arrived; asserts there is at most one.
    #[track_caller]
    pub(crate) fn answer(&mut self, ud: u64) -> Option<Completion> {
        self.pump();
        let (mine, rest): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|c| c.user_data == ud && !c.is_event);
        self.pending = rest.into();
        assert!(mine.len() <= 1, "request {ud} completed twice: {mine:?}");
        mine.into_iter().next()
    }

    /// Takes every completion not yet taken.
    pub(crate) fn completions(&mut self) -> Vec<Completion> {
        self.pump();
        self.pending.drain(..).collect()
    }

    /// `Send` on the scripted connection; asserts OK.
    #[track_caller]
    pub(crate) fn write(&mut self, data: &[u8]) {
        let c = self.call(Request::Send {
            handle: self.h(),
            data: data.to_vec(),
        });
        assert_eq!(c.result, Errno::Ok, "send refused");
    }

    /// Consumes every delivered byte (`RecvDone` for each `Data` event
    /// taken from the pending completions); returns the bytes.
    pub(crate) fn read_all(&mut self) -> Vec<u8> {
        self.pump();
        let h = self.h();
        let mut bytes = Vec::new();
        let mut rest = VecDeque::new();
        for c in std::mem::take(&mut self.pending) {
            match &c.detail {
                Detail::Data(d) if c.is_event && c.handle == h => bytes.extend_from_slice(d),
                _ => rest.push_back(c),
            }
        }
        self.pending = rest;
        if !bytes.is_empty() {
            let c = self.call(Request::RecvDone {
                handle: h,
                len: bytes.len() as u32,
            });
            assert_eq!(c.result, Errno::Ok);
        }
        bytes
    }

    /// `SetLinger` on the scripted connection; asserts OK.
    #[track_caller]
    pub(crate) fn set_linger(&mut self, on: bool, ms: u32) {
        let c = self.call(Request::SetLinger {
            handle: self.h(),
            linger: Linger { on, ms },
        });
        assert_eq!(c.result, Errno::Ok);
    }

    /// `Close` on the scripted connection; returns the user data (the
    /// completion may come later for a blocking linger close).
    pub(crate) fn close(&mut self, nonblocking: bool) -> u64 {
        self.request(Request::Close {
            handle: self.h(),
            nonblocking,
        })
    }

    /// `Shutdown` on the scripted connection; returns its completion.
    #[track_caller]
    pub(crate) fn shutdown(&mut self, how: u8) -> Completion {
        let how = lingerd_abi::Shutdown::from_code(how.into()).expect("how is 0, 1 or 2");
        self.call(Request::Shutdown {
            handle: self.h(),
            how,
        })
    }
}

/// Reaching states. The `to_*` names read "drive the connection to": they
/// take `&mut self` because they converse with the engine, hence the allowance.
#[allow(clippy::wrong_self_convention)]
impl RawPeer {
    /// The live handle of the connection (engine port, peer port), found by
    /// trying the first slots and generations of core 0 (bounded).
    pub(crate) fn find_handle(&self, engine_port: u16, peer_port: u16) -> Handle {
        for slot in 0..256 {
            for generation in 0..16 {
                let h = Handle::new(0, slot, generation);
                if let Some(t) = self.engine.tuple(h)
                    && t.local_port == engine_port
                    && t.remote_port == peer_port
                    && t.remote_addr == self.ip
                {
                    return h;
                }
            }
        }
        panic!("no connection {engine_port} <-> {peer_port}");
    }

    /// The engine listens on [`SERVER_PORT`] with `backlog`.
    pub(crate) fn listen(&mut self, backlog: u32) -> Handle {
        let c = self.call(Request::Listen {
            port: SERVER_PORT,
            backlog,
        });
        assert_eq!(c.result, Errno::Ok);
        self.listener = Some(c.handle);
        c.handle
    }

    /// Passive open: the engine listens, the peer connects (MSS 1460, no
    /// window scaling or timestamps), the engine accepts. ESTABLISHED.
    pub(crate) fn establish_passive(&mut self) -> Handle {
        self.listen(8);
        self.send(seg(SYN).seq(PEER_ISS).win(self.wnd).mss(1460));
        let sa = self.expect_one();
        assert_eq!(sa.flags_str(), "SA", "{sa}");
        assert_eq!(sa.ack, PEER_ISS + 1);
        assert!(self.arp_seen.is_empty(), "the SYN's source MAC was gleaned");
        self.nxt = PEER_ISS + 1;
        self.ack();
        self.expect_none();
        let accepted = self
            .completions()
            .into_iter()
            .find(|c| matches!(c.detail, Detail::Accepted { .. }))
            .expect("an Accepted event");
        assert!(accepted.is_event);
        self.handle = Some(accepted.handle);
        assert_eq!(self.state(), Some(State::Established));
        accepted.handle
    }

    /// Active open: the engine connects from [`CLIENT_PORT`] (ARP first),
    /// the peer answers SYN-ACK, the engine ACKs. ESTABLISHED.
    pub(crate) fn establish_active(&mut self) -> Handle {
        let syn = self.to_syn_sent();
        self.send(
            seg(SYN | ACK)
                .seq(PEER_ISS)
                .ack(syn.seq.wrapping_add(1))
                .win(self.wnd)
                .mss(1460),
        );
        self.nxt = PEER_ISS + 1;
        let a = self.expect_one();
        assert_eq!(a.sfa(), ("A".into(), syn.seq.wrapping_add(1), PEER_ISS + 1));
        let h = self.h();
        let connected = self.completions();
        assert!(
            connected.iter().any(|c| c.handle == h
                && c.result == Errno::Ok
                && matches!(
                    c.detail,
                    Detail::Connected {
                        local_port: CLIENT_PORT
                    }
                )),
            "{connected:?}"
        );
        assert_eq!(self.state(), Some(State::Established));
        h
    }

    /// The engine connects from [`CLIENT_PORT`]; returns its SYN. SYN-SENT
    /// (the connect request is still pending).
    pub(crate) fn to_syn_sent(&mut self) -> Rx {
        self.engine_port = CLIENT_PORT;
        self.next_user_data += 1;
        let ud = self.next_user_data;
        self.engine.handle_request(
            self.now,
            CLIENT,
            ud,
            Request::Connect {
                remote: SocketAddr::new(self.ip, PEER_PORT),
                local_port: Some(CLIENT_PORT),
                local_addr: None,
            },
        );
        self.pump();
        // A connect names its handle at once, in a `Connecting` event.
        let connecting = self
            .pending
            .iter()
            .find(|c| c.user_data == ud && c.is_event && c.detail == Detail::Connecting)
            .map(|c| c.handle)
            .expect("a Connecting event carries the new handle");
        assert_eq!(connecting, self.find_handle(CLIENT_PORT, PEER_PORT));
        self.handle = Some(connecting);
        let syn = self.expect_one();
        assert_eq!(syn.flags_str(), "S", "{syn}");
        assert!(
            self.arp_seen
                .iter()
                .any(|a| a.request && a.target_ip == self.ip),
            "the engine asked for the peer's MAC first"
        );
        self.connect_ud = Some(ud);
        syn
    }

    /// ESTABLISHED (passive) → FIN-WAIT-1 by shutdown(SEND): the handle
    /// stays valid. Returns the FIN.
    pub(crate) fn to_fin_wait_1(&mut self) -> Rx {
        self.establish_passive();
        let c = self.shutdown(1);
        assert_eq!(c.result, Errno::Ok);
        let fin = self.expect_one();
        assert_eq!(fin.sfa(), ("FA".into(), fin.seq, self.nxt));
        assert_eq!(self.state(), Some(State::FinWait1));
        fin
    }

    /// FIN-WAIT-1 → FIN-WAIT-2: the peer ACKs our FIN.
    pub(crate) fn to_fin_wait_2(&mut self) {
        self.to_fin_wait_1();
        self.ack();
        self.expect_none();
        assert_eq!(self.state(), Some(State::FinWait2));
    }

    /// ESTABLISHED (passive) → CLOSE-WAIT: the peer's FIN, ACKed at once.
    pub(crate) fn to_close_wait(&mut self) {
        self.establish_passive();
        self.fin();
        let a = self.expect_one();
        assert_eq!(a.sfa(), ("A".into(), self.rcv, self.nxt));
        assert_eq!(self.state(), Some(State::CloseWait));
        let ev = self.completions();
        assert!(ev.iter().any(|c| c.detail == Detail::PeerClosed), "{ev:?}");
    }

    /// FIN-WAIT-1 → CLOSING: the peer's FIN crosses ours (it does not
    /// acknowledge our FIN); the engine ACKs it.
    pub(crate) fn to_closing(&mut self) {
        let fin = self.to_fin_wait_1();
        let s = seg(FIN | ACK).seq(self.nxt).ack(fin.seq).win(self.wnd);
        self.nxt = self.nxt.wrapping_add(1);
        self.send(s);
        let a = self.expect_one();
        assert_eq!(a.sfa(), ("A".into(), fin.seq + 1, self.nxt));
        assert_eq!(self.state(), Some(State::Closing));
    }

    /// CLOSE-WAIT → LAST-ACK by shutdown(SEND) (handle kept). Returns the FIN.
    pub(crate) fn to_last_ack(&mut self) -> Rx {
        self.to_close_wait();
        assert_eq!(self.shutdown(1).result, Errno::Ok);
        let fin = self.expect_one();
        assert_eq!(fin.flags_str(), "FA");
        assert_eq!(self.state(), Some(State::LastAck));
        fin
    }

    /// FIN-WAIT-2 → TIME-WAIT: the peer's FIN, ACKed at once.
    pub(crate) fn to_time_wait(&mut self) {
        self.to_fin_wait_2();
        self.fin();
        let a = self.expect_one();
        assert_eq!(a.sfa(), ("A".into(), self.rcv, self.nxt));
        assert_eq!(self.state(), Some(State::TimeWait));
    }
}
