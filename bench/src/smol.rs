//! The smoltcp baseline: smoltcp 0.14 sockets established to a lingerd
//! engine, then all aborted (`tcp::Socket::abort`) and polled until every
//! RST is out, timed like lingerd's own abort.
//!
//! smoltcp (198.18.0.2) is the active opener; lingerd engine A (198.18.0.1)
//! listens. Frames move directly between smoltcp's in-memory device and the
//! engine on a virtual clock. smoltcp's TX frames go into preallocated
//! slots, as lingerd's do into its TX ring, so neither side pays for an
//! allocation per frame. This module owns the device, the set-up and the
//! timed loop; it checks the RST count but never judges a timing.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{Detail, Request};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

use crate::engine::{A_IP, BASE_PORT, CLIENT, config_a, is_rst};

/// Bytes of one TX slot of the device.
const SLOT: usize = 256;

/// smoltcp's side of the wire: received frames queued for it, transmitted
/// frames in reusable slots.
#[derive(Debug, Default)]
struct Device {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<[u8; SLOT]>,
    tx_lens: Vec<u16>,
}

struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct TxToken<'a>(&'a mut Device);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        assert!(
            len <= SLOT,
            "smoltcp frame of {len} bytes in a {SLOT}-byte slot"
        );
        let dev = self.0;
        let i = dev.tx_lens.len();
        if i == dev.tx.len() {
            dev.tx.push([0; SLOT]);
        }
        dev.tx_lens.push(len as u16);
        f(&mut dev.tx[i][..len])
    }
}

impl phy::Device for Device {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(self)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

impl Device {
    /// The transmitted frames, in order.
    fn sent(&self) -> impl Iterator<Item = &[u8]> {
        self.tx
            .iter()
            .zip(&self.tx_lens)
            .map(|(s, &l)| &s[..usize::from(l)])
    }
}

/// smoltcp with `n` TCP sockets established to a lingerd engine.
pub struct SmolLab {
    iface: Interface,
    device: Device,
    sockets: SocketSet<'static>,
    handles: Vec<SocketHandle>,
    engine: QueueEngine,
    now: Instant,
}

impl std::fmt::Debug for SmolLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmolLab")
            .field("sockets", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl SmolLab {
    /// Opens `n` smoltcp sockets (ports 1024..) to engine A's listener and
    /// returns once all are established on both sides.
    ///
    /// # Panics
    /// If `n` exceeds 64,000 or a connection did not get established.
    pub fn establish(n: u32) -> SmolLab {
        assert!(n <= 64_000, "one listener, one peer address: at most 64k");
        let now = Instant::now();
        let mut device = Device::default();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, 2,
        ])));
        config.random_seed = 0x5eed;
        let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::Ipv4(Ipv4Cidr::new(
                    Ipv4Address::new(198, 18, 0, 2),
                    24,
                )))
                .expect("room for one address");
        });
        let mut engine = QueueEngine::new(config_a(n), now);
        engine.handle_request(
            now,
            CLIENT,
            0,
            Request::Listen {
                port: BASE_PORT,
                backlog: 1 << 20,
            },
        );
        while engine.poll_completion().is_some() {}
        let mut sockets = SocketSet::new(Vec::with_capacity(n as usize));
        let mut handles = Vec::with_capacity(n as usize);
        for i in 0..n {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 512]),
                tcp::SocketBuffer::new(vec![0; 512]),
            );
            socket
                .connect(
                    iface.context(),
                    IpEndpoint::from(SocketAddrV4::new(A_IP, BASE_PORT)),
                    1024 + i as u16,
                )
                .expect("connect on a fresh socket");
            handles.push(sockets.add(socket));
        }
        let mut lab = SmolLab {
            iface,
            device,
            sockets,
            handles,
            engine,
            now,
        };
        let accepted = lab.pump();
        let established = lab
            .handles
            .iter()
            .filter(|&&h| lab.sockets.get::<tcp::Socket>(h).state() == tcp::State::Established)
            .count();
        assert_eq!(
            (established, accepted),
            (n as usize, n as usize),
            "smoltcp sockets established, lingerd accepts"
        );
        lab
    }

    fn smol_now(&self) -> SmolInstant {
        SmolInstant::ZERO
    }

    /// Moves frames both ways until both sides are quiet; returns how many
    /// connections the engine accepted meanwhile.
    fn pump(&mut self) -> usize {
        let mut accepted = 0;
        let mut buf = [0u8; 2048];
        for _ in 0..1_000 {
            let t = self.smol_now();
            let _ = self.iface.poll(t, &mut self.device, &mut self.sockets);
            let mut moved = self.device.tx_lens.len();
            for frame in self.device.sent() {
                self.engine.handle_rx(self.now, frame);
            }
            self.device.tx_lens.clear();
            while let Some(len) = self.engine.poll_transmit(self.now, &mut buf) {
                self.device.rx.push_back(buf[..len].to_vec());
                moved += 1;
            }
            while let Some(c) = self.engine.poll_completion() {
                accepted += usize::from(matches!(c.detail, Detail::Accepted { .. }));
            }
            if moved == 0 && self.device.rx.is_empty() {
                break;
            }
        }
        accepted
    }

    /// Aborts every socket, `burst` at a time, polling the interface after
    /// each burst until that burst's RSTs are out; times it from the first
    /// `abort()` to the last RST written. `burst` ≥ the socket count is
    /// "abort all, then poll"; [`crate::engine::BURST`] is the rhythm
    /// lingerd is measured with (a burst of requests, then a TX drain).
    ///
    /// # Panics
    /// If the RSTs do not all come out within a few polls per burst.
    pub fn abort_all(&mut self, burst: usize) -> Duration {
        let n = self.handles.len();
        self.device.tx_lens.clear();
        let t = self.smol_now();
        let mut rsts = 0;
        let start = Instant::now();
        for chunk in self.handles.chunks(burst.max(1)) {
            for &h in chunk {
                self.sockets.get_mut::<tcp::Socket>(h).abort();
            }
            let target = rsts + chunk.len();
            for _ in 0..64 {
                let _ = self.iface.poll(t, &mut self.device, &mut self.sockets);
                rsts += self.device.sent().filter(|f| is_rst(f)).count();
                self.device.tx_lens.clear();
                if rsts >= target {
                    break;
                }
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(rsts, n, "smoltcp RSTs after abort");
        elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoltcp_establishes_and_aborts_with_one_rst_each() {
        let mut lab = SmolLab::establish(500);
        assert!(lab.abort_all(usize::MAX) > Duration::ZERO);
        let mut lab = SmolLab::establish(500);
        assert!(lab.abort_all(64) > Duration::ZERO);
    }
}
