//! Selective acknowledgments against a scripted raw peer: negotiation
//! (RFC 2018 §2), the blocks the engine sends for out-of-order data
//! (RFC 2018 §4), loss recovery from the peer's blocks (RFC 6675), the
//! undo of a recovery that reordering caused (RFC 3522 / RFC 4015), NewReno
//! when SACK was not negotiated, and blocks a hostile peer makes up.
//!
//! The engine is 198.18.0.1:80, the peer 198.18.0.2:40000 (ISS 1000, MSS
//! 1460, window 65,535, no scaling). Time is virtual.

mod support;

use lingerd_dataplane::engine::api::Detail;
use lingerd_dataplane::tcp::State;
use support::raw_peer::{ACK, PEER_ISS, PSH, RawPeer, Rx, SYN, seg};

/// Passive open with the options chosen; returns the SYN-ACK.
fn establish(p: &mut RawPeer, sack: bool, ts: bool) -> Rx {
    p.listen(8);
    let mut syn = seg(SYN).seq(PEER_ISS).win(p.wnd).mss(1460);
    if sack {
        syn = syn.sack_ok();
    }
    if ts {
        syn = syn.ts(1, 0);
    }
    p.send(syn);
    let sa = p.expect_one();
    assert_eq!(sa.flags_str(), "SA", "{sa}");
    p.nxt = PEER_ISS + 1;
    let mut ack = p.here(ACK);
    if let Some((tsval, _)) = sa.ts {
        ack = ack.ts(2, tsval);
    }
    p.send(ack);
    let accepted = p
        .completions()
        .into_iter()
        .find(|c| matches!(c.detail, Detail::Accepted { .. }))
        .expect("an Accepted event");
    p.handle = Some(accepted.handle);
    assert_eq!(p.state(), Some(State::Established));
    sa
}

#[test]
fn sack_permitted_is_answered_only_to_a_syn_that_offered_it() {
    let mut p = RawPeer::new(|_| {});
    assert!(establish(&mut p, true, false).sack_ok);
    let mut p = RawPeer::new(|_| {});
    assert!(!establish(&mut p, false, false).sack_ok);
    let mut p = RawPeer::new(|cfg| cfg.tcp.sack = false);
    assert!(!establish(&mut p, true, false).sack_ok, "switched off");
}

#[test]
fn out_of_order_data_earns_sack_blocks_the_latest_first() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let hole = p.nxt;
    let at = |off: u32| hole.wrapping_add(off);
    let send = |p: &mut RawPeer, from: u32, to: u32| {
        let s = p
            .here(ACK | PSH)
            .seq(at(from))
            .data(&vec![7u8; (to - from) as usize]);
        p.send(s);
    };
    send(&mut p, 1_000, 2_000);
    let a = p.expect_one();
    assert_eq!(a.ack, hole, "{}", p.dump());
    assert_eq!(a.sack, vec![(at(1_000), at(2_000))]);
    send(&mut p, 3_000, 4_000);
    let a = p.expect_one();
    assert_eq!(
        a.sack,
        vec![(at(3_000), at(4_000)), (at(1_000), at(2_000))],
        "the block of the latest segment first"
    );
    send(&mut p, 5_000, 6_000);
    send(&mut p, 2_000, 3_000);
    let acks = p.recv_all();
    let last = acks.last().expect("an ACK");
    assert_eq!(
        last.sack,
        vec![(at(1_000), at(4_000)), (at(5_000), at(6_000))],
        "contiguous runs make one block: {}",
        p.dump()
    );
    assert!(p.engine.counters().sack_blocks_sent >= 6);
    // The hole fills: a cumulative ACK with only what is still held.
    send(&mut p, 0, 1_000);
    let a = p.expect_one();
    assert_eq!(a.ack, at(4_000));
    assert_eq!(a.sack, vec![(at(5_000), at(6_000))]);
    send(&mut p, 4_000, 5_000);
    let a = p.expect_one();
    assert_eq!((a.ack, a.sack.len()), (at(6_000), 0), "{}", p.dump());
}

