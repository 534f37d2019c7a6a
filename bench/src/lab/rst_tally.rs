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
//! whose frame parses (IPv4, or IPv6 without extension headers: the
//! family of the dut's address), whose IPv4 header and TCP checksums
//! verify, that comes from
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
//! acknowledging the dut's FIN), built from an [`RstTemplate`] (or an
//! [`RstTemplateV6`]); a
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
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use lingerd_dataplane::port::{Port, TxOutcome};
use lingerd_dataplane::wire::{
    ControlSegment, EtherType, EthernetAddress, EthernetFrame, IPV6_HEADER_LEN, IpProtocol,
    Ipv4Packet, Ipv6Packet, RstTemplate, RstTemplateV6, SeqNumber, TcpFlags, TcpPacket,
    TcpPseudoHeader,
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

/// The answers' template, of our address's family.
#[derive(Debug)]
enum Template {
    V4(RstTemplate),
    V6(RstTemplateV6),
}

impl Template {
    /// From `us` (our MAC) to the dut's MAC.
    fn new(us_mac: EthernetAddress, dut_mac: EthernetAddress, us: IpAddr) -> Template {
        match us {
            IpAddr::V4(a) => Template::V4(RstTemplate::new(us_mac, dut_mac, a)),
            IpAddr::V6(a) => Template::V6(RstTemplateV6::new(us_mac, dut_mac, a)),
        }
    }

    /// `seg` to `dut` into `buf`: its length, or `None` if `buf` is short
    /// or `dut` is not of the template's family.
    fn build(&self, buf: &mut [u8], dut: IpAddr, seg: &ControlSegment<()>) -> Option<usize> {
        match (self, dut) {
            (Template::V4(t), IpAddr::V4(a)) => t.build(buf, &seg.with_remote_ip(a)).ok(),
            (Template::V6(t), IpAddr::V6(a)) => t.build(buf, &seg.with_remote_ip(a)).ok(),
            _ => None,
        }
    }
}

/// What [`Tally::tcp_of`] finds in an IP packet: the TCP bytes, their
/// checksum's pseudo header, and the IPv4 header still to verify.
type TcpOf<'f> = (&'f [u8], TcpPseudoHeader, Option<&'f [u8]>);

/// The slots and the count (see the module text).
#[derive(Debug)]
pub struct Tally {
    dut: IpAddr,
    us: IpAddr,
    dut_ports: Vec<u16>,
    slots: Vec<Slot>,
    counted: u64,
    /// Retransmitted FINs answered again.
    fins_again: u64,
    /// Answer and count FINs too.
    fins: bool,
    /// Our MAC and the dut's (from the first SYN-ACK), for the answers.
    template: Option<Template>,
    /// FIN|ACKs to send (to the dut's address).
    answers: Vec<ControlSegment<()>>,
}

impl Tally {
    /// Slots for every (dut port, ephemeral port) pair: `dut_ports.len()`
    /// × [`PER_PORT`].
    /// With `fins`, FINs are answered and counted as well as RSTs.
    /// `dut` and `us` are of one family (frames of the other pass).
    pub fn new(dut: IpAddr, us: IpAddr, dut_ports: &[u16], fins: bool) -> Tally {
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
        self.template.as_ref()?.build(buf, self.dut, seg)
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

    /// The TCP bytes of an IP packet (`ethertype`, `ip`) from the dut to
    /// us, the pseudo header its checksum covers, and the IPv4 header to
    /// verify (checked last, by the caller); `None` for anything else:
    /// another address, protocol or family, a fragment, an IPv6 extension
    /// header.
    fn tcp_of<'f>(&self, ethertype: EtherType, ip: &'f [u8]) -> Option<TcpOf<'f>> {
        match (self.dut, self.us) {
            (IpAddr::V4(dut), IpAddr::V4(us)) if ethertype == EtherType::Ipv4 => {
                let p = Ipv4Packet::new_checked(ip).ok()?;
                if p.protocol() != IpProtocol::Tcp
                    || p.src_addr() != dut
                    || p.dst_addr() != us
                    || p.is_fragment()
                {
                    return None;
                }
                let tcp = ip.get(usize::from(p.header_len())..usize::from(p.total_len()))?;
                Some((tcp, TcpPseudoHeader::ipv4(dut, us), Some(ip)))
            }
            (IpAddr::V6(dut), IpAddr::V6(us)) if ethertype.is_ipv6() => {
                let p = Ipv6Packet::new_checked(ip).ok()?;
                if p.next_header() != IpProtocol::Tcp || p.src_addr() != dut || p.dst_addr() != us {
                    return None;
                }
                let end = IPV6_HEADER_LEN.checked_add(usize::from(p.payload_len()))?;
                let tcp = ip.get(IPV6_HEADER_LEN..end)?;
                Some((tcp, TcpPseudoHeader::ipv6(dut, us), None))
            }
            _ => None,
        }
    }

    /// Looks at one received frame; `stamp` gives the burst's time (read
    /// once, on the first RST counted).
    pub fn classify(&mut self, frame: &[u8], stamp: &mut impl FnMut() -> u64) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Verdict::Pass;
        };
        let Some((tcp, pseudo, v4_header)) = self.tcp_of(eth.ethertype(), eth.payload()) else {
            return Verdict::Pass;
        };
        let Ok(tcp) = TcpPacket::new_checked(tcp) else {
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
        let header_ok = v4_header.is_none_or(|h| Ipv4Packet::new_unchecked(h).verify_checksum());
        if !header_ok || !tcp.verify_checksum_pseudo(pseudo) {
            return Verdict::Pass;
        }
        let seq = tcp.seq_number().0;
        let ack = tcp.ack_number().0;
        let (dut_port, our_port) = (tcp.src_port(), tcp.dst_port());
        if synack && self.template.is_none() {
            self.template = Some(Template::new(eth.dst_addr(), eth.src_addr(), self.us));
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
                remote_ip: (),
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    use lingerd_dataplane::wire::{ControlSegment, EthernetAddress, SeqNumber};

    use super::*;

    const DUT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 11]);
    const US_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 12]);

    /// The dut's address and ours, of one family: each test runs over
    /// both.
    #[derive(Clone, Copy, Debug)]
    struct Net {
        dut: IpAddr,
        us: IpAddr,
        /// An address of the family that is neither.
        other: IpAddr,
    }

    const NETS: [Net; 2] = [
        Net {
            dut: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11)),
            us: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 12)),
            other: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 13)),
        },
        Net {
            dut: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
            us: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x12)),
            other: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x13)),
        },
    ];

    impl Net {
        /// A segment from `from` to us, built by the wire layer's template
        /// of the family (checksums included).
        fn frame(
            &self,
            from: IpAddr,
            dut_port: u16,
            our_port: u16,
            (seq, ack): (u32, u32),
            flags: TcpFlags,
        ) -> Vec<u8> {
            let mut f = [0u8; 128];
            let n = Template::new(DUT_MAC, US_MAC, from)
                .build(
                    &mut f,
                    self.us,
                    &ControlSegment {
                        remote_ip: (),
                        local_port: dut_port,
                        remote_port: our_port,
                        seq: SeqNumber(seq),
                        ack: SeqNumber(ack),
                        flags,
                        window: 0,
                    },
                )
                .expect("a frame of the family");
            f[..n].to_vec()
        }

        /// The SYN-ACK acknowledges our SYN: our ISN is 1000 in every test.
        fn synack(&self, dut_port: u16, our_port: u16, isn: u32) -> Vec<u8> {
            let flags = TcpFlags::SYN.union(TcpFlags::ACK);
            self.frame(self.dut, dut_port, our_port, (isn, 1001), flags)
        }

        fn fin(&self, dut_port: u16, our_port: u16, seq: u32, ack: u32) -> Vec<u8> {
            let flags = TcpFlags::FIN.union(TcpFlags::ACK);
            self.frame(self.dut, dut_port, our_port, (seq, ack), flags)
        }

        fn ack(&self, dut_port: u16, our_port: u16, seq: u32, ack: u32) -> Vec<u8> {
            self.frame(self.dut, dut_port, our_port, (seq, ack), TcpFlags::ACK)
        }

        fn rst(&self, dut_port: u16, our_port: u16, seq: u32) -> Vec<u8> {
            self.frame(self.dut, dut_port, our_port, (seq, 0), TcpFlags::RST)
        }

        fn tally(&self, dut_ports: &[u16], fins: bool) -> Tally {
            Tally::new(self.dut, self.us, dut_ports, fins)
        }
    }

    // What etherparse reads in an answer of ours.
    use lingerd_testkit::oracle::read_tcp as answer;

    /// The frames the tests feed are what the wire layer builds, which
    /// etherparse reads as RSTs of the family with right checksums.
    #[test]
    fn the_test_frames_are_right_for_both_families() {
        for n in NETS {
            let a = answer(&n.rst(8080, 1024, 9));
            assert_eq!((a.src, a.dst, a.ports), (n.dut, n.us, (8080, 1024)));
            assert!(a.sums_ok && a.flags.2, "{a:?}");
        }
    }

    /// A tally of one family passes every frame of the other, even one
    /// that would be counted in its own.
    #[test]
    fn a_tally_passes_the_other_family() {
        let [v4, v6] = NETS;
        for (mine, theirs) in [(v4, v6), (v6, v4)] {
            let mut t = mine.tally(&[8080], false);
            let mut clock = || 1;
            t.classify(&mine.synack(8080, 1024, 99), &mut clock);
            t.established(1024, 8080);
            assert_eq!(
                t.classify(&theirs.rst(8080, 1024, 100), &mut clock),
                Verdict::Pass
            );
            assert_eq!(
                t.classify(&mine.rst(8080, 1024, 100), &mut clock),
                Verdict::Counted
            );
        }
    }

    #[test]
    fn counts_an_established_connections_rst_once() {
        for n in NETS {
            let mut t = n.tally(&[8080, 8081], false);
            let mut clock = || 7;
            assert_eq!(
                t.classify(&n.synack(8081, 5000, u32::MAX), &mut clock),
                Verdict::Pass
            );
            // Before the engine says established: the engine gets it.
            assert_eq!(t.classify(&n.rst(8081, 5000, 0), &mut clock), Verdict::Pass);
            t.established(5000, 8081);
            assert_eq!(
                t.classify(&n.rst(8081, 5000, 1), &mut clock),
                Verdict::Pass,
                "wrong seq"
            );
            assert_eq!(
                t.classify(&n.rst(8081, 5000, 0), &mut clock),
                Verdict::Counted
            );
            assert_eq!(
                t.classify(&n.rst(8081, 5000, 0), &mut clock),
                Verdict::Pass,
                "once"
            );
            assert_eq!(t.counted(), 1);
            assert_eq!(t.counted_at(5000, 8081), Some((7, Closed::Rst)));
            assert_eq!(t.counted_at(5000, 8080), None);
            assert!(!t.engine_close(5000, 8081), "already counted here");
        }
    }

    #[test]
    fn passes_what_is_not_ours() {
        for n in NETS {
            let mut t = n.tally(&[8080], false);
            let mut clock = || 1;
            t.classify(&n.synack(8080, 1024, 99), &mut clock);
            t.established(1024, 8080);
            let other = n.frame(n.other, 8080, 1024, (100, 0), TcpFlags::RST);
            assert_eq!(
                t.classify(&other, &mut clock),
                Verdict::Pass,
                "another source"
            );
            assert_eq!(
                t.classify(&n.rst(8090, 1024, 100), &mut clock),
                Verdict::Pass,
                "another port"
            );
            assert_eq!(
                t.classify(&n.rst(8080, 80, 100), &mut clock),
                Verdict::Pass,
                "not ephemeral"
            );
            let mut bad = n.rst(8080, 1024, 100);
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
                t.classify(&n.rst(8080, 1024, 100), &mut clock),
                Verdict::Counted
            );
        }
    }

    #[test]
    fn the_engines_close_counts_once_and_blocks_a_later_rst() {
        for n in NETS {
            let mut t = n.tally(&[8080], false);
            let mut clock = || 1;
            t.classify(&n.synack(8080, 2000, 5), &mut clock);
            t.established(2000, 8080);
            assert!(t.engine_close(2000, 8080));
            assert!(!t.engine_close(2000, 8080));
            assert_eq!(t.classify(&n.rst(8080, 2000, 6), &mut clock), Verdict::Pass);
            assert_eq!(t.counted_at(2000, 8080), None);
        }
    }

    #[test]
    fn the_port_drops_counted_rsts_and_stamps_once_per_burst() {
        for n in NETS {
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
            let tally = RefCell::new(n.tally(&[8080], false));
            for p in 1024..1028 {
                tally
                    .borrow_mut()
                    .classify(&n.synack(8080, p, 0), &mut || 0);
                tally.borrow_mut().established(p, 8080);
            }
            let feed = Feed(vec![
                n.rst(8080, 1024, 1),
                n.synack(8080, 3000, 0),
                n.rst(8080, 1025, 1),
                n.rst(8080, 1025, 1),
                n.rst(8080, 1026, 1),
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
    }

    #[test]
    fn answers_a_fin_with_fin_ack_counts_it_once_and_absorbs_the_last_ack() {
        for n in NETS {
            let mut t = n.tally(&[8080], true);
            let mut clock = || 5;
            t.classify(&n.synack(8080, 1500, 70), &mut clock);
            // Not established yet: the engine's.
            assert_eq!(
                t.classify(&n.fin(8080, 1500, 71, 1001), &mut clock),
                Verdict::Pass
            );
            t.established(1500, 8080);
            assert_eq!(
                t.classify(&n.fin(8080, 1500, 72, 1001), &mut clock),
                Verdict::Pass,
                "seq"
            );
            assert_eq!(
                t.classify(&n.fin(8080, 1500, 71, 1002), &mut clock),
                Verdict::Pass,
                "ack"
            );
            assert_eq!(
                t.classify(&n.fin(8080, 1500, 71, 1001), &mut clock),
                Verdict::Counted
            );
            assert_eq!(t.counted_at(1500, 8080), Some((5, Closed::Fin)));
            // The answer: FIN|ACK, our ISN + 1, acknowledging the FIN, to the dut.
            let mut buf = [0u8; 128];
            let len = t.next_answer(&mut buf).expect("an answer");
            t.sent();
            assert_eq!(t.pending(), 0);
            let eth = EthernetFrame::new_checked(&buf[..len]).unwrap();
            assert_eq!(eth.dst_addr(), DUT_MAC, "the dut's MAC");
            let a = answer(&buf[..len]);
            assert_eq!((a.src, a.dst), (n.us, n.dut));
            assert!(a.sums_ok, "checksums, by etherparse");
            assert_eq!(a.ports, (1500, 8080));
            assert_eq!(a.seq_ack, (1001, 72));
            assert_eq!(a.flags, (true, true, false), "FIN|ACK");
            // A retransmitted FIN: answered again, not counted again.
            assert_eq!(
                t.classify(&n.fin(8080, 1500, 71, 1001), &mut clock),
                Verdict::Absorbed
            );
            assert_eq!((t.counted(), t.pending(), t.fins_again()), (1, 1, 1));
            t.sent();
            // The dut's last ACK, of our FIN.
            assert_eq!(
                t.classify(&n.ack(8080, 1500, 72, 1002), &mut clock),
                Verdict::Absorbed
            );
            assert_eq!(t.pending(), 0);
            // A later RST is not a second close.
            assert_eq!(
                t.classify(&n.rst(8080, 1500, 72), &mut clock),
                Verdict::Pass
            );
            assert!(!t.engine_close(1500, 8080));
            assert_eq!(t.counted(), 1);
        }
    }

    #[test]
    fn without_fins_a_fin_goes_to_the_engine() {
        for n in NETS {
            let mut t = n.tally(&[8080], false);
            let mut clock = || 5;
            t.classify(&n.synack(8080, 1500, 70), &mut clock);
            t.established(1500, 8080);
            assert_eq!(
                t.classify(&n.fin(8080, 1500, 71, 1001), &mut clock),
                Verdict::Pass
            );
            assert_eq!((t.counted(), t.pending()), (0, 0));
            assert!(t.engine_close(1500, 8080));
        }
    }
}
