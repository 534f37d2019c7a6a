//! System test: the XDP program's IPv6 steering, judged frame by frame at
//! the AF_XDP socket.
//!
//! Root and a lab (`deploy/lab up`, removed by a guard even on panic), with
//! IPv6 turned back on in its two namespaces and addresses from
//! 2001:db8::/64 (`nodad`): 2001:db8::1 on the dut's veth (the kernel's),
//! 2001:db8::2 on the peer's. An [`AfXdpPort`] on the dut's queue 0 answers
//! for 2001:db8::3, which the kernel does not own, with the port filter on
//! (port 7 and an ephemeral range); a thread reads its RX ring (sleep mode,
//! bounded by a deadline) and reports every frame. No engine runs: the
//! test looks at what the program hands over, not at answers.
//!
//! Two senders in the peer namespace:
//! - the peer's kernel: its Neighbor Solicitation for 2001:db8::3 (from a
//!   connect that cannot complete), its SYN to [2001:db8::3]:7 once a
//!   static neighbour entry lets it send one, a SYN to a port not steered,
//!   and a whole TCP exchange with a kernel listener on the dut's own
//!   2001:db8::1, which must still work (XDP_PASS);
//! - an AF_XDP socket of its own (our program on the peer's veth with empty
//!   maps steers nothing), which sends frames built here with the wire
//!   layer: TCP behind extension header chains, fragments, Neighbor
//!   Solicitations and Advertisements, Packet Too Big, UDP, truncations.
//!   Each is compared byte for byte with what arrives; the ones that must
//!   pass are known not to have arrived once a steered sentinel sent after
//!   them has (one veth queue keeps the order), so no negative is judged by
//!   a timeout.
//!
//! Ignored unless asked for (`--ignored`; `deploy/test` runs it): it needs
//! root and network namespaces, and one that cannot make its lab fails. It
//! touches no namespace but its lab's and no address outside 2001:db8::/32.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_dataplane::port::Port;
use lingerd_dataplane::port::afxdp::{AfXdpConfig, AfXdpPort, TxOutcome};
use lingerd_dataplane::sys::netns;
use lingerd_dataplane::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv6InvokingTcp, Icmpv6Packet,
    IpProtocol, Ipv6ChainEnd, Ipv6Packet, Ipv6Repr, NdiscFlags, NdiscRepr, PacketTooBigRepr,
    SeqNumber, TcpFlags, TcpOptions, TcpPacket, TcpPseudoHeader, TcpRepr, ipv6_multicast_mac,
    ipv6_walk, solicited_node,
};
use lingerd_lab::Lab;

const DUT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// Ours: steered, not configured on the kernel's interface.
const OURS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
const STEERED_PORT: u16 = 7;
const OTHER_PORT: u16 = 9;
const EPHEMERAL: (u16, u16) = (40_000, 40_099);
const PEER_PORT: u16 = 33_333;
const STEP: Duration = Duration::from_secs(10);

// Next header values (RFC 8200 §4.1).
const HOP_BY_HOP: u8 = 0;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const ICMPV6: u8 = 58;
const DEST_OPTS: u8 = 60;

/// Runs `f` in a new thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        netns::enter(&ns).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
        f()
    })
}

/// `sysctl -w key=value` in a namespace of the lab; must succeed.
fn sysctl(lab: &Lab, ns_key: &str, setting: &str) {
    let out = lab.exec(ns_key, "sysctl", &["-qw", setting]);
    assert!(
        out.status.success(),
        "sysctl {setting} in {ns_key}: {out:?}"
    );
}

/// The peer side's MACs, for frames from the peer to the dut.
#[derive(Clone, Copy)]
struct Macs {
    peer: EthernetAddress,
    dut: EthernetAddress,
}

/// One extension header: its type and its body from byte 1 on (the next
/// header byte is filled in when the chain is put together).
struct Ext(u8, Vec<u8>);

/// Hop-by-Hop or Destination Options, 8 bytes: one PadN of 4.
fn options_header(kind: u8) -> Ext {
    Ext(kind, vec![0, 1, 4, 0, 0, 0, 0])
}

