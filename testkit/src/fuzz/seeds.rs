//! The seed corpus, as code: the inputs committed under
//! `testkit/fuzz/corpus/<target>/`, written there by
//! `cargo run --manifest-path testkit/fuzz/Cargo.toml --bin make_corpus`
//! and checked against the files by `tests/fuzz_corpus.rs`.
//!
//! Each seed is a meaningful starting point the fuzzer would take long to
//! find alone: valid handshake segments, ARP, truncations at each header,
//! option-length edge cases (RFC 9293 §3.2: 0, 1, overrun), and engine
//! scripts that walk a connection into each state. An engine seed names the
//! states it must reach, so a change to the input types that makes seeds
//! meaningless fails a test instead of silently weakening the corpus.

use super::engine::{
    LISTEN_PORT, Num, Op, Opts, PEER_PORTS, Req, Segment, TcpFrame, arp_frame, encode, ns6_frame,
    pattern, setup, tcp6_frame,
};
use lingerd_dataplane::tcp::state::State;
use std::net::Ipv6Addr;

use lingerd_dataplane::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv6InvokingTcp, Icmpv6Packet,
    IpProtocol, Ipv4Packet, Ipv6Packet, Ipv6Repr, NdiscRepr, PacketTooBigRepr, SeqNumber, TcpFlags,
    TcpOptions, TcpPacket, TcpPseudoHeader, TcpRepr, solicited_node,
};

/// One seed input.
#[derive(Clone, Debug)]
pub struct Seed {
    /// File name in the target's corpus directory.
    pub name: &'static str,
    /// The input.
    pub bytes: Vec<u8>,
    /// States some record must be in after some step (engine seeds).
    pub reaches: Vec<State>,
    /// Whether the run must transmit at least one RST (engine seeds).
    pub sends_rst: bool,
}

fn seed(name: &'static str, bytes: Vec<u8>) -> Seed {
    Seed {
        name,
        bytes,
        reaches: Vec::new(),
        sends_rst: false,
    }
}

/// Linux's SYN options: MSS 1460, SACK permitted, timestamps, WS 7.
fn syn_options() -> Vec<u8> {
    let mut buf = [0u8; 40];
    let n = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((0x1122_3344, 0)),
        sack: Default::default(),
    }
    .emit(&mut buf);
    buf[..n].to_vec()
}

const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const OURS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const MAC6: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

/// An Ethernet + IPv6 frame from PEER6 to OURS6: `chain` (extension header
/// bytes, whose first next header is `first`), then the upper layer.
fn frame6(first: u8, chain: &[u8], upper: &[u8], hop_limit: u8) -> Vec<u8> {
    let payload_len = chain.len() + upper.len();
    let mut out = vec![0u8; 14 + 40 + payload_len];
    EthernetRepr {
        src_addr: MAC6,
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    Ipv6Repr {
        src_addr: PEER6,
        dst_addr: OURS6,
        next_header: IpProtocol::from(first),
        payload_len,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut out[14..54]));
    out[54..54 + chain.len()].copy_from_slice(chain);
    out[54 + chain.len()..].copy_from_slice(upper);
    out
}

/// A TCP/IPv6 SYN with Linux's options, checksum right.
fn syn6() -> Vec<u8> {
    let options = TcpOptions::parse(&syn_options()).expect("our own options");
    let repr = TcpRepr {
        src_port: PEER_PORTS[0],
        dst_port: LISTEN_PORT,
        seq: SeqNumber(1000),
        ack: SeqNumber(0),
        flags: TcpFlags::SYN,
        window: 64_240,
        urgent: 0,
        options,
        payload: &[],
    };
    let mut seg = vec![0u8; repr.buffer_len()];
    repr.emit_pseudo(
        &mut TcpPacket::new_unchecked(&mut seg[..]),
        TcpPseudoHeader::ipv6(PEER6, OURS6),
    );
    seg
}

