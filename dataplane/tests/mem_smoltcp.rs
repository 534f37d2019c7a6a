//! The mem port and the smoltcp reference peer, proven against each other
//! before the engine exists: two smoltcp stacks hold whole TCP conversations
//! through a `Pair`, over lossy links, and the support oracle reads the
//! trace. Owns no production code; touches only the public `port` API.

mod support;

use std::time::{Duration, Instant};

use lingerd_testkit::mem::{Direction, Drive, DropReason, Fate, LinkConfig, Pair, Verdict};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use support::smoltcp_peer::{SmolConfig, SmolPeer};
use support::{count_rst, delivered, dump, sent, summarize};

const SERVER_PORT: u16 = 80;
const CLIENT_PORT: u16 = 49152;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A (198.18.0.1, client) and B (198.18.0.2, listening on 80), one connect
/// issued; nothing driven yet.
fn smol_pair(links: LinkConfig) -> (Pair<SmolPeer, SmolPeer>, SocketHandle, SocketHandle) {
    let start = Instant::now();
    let mut a = SmolPeer::new(SmolConfig::host(1), start);
    let mut b = SmolPeer::new(SmolConfig::host(2), start);
    let hb = b.listen(SERVER_PORT);
    let ha = a.connect(b.addr(SERVER_PORT), CLIENT_PORT);
    (Pair::symmetric(start, a, b, links), ha, hb)
}

fn lossy(seed: u64) -> LinkConfig {
    LinkConfig {
        loss: 0.10,
        seed,
        ..LinkConfig::default()
    }
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

fn establish(pair: &mut Pair<SmolPeer, SmolPeer>, ha: SocketHandle, hb: SocketHandle) {
    let outcome = pair.drive_until(|p| {
        p.a.state(ha) == State::Established && p.b.state(hb) == State::Established
    });
    assert_eq!(outcome, Drive::Reached, "{}", dump(pair.trace()));
    assert_eq!(pair.a.state(ha), State::Established);
    assert_eq!(pair.b.state(hb), State::Established);
}

/// Both ways at once: A sends `ab`, B sends `ba`, each reads as it goes;
/// A closes when its data is queued, B when it has read A's FIN. Returns
/// what each side received.
fn converse(
    pair: &mut Pair<SmolPeer, SmolPeer>,
    (ha, hb): (SocketHandle, SocketHandle),
    ab: &[u8],
    ba: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (mut a_off, mut b_off) = (0, 0);
    let (mut at_a, mut at_b) = (Vec::new(), Vec::new());
    let (mut a_closed, mut b_closed) = (false, false);
    // Bounded: 600 s of virtual time in 1 ms slices.
    for _ in 0..600_000 {
        a_off += pair.a.send(ha, &ab[a_off..]);
        b_off += pair.b.send(hb, &ba[b_off..]);
        at_a.extend(pair.a.recv(ha));
        at_b.extend(pair.b.recv(hb));
        if !a_closed && a_off == ab.len() {
            pair.a.close(ha);
            a_closed = true;
        }
        if !b_closed && b_off == ba.len() && !pair.b.may_recv(hb) {
            pair.b.close(hb);
            b_closed = true;
        }
        if a_closed
            && b_closed
            && pair.a.state(ha) == State::Closed
            && pair.b.state(hb) == State::Closed
        {
            break;
        }
        let _ = pair.drive_for(ms(1));
    }
    (at_a, at_b)
}

/// Seed 1 is one whose losses spare smoltcp's stranded-FIN bug (see
/// `test_smoltcp_fin_stranded_by_dup_acks`); most seeds do.
#[test]
fn test_smoltcp_conversation_under_loss() {
    let (mut pair, ha, hb) = smol_pair(lossy(1));
    let ab = pattern(100_000, 0xa5);
    let ba = pattern(40_000, 0x5a);
    let (at_a, at_b) = converse(&mut pair, (ha, hb), &ab, &ba);

    assert!(at_b == ab, "B got {} of {} bytes", at_b.len(), ab.len());
    assert!(at_a == ba, "A got {} of {} bytes", at_a.len(), ba.len());
    // A closed first (FIN after its data): it went through TIME-WAIT, B
    // through LAST-ACK, and neither saw a reset.
    assert_eq!(pair.a.state(ha), State::Closed, "{:?}", pair.a.history(ha));
    assert_eq!(pair.b.state(hb), State::Closed);
    assert!(!pair.a.was_reset(ha) && !pair.b.was_reset(hb));
    assert_eq!(count_rst(pair.trace(), Direction::AToB), 0);
    assert_eq!(count_rst(pair.trace(), Direction::BToA), 0);
    assert!(pair.b.visited(hb, State::LastAck) || pair.b.visited(hb, State::Closing));
    assert!(pair.a.visited(ha, State::TimeWait) || pair.b.visited(hb, State::TimeWait));
    // The loss was real, and every segment on the wire was well-formed.
    let lost = pair
        .trace()
        .iter()
        .filter(|e| e.fate == Fate::Dropped(DropReason::Loss))
        .count();
    assert!(lost > 10, "only {lost} frames lost");
    for dir in [Direction::AToB, Direction::BToA] {
        assert!(sent(pair.trace(), dir).iter().all(|s| s.checksum_ok));
    }
    // Nothing left: TIME-WAIT has expired and no timer is armed.
    assert!(pair.drive().is_idle());
}

#[test]
fn test_smoltcp_same_seed_same_wire() {
    let run = || {
        let (mut pair, ha, hb) = smol_pair(lossy(77));
        let _ = converse(&mut pair, (ha, hb), &pattern(20_000, 1), &pattern(5_000, 2));
        let start = pair.start();
        pair.take_trace()
            .into_iter()
            .map(|e| (e.at - start, e.direction, e.fate, e.bytes))
            .collect::<Vec<_>>()
    };
    let first = run();
    assert!(!first.is_empty());
    assert!(first == run(), "two runs with one seed differ");
}

#[test]
fn test_smoltcp_abort_is_one_rst_seen_as_reset() {
    let (mut pair, ha, hb) = smol_pair(LinkConfig::default());
    establish(&mut pair, ha, hb);
    assert_eq!(pair.a.send(ha, b"hello"), 5);
    assert_eq!(pair.b.send(hb, b"world!"), 6);
    assert!(pair.drive().is_idle());
    assert_eq!(pair.b.recv(hb), b"hello");
    // B's last ACK carries RCV.NXT, which is A's SND.NXT.
    let snd_nxt = delivered(pair.trace(), Direction::BToA)
        .last()
        .expect("B sent something")
        .ack;

    pair.clear_trace();
    pair.a.abort(ha);
    assert!(pair.drive().is_idle());

    let rsts: Vec<_> = sent(pair.trace(), Direction::AToB)
        .into_iter()
        .filter(|s| s.flags.rst)
        .collect();
    assert_eq!(rsts.len(), 1, "{}", dump(pair.trace()));
    assert_eq!(rsts[0].seq, snd_nxt);
    assert_eq!(rsts[0].flags_str(), "RA");
    assert_eq!(count_rst(pair.trace(), Direction::BToA), 0);
    assert_eq!(pair.a.state(ha), State::Closed);
    assert!(!pair.a.was_reset(ha), "a local abort is not a reset");
    assert_eq!(pair.b.state(hb), State::Closed);
    let resets = pair.b.resets(hb);
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].from, State::Established);
}