/// A Routing header, 8 bytes, type 253 (experimental), segments left 0.
fn routing_header() -> Ext {
    Ext(ROUTING, vec![0, 253, 0, 0, 0, 0, 0])
}

/// A Fragment header: offset in 8-octet units, M, identification.
fn fragment_header(offset: u16, more: bool, ident: u32) -> Ext {
    let mut body = vec![0];
    body.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    body.extend_from_slice(&ident.to_be_bytes());
    Ext(FRAGMENT, body)
}

/// An Ethernet + IPv6 frame from the peer to `dst`: the chain `exts`, then
/// `upper` (protocol `proto`).
fn frame6(macs: Macs, dst: Ipv6Addr, exts: &[Ext], proto: u8, upper: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, Ext(_, body)) in exts.iter().enumerate() {
        payload.push(exts.get(i + 1).map_or(proto, |next| next.0));
        payload.extend_from_slice(body);
    }
    payload.extend_from_slice(upper);
    let first = exts.first().map_or(proto, |e| e.0);
    let mut frame = vec![0u8; 14 + 40 + payload.len()];
    EthernetRepr {
        src_addr: macs.peer,
        dst_addr: macs.dut,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    Ipv6Repr {
        src_addr: PEER6,
        dst_addr: dst,
        next_header: IpProtocol::from(first),
        payload_len: payload.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut frame[14..54]));
    frame[54..].copy_from_slice(&payload);
    frame
}

/// A SYN from PEER6:PEER_PORT to `dst`:`port`; `seq` tells the frames
/// apart.
fn syn(dst: Ipv6Addr, port: u16, seq: u32) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: PEER_PORT,
        dst_port: port,
        seq: SeqNumber(seq),
        ack: SeqNumber(0),
        flags: TcpFlags::SYN,
        window: 64_240,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
    let mut seg = vec![0u8; repr.buffer_len()];
    repr.emit_pseudo(
        &mut TcpPacket::new_unchecked(&mut seg[..]),
        TcpPseudoHeader::ipv6(PEER6, dst),
    );
    seg
}

fn tcp_frame(macs: Macs, dst: Ipv6Addr, exts: &[Ext], port: u16, seq: u32) -> Vec<u8> {
    frame6(macs, dst, exts, TCP, &syn(dst, port, seq))
}

fn ndisc_frame(macs: Macs, repr: NdiscRepr, dst_mac: EthernetAddress, dst: Ipv6Addr) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let n = repr
        .emit_frame(&mut buf, macs.peer, dst_mac, PEER6, dst)
        .expect("an ND frame fits");
    buf[..n].to_vec()
}

/// A Neighbor Solicitation from the peer for `target`, to its
/// solicited-node group.
fn solicit(macs: Macs, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let repr = NdiscRepr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(macs.peer),
    };
    ndisc_frame(macs, repr, ipv6_multicast_mac(group), group)
}

/// An unsolicited Neighbor Advertisement of the peer's own address, to
/// `dst`.
fn advert(macs: Macs, dst: Ipv6Addr) -> Vec<u8> {
    let repr = NdiscRepr::NeighborAdvert {
        flags: NdiscFlags::OVERRIDE,
        target_addr: PEER6,
        lladdr: Some(macs.peer),
    };
    ndisc_frame(macs, repr, macs.dut, dst)
}

/// A Packet Too Big to `dst` about a segment `dst` sent to the peer.
fn too_big(macs: Macs, dst: Ipv6Addr, mtu: u32) -> Vec<u8> {
    let repr = PacketTooBigRepr {
        mtu,
        invoking: Icmpv6InvokingTcp {
            src_addr: dst,
            dst_addr: PEER6,
            src_port: STEERED_PORT,
            dst_port: PEER_PORT,
            seq: SeqNumber(mtu),
        },
    };
    let mut msg = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv6Packet::new_unchecked(&mut msg[..]), PEER6, dst);
    frame6(macs, dst, &[], ICMPV6, &msg)
}