/// IPv6 seeds: TCP bare and behind extension headers, a fragment, Neighbor
/// Discovery and Packet Too Big.
fn ipv6_seeds() -> Vec<Seed> {
    let syn = syn6();
    // Hop-by-Hop (PadN 4), Routing (type 253, segments left 0), Destination
    // Options (PadN 4), atomic Fragment, then TCP.
    let chain = [
        43, 0, 1, 4, 0, 0, 0, 0, // Hop-by-Hop -> Routing
        60, 0, 253, 0, 0, 0, 0, 0, // Routing -> Destination Options
        44, 0, 1, 4, 0, 0, 0, 0, // Destination Options -> Fragment
        6, 0, 0, 0, 0, 0, 0, 1, // atomic Fragment -> TCP
    ];
    let first_fragment = [6, 0, 0, 1, 0, 0, 0, 2]; // offset 0, M set
    let mut ns = [0u8; 128];
    let group = solicited_node(OURS6);
    let n = NdiscRepr::NeighborSolicit {
        target_addr: OURS6,
        lladdr: Some(MAC6),
    }
    .emit_frame(
        &mut ns,
        MAC6,
        lingerd_dataplane::wire::ipv6_multicast_mac(group),
        PEER6,
        group,
    )
    .expect("an NS fits");
    let advert = NdiscRepr::NeighborAdvert {
        flags: lingerd_dataplane::wire::NdiscFlags::SOLICITED,
        target_addr: PEER6,
        lladdr: Some(MAC6),
    };
    let mut na = vec![0u8; advert.buffer_len()];
    advert.emit(&mut Icmpv6Packet::new_unchecked(&mut na[..]), PEER6, OURS6);
    let too_big = PacketTooBigRepr {
        mtu: 1280,
        invoking: Icmpv6InvokingTcp {
            src_addr: OURS6,
            dst_addr: PEER6,
            src_port: LISTEN_PORT,
            dst_port: PEER_PORTS[0],
            seq: SeqNumber(5000),
        },
    };
    let mut ptb = vec![0u8; too_big.buffer_len()];
    too_big.emit(&mut Icmpv6Packet::new_unchecked(&mut ptb[..]), PEER6, OURS6);
    vec![
        seed("ipv6_syn", frame6(6, &[], &syn, 64)),
        seed("ipv6_ext_chain_syn", frame6(0, &chain, &syn, 64)),
        seed("ipv6_fragment", frame6(44, &first_fragment, &syn, 64)),
        seed("ipv6_truncated_chain", frame6(60, &chain[..4], &[], 64)),
        seed("ipv6_ns", ns[..n].to_vec()),
        seed("ipv6_na", frame6(58, &[], &na, 255)),
        seed("ipv6_packet_too_big", frame6(58, &[], &ptb, 64)),
    ]
}

fn frame(flags: TcpFlags, options: &[u8], payload: &[u8]) -> Vec<u8> {
    TcpFrame {
        src_port: PEER_PORTS[0],
        dst_port: LISTEN_PORT,
        seq: SeqNumber(1000),
        ack: SeqNumber(5000),
        flags,
        window: 64_240,
        options,
        payload,
    }
    .build()
}