#[test]
fn test_smoltcp_abort_under_loss_reset_reaches_peer() {
    let (mut pair, ha, hb) = smol_pair(lossy(3));
    establish(&mut pair, ha, hb);
    pair.a.abort(ha);
    // Even if the RST is lost, B's next segment meets no socket at A and
    // A's stack answers it with an RST of its own.
    let _ = pair.drive_for(ms(5));
    if pair.b.state(hb) == State::Established {
        assert_eq!(pair.b.send(hb, b"anyone there?"), 13);
    }
    let outcome = pair.drive_until(|p| p.b.state(hb) == State::Closed);
    assert_eq!(outcome, Drive::Reached, "{}", dump(pair.trace()));
    assert!(pair.b.was_reset(hb));
    assert!(count_rst(pair.trace(), Direction::AToB) >= 1);
}

#[test]
fn test_smoltcp_connect_refused_is_reset_in_syn_sent() {
    let start = Instant::now();
    let mut a = SmolPeer::new(SmolConfig::host(1), start);
    let b = SmolPeer::new(SmolConfig::host(2), start);
    let ha = a.connect(b.addr(81), CLIENT_PORT);
    let mut pair = Pair::new(start, a, b);
    assert!(pair.drive().is_idle());
    assert_eq!(pair.a.state(ha), State::Closed);
    assert_eq!(pair.a.resets(ha)[0].from, State::SynSent);
    assert_eq!(count_rst(pair.trace(), Direction::BToA), 1);
}