#[test]
fn without_sack_negotiated_no_blocks_are_sent() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, false, false);
    let s = p
        .here(ACK | PSH)
        .seq(p.nxt.wrapping_add(500))
        .data(&[1; 500]);
    p.send(s);
    let a = p.expect_one();
    assert!(a.sack.is_empty() && a.ack == p.nxt, "{}", p.dump());
}

/// Writes `n` bytes and returns the data segments the engine sent.
fn flight(p: &mut RawPeer, n: usize) -> Vec<Rx> {
    p.write(&vec![3u8; n]);
    p.recv_all()
        .into_iter()
        .filter(|s| s.payload_len > 0)
        .collect()
}

/// The data segments in `out` that start below `max`: retransmissions.
fn resent(out: &[Rx], max: u32) -> Vec<(u32, u32)> {
    out.iter()
        .filter(|s| s.payload_len > 0 && (s.seq.wrapping_sub(max) as i32) < 0)
        .map(|s| (s.seq, s.payload_len as u32))
        .collect()
}

#[test]
fn a_lost_segment_is_repaired_by_one_retransmission_of_just_the_hole() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 30_000);
    assert!(segs.len() >= 8, "{}", p.dump());
    let mss = segs[0].payload_len as u32;
    let start = |i: usize| segs[i].seq;
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    // Segment 1 is lost; 0 and 2.. arrive. One cumulative ACK, then one
    // duplicate ACK per later segment, each with its SACK block.
    let mut max = end(segs.len() - 1);
    let mut out = Vec::new();
    p.send(p.here(ACK).ack(end(0)));
    out.extend(p.recv_all());
    for i in 2..6 {
        p.send(p.here(ACK).ack(end(0)).sack(&[(start(2), end(i))]));
        out.extend(p.recv_all());
    }
    let again = resent(&out, max);
    assert_eq!(
        again,
        vec![(start(1), mss)],
        "only the hole, once: {}",
        p.dump()
    );
    let c = p.engine.counters();
    assert_eq!(
        (c.fast_retransmits, c.sack_retransmits, c.retransmits),
        (1, 1, 1)
    );
    assert_eq!(c.sack_blocks_received, 4);
    // The hole's repair arrives: everything sent is acknowledged, and
    // nothing SACKed was ever sent again.
    for s in &out {
        if s.payload_len > 0 && s.seq.wrapping_sub(max) as i32 >= 0 {
            max = s.seq.wrapping_add(s.payload_len as u32);
        }
    }
    p.send(p.here(ACK).ack(max));
    let after = p.recv_all();
    assert!(resent(&after, max).is_empty(), "{}", p.dump());
    assert_eq!(p.engine.counters().retransmits, 1);
}

#[test]
fn newreno_still_recovers_when_sack_was_not_negotiated() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, false, false);
    let segs = flight(&mut p, 30_000);
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    let mut out = Vec::new();
    p.send(p.here(ACK).ack(end(0)));
    out.extend(p.recv_all());
    for _ in 0..3 {
        p.send(p.here(ACK).ack(end(0)));
        out.extend(p.recv_all());
    }
    assert_eq!(
        resent(&out, max),
        vec![(segs[1].seq, segs[1].payload_len as u32)]
    );
    let c = p.engine.counters();
    assert_eq!((c.fast_retransmits, c.sack_retransmits), (1, 0));
    assert_eq!(c.sack_blocks_received + c.sack_blocks_ignored, 0);
    // A partial ACK (segment 1 arrived, 2 did not): NewReno resends 2.
    p.send(p.here(ACK).ack(end(1)));
    let out = p.recv_all();
    assert_eq!(
        resent(&out, max),
        vec![(segs[2].seq, segs[2].payload_len as u32)]
    );
}