/// Seeds for `wire_parse`: whole frames, cut and bent.
pub fn wire_parse() -> Vec<Seed> {
    let syn = frame(TcpFlags::SYN, &syn_options(), &[]);
    let mut ipv4_options = frame(TcpFlags::ACK, &[], &[]);
    {
        // IHL 6 with a valid header checksum: Error::Options, not Checksum.
        let ip = &mut ipv4_options[14..];
        ip[0] = 0x46;
        ip[10..12].fill(0);
        let mut packet = Ipv4Packet::new_unchecked(&mut ip[..]);
        packet.fill_checksum();
    }
    let mut fragment = frame(TcpFlags::ACK, &[], b"frag");
    {
        let mut packet = Ipv4Packet::new_unchecked(&mut fragment[14..]);
        packet.set_frag(false, true, 0);
        packet.fill_checksum();
    }
    let mut vlan = syn.clone();
    vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    let mut bad_tcp_checksum = frame(TcpFlags::ACK, &[], b"data");
    bad_tcp_checksum[14 + 20 + 16] ^= 0x01;
    let mut data_offset_15 = frame(TcpFlags::ACK, &[], &[]);
    data_offset_15[14 + 20 + 12] = 0xf0;
    let arp_request = arp_frame(1, true);
    let arp_reply = arp_frame(2, true);

    let mut seeds = vec![
        seed("syn", syn.clone()),
        seed(
            "syn_ack",
            frame(TcpFlags::SYN | TcpFlags::ACK, &syn_options(), &[]),
        ),
        seed(
            "ack_data",
            frame(TcpFlags::ACK | TcpFlags::PSH, &[], &pattern(100)),
        ),
        seed("fin", frame(TcpFlags::FIN | TcpFlags::ACK, &[], &[])),
        seed("rst", frame(TcpFlags::RST, &[], &[])),
        seed("rst_ack", frame(TcpFlags::RST | TcpFlags::ACK, &[], &[])),
        seed("arp_request", arp_request),
        seed("arp_reply", arp_reply),
        seed("truncated_ethernet", syn[..10].to_vec()),
        seed("truncated_ipv4", syn[..30].to_vec()),
        seed("truncated_tcp", syn[..14 + 20 + 15].to_vec()),
        seed("truncated_tcp_options", syn[..syn.len() - 3].to_vec()),
        seed("ipv4_options", ipv4_options),
        seed("ipv4_fragment", fragment),
        seed("vlan_tagged", vlan),
        seed("bad_tcp_checksum", bad_tcp_checksum),
        seed("tcp_data_offset_15", data_offset_15),
        seed("opt_len_0", frame(TcpFlags::SYN, &[2, 0, 0, 0], &[])),
        seed("opt_len_1", frame(TcpFlags::SYN, &[8, 1, 0, 0], &[])),
        seed("opt_overrun", frame(TcpFlags::SYN, &[1, 1, 8, 10], &[])),
        seed(
            "opt_kind_without_len",
            frame(TcpFlags::SYN, &[1, 1, 1, 3], &[]),
        ),
        seed(
            "opt_unknown_then_mss",
            frame(TcpFlags::SYN, &[30, 4, 0xab, 0xcd, 2, 4, 5, 0xb4], &[]),
        ),
        seed(
            "opt_wrong_lengths",
            frame(TcpFlags::SYN, &[2, 3, 5, 3, 4, 1, 1, 1], &[]),
        ),
        seed(
            "opt_ws_15_mss_0",
            frame(TcpFlags::SYN, &[3, 3, 15, 1, 2, 4, 0, 0], &[]),
        ),
        seed(
            "opt_eol_then_garbage",
            frame(TcpFlags::SYN, &[0, 0xff, 0xff, 0xff], &[]),
        ),
    ];
    seeds.extend(ipv6_seeds());
    seeds
}

fn req(kind: u8, target: u8, arg: u32) -> Op {
    Op::Request(Req { kind, target, arg })
}

/// Request kinds (see [`Req::KINDS`]).
mod kind {
    pub(super) const SEND: u8 = 0;
    pub(super) const CLOSE: u8 = 1;
    pub(super) const ABORT: u8 = 2;
    pub(super) const SHUTDOWN: u8 = 3;
    pub(super) const RECV_DONE: u8 = 4;
    pub(super) const SET_LINGER: u8 = 5;
    pub(super) const GET_LINGER: u8 = 7;
    pub(super) const CONNECT: u8 = 9;
    pub(super) const CLOSE_MATCHING: u8 = 10;
}

/// The handle the handshake opens (after the listener, index 0).
const CONN: u8 = 1;

fn seg(flags: TcpFlags) -> Segment {
    Segment::new(flags)
}

fn data(len: u16) -> Segment {
    Segment {
        payload_len: len,
        ..seg(TcpFlags::ACK | TcpFlags::PSH)
    }
}

/// A duplicate ACK at `ack` (relative to what the engine sent) carrying
/// SACK blocks, edges relative the same way.
fn sacked(ack: i16, blocks: &[(i16, i16)]) -> Segment {
    Segment {
        ack: Num::Track(ack),
        options: Opts {
            sack: blocks
                .iter()
                .map(|&(l, r)| (Num::Track(l), Num::Track(r)))
                .collect(),
            ..Opts::default()
        },
        ..seg(TcpFlags::ACK)
    }
}

fn engine_seed(
    name: &'static str,
    setup: u8,
    ops: &[Op],
    reaches: &[State],
    sends_rst: bool,
) -> Seed {
    Seed {
        name,
        bytes: encode(setup, ops),
        reaches: reaches.to_vec(),
        sends_rst,
    }
}

