//! The load generator's bare close counter: once a connection is
//! established, the dut's RST or FIN for it is recognised and counted here,
//! on the frame, without the engine's table (no lookup, no record, no index
//! delete), so that the receiving side of a teardown costs less per close
//! than the dut's.
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
//! twice).
//!
//! A FIN is answered, as the generator's engine would after closing its end
//! on the dut's FIN: with `fins`, a FIN whose sequence number is the dut's
//! ISN + 1, with no data, on an established slot, is counted and answered
//! by one FIN|ACK (our ISN + 1, learnt from the SYN-ACK's acknowledgment;
//! acknowledging the dut's FIN), built from an [`RstTemplate`]; a
//! retransmitted FIN gets the same answer again, and the dut's last ACK
//! (acknowledging our FIN) is dropped. The engine keeps those connections
//! as established, with nothing to send.
//!
//! [`Tallied`] is the [`Port`] wrapper that does this in `rx_burst`,
//! stamping the closes of a burst with one clock read and sending the
//! answers after it. It owns its slots, its counters and the answers it
//! has not sent yet; it touches no engine state.

use std::cell::RefCell;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use lingerd_dataplane::port::{Port, TxOutcome};
use lingerd_dataplane::wire::{
    ControlSegment, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, RstTemplate, SeqNumber,
    TcpFlags, TcpPacket,
};

use super::loadgen::{EPHEMERAL, PER_PORT};
use crate::clock::now_ns;

/// A slot's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SlotState {
    /// No connection yet.
    #[default]
    Unused,
    /// The engine reported the connection established.
    Established,
    /// Counted here, from an RST.
    Counted,
    /// Counted from the engine's event (an RST or FIN it processed).
    Engine,
    /// Counted here, from a FIN, and answered.
    FinAnswered,
}

/// The window our FIN|ACK advertises (unscaled).
const WINDOW: u16 = 1024;

/// One 4-tuple's record (24 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct Slot {
    /// When its close was counted (`CLOCK_MONOTONIC` ns; 0 = not counted
    /// here).
    stamp: u64,
    /// The dut's ISN + 1 (from the SYN-ACK): the sequence number of its
    /// RST or FIN, as the lab sends no data.
    rst_seq: u32,
    /// Our ISN + 1 (the SYN-ACK's acknowledgment).
    our_seq: u32,
    /// Whether the SYN-ACK was seen.
    has_seq: bool,
    state: SlotState,
}

/// How the dut closed a connection, as counted here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// An RST.
    Rst,
    /// A FIN (answered).
    Fin,
}

/// What the classifier made of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An RST or FIN of an established connection of ours, counted now:
    /// the engine must not see it.
    Counted,
    /// A frame this counter already handled (a retransmitted FIN, answered
    /// again, or the dut's last ACK): the engine must not see it either.
    Absorbed,
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
    /// Retransmitted FINs answered again.
    fins_again: u64,
    /// Answer and count FINs too.
    fins: bool,
    /// Our MAC and the dut's (from the first SYN-ACK), for the answers.
    template: Option<RstTemplate>,
    /// FIN|ACKs to send.
    answers: Vec<ControlSegment>,
}

impl Tally {
    /// Slots for every (dut port, ephemeral port) pair: `dut_ports.len()`
    /// × [`PER_PORT`].
    /// With `fins`, FINs are answered and counted as well as RSTs.
    pub fn new(dut: Ipv4Addr, us: Ipv4Addr, dut_ports: &[u16], fins: bool) -> Tally {
        Tally {
            dut,
            us,
            dut_ports: dut_ports.to_vec(),
            slots: vec![Slot::default(); dut_ports.len().saturating_mul(PER_PORT)],
            counted: 0,
            fins_again: 0,
            fins,
            template: None,
            answers: Vec::new(),
        }
    }

    /// Closes (RSTs and FINs) counted here so far.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// FINs the dut sent again after one was answered (a lost or refused
    /// answer would show here).
    pub fn fins_again(&self) -> u64 {
        self.fins_again
    }

    /// Writes the next pending answer into `buf` (`None`: none left, or no
    /// template yet); [`Tally::sent`] takes it off once the port queued it.
    pub fn next_answer(&self, buf: &mut [u8]) -> Option<usize> {
        let seg = self.answers.last()?;
        self.template.as_ref()?.build(buf, seg).ok()
    }

    /// The answer [`Tally::next_answer`] wrote was queued.
    pub fn sent(&mut self) {
        self.answers.pop();
    }

    /// Answers waiting for a TX buffer.
    pub fn pending(&self) -> usize {
        self.answers.len()
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
            && s.state == SlotState::Unused
        {
            s.state = SlotState::Established;
        }
    }

    /// The engine reported the connection closed by the dut: `true` if it
    /// was not counted yet (here or before), and now is.
    pub fn engine_close(&mut self, our_port: u16, dut_port: u16) -> bool {
        match self.slot(dut_port, our_port) {
            Some(s)
                if matches!(
                    s.state,
                    SlotState::Counted | SlotState::Engine | SlotState::FinAnswered
                ) =>
            {
                false
            }
            Some(s) => {
                s.state = SlotState::Engine;
                true
            }
            // Not a tuple of ours: the caller's own bookkeeping decides.
            None => true,
        }
    }

