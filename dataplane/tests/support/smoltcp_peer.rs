//! `SmolPeer`: an independent TCP stack (smoltcp 0.14) behind the
//! [`Endpoint`] trait, so lingerd's engine is judged by code nobody here
//! wrote.
//!
//! It owns one smoltcp `Interface` (Ethernet medium, one MAC, one IPv4
//! address, optional default gateway), an in-memory `phy::Device` made of an
//! rx and a tx queue, a `SocketSet` of TCP sockets, and a record per socket
//! of its state history and of resets it received. It may not reach into the
//! engine or the port's links: everything it learns comes through frames.
//!
//! Time: a `std::time::Instant` maps to `smoltcp::time::Instant` as the
//! microseconds since the `base` given to [`SmolPeer::new`] (use the
//! [`Pair`](lingerd_testkit::mem::Pair)'s start), so smoltcp's clock
//! and the pair's are the same clock.
//!
//! ARP: smoltcp resolves its peer's MAC by ARP (and learns it from incoming
//! ARP and IP frames); there is no public way to pre-seed its neighbour
//! cache. The far side must therefore answer ARP requests for its address
//! (two `SmolPeer`s do; the engine must). The first segment to a new
//! neighbour waits for the ARP reply, and a lost ARP exchange costs smoltcp's
//! one-second discovery silence.
//!
//! Known smoltcp 0.14 bug: once all data is acknowledged but a lost FIN is
//! not, three pure ACKs for the FIN's sequence number start a fast
//! retransmit with nothing to send; that idles the retransmission timer and
//! the FIN is never sent again (the closer stays in FIN-WAIT-1 or LAST-ACK).
//! Lossy tests that close from smoltcp must pick a seed that avoids it; see
//! `test_smoltcp_fin_stranded_by_dup_acks` in `tests/mem_smoltcp.rs`.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use lingerd_dataplane::port::Endpoint;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, IpAddress, IpCidr,
    IpEndpoint, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv6Address, Ipv6Cidr, Ipv6Packet,
    TcpPacket,
};

/// How one `SmolPeer` is set up.
#[derive(Debug, Clone)]
pub(crate) struct SmolConfig {
    /// Its Ethernet address.
    pub(crate) mac: [u8; 6],
    /// Its address and prefix: IPv4, or IPv6 in a run over IPv6
    /// (`support::raw_peer::FAMILY_ENV`).
    pub(crate) ip: IpCidr,
    /// A default IPv4 route through this gateway, if any.
    pub(crate) gateway: Option<Ipv4Address>,
    /// Seed of smoltcp's own PRNG (ISNs): fixed for reproducible runs.
    pub(crate) seed: u64,
    /// Receive buffer of sockets created from now on, in bytes. A small one
    /// that the test never reads is how the peer advertises a zero window.
    pub(crate) rx_buffer: usize,
    /// Send buffer of sockets created from now on, in bytes.
    pub(crate) tx_buffer: usize,
}

impl SmolConfig {
    /// A peer at `198.18.0.<host>/24` (in a run over IPv6,
    /// `2001:db8::<host>/64`) with MAC `02:00:00:00:00:<host>`, 64 KiB
    /// buffers, seed `host`.
    pub(crate) fn host(host: u8) -> Self {
        let ip = if super::raw_peer::family_is_v6() {
            IpCidr::Ipv6(Ipv6Cidr::new(
                Ipv6Address::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host)),
                64,
            ))
        } else {
            IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(198, 18, 0, host), 24))
        };
        Self {
            mac: [0x02, 0, 0, 0, 0, host],
            ip,
            gateway: None,
            seed: u64::from(host),
            rx_buffer: 64 * 1024,
            tx_buffer: 64 * 1024,
        }
    }
}

/// The in-memory device: frames the pair handed in, frames smoltcp emitted.
#[derive(Debug, Default)]
struct MemDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push_back(frame);
        r
    }
}

impl phy::Device for MemDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A reset the peer received: an inbound segment with RST that took one of
/// its sockets out of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResetEvent {
    /// When (pair clock).
    pub(crate) at: Instant,
    /// The state the socket was in.
    pub(crate) from: tcp::State,
    /// The state it went to: `Closed`, or `Listen` for a listening socket
    /// reset in `SynReceived`.
    pub(crate) to: tcp::State,
}

/// What the peer remembers about one of its sockets.
#[derive(Debug)]
struct Tracked {
    handle: SocketHandle,
    last: tcp::State,
    history: Vec<(Instant, tcp::State)>,
    resets: Vec<ResetEvent>,
}