/// Seeds for `engine_rx`: scripts through the states and the close paths.
pub fn engine_rx() -> Vec<Seed> {
    use Op::{Advance, NextDeadline};
    use Op::{Arp, Corrupt, Raw, Segment as S};
    let hs = setup::HANDSHAKE;
    let syn = Segment {
        options: Opts {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 0)),
            sack: Vec::new(),
            raw: Vec::new(),
        },
        ..seg(TcpFlags::SYN)
    };
    let syn_frame = frame(TcpFlags::SYN, &syn_options(), &[]);
    let ack = TcpFlags::ACK;
    let fin_ack = TcpFlags::FIN | TcpFlags::ACK;
    let sixty_s = 0x8000 | 600;
    vec![
        engine_seed("syn", 0, &[S(syn.clone())], &[State::SynReceived], false),
        // IPv6: a passive open, a stray ACK the responder resets, and a
        // Neighbor Solicitation for our address.
        engine_seed(
            "v6_syn",
            0,
            &[Raw(tcp6_frame(40_000, TcpFlags::SYN, 1000))],
            &[State::SynReceived],
            false,
        ),
        engine_seed(
            "v6_stray_ack_reset",
            0,
            &[Raw(tcp6_frame(40_001, TcpFlags::ACK, 77))],
            &[],
            true,
        ),
        engine_seed(
            "v6_neighbor_solicitation",
            0,
            &[Raw(ns6_frame()), Raw(tcp6_frame(40_000, TcpFlags::SYN, 1))],
            &[State::SynReceived],
            false,
        ),
        engine_seed("handshake", hs, &[], &[State::Established], false),
        engine_seed(
            "handshake_data",
            hs,
            &[S(data(100)), Advance(50), req(kind::RECV_DONE, CONN, 100)],
            &[State::Established],
            false,
        ),
        engine_seed(
            "segment_2_before_segment_1",
            hs,
            &[
                S(Segment {
                    seq: Num::Track(100),
                    ..data(100)
                }),
                S(data(100)),
                Advance(50),
                req(kind::RECV_DONE, CONN, 200),
            ],
            &[State::Established],
            false,
        ),
        engine_seed(
            "peer_closes_first",
            hs,
            &[S(seg(fin_ack)), req(kind::CLOSE, CONN, 0), S(seg(ack))],
            &[State::CloseWait, State::LastAck],
            false,
        ),
        engine_seed(
            "active_close_time_wait",
            hs,
            &[
                req(kind::CLOSE, CONN, 0),
                S(seg(ack)),
                S(seg(fin_ack)),
                S(seg(fin_ack)),
                Advance(sixty_s),
            ],
            &[State::FinWait1, State::FinWait2, State::TimeWait],
            false,
        ),
        engine_seed(
            "time_wait_rst_ignored",
            hs | setup::TIME_WAIT_IGNORE_RST,
            &[
                req(kind::CLOSE, CONN, 0),
                S(seg(ack)),
                S(seg(fin_ack)),
                S(seg(TcpFlags::RST)),
                NextDeadline,
            ],
            &[State::TimeWait],
            false,
        ),
        engine_seed(
            "rst_at_rcv_nxt",
            hs,
            &[S(seg(TcpFlags::RST)), req(kind::CLOSE, CONN, 0)],
            &[State::Established],
            false,
        ),
        engine_seed(
            "rst_in_window_challenge",
            hs,
            &[S(Segment {
                seq: Num::Track(100),
                ..seg(TcpFlags::RST)
            })],
            &[State::Established],
            false,
        ),
        engine_seed(
            "syn_in_established",
            hs,
            &[S(Segment {
                seq: Num::Raw(5),
                ..seg(TcpFlags::SYN)
            })],
            &[State::Established],
            false,
        ),
        engine_seed(
            "sack_recovery_and_hostile_blocks",
            hs,
            &[
                req(kind::SEND, CONN, 30_000),
                S(Segment {
                    ack: Num::Track(-9000),
                    ..seg(ack)
                }),
                S(sacked(-9000, &[(-6000, -3000)])),
                S(sacked(-9000, &[(-6000, -1000), (-8000, -7000)])),
                S(sacked(-9000, &[(-6000, -1000), (-8000, -7000)])),
                S(sacked(
                    -9000,
                    &[(-6000, 0), (-8000, -7000), (-20_000, -9500), (1, 5000)],
                )),
                S(Segment {
                    options: Opts {
                        sack: vec![
                            (Num::Raw(0), Num::Raw(u32::MAX)),
                            (Num::Track(5), Num::Track(-5)),
                        ],
                        ..Opts::default()
                    },
                    ..sacked(-9000, &[])
                }),
                S(Segment {
                    ack: Num::Track(0),
                    ..seg(ack)
                }),
            ],
            &[State::Established],
            false,
        ),
        engine_seed(
            "send_then_abort",
            hs,
            &[req(kind::SEND, CONN, 3000), req(kind::ABORT, CONN, 0)],
            &[State::Established],
            true,
        ),
        engine_seed(
            "close_with_unread_data",
            hs,
            &[S(data(100)), req(kind::CLOSE, CONN, 0)],
            &[State::Established],
            true,
        ),
        engine_seed(
            "shutdown_send_then_data",
            hs,
            &[
                req(kind::SHUTDOWN, CONN, 1),
                S(seg(ack)),
                S(data(10)),
                req(kind::SHUTDOWN, CONN, 3),
                req(kind::GET_LINGER, CONN, 0),
            ],
            &[State::FinWait1, State::FinWait2],
            false,
        ),
        engine_seed(
            "linger_expires",
            hs | setup::LINGER_500MS,
            &[
                req(kind::SEND, CONN, 1000),
                req(kind::CLOSE, CONN, 0),
                Advance(600),
                NextDeadline,
            ],
            &[State::FinWait1],
            true,
        ),
        engine_seed(
            "retransmit_until_timeout",
            hs,
            &[
                req(kind::SET_LINGER, CONN, 1 | (100 << 2)),
                req(kind::SEND, CONN, 2000),
                NextDeadline,
                NextDeadline,
                NextDeadline,
                Advance(sixty_s),
                Advance(sixty_s),
            ],
            &[State::Established],
            false,
        ),
        engine_seed(
            "connect",
            0,
            &[
                req(kind::CONNECT, 0, 0),
                // The engine asks who 198.18.0.2 is before its SYN can go.
                Arp {
                    operation: 2,
                    to_us: true,
                },
                S(Segment {
                    local: 2,
                    seq: Num::Raw(7000),
                    options: Opts {
                        mss: Some(1400),
                        ..Opts::default()
                    },
                    ..seg(TcpFlags::SYN | TcpFlags::ACK)
                }),
                S(Segment {
                    local: 2,
                    ..data(20)
                }),
            ],
            &[State::SynSent, State::Established],
            false,
        ),
        engine_seed(
            "syn_cookies",
            setup::SMALL_BACKLOG,
            &[
                S(syn.clone()),
                S(Segment {
                    peer: 1,
                    ..syn.clone()
                }),
                S(Segment { peer: 1, ..data(5) }),
            ],
            &[State::SynReceived, State::Established],
            false,
        ),
        engine_seed(
            "closed_port_rst",
            0,
            &[
                S(Segment {
                    local: 3,
                    ..seg(TcpFlags::SYN)
                }),
                S(Segment {
                    local: 3,
                    ..seg(ack)
                }),
                S(Segment {
                    local: 3,
                    ..seg(TcpFlags::RST)
                }),
            ],
            &[State::Listen],
            true,
        ),
        engine_seed(
            "close_matching_abort",
            hs,
            // arg 10: abort (10 % 3 == 1), peer /32, unpaced.
            &[req(kind::CLOSE_MATCHING, 0, 10), NextDeadline],
            &[State::Established],
            true,
        ),
        engine_seed(
            "zero_window",
            hs | setup::SMALL_BUFFERS,
            &[
                S(data(1400)),
                S(data(1400)),
                S(data(1400)),
                S(data(1400)),
                Advance(50),
                req(kind::RECV_DONE, CONN, 4096),
                req(kind::SEND, CONN, 5000),
                S(Segment {
                    window: 0,
                    ..seg(ack)
                }),
                NextDeadline,
            ],
            &[State::Established],
            false,
        ),
        engine_seed(
            "arp",
            0,
            &[
                Arp {
                    operation: 1,
                    to_us: true,
                },
                Arp {
                    operation: 2,
                    to_us: true,
                },
                Arp {
                    operation: 1,
                    to_us: false,
                },
            ],
            &[State::Listen],
            false,
        ),
        engine_seed(
            "truncated_frames",
            0,
            &[
                Raw(syn_frame[..10].to_vec()),
                Raw(syn_frame[..14].to_vec()),
                Raw(syn_frame[..30].to_vec()),
                Raw(syn_frame[..14 + 20 + 15].to_vec()),
                Raw(Vec::new()),
                Raw(syn_frame.clone()),
            ],
            &[State::SynReceived],
            false,
        ),
        engine_seed(
            "corrupted_frames",
            hs,
            &[
                Corrupt {
                    segment: data(10),
                    at: 14 + 20 + 16,
                    xor: 1,
                },
                Corrupt {
                    segment: data(10),
                    at: 14,
                    xor: 0x10,
                },
                Corrupt {
                    segment: seg(TcpFlags::RST),
                    at: 14 + 20 + 2,
                    xor: 0xff,
                },
            ],
            &[State::Established],
            false,
        ),
        engine_seed(
            "option_edges",
            0,
            &[
                S(Segment {
                    options: Opts {
                        raw: vec![2, 0, 0, 0],
                        ..Opts::default()
                    },
                    ..seg(TcpFlags::SYN)
                }),
                S(Segment {
                    peer: 1,
                    options: Opts {
                        raw: vec![8, 1, 0, 0],
                        ..Opts::default()
                    },
                    ..seg(TcpFlags::SYN)
                }),
                S(Segment {
                    peer: 2,
                    options: Opts {
                        mss: Some(0),
                        window_scale: Some(200),
                        raw: vec![30, 4, 0, 0],
                        ..Opts::default()
                    },
                    ..seg(TcpFlags::SYN)
                }),
                S(Segment {
                    peer: 2,
                    ..data(1000)
                }),
                req(kind::SEND, 2, 5000),
                Advance(10),
            ],
            &[State::SynReceived, State::Established],
            false,
        ),
    ]
}