#[test]
fn hostile_sack_blocks_are_ignored() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 30_000);
    let una = segs[0].seq;
    let max = segs[segs.len() - 1]
        .seq
        .wrapping_add(segs[segs.len() - 1].payload_len as u32);
    let hostile: [&[(u32, u32)]; 4] = [
        &[(max, max.wrapping_add(100_000))], // beyond what was sent
        &[(una.wrapping_sub(5_000), una)],   // below SND.UNA
        &[(max.wrapping_sub(10), una.wrapping_add(10))], // reversed
        &[(0, u32::MAX), (una.wrapping_add(1), una.wrapping_add(1))], // wraps; empty
    ];
    let mut out = Vec::new();
    for blocks in &hostile[..2] {
        p.send(p.here(ACK).ack(una).sack(blocks));
        out.extend(p.recv_all());
    }
    // Two duplicate ACKs whose blocks would, if believed, SACK far more
    // than three segments: no recovery starts.
    assert!(resent(&out, max).is_empty(), "{}", p.dump());
    for blocks in &hostile[2..] {
        p.send(p.here(ACK).ack(una).sack(blocks));
        out.extend(p.recv_all());
    }
    let c = p.engine.counters();
    assert_eq!(c.sack_blocks_received, 0);
    assert_eq!(c.sack_blocks_ignored, 5);
    // The third and fourth duplicate ACKs still count as such: one fast
    // retransmission, of SND.UNA only.
    assert_eq!(resent(&out, max), vec![(una, segs[0].payload_len as u32)]);
    assert_eq!(p.state(), Some(State::Established));
}

#[test]
fn one_duplicate_ack_sacking_three_segments_starts_recovery() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 30_000);
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    // RFC 6675 §5: DupThresh segments SACKed above SND.UNA mean a loss,
    // even on the first duplicate ACK (a peer acknowledging every few
    // segments sends fewer duplicates).
    p.send(p.here(ACK).ack(segs[0].seq).sack(&[(segs[1].seq, end(4))]));
    let out = p.recv_all();
    assert_eq!(
        resent(&out, max),
        vec![(segs[0].seq, segs[0].payload_len as u32)]
    );
}

#[test]
fn a_recovery_caused_by_reordering_is_undone() {
    let mut p = RawPeer::new(|_| {});
    let sa = establish(&mut p, true, true);
    assert!(sa.ts.is_some() && sa.sack_ok);
    // Off the engine's first millisecond: a TSecr of 0 means no echo.
    p.advance(3);
    let segs = flight(&mut p, 60_000);
    let tsval = |s: &Rx| s.ts.expect("timestamps").0;
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    p.advance(10);
    // Segment 1 is only late. The peer's duplicate ACKs SACK 2..5 (they
    // echo the TSval of segment 0, the last in order).
    let echo = tsval(&segs[0]);
    p.send(p.here(ACK).ack(end(0)).ts(10, echo));
    let mut out = p.recv_all();
    for i in 3..6 {
        p.send(
            p.here(ACK)
                .ack(end(0))
                .ts(10, echo)
                .sack(&[(segs[2].seq, end(i))]),
        );
        out.extend(p.recv_all());
    }
    let mut max = end(segs.len() - 1);
    assert_eq!(resent(&out, max).len(), 1, "{}", p.dump());
    for s in &out {
        if s.payload_len > 0 && s.seq.wrapping_sub(max) as i32 >= 0 {
            max = s.seq.wrapping_add(s.payload_len as u32);
        }
    }
    p.advance(5);
    // Then segment 1 arrives: the ACK covering it echoes segment 1's own
    // (original) TSval, older than the retransmission's.
    p.send(p.here(ACK).ack(end(5)).ts(20, tsval(&segs[1])));
    let burst: Vec<_> = p
        .recv_all()
        .into_iter()
        .filter(|s| s.payload_len > 0)
        .collect();
    assert_eq!(p.engine.counters().spurious_recoveries_undone, 1);
    // The window is back: with cwnd halved, six segments in flight would
    // leave no room at all; restored, it sends again at once.
    assert!(
        burst.len() >= 3,
        "{} new segments: {}",
        burst.len(),
        p.dump()
    );
    assert!(resent(&burst, max).is_empty());
}