/// smoltcp as an [`Endpoint`]. See the module documentation for time and ARP.
///
/// Reset detection: smoltcp has no "reset" flag, and a socket reaching
/// `Closed` proves nothing (local `abort`, `LastAck` acked, `TimeWait`
/// expired all end there). So the peer processes each received frame on its
/// own and, when that frame is a TCP segment with RST *and* a socket leaves
/// a connected state for `Closed` (or `SynReceived` for `Listen`) while
/// processing it, records a [`ResetEvent`]. States are snapshotted before
/// the frame, so anything a test did in between (`abort`, `close`, direct
/// socket calls) is never mistaken for a reset. An RST smoltcp rejects (out
/// of window) changes no state and is not counted: the trace shows it.
pub(crate) struct SmolPeer {
    iface: Interface,
    device: MemDevice,
    sockets: SocketSet<'static>,
    config: SmolConfig,
    base: Instant,
    last_now: Instant,
    timeout: Option<Instant>,
    tracked: Vec<Tracked>,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for SmolPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmolPeer")
            .field("ip", &self.config.ip)
            .field("sockets", &self.tracked)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmolPeer {
    /// A peer whose smoltcp clock reads zero at `base`.
    pub(crate) fn new(config: SmolConfig, base: Instant) -> Self {
        let mut device = MemDevice::default();
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        iface_config.random_seed = config.seed;
        let mut iface = Interface::new(iface_config, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs.push(config.ip).expect("room for one address");
        });
        if let Some(gw) = config.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .expect("room for one route");
        }
        Self {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            config,
            base,
            last_now: base,
            timeout: None,
            tracked: Vec::new(),
            frames_in: 0,
            frames_out: 0,
        }
    }

    /// Its configuration (buffer sizes may be changed between sockets with
    /// [`set_buffers`](Self::set_buffers)).
    pub(crate) fn config(&self) -> &SmolConfig {
        &self.config
    }

    /// Its Ethernet address.
    pub(crate) fn mac(&self) -> [u8; 6] {
        self.config.mac
    }

    /// Its address.
    pub(crate) fn ip(&self) -> IpAddr {
        match self.config.ip.address() {
            IpAddress::Ipv4(a) => IpAddr::V4(a),
            IpAddress::Ipv6(a) => IpAddr::V6(a),
        }
    }

    /// `ip:port` on this peer.
    pub(crate) fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(), port)
    }

    /// Buffer sizes for sockets created from now on.
    pub(crate) fn set_buffers(&mut self, rx: usize, tx: usize) {
        self.config.rx_buffer = rx;
        self.config.tx_buffer = tx;
    }

    /// Frames received and transmitted so far.
    pub(crate) fn frame_counts(&self) -> (u64, u64) {
        (self.frames_in, self.frames_out)
    }

    fn smol_now(&self, now: Instant) -> SmolInstant {
        let micros = now.saturating_duration_since(self.base).as_micros();
        SmolInstant::from_micros(i64::try_from(micros).expect("under 292k years"))
    }

    fn new_socket(&mut self) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.config.rx_buffer]),
            tcp::SocketBuffer::new(vec![0; self.config.tx_buffer]),
        )
    }

    fn track(&mut self, handle: SocketHandle) -> SocketHandle {
        let state = self.sockets.get::<tcp::Socket>(handle).state();
        self.tracked.push(Tracked {
            handle,
            last: state,
            history: vec![(self.last_now, state)],
            resets: Vec::new(),
        });
        self.touch();
        handle
    }

    /// A socket changed outside a poll: smoltcp wants to run now.
    fn touch(&mut self) {
        self.observe(self.last_now, false);
        self.timeout = Some(self.last_now);
    }

    /// A listening socket on `port`. smoltcp has no accept: this very
    /// socket becomes the connection (one connection per `listen`).
    pub(crate) fn listen(&mut self, port: u16) -> SocketHandle {
        let mut socket = self.new_socket();
        socket.listen(port).expect("listen on a fresh socket");
        let handle = self.sockets.add(socket);
        self.track(handle)
    }

    /// An active open from `local_port` to `remote`.
    pub(crate) fn connect(&mut self, remote: SocketAddr, local_port: u16) -> SocketHandle {
        let mut socket = self.new_socket();
        socket
            .connect(self.iface.context(), IpEndpoint::from(remote), local_port)
            .expect("connect on a fresh socket");
        let handle = self.sockets.add(socket);
        self.track(handle)
    }

    /// The socket itself, for anything not wrapped here.
    pub(crate) fn socket(&self, h: SocketHandle) -> &tcp::Socket<'static> {
        self.sockets.get(h)
    }

    /// The socket itself, mutably (Nagle, ACK delay, keepalive, timeout).
    pub(crate) fn socket_mut(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.timeout = Some(self.last_now);
        self.sockets.get_mut(h)
    }

    /// Queues as much of `data` as the send buffer takes; returns how much.
    pub(crate) fn send(&mut self, h: SocketHandle, data: &[u8]) -> usize {
        let n = self
            .sockets
            .get_mut::<tcp::Socket>(h)
            .send_slice(data)
            .unwrap_or(0);
        self.touch();
        n
    }

    /// Everything received and not yet read (opens the window again).
    pub(crate) fn recv(&mut self, h: SocketHandle) -> Vec<u8> {
        let socket = self.sockets.get_mut::<tcp::Socket>(h);
        let mut out = vec![0; socket.recv_queue()];
        let n = socket.recv_slice(&mut out).unwrap_or(0);
        out.truncate(n);
        self.touch();
        out
    }

    /// Its TCP state.
    pub(crate) fn state(&self, h: SocketHandle) -> tcp::State {
        self.socket(h).state()
    }

    /// Whether data may still arrive (smoltcp's `may_recv`).
    pub(crate) fn may_recv(&self, h: SocketHandle) -> bool {
        self.socket(h).may_recv()
    }

    /// Whether it may still send (smoltcp's `may_send`).
    pub(crate) fn may_send(&self, h: SocketHandle) -> bool {
        self.socket(h).may_send()
    }

    /// Graceful close: FIN after the queued data.
    pub(crate) fn close(&mut self, h: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(h).close();
        self.touch();
    }

    /// Abortive close: smoltcp sends an RST in synchronized states.
    pub(crate) fn abort(&mut self, h: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(h).abort();
        self.touch();
    }

    /// Whether an inbound RST reset this socket (see the type's docs).
    pub(crate) fn was_reset(&self, h: SocketHandle) -> bool {
        !self.resets(h).is_empty()
    }

    /// The resets this socket received (a listener can be reset more than
    /// once).
    pub(crate) fn resets(&self, h: SocketHandle) -> &[ResetEvent] {
        &self.tracked(h).resets
    }

    /// Every state the socket was seen in, with when, starting with its
    /// state at creation. Transitions inside one poll that come back to the
    /// same state are not seen.
    pub(crate) fn history(&self, h: SocketHandle) -> &[(Instant, tcp::State)] {
        &self.tracked(h).history
    }

    /// Whether the socket ever was in `state`.
    pub(crate) fn visited(&self, h: SocketHandle, state: tcp::State) -> bool {
        self.history(h).iter().any(|&(_, s)| s == state)
    }

    fn tracked(&self, h: SocketHandle) -> &Tracked {
        self.tracked
            .iter()
            .find(|t| t.handle == h)
            .expect("a socket of this peer")
    }

    fn observe(&mut self, now: Instant, rst_frame: bool) {
        use tcp::State::*;
        for t in &mut self.tracked {
            let state = self.sockets.get::<tcp::Socket>(t.handle).state();
            if state == t.last {
                continue;
            }
            let connected = !matches!(t.last, Closed | Listen);
            if rst_frame
                && connected
                && matches!((t.last, state), (_, Closed) | (SynReceived, Listen))
            {
                t.resets.push(ResetEvent {
                    at: now,
                    from: t.last,
                    to: state,
                });
            }
            t.history.push((now, state));
            t.last = state;
        }
    }

    fn refresh_timeout(&mut self, now: Instant) {
        let smol_now = self.smol_now(now);
        self.timeout = self.iface.poll_at(smol_now, &self.sockets).map(|at| {
            // smoltcp says "now" as time zero; the pair reads anything at or
            // before its clock as due.
            let micros = u64::try_from(at.total_micros()).unwrap_or(0);
            (self.base + std::time::Duration::from_micros(micros)).max(now)
        });
    }

    fn poll(&mut self, now: Instant) {
        self.last_now = now;
        let smol_now = self.smol_now(now);
        self.iface
            .poll(smol_now, &mut self.device, &mut self.sockets);
        self.observe(now, false);
        self.refresh_timeout(now);
    }
}