    /// When and how the close of (our port, dut port) was counted here, if
    /// it was.
    pub fn counted_at(&self, our_port: u16, dut_port: u16) -> Option<(u64, Closed)> {
        let s = self.slots.get(self.index(dut_port, our_port)?)?;
        match s.state {
            SlotState::Counted => Some((s.stamp, Closed::Rst)),
            SlotState::FinAnswered => Some((s.stamp, Closed::Fin)),
            _ => None,
        }
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
        // FIN|ACK or a bare ACK, no data: the dut's FIN, or its last ACK.
        let fin_or_ack = self.fins
            && flags.contains(TcpFlags::ACK)
            && !flags.contains(TcpFlags::SYN)
            && !flags.contains(TcpFlags::RST)
            && tcp.payload().is_empty();
        if !(synack || rst || fin_or_ack) {
            return Verdict::Pass;
        }
        // Checksums last: the common frames above cost no sum.
        if !ip.verify_checksum() || !tcp.verify_checksum(self.dut, self.us) {
            return Verdict::Pass;
        }
        let seq = tcp.seq_number().0;
        let ack = tcp.ack_number().0;
        let (dut_port, our_port) = (tcp.src_port(), tcp.dst_port());
        if synack && self.template.is_none() {
            self.template = Some(RstTemplate::new(eth.dst_addr(), eth.src_addr(), self.us));
        }
        let fins = self.fins;
        let Some(slot) = self.slot(dut_port, our_port) else {
            return Verdict::Pass;
        };
        if synack {
            // A retransmitted SYN-ACK carries the same ISN; a new
            // connection on a reused tuple, its own.
            if slot.state == SlotState::Unused {
                slot.rst_seq = seq.wrapping_add(1);
                slot.our_seq = ack;
                slot.has_seq = true;
            }
            return Verdict::Pass;
        }
        let fin = flags.contains(TcpFlags::FIN);
        // Every segment of the dut's here carries its ISN + 1, but the last
        // ACK, which comes after its FIN.
        let want = if rst || fin {
            slot.rst_seq
        } else {
            slot.rst_seq.wrapping_add(1)
        };
        if !slot.has_seq || seq != want {
            return Verdict::Pass;
        }
        let verdict = match (slot.state, rst, fin) {
            (SlotState::Established, true, _) => {
                slot.state = SlotState::Counted;
                Verdict::Counted
            }
            // The dut's FIN (acknowledging our SYN and nothing more), once
            // or again.
            (SlotState::Established, false, true) if fins && ack == slot.our_seq => {
                slot.state = SlotState::FinAnswered;
                Verdict::Counted
            }
            (SlotState::FinAnswered, false, true) if ack == slot.our_seq => Verdict::Absorbed,
            // Its last ACK, of our FIN.
            (SlotState::FinAnswered, false, false) if ack == slot.our_seq.wrapping_add(1) => {
                return Verdict::Absorbed;
            }
            _ => return Verdict::Pass,
        };
        let (our_seq, their_fin) = (slot.our_seq, slot.rst_seq);
        if verdict == Verdict::Counted {
            slot.stamp = stamp();
            self.counted += 1;
        } else {
            // Only a FIN again gets here.
            self.fins_again += 1;
        }
        if fin {
            self.answers.push(ControlSegment {
                remote_ip: self.dut,
                local_port: our_port,
                remote_port: dut_port,
                seq: SeqNumber(our_seq),
                ack: SeqNumber(their_fin.wrapping_add(1)),
                flags: TcpFlags::FIN.union(TcpFlags::ACK),
                window: WINDOW,
            });
        }
        verdict
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
        // The FIN|ACKs, while TX buffers last (the rest wait for the next
        // burst).
        while tally.pending() > 0 {
            let t = &*tally;
            if self.port.tx_frame(|buf| t.next_answer(buf)) != TxOutcome::Queued {
                break;
            }
            tally.sent();
        }
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

    fn wait(&mut self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<bool> {
        self.port.wait(timeout, also)
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

    /// The SYN-ACK acknowledges our SYN: our ISN is 1000 in every test.
    fn synack(dut_port: u16, our_port: u16, isn: u32) -> Vec<u8> {
        let flags = TcpFlags::SYN.union(TcpFlags::ACK);
        let mut f = frame(DUT, dut_port, our_port, isn, flags);
        set_ack(&mut f, 1001);
        f
    }

    /// Rewrites the ACK field (offset 42) and the TCP checksum (offset 50).
    fn set_ack(f: &mut [u8], ack: u32) {
        let old = u32::from_be_bytes([f[42], f[43], f[44], f[45]]);
        f[42..46].copy_from_slice(&ack.to_be_bytes());
        // RFC 1624's incremental update, one 16-bit word at a time.
        let mut sum = u32::from(!u16::from_be_bytes([f[50], f[51]]));
        for (o, n) in [(old >> 16, ack >> 16), (old & 0xffff, ack & 0xffff)] {
            sum += u32::from(!(o as u16)) + n;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[50..52].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }

    fn fin(dut_port: u16, our_port: u16, seq: u32, ack: u32) -> Vec<u8> {
        let mut f = frame(
            DUT,
            dut_port,
            our_port,
            seq,
            TcpFlags::FIN.union(TcpFlags::ACK),
        );
        set_ack(&mut f, ack);
        f
    }

    fn ack(dut_port: u16, our_port: u16, seq: u32, ack: u32) -> Vec<u8> {
        let mut f = frame(DUT, dut_port, our_port, seq, TcpFlags::ACK);
        set_ack(&mut f, ack);
        f
    }

    fn rst(dut_port: u16, our_port: u16, seq: u32) -> Vec<u8> {
        frame(DUT, dut_port, our_port, seq, TcpFlags::RST)
    }

    #[test]
    fn counts_an_established_connections_rst_once() {
        let mut t = Tally::new(DUT, US, &[8080, 8081], false);
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
        assert_eq!(t.counted_at(5000, 8081), Some((7, Closed::Rst)));
        assert_eq!(t.counted_at(5000, 8080), None);
        assert!(!t.engine_close(5000, 8081), "already counted here");
    }

    #[test]
    fn passes_what_is_not_ours() {
        let mut t = Tally::new(DUT, US, &[8080], false);
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
        let mut t = Tally::new(DUT, US, &[8080], false);
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
            fn wait(&mut self, _: Duration, _: Option<BorrowedFd<'_>>) -> io::Result<bool> {
                Ok(false)
            }
            fn stats(&self) -> io::Result<()> {
                Ok(())
            }
            fn count_loop(&mut self) {}
        }
        let tally = RefCell::new(Tally::new(DUT, US, &[8080], false));
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
        assert!(s.0 > 0 && s.1 == Closed::Rst);
        assert_eq!(stamps, [Some(s), Some(s), Some(s), None]);
    }

    #[test]
    fn answers_a_fin_with_fin_ack_counts_it_once_and_absorbs_the_last_ack() {
        let mut t = Tally::new(DUT, US, &[8080], true);
        let mut clock = || 5;
        t.classify(&synack(8080, 1500, 70), &mut clock);
        // Not established yet: the engine's.
        assert_eq!(
            t.classify(&fin(8080, 1500, 71, 1001), &mut clock),
            Verdict::Pass
        );
        t.established(1500, 8080);
        assert_eq!(
            t.classify(&fin(8080, 1500, 72, 1001), &mut clock),
            Verdict::Pass,
            "seq"
        );
        assert_eq!(
            t.classify(&fin(8080, 1500, 71, 1002), &mut clock),
            Verdict::Pass,
            "ack"
        );
        assert_eq!(
            t.classify(&fin(8080, 1500, 71, 1001), &mut clock),
            Verdict::Counted
        );
        assert_eq!(t.counted_at(1500, 8080), Some((5, Closed::Fin)));
        // The answer: FIN|ACK, our ISN + 1, acknowledging the FIN, to the dut.
        let mut buf = [0u8; 128];
        let n = t.next_answer(&mut buf).expect("an answer");
        t.sent();
        assert_eq!(t.pending(), 0);
        let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
        assert_eq!(
            eth.dst_addr(),
            EthernetAddress([2, 0, 0, 0, 0, 11]),
            "the dut's MAC"
        );
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (US, DUT));
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(US, DUT));
        assert_eq!((tcp.src_port(), tcp.dst_port()), (1500, 8080));
        assert_eq!((tcp.seq_number().0, tcp.ack_number().0), (1001, 72));
        assert_eq!(tcp.flags(), TcpFlags::FIN.union(TcpFlags::ACK));
        // A retransmitted FIN: answered again, not counted again.
        assert_eq!(
            t.classify(&fin(8080, 1500, 71, 1001), &mut clock),
            Verdict::Absorbed
        );
        assert_eq!((t.counted(), t.pending(), t.fins_again()), (1, 1, 1));
        t.sent();
        // The dut's last ACK, of our FIN.
        assert_eq!(
            t.classify(&ack(8080, 1500, 72, 1002), &mut clock),
            Verdict::Absorbed
        );
        assert_eq!(t.pending(), 0);
        // A later RST is not a second close.
        assert_eq!(t.classify(&rst(8080, 1500, 72), &mut clock), Verdict::Pass);
        assert!(!t.engine_close(1500, 8080));
        assert_eq!(t.counted(), 1);
    }

    #[test]
    fn without_fins_a_fin_goes_to_the_engine() {
        let mut t = Tally::new(DUT, US, &[8080], false);
        let mut clock = || 5;
        t.classify(&synack(8080, 1500, 70), &mut clock);
        t.established(1500, 8080);
        assert_eq!(
            t.classify(&fin(8080, 1500, 71, 1001), &mut clock),
            Verdict::Pass
        );
        assert_eq!((t.counted(), t.pending()), (0, 0));
        assert!(t.engine_close(1500, 8080));
    }
}