/// What the dut's port received, as the wire layer reads it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// TCP to `dst`:`port` with these flags.
    Tcp {
        dst: Ipv6Addr,
        port: u16,
        flags: TcpFlags,
    },
    /// A Neighbor Solicitation for `target`.
    Solicit { target: Ipv6Addr },
    /// Some other IPv6 frame (ND advert, PTB, fragment, ...) to `dst`.
    Other { dst: Ipv6Addr },
    /// Not IPv6.
    NotIpv6,
}

fn classify(frame: &[u8]) -> Seen {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Seen::NotIpv6;
    };
    if !eth.ethertype().is_ipv6() {
        return Seen::NotIpv6;
    }
    let packet = Ipv6Packet::new_checked(eth.payload()).expect("a steered IPv6 header");
    let ip = Ipv6Repr::parse(&packet).expect("a steered IPv6 header parses");
    let payload = packet.payload();
    let other = Seen::Other { dst: ip.dst_addr };
    let Ok(chain) = ipv6_walk(ip.next_header, payload) else {
        return other;
    };
    let upper = chain.upper(payload);
    match chain.end {
        Ipv6ChainEnd::Upper(IpProtocol::Tcp) => {
            let tcp = TcpPacket::new_checked(upper).expect("a steered TCP header");
            let repr =
                TcpRepr::parse_pseudo(&tcp, TcpPseudoHeader::ipv6(ip.src_addr, ip.dst_addr), true)
                    .expect("a steered TCP segment parses, checksum included");
            Seen::Tcp {
                dst: ip.dst_addr,
                port: repr.dst_port,
                flags: repr.flags,
            }
        }
        Ipv6ChainEnd::Upper(p) if p == IpProtocol::ICMPV6 => {
            let icmp = Icmpv6Packet::new_unchecked(upper);
            match NdiscRepr::parse(&ip, &icmp, true) {
                Ok(NdiscRepr::NeighborSolicit { target_addr, .. }) => Seen::Solicit {
                    target: target_addr,
                },
                _ => other,
            }
        }
        _ => other,
    }
}

/// The frames the dut's port received, as they come; every one is also
/// kept in `all`.
struct Received {
    rx: mpsc::Receiver<Vec<u8>>,
    all: Vec<Vec<u8>>,
}