/// Whether `frame` is an Ethernet/IPv4/TCP or Ethernet/IPv6/TCP segment
/// (no extension headers) with RST set (parsed with smoltcp's own wire
/// module: this file needs no other parser).
fn is_tcp_rst(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let tcp = match eth.ethertype() {
        EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(eth.payload()) {
            Ok(ip) if ip.next_header() == IpProtocol::Tcp => ip.payload().to_vec(),
            _ => return false,
        },
        EthernetProtocol::Ipv6 => match Ipv6Packet::new_checked(eth.payload()) {
            Ok(ip) if ip.next_header() == IpProtocol::Tcp => ip.payload().to_vec(),
            _ => return false,
        },
        _ => return false,
    };
    TcpPacket::new_checked(&tcp[..]).is_ok_and(|tcp| tcp.rst())
}

impl Endpoint for SmolPeer {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.frames_in += 1;
        self.last_now = now;
        // Changes made since the last poll are not resets.
        self.observe(now, false);
        self.device.rx.push_back(frame.to_vec());
        let smol_now = self.smol_now(now);
        // One frame, ingress only, so any state change is this frame's doing.
        let _ = self
            .iface
            .poll_ingress_single(smol_now, &mut self.device, &mut self.sockets);
        self.observe(now, is_tcp_rst(frame));
        self.poll(now);
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.device.tx.is_empty() {
            self.poll(now);
        }
        let frame = self.device.tx.pop_front()?;
        assert!(
            frame.len() <= buf.len(),
            "smoltcp frame of {} bytes does not fit the {}-byte buffer",
            frame.len(),
            buf.len()
        );
        buf[..frame.len()].copy_from_slice(&frame);
        self.frames_out += 1;
        Some(frame.len())
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.timeout
    }

    fn on_timeout(&mut self, now: Instant) {
        self.poll(now);
    }
}
