//! The load generator's bare RST counter: once a connection is established,
//! an RST for it is recognised and counted here, on the frame, without the
//! engine's table (no lookup, no record, no index delete), so that the
//! receiving side of an abort teardown costs less per close than the dut's.
//!
//! [`Tally`] keeps one [`Slot`] per 4-tuple the generator can use, indexed
//! directly by (dut port, our port): [`PER_PORT`] slots per dut port. A slot
//! learns the dut's initial sequence number from the SYN-ACK that passes by
//! (the engine still gets it), is marked established when the engine says
//! the connection is (`Connected`), and is counted at most once: by an RST
//! whose frame parses, whose IPv4 and TCP checksums verify, that comes from
//! the dut's address and port to ours, and whose sequence number is the
//! dut's ISN + 1 (the lab sends no data, so that is exactly the RST an abort
//! sends, RFC 9293 §3.10.7.4 with RFC 5961's exact match). Anything else
//! goes on to the engine, whose verdict the generator counts the usual way
//! ([`Tally::engine_close`] keeps the two from counting one connection
//! twice). [`Tallied`] is the [`Port`] wrapper that does this in `rx_burst`,
//! stamping the RSTs of a burst with one clock read.
//!
//! It owns its slots and its counters; it sends nothing and touches no
//! engine state.

use std::cell::RefCell;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use lingerd_dataplane::port::{Port, TxOutcome};
use lingerd_dataplane::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket,
};

use super::loadgen::{EPHEMERAL, PER_PORT};
use crate::clock::now_ns;

/// A slot's state.
const UNUSED: u8 = 0;
/// The engine reported the connection established.
const ESTABLISHED: u8 = 1;
/// Counted here, from an RST.
const COUNTED: u8 = 2;
/// Counted from the engine's event (an RST or FIN it processed).
const ENGINE: u8 = 3;

/// One 4-tuple's record (16 bytes: one cache line holds four).
#[derive(Clone, Copy, Debug, Default)]
pub struct Slot {
    /// When its RST was counted (`CLOCK_MONOTONIC` ns; 0 = not counted
    /// here).
    stamp: u64,
    /// The RST it expects: the dut's ISN + 1 (from the SYN-ACK).
    rst_seq: u32,
    /// Whether the SYN-ACK was seen.
    has_seq: bool,
    state: u8,
}

/// What the classifier made of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An RST of an established connection of ours, counted now: the
    /// engine must not see it.
    Counted,
    /// Anything else: the engine gets it.
    Pass,
}

/// The slots and the count (see the module text).
#[derive(Debug)]
pub struct Tally {
    dut: Ipv4Addr,
    us: Ipv4Addr,
    dut_ports: Vec<u16>,
    slots: Vec<Slot>,
    counted: u64,
}

impl Tally {
    /// Slots for every (dut port, ephemeral port) pair: `dut_ports.len()`
    /// × [`PER_PORT`].
    pub fn new(dut: Ipv4Addr, us: Ipv4Addr, dut_ports: &[u16]) -> Tally {
        Tally {
            dut,
            us,
            dut_ports: dut_ports.to_vec(),
            slots: vec![Slot::default(); dut_ports.len().saturating_mul(PER_PORT)],
            counted: 0,
        }
    }