impl Received {
    /// Waits up to `STEP` for a frame `pred` accepts; panics without one.
    fn expect(&mut self, what: &str, pred: impl Fn(&[u8]) -> bool) {
        if self.all.iter().any(|f| pred(f)) {
            return;
        }
        let until = Instant::now() + STEP;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(frame) => {
                    let hit = pred(&frame);
                    self.all.push(frame);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "{what}: not steered within {STEP:?}; got {:?}",
                    self.all.iter().map(|f| classify(f)).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Waits for exactly `frame`.
    fn expect_frame(&mut self, what: &str, frame: &[u8]) {
        self.expect(what, |f| f == frame);
    }
}

/// The dut side: an AF_XDP port for OURS6 (ports filtered) whose RX frames
/// go to `tx` until `stop` (or a minute, whichever comes first).
fn spawn_receiver(
    lab: &Lab,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Vec<u8>>,
    opened: mpsc::Sender<Result<(), String>>,
) -> thread::JoinHandle<()> {
    let iface = lab.get("LAB_DUT_IF");
    in_ns(lab.get("LAB_DUT_NS"), move || {
        let mut cfg = AfXdpConfig::new(&iface, 0, [OURS6]);
        cfg.ports = vec![STEERED_PORT];
        cfg.ephemeral = Some(EPHEMERAL);
        let mut port = match AfXdpPort::open(&cfg) {
            Ok(p) => p,
            Err(e) => {
                opened.send(Err(e.to_string())).unwrap();
                return;
            }
        };
        opened.send(Ok(())).unwrap();
        let until = Instant::now() + 6 * STEP;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            port.rx_burst(64, |f| {
                let _ = tx.send(f.to_vec());
            });
            port.wait(Duration::from_millis(5), None)
                .expect("poll the socket");
        }
        let stats = port.stats().expect("xdp statistics");
        assert_eq!(stats.xdp.rx_invalid_descs, 0, "{stats:?}");
    })
}

/// The peer side's frame sender: an AF_XDP port on the peer's veth (our
/// program with empty maps: it steers nothing, the peer's kernel keeps its
/// traffic) sending every frame it is given, until the channel closes.
fn spawn_sender(
    lab: &Lab,
    frames: mpsc::Receiver<Vec<u8>>,
    opened: mpsc::Sender<Result<(), String>>,
) -> thread::JoinHandle<()> {
    let iface = lab.get("LAB_PEER_IF");
    in_ns(lab.get("LAB_PEER_NS"), move || {
        let cfg = AfXdpConfig::new(&iface, 0, Vec::<IpAddr>::new());
        let mut port = match AfXdpPort::open(&cfg) {
            Ok(p) => p,
            Err(e) => {
                opened.send(Err(e.to_string())).unwrap();
                return;
            }
        };
        opened.send(Ok(())).unwrap();
        while let Ok(frame) = frames.recv() {
            let queued = port.tx_frame(|buf| {
                buf[..frame.len()].copy_from_slice(&frame);
                Some(frame.len())
            });
            assert_eq!(queued, TxOutcome::Queued);
            let until = Instant::now() + STEP;
            while port.tx_in_flight() > 0 && Instant::now() < until {
                port.flush().expect("flush the peer's TX ring");
                thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(port.tx_in_flight(), 0, "the peer could not send a frame");
        }
    })
}

/// A kernel TCP connect from the peer namespace to `to`, at most `within`;
/// whether it connected.
fn kernel_connect(lab: &Lab, to: SocketAddrV6, within: Duration) -> bool {
    in_ns(lab.get("LAB_PEER_NS"), move || {
        TcpStream::connect_timeout(&SocketAddr::V6(to), within).is_ok()
    })
    .join()
    .expect("connect thread")
}

#[test]
#[ignore = "needs root and netns"]
fn xdp_steers_ipv6_for_our_addresses_only() {
    let lab = lingerd_lab::need("system_xdp6", &lingerd_lab::unique_id("x6"), 1);
    let dut_if = lab.get("LAB_DUT_IF");
    let peer_if = lab.get("LAB_PEER_IF");
    let macs = Macs {
        peer: lab.get("LAB_PEER_MAC").parse().expect("the lab's MAC"),
        dut: lab.get("LAB_DUT_MAC").parse().expect("the lab's MAC"),
    };
    // The lab turns IPv6 off in its namespaces; this test wants it.
    for (ns, iface) in [("LAB_DUT_NS", &dut_if), ("LAB_PEER_NS", &peer_if)] {
        sysctl(&lab, ns, "net.ipv6.conf.all.disable_ipv6=0");
        sysctl(&lab, ns, &format!("net.ipv6.conf.{iface}.disable_ipv6=0"));
    }
    lab.ip(
        "LAB_DUT_NS",
        &[
            "-6",
            "addr",
            "add",
            &format!("{DUT6}/64"),
            "dev",
            &dut_if,
            "nodad",
        ],
    );
    lab.ip(
        "LAB_PEER_NS",
        &[
            "-6",
            "addr",
            "add",
            &format!("{PEER6}/64"),
            "dev",
            &peer_if,
            "nodad",
        ],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (frame_tx, frame_rx) = mpsc::channel();
    let (opened_tx, opened_rx) = mpsc::channel();
    let receiver = spawn_receiver(&lab, stop.clone(), frame_tx, opened_tx.clone());
    if let Err(e) = opened_rx.recv_timeout(STEP).expect("receiver said nothing") {
        panic!("the dut's AF_XDP port did not open: {e}");
    }
    let (send_tx, send_rx) = mpsc::channel::<Vec<u8>>();
    let sender = spawn_sender(&lab, send_rx, opened_tx);
    if let Err(e) = opened_rx.recv_timeout(STEP).expect("sender said nothing") {
        panic!("the peer's AF_XDP port did not open: {e}");
    }
    let mut got = Received {
        rx: frame_rx,
        all: Vec::new(),
    };

    // 1. The peer's kernel resolves OURS6: its solicitation (to the
    // solicited-node group) is steered. Nobody answers, so the connect
    // fails.
    let ours7 = SocketAddrV6::new(OURS6, STEERED_PORT, 0, 0);
    assert!(!kernel_connect(&lab, ours7, Duration::from_millis(1500)));
    got.expect("the peer kernel's NS for 2001:db8::3", |f| {
        classify(f) == Seen::Solicit { target: OURS6 }
    });

    // 2. With a neighbour entry the peer's kernel sends its SYNs: to port 7
    // steered, to port 9 not (checked after the sentinel below).
    lab.ip(
        "LAB_PEER_NS",
        &[
            "-6",
            "neigh",
            "replace",
            &OURS6.to_string(),
            "lladdr",
            &lab.get("LAB_DUT_MAC"),
            "dev",
            &peer_if,
            "nud",
            "permanent",
        ],
    );
    assert!(!kernel_connect(&lab, ours7, Duration::from_millis(300)));
    got.expect("the peer kernel's SYN to [2001:db8::3]:7", |f| {
        matches!(classify(f), Seen::Tcp { dst: OURS6, port: STEERED_PORT, flags } if flags.syn())
    });
    let ours9 = SocketAddrV6::new(OURS6, OTHER_PORT, 0, 0);
    assert!(!kernel_connect(&lab, ours9, Duration::from_millis(300)));

    // 3. The kernel's own address still works (its ND and TCP pass).
    let (ready_tx, ready_rx) = mpsc::channel();
    let listener = in_ns(lab.get("LAB_DUT_NS"), move || {
        let l = TcpListener::bind(SocketAddrV6::new(DUT6, OTHER_PORT, 0, 0))
            .expect("bind the dut's kernel listener");
        l.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let until = Instant::now() + STEP;
        let (mut s, _) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("the dut's kernel listener: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("the dut's kernel reads");
        s.write_all(&buf).unwrap();
    });
    ready_rx.recv_timeout(STEP).expect("the dut's listener");
    let reply = in_ns(lab.get("LAB_PEER_NS"), move || {
        let to = SocketAddr::V6(SocketAddrV6::new(DUT6, OTHER_PORT, 0, 0));
        let mut s = TcpStream::connect_timeout(&to, STEP).expect("connect to the dut's kernel");
        s.set_read_timeout(Some(STEP)).unwrap();
        s.write_all(b"pass").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("read from the dut's kernel");
        buf
    })
    .join()
    .expect("the peer's client");
    assert_eq!(&reply, b"pass");
    listener.join().expect("the dut's listener");

    // 4. Frames built here. Each is different (the TCP sequence numbers,
    // the fragment identifications, the MTUs tell them apart).
    let steered: Vec<(&str, Vec<u8>)> = vec![
        ("SYN to :7", tcp_frame(macs, OURS6, &[], STEERED_PORT, 1)),
        (
            "SYN to the ephemeral range",
            tcp_frame(macs, OURS6, &[], EPHEMERAL.0 + 5, 2),
        ),
        (
            "SYN to :7 behind Hop-by-Hop, Routing and Destination Options",
            tcp_frame(
                macs,
                OURS6,
                &[
                    options_header(HOP_BY_HOP),
                    routing_header(),
                    options_header(DEST_OPTS),
                ],
                STEERED_PORT,
                3,
            ),
        ),
        (
            "SYN to :7 behind an atomic fragment",
            tcp_frame(
                macs,
                OURS6,
                &[fragment_header(0, false, 4)],
                STEERED_PORT,
                4,
            ),
        ),
        (
            "SYN to :7 behind six extension headers",
            tcp_frame(
                macs,
                OURS6,
                &[
                    options_header(HOP_BY_HOP),
                    options_header(DEST_OPTS),
                    routing_header(),
                    routing_header(),
                    fragment_header(0, false, 5),
                    options_header(DEST_OPTS),
                ],
                STEERED_PORT,
                5,
            ),
        ),
        (
            "first fragment (M set) to a port not steered",
            tcp_frame(macs, OURS6, &[fragment_header(0, true, 6)], OTHER_PORT, 6),
        ),
        (
            "last fragment (offset 185)",
            frame6(macs, OURS6, &[fragment_header(185, false, 7)], TCP, b"tail"),
        ),
        ("Neighbor Solicitation for ours", solicit(macs, OURS6)),
        ("Neighbor Advertisement to ours", advert(macs, OURS6)),
        ("Packet Too Big to ours", too_big(macs, OURS6, 1400)),
    ];
    let passed: Vec<(&str, Vec<u8>)> = vec![
        (
            "SYN to ours, port not steered",
            tcp_frame(macs, OURS6, &[], OTHER_PORT, 101),
        ),
        (
            "SYN to ours, port not steered, behind an atomic fragment",
            tcp_frame(
                macs,
                OURS6,
                &[fragment_header(0, false, 102)],
                OTHER_PORT,
                102,
            ),
        ),
        (
            "SYN to the kernel's address",
            tcp_frame(macs, DUT6, &[], STEERED_PORT, 103),
        ),
        (
            "SYN to :7 behind seven extension headers (past the walk)",
            tcp_frame(
                macs,
                OURS6,
                &[
                    options_header(HOP_BY_HOP),
                    options_header(DEST_OPTS),
                    routing_header(),
                    routing_header(),
                    routing_header(),
                    routing_header(),
                    options_header(DEST_OPTS),
                ],
                STEERED_PORT,
                104,
            ),
        ),
        (
            "fragment to the kernel's address",
            tcp_frame(
                macs,
                DUT6,
                &[fragment_header(0, true, 105)],
                STEERED_PORT,
                105,
            ),
        ),
        (
            "a chain cut short",
            frame6(macs, OURS6, &[], DEST_OPTS, &[TCP, 0, 1, 4]),
        ),
        (
            "a TCP header cut short",
            frame6(macs, OURS6, &[], TCP, &syn(OURS6, STEERED_PORT, 106)[..12]),
        ),
        (
            "UDP to ours",
            frame6(
                macs,
                OURS6,
                &[],
                UDP,
                &[0x82, 0x35, 0, 7, 0, 12, 0, 0, 1, 2, 3, 4],
            ),
        ),
        (
            "Neighbor Solicitation for the kernel's address",
            solicit(macs, DUT6),
        ),
        (
            "Neighbor Advertisement to the kernel's address",
            advert(macs, DUT6),
        ),
        (
            "Packet Too Big to the kernel's address",
            too_big(macs, DUT6, 1300),
        ),
    ];
    let sentinel = tcp_frame(macs, OURS6, &[], STEERED_PORT, 999);
    for (_, frame) in passed.iter().chain(&steered) {
        send_tx.send(frame.clone()).unwrap();
    }
    send_tx.send(sentinel.clone()).unwrap();
    for (what, frame) in &steered {
        got.expect_frame(what, frame);
    }
    got.expect_frame("the sentinel", &sentinel);

    stop.store(true, Ordering::Relaxed);
    drop(send_tx);
    sender.join().expect("the peer's sender");
    receiver.join().expect("the dut's receiver");
    while let Ok(frame) = got.rx.try_recv() {
        got.all.push(frame);
    }

    // Everything sent before the sentinel has been through the program.
    for (what, frame) in &passed {
        assert!(
            !got.all.contains(frame),
            "{what}: steered, but it is not ours"
        );
    }
    for frame in &got.all {
        let seen = classify(frame);
        match seen {
            Seen::Tcp { dst, port, .. } => {
                assert_eq!(dst, OURS6, "{seen:?}");
                assert_ne!(port, OTHER_PORT, "a SYN to a port not steered: {seen:?}");
            }
            Seen::Solicit { target } => assert_eq!(target, OURS6, "{seen:?}"),
            Seen::Other { dst } => assert_eq!(dst, OURS6, "{seen:?}"),
            Seen::NotIpv6 => panic!("a frame that is not IPv6 was steered: {frame:?}"),
        }
    }
    eprintln!("system_xdp6: {} frames steered", got.all.len());
}