#[test]
fn test_smoltcp_zero_window_when_not_reading() {
    let start = Instant::now();
    let mut a = SmolPeer::new(SmolConfig::host(1), start);
    let mut b = SmolPeer::new(SmolConfig::host(2), start);
    b.set_buffers(1024, 1024);
    let hb = b.listen(SERVER_PORT);
    let ha = a.connect(b.addr(SERVER_PORT), CLIENT_PORT);
    let mut pair = Pair::new(start, a, b);
    establish(&mut pair, ha, hb);

    let data = pattern(4096, 9);
    assert_eq!(pair.a.send(ha, &data), 4096);
    let _ = pair.drive_for(Duration::from_secs(5));
    let windows: Vec<u16> = delivered(pair.trace(), Direction::BToA)
        .iter()
        .map(|s| s.window)
        .collect();
    assert_eq!(windows.last(), Some(&0), "{}", dump(pair.trace()));
    assert!(pair.a.socket(ha).send_queue() > 0, "A is held back");

    // Reading opens the window and the rest flows.
    let mut got = Vec::new();
    for _ in 0..10_000 {
        got.extend(pair.b.recv(hb));
        if got.len() == data.len() {
            break;
        }
        let _ = pair.drive_for(ms(1));
    }
    assert!(got == data);
}

#[test]
fn test_filter_drops_the_third_segment_and_tcp_recovers() {
    let (mut pair, ha, hb) = smol_pair(LinkConfig::default());
    establish(&mut pair, ha, hb);
    let mut seen = 0;
    pair.a_to_b.set_filter(move |frame| match summarize(frame) {
        Some(s) if s.payload_len > 0 => {
            seen += 1;
            if seen == 3 {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }
        _ => Verdict::Pass,
    });
    let data = pattern(10 * 1460, 4);
    assert_eq!(pair.a.send(ha, &data), data.len());
    let _ = pair.drive_for(Duration::from_secs(3));
    assert_eq!(pair.b.recv(hb), data);
    let filtered = pair
        .trace()
        .iter()
        .filter(|e| e.fate == Fate::Dropped(DropReason::Filter))
        .count();
    assert_eq!(filtered, 1);
}

#[test]
fn test_summarize_skips_arp_and_flags_bad_checksums() {
    let (mut pair, ha, hb) = smol_pair(LinkConfig::default());
    establish(&mut pair, ha, hb);
    let trace = pair.trace();
    // smoltcp's first frame is its ARP request for B.
    assert!(summarize(&trace[0].bytes).is_none());
    let syn = trace
        .iter()
        .find_map(|e| summarize(&e.bytes).filter(|s| s.flags.syn).map(|s| (s, e)))
        .expect("a SYN");
    assert_eq!(syn.0.flags_str(), "S");
    assert!(syn.0.checksum_ok);
    assert_eq!(syn.0.dst, pair.b.addr(SERVER_PORT));
    let mut corrupt = syn.1.bytes.clone();
    corrupt[14 + 20 + 4] ^= 0xff; // a byte of the sequence number
    assert!(!summarize(&corrupt).expect("still TCP").checksum_ok);
}

/// smoltcp 0.14 bug, found by this harness (11 of seeds 0..40 at 10% loss):
/// when all data is acknowledged but the FIN is not, further pure ACKs for
/// the FIN's sequence number count as duplicate ACKs; the third starts a
/// fast retransmit that has no data to send, which leaves the retransmission
/// timer idle and `pending_fast_retransmit` set, so the FIN is never sent
/// again and the closer sits in FIN-WAIT-1 (or LAST-ACK) forever while its
/// peer stays ESTABLISHED. Ignored until smoltcp fixes it; run with
/// `--ignored` to see whether an upgrade did.
#[test]
#[ignore = "smoltcp 0.14 strands a lost FIN after duplicate ACKs"]
fn test_smoltcp_fin_stranded_by_dup_acks() {
    let (mut pair, ha, hb) = smol_pair(lossy(2));
    let (at_a, at_b) = converse(
        &mut pair,
        (ha, hb),
        &pattern(100_000, 0xa5),
        &pattern(40_000, 0x5a),
    );
    assert_eq!((at_a.len(), at_b.len()), (40_000, 100_000));
    assert_eq!(
        pair.a.state(ha),
        State::Closed,
        "A stuck: {:?}",
        pair.a.history(ha)
    );
    assert_eq!(pair.b.state(hb), State::Closed);
}