    /// RSTs counted here so far.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    fn index(&self, dut_port: u16, our_port: u16) -> Option<usize> {
        let local = usize::from(our_port.checked_sub(EPHEMERAL.0)?);
        // The lab's ports are consecutive: try the offset first.
        let first = *self.dut_ports.first()?;
        let p = match dut_port.checked_sub(first).map(usize::from) {
            Some(i) if self.dut_ports.get(i) == Some(&dut_port) => i,
            _ => self.dut_ports.iter().position(|&p| p == dut_port)?,
        };
        p.checked_mul(PER_PORT)?.checked_add(local)
    }

    fn slot(&mut self, dut_port: u16, our_port: u16) -> Option<&mut Slot> {
        let i = self.index(dut_port, our_port)?;
        self.slots.get_mut(i)
    }

    /// The engine says the connection (our port, dut port) is established.
    pub fn established(&mut self, our_port: u16, dut_port: u16) {
        if let Some(s) = self.slot(dut_port, our_port)
            && s.state == UNUSED
        {
            s.state = ESTABLISHED;
        }
    }

    /// The engine reported the connection closed by the dut: `true` if it
    /// was not counted yet (here or before), and now is.
    pub fn engine_close(&mut self, our_port: u16, dut_port: u16) -> bool {
        match self.slot(dut_port, our_port) {
            Some(s) if s.state == COUNTED || s.state == ENGINE => false,
            Some(s) => {
                s.state = ENGINE;
                true
            }
            // Not a tuple of ours: the caller's own bookkeeping decides.
            None => true,
        }
    }

    /// When the RST of (our port, dut port) was counted here, if it was.
    pub fn counted_at(&self, our_port: u16, dut_port: u16) -> Option<u64> {
        let s = self.slots.get(self.index(dut_port, our_port)?)?;
        (s.state == COUNTED).then_some(s.stamp)
    }

    /// Looks at one received frame; `stamp` gives the burst's time (read
    /// once, on the first RST counted).
    pub fn classify(&mut self, frame: &[u8], stamp: &mut impl FnMut() -> u64) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Verdict::Pass;
        };
        if eth.ethertype() != EtherType::Ipv4 {
            return Verdict::Pass;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return Verdict::Pass;
        };
        if ip.protocol() != IpProtocol::Tcp
            || ip.src_addr() != self.dut
            || ip.dst_addr() != self.us
            || ip.is_fragment()
        {
            return Verdict::Pass;
        }
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
            return Verdict::Pass;
        };
        let flags = tcp.flags();
        let synack = flags.contains(TcpFlags::SYN) && flags.contains(TcpFlags::ACK);
        let rst = flags.contains(TcpFlags::RST) && !flags.contains(TcpFlags::SYN);
        if !(synack || rst) {
            return Verdict::Pass;
        }
        // Checksums last: the common frames above cost no sum.
        if !ip.verify_checksum() || !tcp.verify_checksum(self.dut, self.us) {
            return Verdict::Pass;
        }
        let seq = tcp.seq_number().0;
        let Some(slot) = self.slot(tcp.src_port(), tcp.dst_port()) else {
            return Verdict::Pass;
        };
        if synack {
            // A retransmitted SYN-ACK carries the same ISN; a new
            // connection on a reused tuple, its own.
            if slot.state == UNUSED {
                slot.rst_seq = seq.wrapping_add(1);
                slot.has_seq = true;
            }
            return Verdict::Pass;
        }
        if slot.state != ESTABLISHED || !slot.has_seq || slot.rst_seq != seq {
            return Verdict::Pass;
        }
        slot.state = COUNTED;
        slot.stamp = stamp();
        self.counted += 1;
        Verdict::Counted
    }
}

/// `port` with [`Tally::classify`] in front of the loop: counted RSTs never
/// reach it. `on_counted` learns how many a burst counted.
#[derive(Debug)]
pub struct Tallied<'t, P, C> {
    port: P,
    tally: Option<&'t RefCell<Tally>>,
    on_counted: C,
}

impl<'t, P: Port, C: FnMut(u64)> Tallied<'t, P, C> {
    /// Wraps `port`; with no `tally`, every frame passes.
    pub fn new(port: P, tally: Option<&'t RefCell<Tally>>, on_counted: C) -> Self {
        Tallied {
            port,
            tally,
            on_counted,
        }
    }

    /// The wrapped port.
    pub fn into_inner(self) -> P {
        self.port
    }
}

impl<P: Port, C: FnMut(u64)> Port for Tallied<'_, P, C> {
    type Stats = P::Stats;

    /// Counts every frame received, counted here or passed on.
    fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
        let Some(tally) = self.tally else {
            return self.port.rx_burst(max, on_frame);
        };
        let mut tally = tally.borrow_mut();
        let before = tally.counted();
        let mut now = 0;
        let mut stamp = || {
            if now == 0 {
                now = now_ns();
            }
            now
        };
        let n = self.port.rx_burst(max, |frame| {
            if tally.classify(frame, &mut stamp) == Verdict::Pass {
                on_frame(frame);
            }
        });
        let counted = tally.counted() - before;
        drop(tally);
        if counted > 0 {
            (self.on_counted)(counted);
        }
        n
    }

    fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
        self.port.tx_frame(write)
    }

    fn flush(&mut self) -> io::Result<usize> {
        self.port.flush()
    }

    fn tx_in_flight(&self) -> usize {
        self.port.tx_in_flight()
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        self.port.wait(timeout)
    }

    fn stats(&self) -> io::Result<P::Stats> {
        self.port.stats()
    }

    fn count_loop(&mut self) {
        self.port.count_loop();
    }
}

#[cfg(test)]
mod tests {
    use lingerd_dataplane::wire::{
        ControlSegment, EthernetAddress, RST_FRAME_LEN, RstTemplate, SeqNumber,
    };

    use super::*;

    const DUT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

    fn frame(from: Ipv4Addr, dut_port: u16, our_port: u16, seq: u32, flags: TcpFlags) -> Vec<u8> {
        let t = RstTemplate::new(
            EthernetAddress([2, 0, 0, 0, 0, 11]),
            EthernetAddress([2, 0, 0, 0, 0, 12]),
            from,
        );
        let mut f = [0u8; RST_FRAME_LEN];
        t.build_array(
            &mut f,
            &ControlSegment {
                remote_ip: US,
                local_port: dut_port,
                remote_port: our_port,
                seq: SeqNumber(seq),
                ack: SeqNumber(if flags.contains(TcpFlags::ACK) { 1 } else { 0 }),
                flags,
                window: 0,
            },
        );
        f.to_vec()
    }

    fn synack(dut_port: u16, our_port: u16, isn: u32) -> Vec<u8> {
        frame(
            DUT,
            dut_port,
            our_port,
            isn,
            TcpFlags::SYN.union(TcpFlags::ACK),
        )
    }