/// A `ring_entries` seed and the paths it must take.
#[derive(Clone, Debug)]
pub struct RingSeed {
    /// The input.
    pub seed: Seed,
    /// Intake must stop on a full completion ring at least once.
    pub backpressure: bool,
    /// Some entry must be answered EINVAL by decoding or chunk checks.
    pub invalid: bool,
    /// The run must touch a cursor (and resynchronise at the end).
    pub cursors: bool,
}

/// Seeds for `ring_entries`: a flood without reaping, every opcode on
/// learnt handles, chunks, garbage entries, scribbles over the header and
/// live slots, and hostile cursors (at start, ahead, behind, far off).
pub fn ring_entries() -> Vec<RingSeed> {
    use super::rings::{Op, Req, Value, Word, encode, setup};
    let submit = |kind: u8, target: u8, arg: u32| Op::Submit {
        req: Req { kind, target, arg },
        hold: false,
    };
    let step = |budget: u8| Op::Step {
        budget,
        advance_ms: 1,
    };
    // GetLinger on a bogus handle: answered at once with ENOTSOCK.
    let get_linger = submit(7, 200, 12345);
    let ring = |name, setup, start, ops: Vec<Op>, backpressure, invalid, cursors| RingSeed {
        seed: seed(name, encode(setup, start, &ops)),
        backpressure,
        invalid,
        cursors,
    };
    // Ring of 8 entries, one core: its request ring is at 4096, the
    // completion ring at 4096 + 384 + 8 * 64.
    let (req8, cpl8) = (4096u32, 4096u32 + 384 + 512);
    let mut flood = Vec::new();
    for _ in 0..4 {
        flood.extend(std::iter::repeat_n(get_linger.clone(), 10));
        flood.push(step(31));
        flood.push(step(31));
    }
    flood.push(Op::Reap(3));
    flood.push(step(31));
    let mut every_op: Vec<Op> = vec![submit(0, 0, 0x1000), step(31), submit(1, 0, 1), step(31)];
    for kind in 2..11 {
        every_op.push(submit(kind, 0, 0x0001_0203));
        every_op.push(submit(kind, 1, 0x8000_0001));
        every_op.push(step(31));
        every_op.push(Op::Reap(0));
    }
    every_op.extend([Op::NextDeadline, Op::NextDeadline, Op::Reap(0)]);
    vec![
        ring(
            "flood_without_reaping",
            2,
            [0; 4],
            flood,
            true,
            false,
            false,
        ),
        ring("every_opcode", 2, [0; 4], every_op, false, true, false),
        ring(
            "send_from_chunks",
            3,
            [0; 4],
            vec![
                Op::TxData { chunk: 0, len: 100 },
                Op::TxData { chunk: 7, len: 128 },
                Op::TxData { chunk: 8, len: 10 },
                submit(0, 0, 0x1000),
                step(31),
                submit(2, 0, 100 << 8),
                submit(2, 0, 7 | 128 << 8),
                submit(2, 0, 8 | 10 << 8),
                submit(2, 0, 129 << 8),
                submit(3, 0, 2 | 5 << 8),
                step(31),
                Op::Reap(0),
            ],
            false,
            true,
            false,
        ),
        ring(
            "raw_garbage_entries",
            2,
            [0; 4],
            vec![
                Op::Raw(vec![0xff; 64]),
                Op::Raw(vec![0; 64]),
                Op::Raw((0..64).collect()),
                // Opcode Send (byte 16) on handle 0x0101.., a chunk far
                // out of the arena (bytes 24..28), length 0xffff_ffff.
                Op::Raw([vec![1; 16], vec![3, 0, 0, 0], vec![0xff; 8], vec![0; 36]].concat()),
                step(31),
                Op::Reap(0),
            ],
            false,
            true,
            false,
        ),
        ring(
            "scribble_header_and_live_slots",
            2,
            [0; 4],
            vec![
                Op::Submit {
                    req: Req {
                        kind: 7,
                        target: 9,
                        arg: 1,
                    },
                    hold: true,
                },
                Op::Scribble {
                    offset: 0,
                    bytes: vec![0xee; 48],
                },
                Op::Scribble {
                    offset: req8 + 384,
                    bytes: vec![0x0b; 64],
                },
                Op::Publish,
                step(31),
                get_linger.clone(),
                step(31),
                Op::Scribble {
                    offset: cpl8 + 384,
                    bytes: vec![0xa5; 64],
                },
                Op::Scribble {
                    offset: req8 + 200,
                    bytes: vec![0xff; 64],
                },
                Op::Reap(0),
                step(31),
            ],
            false,
            true,
            false,
        ),
        ring(
            "hostile_request_tail",
            2,
            [0; 4],
            vec![
                get_linger.clone(),
                get_linger.clone(),
                Op::Cursor {
                    word: Word::RequestTail,
                    value: Value::Raw(1_000_000),
                },
                step(31),
                Op::Cursor {
                    word: Word::RequestTail,
                    value: Value::Delta(-3),
                },
                step(31),
                Op::Reap(0),
                step(31),
            ],
            true,
            true,
            true,
        ),
        ring(
            "hostile_completion_head",
            2,
            [0; 4],
            vec![
                get_linger.clone(),
                get_linger.clone(),
                get_linger.clone(),
                get_linger.clone(),
                step(31),
                Op::Cursor {
                    word: Word::CompletionHead,
                    value: Value::Delta(3),
                },
                get_linger.clone(),
                get_linger.clone(),
                step(31),
                Op::Cursor {
                    word: Word::CompletionHead,
                    value: Value::Raw(u32::MAX - 2),
                },
                // The cached head still has room for one; then the ring
                // looks full and the insane head reads as no room at all.
                get_linger.clone(),
                get_linger.clone(),
                get_linger.clone(),
                step(31),
                step(31),
                Op::Cursor {
                    word: Word::CompletionTail,
                    value: Value::Delta(-1),
                },
                Op::Reap(0),
                step(31),
            ],
            true,
            false,
            true,
        ),
        ring(
            "hostile_start_words",
            setup::HOSTILE_START | 1,
            [5, 7, 2, 3],
            vec![get_linger.clone(), step(31), Op::Reap(0), step(31)],
            false,
            false,
            true,
        ),
        ring(
            "second_core_sleeping_client",
            setup::TWO_CORES | setup::SECOND_CORE | 1,
            [0; 4],
            vec![
                Op::Sleep(true),
                submit(0, 0, 0x1000),
                get_linger.clone(),
                step(31),
                // Core 0's rings and the RX arena: not the daemon's here.
                Op::Scribble {
                    offset: 4096,
                    bytes: vec![0x77; 64],
                },
                get_linger,
                step(31),
                Op::Sleep(false),
                Op::Reap(0),
            ],
            false,
            false,
            false,
        ),
    ]
}

/// Every corpus directory's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("wire_parse", wire_parse()),
        ("engine_rx", engine_rx()),
        (
            "ring_entries",
            ring_entries().into_iter().map(|r| r.seed).collect(),
        ),
    ]
}