#[test]
fn a_real_loss_is_not_undone() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, true);
    p.advance(3);
    let segs = flight(&mut p, 60_000);
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    p.advance(10);
    let echo = segs[0].ts.expect("timestamps").0;
    p.send(p.here(ACK).ack(end(0)).ts(10, echo));
    let mut out = p.recv_all();
    for i in 3..6 {
        p.send(
            p.here(ACK)
                .ack(end(0))
                .ts(10, echo)
                .sack(&[(segs[2].seq, end(i))]),
        );
        out.extend(p.recv_all());
    }
    let rxt = out
        .iter()
        .find(|s| s.seq == segs[1].seq && s.payload_len > 0)
        .expect("segment 1 resent")
        .clone();
    p.advance(5);
    // The retransmission repaired the hole: its TSval is echoed.
    p.send(
        p.here(ACK)
            .ack(end(5))
            .ts(20, rxt.ts.expect("timestamps").0),
    );
    p.recv_all();
    assert_eq!(p.engine.counters().spurious_recoveries_undone, 0);
}

#[test]
fn sack_news_counts_as_a_duplicate_even_when_the_window_moves() {
    // A Linux peer's window grows with every ACK as its application reads:
    // by RFC 5681's definition none of these would be duplicates, and the
    // hole would wait for the retransmission timeout. RFC 6675 §2 counts
    // every ACK that SACKs new data.
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 30_000);
    let mss = segs[0].payload_len as u32;
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    let mut out = Vec::new();
    p.send(p.here(ACK).ack(end(0)).win(60_000));
    out.extend(p.recv_all());
    for (k, i) in (2..4).enumerate() {
        // One segment SACKed each: the count decides, not the bytes.
        p.send(
            p.here(ACK)
                .ack(end(0))
                .win(60_000 + 100 * (k as u16 + 1))
                .sack(&[(segs[2].seq, end(i))]),
        );
        out.extend(p.recv_all());
    }
    assert!(resent(&out, max).is_empty(), "two duplicates: {}", p.dump());
    p.send(
        p.here(ACK)
            .ack(end(0))
            .win(60_500)
            .sack(&[(segs[2].seq, end(4))]),
    );
    out.extend(p.recv_all());
    assert_eq!(resent(&out, max), vec![(segs[1].seq, mss)], "{}", p.dump());
    assert_eq!(p.engine.counters().fast_retransmits, 1);
}

#[test]
fn an_ack_that_moves_snd_una_and_sacks_far_above_starts_recovery() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 30_000);
    let mss = segs[0].payload_len as u32;
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    // Segment 0 arrives, 1 is lost, 2..5 arrive: the peer's first ACK
    // after the loss acknowledges 0 and SACKs 2..5 at once (a delayed or
    // thinned ACK stream). That is the loss; no timeout is needed.
    p.send(p.here(ACK).ack(end(0)).sack(&[(segs[2].seq, end(5))]));
    let out = p.recv_all();
    assert_eq!(resent(&out, max), vec![(segs[1].seq, mss)], "{}", p.dump());
}