    fn rst(dut_port: u16, our_port: u16, seq: u32) -> Vec<u8> {
        frame(DUT, dut_port, our_port, seq, TcpFlags::RST)
    }

    #[test]
    fn counts_an_established_connections_rst_once() {
        let mut t = Tally::new(DUT, US, &[8080, 8081]);
        let mut clock = || 7;
        assert_eq!(
            t.classify(&synack(8081, 5000, u32::MAX), &mut clock),
            Verdict::Pass
        );
        // Before the engine says established: the engine gets it.
        assert_eq!(t.classify(&rst(8081, 5000, 0), &mut clock), Verdict::Pass);
        t.established(5000, 8081);
        assert_eq!(
            t.classify(&rst(8081, 5000, 1), &mut clock),
            Verdict::Pass,
            "wrong seq"
        );
        assert_eq!(
            t.classify(&rst(8081, 5000, 0), &mut clock),
            Verdict::Counted
        );
        assert_eq!(
            t.classify(&rst(8081, 5000, 0), &mut clock),
            Verdict::Pass,
            "once"
        );
        assert_eq!(t.counted(), 1);
        assert_eq!(t.counted_at(5000, 8081), Some(7));
        assert_eq!(t.counted_at(5000, 8080), None);
        assert!(!t.engine_close(5000, 8081), "already counted here");
    }

    #[test]
    fn passes_what_is_not_ours() {
        let mut t = Tally::new(DUT, US, &[8080]);
        let mut clock = || 1;
        t.classify(&synack(8080, 1024, 99), &mut clock);
        t.established(1024, 8080);
        let other = Ipv4Addr::new(198, 18, 0, 13);
        assert_eq!(
            t.classify(&frame(other, 8080, 1024, 100, TcpFlags::RST), &mut clock),
            Verdict::Pass,
            "another source"
        );
        assert_eq!(
            t.classify(&rst(8090, 1024, 100), &mut clock),
            Verdict::Pass,
            "another port"
        );
        assert_eq!(
            t.classify(&rst(8080, 80, 100), &mut clock),
            Verdict::Pass,
            "not ephemeral"
        );
        let mut bad = rst(8080, 1024, 100);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(t.classify(&bad, &mut clock), Verdict::Pass, "bad checksum");
        assert_eq!(
            t.classify(&bad[..30], &mut clock),
            Verdict::Pass,
            "truncated"
        );
        assert_eq!(t.classify(&[], &mut clock), Verdict::Pass);
        assert_eq!(t.counted(), 0);
        assert_eq!(
            t.classify(&rst(8080, 1024, 100), &mut clock),
            Verdict::Counted
        );
    }

    #[test]
    fn the_engines_close_counts_once_and_blocks_a_later_rst() {
        let mut t = Tally::new(DUT, US, &[8080]);
        let mut clock = || 1;
        t.classify(&synack(8080, 2000, 5), &mut clock);
        t.established(2000, 8080);
        assert!(t.engine_close(2000, 8080));
        assert!(!t.engine_close(2000, 8080));
        assert_eq!(t.classify(&rst(8080, 2000, 6), &mut clock), Verdict::Pass);
        assert_eq!(t.counted_at(2000, 8080), None);
    }

    #[test]
    fn the_port_drops_counted_rsts_and_stamps_once_per_burst() {
        struct Feed(Vec<Vec<u8>>);
        impl Port for Feed {
            type Stats = ();
            fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
                let n = max.min(self.0.len());
                for f in self.0.drain(..n) {
                    on_frame(&f);
                }
                n
            }
            fn tx_frame(&mut self, _: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
                TxOutcome::NoFrame
            }
            fn flush(&mut self) -> io::Result<usize> {
                Ok(0)
            }
            fn tx_in_flight(&self) -> usize {
                0
            }
            fn wait(&mut self, _: Duration) -> io::Result<bool> {
                Ok(false)
            }
            fn stats(&self) -> io::Result<()> {
                Ok(())
            }
            fn count_loop(&mut self) {}
        }
        let tally = RefCell::new(Tally::new(DUT, US, &[8080]));
        for p in 1024..1028 {
            tally.borrow_mut().classify(&synack(8080, p, 0), &mut || 0);
            tally.borrow_mut().established(p, 8080);
        }
        let feed = Feed(vec![
            rst(8080, 1024, 1),
            synack(8080, 3000, 0),
            rst(8080, 1025, 1),
            rst(8080, 1025, 1),
            rst(8080, 1026, 1),
        ]);
        let mut counted = 0;
        let mut port = Tallied::new(feed, Some(&tally), |n| counted += n);
        let mut passed = 0;
        assert_eq!(port.rx_burst(64, |_| passed += 1), 5);
        drop(port);
        assert_eq!((counted, passed), (3, 2));
        let t = tally.borrow();
        let stamps: Vec<_> = (1024..1028).map(|p| t.counted_at(p, 8080)).collect();
        let s = stamps[0].unwrap();
        assert!(s > 0);
        assert_eq!(stamps, [Some(s), Some(s), Some(s), None]);
    }
}