#[test]
fn a_lost_retransmission_goes_again_before_the_timeout() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 60_000);
    let mss = segs[0].payload_len as u32;
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    // Segment 1 is lost; 2..5 are SACKed: recovery resends 1, and the
    // pipe lets new data follow it.
    let mut out = Vec::new();
    p.send(p.here(ACK).ack(end(0)));
    out.extend(p.recv_all());
    for i in 2..6 {
        p.send(p.here(ACK).ack(end(0)).sack(&[(segs[2].seq, end(i))]));
        out.extend(p.recv_all());
    }
    assert_eq!(resent(&out, max), vec![(segs[1].seq, mss)], "{}", p.dump());
    // Everything sent so far arrives except segment 1, whose
    // retransmission is lost as well; then new data sent after it is
    // SACKed, segment by segment.
    let mut sacked_to = max;
    let mut sent_after: Vec<Rx> = out
        .iter()
        .filter(|s| s.payload_len > 0 && s.seq.wrapping_sub(max) as i32 >= 0)
        .cloned()
        .collect();
    for _ in 0..6 {
        if sent_after.is_empty() {
            // Open room for more: the pipe shrinks as segments are SACKed.
            p.send(p.here(ACK).ack(end(0)).sack(&[(segs[2].seq, sacked_to)]));
            sent_after.extend(p.recv_all().into_iter().filter(|s| s.payload_len > 0));
            continue;
        }
        let s = sent_after.remove(0);
        sacked_to = s.seq.wrapping_add(s.payload_len as u32);
        p.send(p.here(ACK).ack(end(0)).sack(&[(segs[2].seq, sacked_to)]));
        let got = p.recv_all();
        out.extend(got.iter().cloned());
        sent_after.extend(got.into_iter().filter(|s| s.payload_len > 0));
    }
    let again = out
        .iter()
        .filter(|s| s.seq == segs[1].seq && s.payload_len > 0)
        .count();
    assert_eq!(again, 2, "segment 1 sent a third time: {}", p.dump());
    assert_eq!(p.engine.counters().fast_retransmits, 1, "one episode");
}

#[test]
fn a_tail_loss_is_probed_after_two_round_trips_not_the_rto() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 4 * 1460);
    assert!(segs.len() >= 3, "{}", p.dump());
    let mss = segs[0].payload_len as u32;
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    // Segment 0 arrives after 2 ms (the round trip sampled); 1 is lost,
    // the last one is SACKed: one duplicate ACK, too few for recovery.
    p.advance(2);
    p.send(p.here(ACK).ack(end(0)));
    let last = segs.len() - 1;
    p.send(p.here(ACK).ack(end(0)).sack(&[(segs[last].seq, end(last))]));
    assert!(resent(&p.recv_all(), max).is_empty(), "{}", p.dump());
    // Well before the RTO (at least 200 ms), the probe resends segment 1.
    let t0 = p.ms();
    let mut out = Vec::new();
    while p.ms() < t0 + 60 && resent(&out, max).is_empty() {
        p.advance(1);
        out.extend(p.recv_all());
    }
    assert_eq!(resent(&out, max), vec![(segs[1].seq, mss)], "{}", p.dump());
    let waited = p.ms() - t0;
    assert!((10..60).contains(&waited), "probe after {waited} ms");
    let c = p.engine.counters();
    assert_eq!((c.loss_probes, c.fast_retransmits), (1, 0));
}

#[test]
fn a_probe_timer_running_into_a_recovery_is_no_timeout() {
    let mut p = RawPeer::new(|_| {});
    establish(&mut p, true, false);
    let segs = flight(&mut p, 30_000);
    let end = |i: usize| segs[i].seq.wrapping_add(segs[i].payload_len as u32);
    let max = end(segs.len() - 1);
    // A round trip of 2 ms sampled: the timer runs as a probe (at 10 ms).
    p.advance(2);
    p.send(p.here(ACK).ack(end(0)));
    p.recv_all();
    // Segment 1 is lost; SACKs of 2..5 start a recovery, which resends it.
    for i in 2..6 {
        p.send(p.here(ACK).ack(end(0)).sack(&[(segs[2].seq, end(i))]));
        p.recv_all();
    }
    assert_eq!(p.engine.counters().retransmits, 1, "{}", p.dump());
    // The probe's time passes during the recovery: nothing goes back to
    // SND.UNA, no window collapses.
    p.advance(15);
    let out = p.recv_all();
    assert!(resent(&out, max).is_empty(), "{}", p.dump());
    let c = p.engine.counters();
    assert_eq!((c.retransmits, c.loss_probes), (1, 0));
}
