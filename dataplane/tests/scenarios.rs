//! Scenario tests, one state × event per test, against a scripted raw peer
//! (`support::raw_peer`): the close contract of docs/close-semantics.md and the
//! RFC 9293 / RFC 5961 checklist of TESTING.md, judged segment by segment
//! (exact flags, SEQ, ACK and counts), completion by completion (result,
//! outcome, exactly one per request) and by what is left in the table.
//!
//! The engine is 198.18.0.1 (port 80 passive, 50000 active), the peer
//! 198.18.0.2:40000 with ISS 1000, no window scaling, no timestamps, MSS
//! 1460. Every scenario runs a second time over IPv6 (engine 2001:db8::1,
//! peer 2001:db8::2; `test_every_scenario_also_passes_over_ipv6`), and the
//! last section holds the IPv6-only ones: Neighbor Discovery through a
//! link-local gateway, Packet Too Big, fragments, both families in one
//! engine. Frames are built and decoded with etherparse only. Time is
//! virtual.

mod support;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::Census;
use lingerd_dataplane::engine::api::{
    ADMIN_CLIENT, ClientId, CloseMode, Completion, Detail, Filter, Outcome, Prefix, Request,
};
use lingerd_dataplane::engine::config::TimeWaitRst;
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::Linger;
use support::raw_peer::{
    ACK, FIN, PEER_ISS, PEER_PORT, PSH, RST, RawPeer, Rx, SERVER_PORT, SYN, seg,
};

fn peer() -> RawPeer {
    RawPeer::new(|_| {})
}

fn closed(outcome: Outcome) -> (Errno, Detail) {
    (Errno::Ok, Detail::Closed(outcome))
}

fn rd(c: &Completion) -> (Errno, Detail) {
    (c.result, c.detail.clone())
}

fn rsts(segs: &[Rx]) -> Vec<&Rx> {
    segs.iter().filter(|s| s.flags.rst).collect()
}

/// Asserts the scripted connection is gone from the demultiplexer: a
/// segment for its 4-tuple gets the stateless responder's `<SEQ=SEG.ACK><RST>`.
#[track_caller]
fn assert_demux_forgot(p: &mut RawPeer) {
    let probe = p.here(ACK);
    let ack = probe.ack;
    p.send(probe);
    let r = p.expect_one();
    assert_eq!(
        r.sfa(),
        ("R".into(), ack, 0),
        "responder RST for a 4-tuple with no record"
    );
}

/// The states `abort_state_matrix` and `rst_window_matrix` visit, and how to
/// reach each with the client still holding the handle.
fn reach(p: &mut RawPeer, s: State) {
    match s {
        State::SynSent => {
            p.to_syn_sent();
        }
        State::SynReceived => {
            let syn = p.to_syn_sent();
            // Simultaneous open: the peer's own SYN crosses ours.
            p.send(seg(SYN).seq(PEER_ISS).mss(1460));
            p.nxt = PEER_ISS + 1;
            let sa = p.expect_one();
            assert_eq!(sa.sfa(), ("SA".into(), syn.seq, PEER_ISS + 1));
            assert_eq!(p.state(), Some(State::SynReceived));
        }
        State::Established => {
            p.establish_passive();
        }
        State::FinWait1 => {
            p.to_fin_wait_1();
        }
        State::FinWait2 => p.to_fin_wait_2(),
        State::CloseWait => p.to_close_wait(),
        State::Closing => p.to_closing(),
        State::LastAck => {
            p.to_last_ack();
        }
        State::TimeWait => p.to_time_wait(),
        State::Closed | State::Listen => unreachable!("not a connection state"),
    }
    assert_eq!(p.state(), Some(s));
    p.completions();
}

const SYNCHRONIZED: [State; 7] = [
    State::Established,
    State::FinWait1,
    State::FinWait2,
    State::CloseWait,
    State::Closing,
    State::LastAck,
    State::TimeWait,
];

// ---------------------------------------------------------------------------
// Handshakes, neighbours
// ---------------------------------------------------------------------------

#[test]
fn test_listen_syn_synack_without_arp() {
    let mut p = peer();
    p.listen(8);
    p.send(seg(SYN).seq(PEER_ISS).win(8192).mss(1200));
    let sa = p.expect_one();
    assert_eq!(sa.flags_str(), "SA");
    assert_eq!(sa.ack, PEER_ISS + 1);
    assert_eq!(sa.mss, Some(p.our_mss()), "we advertise our own MSS");
    assert_eq!(
        sa.window, 65_535,
        "RFC 7323 §2.2: a SYN's window is unscaled"
    );
    assert!(
        p.arp_seen.is_empty(),
        "the SYN's Ethernet source was gleaned: no ARP needed"
    );
    assert_eq!(p.engine.connection_count(), 2);
}

#[test]
fn test_closed_connect_arp_then_syn() {
    let mut p = peer();
    p.establish_active();
    assert_eq!(p.arp_seen.len(), 1, "one ARP request, answered once");
    assert_eq!(p.neighbor_requests_sent(), 1);
    p.push(b"ping");
    assert_eq!(p.read_all(), b"ping");
}

#[test]
fn test_arp_request_answered() {
    let mut p = peer();
    let req = p.arp_request(p.engine_ip);
    p.send_frame(&req);
    assert_eq!(p.arp_seen.len(), 1);
    let reply = &p.arp_seen[0];
    assert!(!reply.request);
    assert_eq!(reply.sender_mac, p.engine_mac);
    assert_eq!(reply.sender_ip, p.engine_ip);
    assert_eq!(reply.target_mac, p.mac);
    assert_eq!(reply.target_ip, p.ip);
    assert_eq!(p.neighbor_replies_sent(), 1);
    // Not our address: no answer.
    let other = match p.engine_ip {
        std::net::IpAddr::V4(_) => std::net::IpAddr::from([198, 18, 0, 77]),
        std::net::IpAddr::V6(_) => "2001:db8::77".parse().unwrap(),
    };
    let other = p.arp_request(other);
    p.send_frame(&other);
    assert_eq!(p.arp_seen.len(), 1);
    p.expect_none();
}

#[test]
fn test_syn_sent_unanswered_arp_fails_connect() {
    let mut p = RawPeer::new(|c| c.tcp.syn_retries = 2);
    p.answer_arp = false;
    let ud = p.request(Request::Connect {
        remote: std::net::SocketAddr::new(p.ip, PEER_PORT),
        local_port: Some(50_000),
        local_addr: None,
    });
    p.expect_none();
    assert_eq!(p.arp_seen.len(), 1);
    p.advance(120_000);
    let c = p
        .answer(ud)
        .expect("a connect to a neighbour that never answers ARP must complete");
    assert_eq!(c.result, Errno::TimedOut);
    assert!(p.arp_seen.len() > 1, "ARP was retried");
    assert_eq!(p.engine.connection_count(), 0, "no record left behind");
}

#[test]
fn test_syn_sent_rst_without_ack_ignored_with_ack_refused() {
    let mut p = peer();
    let syn = p.to_syn_sent();
    let ud = p.connect_ud.unwrap();
    // RFC 9293 §3.10.7.3: an RST without an acceptable ACK is dropped.
    p.send(seg(RST).seq(0));
    p.send(seg(RST).seq(0).ack(syn.seq.wrapping_add(5)));
    p.expect_none();
    assert_eq!(p.state(), Some(State::SynSent));
    // An unacceptable ACK (no RST) earns <SEQ=SEG.ACK><RST>.
    p.send(seg(ACK).seq(PEER_ISS).ack(syn.seq.wrapping_add(9)));
    assert_eq!(
        p.expect_one().sfa(),
        ("R".into(), syn.seq.wrapping_add(9), 0)
    );
    assert!(p.answer(ud).is_none());
    p.send(seg(RST).seq(0).ack(syn.seq.wrapping_add(1)));
    p.expect_none();
    assert_eq!(
        rd(&p.answer(ud).unwrap()),
        (Errno::ConnRefused, Detail::None)
    );
    assert_eq!(p.state(), None);
}

// ---------------------------------------------------------------------------
// abort (docs/close-semantics.md#abort)
// ---------------------------------------------------------------------------

#[test]
fn abort_state_matrix() {
    let states = [
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];
    for s in states {
        let mut p = peer();
        reach(&mut p, s);
        let h = p.h();
        let (snd_nxt, rcv_nxt) = (p.rcv, p.nxt);
        let ud = p.request(Request::Abort { handle: h });
        let out = p.recv_all();
        if s.abort_sends_rst() {
            assert_eq!(out.len(), 1, "{s:?}: exactly one segment: {}", p.dump());
            assert_eq!(
                out[0].sfa(),
                ("RA".into(), snd_nxt, rcv_nxt),
                "{s:?}: <SEQ=SND.NXT><ACK=RCV.NXT><RST,ACK>"
            );
        } else {
            assert!(out.is_empty(), "{s:?}: nothing sent: {}", p.dump());
        }
        let c = p.answer(ud).unwrap();
        assert_eq!(rd(&c), closed(Outcome::Aborted), "{s:?}");
        if s == State::SynSent || s == State::SynReceived {
            let connect = p.answer(p.connect_ud.unwrap()).unwrap();
            assert_eq!(connect.result, Errno::OperationAborted, "{s:?}");
        }
        assert_eq!(p.state(), None, "{s:?}: state freed");
        let listener = usize::from(p.listener.is_some());
        assert_eq!(p.engine.connection_count(), listener, "{s:?}");
        assert_eq!(p.engine.timers_armed(), 0, "{s:?}: no timer left");
        assert!(
            p.completions().iter().all(|c| !c.is_event),
            "{s:?}: no event after the close was accepted"
        );
        let again = p.call(Request::GetLinger { handle: h });
        assert_eq!(again.result, Errno::NotSock, "{s:?}");
        p.advance(5_000);
        p.expect_none();
        assert_eq!(
            p.engine.counters().rst_abort,
            u64::from(s.abort_sends_rst()),
            "{s:?}"
        );
    }
}

#[test]
fn abort_seq_ack() {
    let mut p = peer();
    p.establish_passive();
    p.push(&[7u8; 100]);
    assert_eq!(p.read_all().len(), 100);
    p.write(&[9u8; 300]);
    let out = p.recv_all();
    assert_eq!(out.iter().map(|s| s.payload_len).sum::<usize>(), 300);
    assert!(out.iter().all(|s| !s.flags.rst));
    // The peer got the data but withholds its ACK: SND.UNA < SND.NXT.
    let ud = p.request(Request::Abort { handle: p.h() });
    let r = p.expect_one();
    assert_eq!(r.sfa(), ("RA".into(), p.rcv, PEER_ISS + 1 + 100));
    assert_eq!(p.rcv, p.engine_iss.wrapping_add(1 + 300));
    assert!(!r.flags.fin);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    p.advance(10_000);
    p.expect_none();
}

#[test]
fn test_established_abort_cancels_pending_blocking_close() {
    let mut p = peer();
    p.establish_passive();
    p.set_linger(true, 5_000);
    p.write(b"unacked");
    p.recv_all();
    let close = p.close(false);
    let fin = p.expect_one();
    assert_eq!(fin.flags_str(), "FA");
    assert!(p.answer(close).is_none(), "a blocking linger close waits");
    let abort = p.request(Request::Abort { handle: p.h() });
    let all = p.completions();
    let order: Vec<(u64, Errno)> = all.iter().map(|c| (c.user_data, c.result)).collect();
    assert_eq!(
        order,
        [(close, Errno::OperationAborted), (abort, Errno::Ok)],
        "#rule-cancel: the pending close is cancelled before the abort completes"
    );
    assert_eq!(all[1].detail, Detail::Closed(Outcome::Aborted));
    assert_eq!(p.expect_one().sfa(), ("RA".into(), p.rcv, p.nxt));
    p.advance(10_000);
    p.expect_none();
    assert!(p.completions().is_empty());
}

// ---------------------------------------------------------------------------
// close (docs/close-semantics.md#linger-matrix)
// ---------------------------------------------------------------------------

#[test]
fn close_unread_data_rst() {
    let mut p = peer();
    p.establish_passive();
    p.push(b"never read");
    let ud = p.close(false);
    let r = p.expect_one();
    assert_eq!(r.sfa(), ("RA".into(), p.rcv, PEER_ISS + 1 + 10));
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    assert_eq!(p.engine.counters().rst_close_unread, 1);
    assert_eq!(p.state(), None);
    p.advance(70_000);
    p.expect_none();
}

#[test]
fn close_no_rst_when_drained() {
    let mut p = peer();
    p.establish_passive();
    p.push(b"read me");
    assert_eq!(p.read_all(), b"read me");
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Background));
    let fin = p.expect_one();
    assert_eq!(fin.sfa(), ("FA".into(), p.engine_iss + 1, PEER_ISS + 1 + 7));
    p.ack();
    p.fin();
    let a = p.expect_one();
    assert_eq!(a.sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::TimeWait));
    let c = p.engine.counters();
    assert_eq!((c.rst_abort, c.rst_close_unread), (0, 0));
    assert!(rsts(&p.log).is_empty());
}

#[test]
fn data_after_close_rst() {
    let mut p = peer();
    p.establish_passive();
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Background));
    let fin = p.expect_one();
    assert_eq!(fin.flags_str(), "FA");
    let before = p.nxt;
    p.push(b"too late");
    let r = p.expect_one();
    assert_eq!(
        r.sfa(),
        ("RA".into(), fin.seq + 1, before),
        "RST at SND.NXT; the data was not accepted"
    );
    assert_eq!(p.engine.counters().rst_data_after_close, 1);
    assert_eq!(p.state(), None);
    assert!(p.completions().is_empty(), "no event for a closed handle");
}

#[test]
fn double_close_once() {
    let mut p = peer();
    p.establish_passive();
    let h = p.h();
    let first = p.close(false);
    let second = p.close(false);
    let abort = p.request(Request::Abort { handle: h });
    assert_eq!(rd(&p.answer(first).unwrap()), closed(Outcome::Background));
    assert_eq!(p.answer(second).unwrap().result, Errno::NotSock);
    assert_eq!(p.answer(abort).unwrap().result, Errno::NotSock);
    let out = p.recv_all();
    assert_eq!(out.len(), 1, "one FIN, no RST: {}", p.dump());
    assert_eq!(out[0].flags_str(), "FA");
    assert_eq!(p.engine.counters().closes_background, 1);
}

#[test]
fn test_established_second_close_while_pending_einprogress() {
    let mut p = peer();
    p.establish_passive();
    p.set_linger(true, 5_000);
    let h = p.h();
    let first = p.close(false);
    let fin = p.expect_one();
    assert_eq!(fin.flags_str(), "FA");
    let second = p.close(false);
    assert_eq!(p.answer(second).unwrap().result, Errno::InProgress);
    let send = p.call(Request::Send {
        handle: h,
        data: b"x".to_vec(),
    });
    assert_eq!(send.result, Errno::InProgress);
    p.expect_none();
    assert!(p.answer(first).is_none());
    p.ack();
    assert_eq!(rd(&p.answer(first).unwrap()), closed(Outcome::Graceful));
    let third = p.close(false);
    assert_eq!(p.answer(third).unwrap().result, Errno::NotSock);
}

#[test]
fn test_syn_sent_close_sends_nothing() {
    let mut p = peer();
    let syn = p.to_syn_sent();
    let ud = p.close(false);
    p.expect_none();
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    let connect = p.answer(p.connect_ud.unwrap()).unwrap();
    assert_eq!(connect.result, Errno::OperationAborted);
    assert_eq!(p.state(), None);
    assert_eq!(p.engine.connection_count(), 0);
    p.advance(10_000);
    p.expect_none();
    // The SYN-ACK that was already on its way meets the responder.
    let ack = syn.seq.wrapping_add(1);
    p.send(seg(SYN | ACK).seq(PEER_ISS).ack(ack));
    assert_eq!(p.expect_one().sfa(), ("R".into(), ack, 0));
}

#[test]
fn test_listen_close_listener() {
    let mut p = peer();
    let l = p.listen(8);
    let c = p.call(Request::Close {
        handle: l,
        nonblocking: false,
    });
    assert_eq!(rd(&c), closed(Outcome::Graceful));
    assert_eq!(p.engine.connection_count(), 0);
    p.send(seg(SYN).seq(PEER_ISS));
    assert_eq!(p.expect_one().sfa(), ("RA".into(), 0, PEER_ISS + 1));
    let again = p.call(Request::Close {
        handle: l,
        nonblocking: false,
    });
    assert_eq!(again.result, Errno::NotSock);
    // The port is free again.
    let l2 = p.call(Request::Listen {
        port: SERVER_PORT,
        backlog: 1,
    });
    assert_eq!(l2.result, Errno::Ok);
}

#[test]
fn test_listen_close_with_handshake_in_progress() {
    let mut p = peer();
    let l = p.listen(8);
    p.send(seg(SYN).seq(PEER_ISS).mss(1460));
    let sa = p.expect_one();
    let c = p.call(Request::Close {
        handle: l,
        nonblocking: false,
    });
    assert_eq!(c.result, Errno::Ok);
    // #listeners: a connection not yet accepted is hard-closed.
    p.nxt = PEER_ISS + 1;
    p.ack();
    assert_eq!(
        p.expect_one().sfa(),
        ("RA".into(), sa.seq + 1, PEER_ISS + 1)
    );
    assert!(
        p.completions()
            .iter()
            .all(|c| !matches!(c.detail, Detail::Accepted { .. }))
    );
    assert_eq!(p.engine.connection_count(), 0);
}

// ---------------------------------------------------------------------------
// linger (docs/close-semantics.md#linger-options, #linger-matrix)
// ---------------------------------------------------------------------------

/// Established, linger {on, `ms`}, 100 bytes sent and not acknowledged.
fn lingering_with_unacked_data(ms: u32) -> RawPeer {
    let mut p = peer();
    p.establish_passive();
    p.set_linger(true, ms);
    p.write(&[1u8; 100]);
    let d = p.expect_one();
    assert_eq!(d.payload_len, 100);
    p
}

/// Connections with a linger deadline armed, by the engine's census.
fn lingering(p: &RawPeer) -> u64 {
    let mut c = Census::default();
    assert_eq!(p.engine.count_states(0, u32::MAX, &mut c), None);
    c.linger_armed
}

#[test]
fn linger_expiry_aborts() {
    // The peer withholds its ACKs.
    let mut p = lingering_with_unacked_data(2_000);
    let t = p.ms();
    let ud = p.close(false);
    p.advance(1_999);
    let before = p.recv_all();
    assert!(
        rsts(&before).is_empty(),
        "no RST before the deadline: {}",
        p.dump()
    );
    assert!(
        before.iter().any(|s| s.flags.fin),
        "the FIN went out (and was retransmitted)"
    );
    assert!(p.answer(ud).is_none());
    assert_eq!(lingering(&p), 1, "the census sees the armed deadline");
    p.advance(2);
    let after = p.recv_all();
    assert_eq!(after.len(), 1, "exactly one RST: {}", p.dump());
    let r = &after[0];
    assert!(
        r.at_ms >= t + 2_000 && r.at_ms <= t + 2_001,
        "within a tick"
    );
    assert_eq!(
        r.sfa(),
        ("RA".into(), p.engine_iss + 1 + 100 + 1, p.nxt),
        "SEQ=SND.NXT (data and FIN), ACK=RCV.NXT"
    );
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::AbortedLinger));
    assert_eq!(p.engine.counters().rst_linger_expired, 1);
    assert_eq!(p.state(), None);
    assert_eq!(lingering(&p), 0);
    p.advance(10_000);
    p.expect_none();
}

#[test]
fn test_established_linger_expiry_zero_window() {
    let mut p = peer();
    p.establish_passive();
    // The peer stops reading: its window closes.
    p.wnd = 0;
    p.ack();
    p.set_linger(true, 3_000);
    p.write(&[2u8; 100]);
    let t = p.ms();
    let ud = p.close(false);
    p.advance(2_999);
    let before = p.recv_all();
    assert!(rsts(&before).is_empty(), "{}", p.dump());
    assert!(
        !before.is_empty() && before.iter().all(|s| s.payload_len <= 1),
        "window probes, and only they, go out: {}",
        p.dump()
    );
    p.advance(2);
    let after = p.recv_all();
    assert_eq!(after.len(), 1, "{}", p.dump());
    let r = &after[0];
    assert!(r.at_ms >= t + 3_000 && r.at_ms <= t + 3_001);
    assert_eq!(r.flags_str(), "RA");
    assert_eq!(r.ack, p.nxt);
    assert_eq!(
        r.seq,
        p.engine_iss + 1,
        "the peer accepted nothing and offers no window: only SEQ = its \
         RCV.NXT (our SND.UNA) can reset it (RFC 9293 §3.10.7.4)"
    );
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::AbortedLinger));
}

#[test]
fn test_established_zero_window_probe() {
    let mut p = peer();
    p.establish_passive();
    p.wnd = 0;
    p.ack();
    p.write(&[3u8; 100]);
    p.expect_none();
    // RFC 9293 §3.8.6.1: data waiting behind a zero window is probed.
    p.advance(1_500);
    let probes = p.recv_all();
    assert!(!probes.is_empty(), "a window probe within one RTO");
    let una = p.engine_iss + 1;
    assert!(
        probes.iter().all(|s| s.seq == una && s.payload_len <= 1),
        "{}",
        p.dump()
    );
    // The peer keeps answering with a zero window: the connection must stay
    // open indefinitely (RFC 1122 §4.2.2.17), probing with backoff.
    for _ in 0..40 {
        p.advance(10_000);
        if !p.recv_all().is_empty() {
            p.send(seg(ACK).seq(p.nxt).ack(una).win(0));
        }
    }
    assert_eq!(p.state(), Some(State::Established), "{}", p.dump());
    assert!(p.completions().iter().all(|c| c.detail != Detail::Reset));
    // The window opens: the data flows.
    p.wnd = 65_535;
    p.send(seg(ACK).seq(p.nxt).ack(una).win(65_535));
    let out = p.recv_all();
    let bytes: usize = out.iter().map(|s| s.payload_len).sum();
    assert!(bytes >= 99, "{}", p.dump());
}

#[test]
fn linger_acked_in_time() {
    let mut p = lingering_with_unacked_data(5_000);
    let ud = p.close(false);
    let fin = p.expect_one();
    assert_eq!(fin.sfa(), ("FA".into(), p.engine_iss + 101, p.nxt));
    p.advance(100);
    p.recv_all();
    p.ack();
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Graceful));
    assert_eq!(p.state(), Some(State::FinWait2));
    assert_eq!(lingering(&p), 0, "acknowledged: no linger deadline left");
    p.advance(10_000);
    p.expect_none();
    p.fin();
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::TimeWait));
    let c = p.engine.counters();
    assert_eq!((c.rst_linger_expired, c.closes_graceful), (0, 1));
    assert!(rsts(&p.log).is_empty());
}

#[test]
fn linger_nonblocking_wouldblock() {
    let mut p = lingering_with_unacked_data(5_000);
    let h = p.h();
    let ud = p.close(true);
    assert_eq!(
        rd(&p.answer(ud).unwrap()),
        (Errno::WouldBlock, Detail::None)
    );
    p.expect_none();
    assert_eq!(p.state(), Some(State::Established), "no disconnect started");
    let g = p.call(Request::GetLinger { handle: h });
    assert_eq!(
        rd(&g),
        (
            Errno::Ok,
            Detail::Linger(Linger {
                on: true,
                ms: 5_000
            })
        )
    );
    // Still failing while data is unacknowledged (rule 3).
    let again = p.close(true);
    assert_eq!(p.answer(again).unwrap().result, Errno::WouldBlock);
    p.expect_none();
    // Once everything is acknowledged it behaves like the blocking call.
    p.ack();
    let ok = p.close(true);
    assert_eq!(p.expect_one().flags_str(), "FA");
    p.ack();
    assert_eq!(rd(&p.answer(ok).unwrap()), closed(Outcome::Graceful));
}

#[test]
fn test_established_nonblocking_close_after_shutdown_send_background() {
    let mut p = lingering_with_unacked_data(2_000);
    assert_eq!(p.shutdown(1).result, Errno::Ok);
    assert_eq!(p.expect_one().flags_str(), "FA");
    let t = p.ms();
    let ud = p.close(true);
    // Rule 3c [decision]: returns at once, bounded by the linger deadline.
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Background));
    p.advance(1_999);
    assert!(rsts(&p.recv_all()).is_empty());
    p.advance(2);
    let r = p.expect_one();
    assert_eq!(r.flags_str(), "RA");
    assert!(r.at_ms <= t + 2_001);
    assert_eq!(p.engine.counters().rst_linger_expired, 1);
}

#[test]
fn linger_ack_on_expiry_tick() {
    // The ACK arrives at the deadline, before the timer runs.
    let mut p = lingering_with_unacked_data(1_000);
    let ud = p.close(false);
    assert_eq!(p.expect_one().flags_str(), "FA");
    p.advance(999);
    p.recv_all();
    p.jump(1);
    p.ack();
    p.run_timers();
    let all = p.completions();
    let outcomes: Vec<_> = all.iter().filter(|c| c.user_data == ud).collect();
    assert_eq!(outcomes.len(), 1, "{all:?}");
    assert_eq!(rd(outcomes[0]), closed(Outcome::Graceful));
    assert!(rsts(&p.log).is_empty(), "{}", p.dump());

    // The timer runs at the deadline, before the ACK is processed.
    let mut p = lingering_with_unacked_data(1_000);
    let ud = p.close(false);
    assert_eq!(p.expect_one().flags_str(), "FA");
    p.advance(999);
    p.recv_all();
    p.jump(1);
    p.run_timers();
    let ack = p.rcv;
    p.ack();
    let all = p.completions();
    let outcomes: Vec<_> = all.iter().filter(|c| c.user_data == ud).collect();
    assert_eq!(outcomes.len(), 1, "{all:?}");
    assert_eq!(rd(outcomes[0]), closed(Outcome::AbortedLinger));
    let out = p.recv_all();
    assert_eq!(
        out.iter().map(Rx::sfa).collect::<Vec<_>>(),
        [
            ("RA".into(), ack, p.nxt),
            // The late ACK finds no record: the responder answers it.
            ("R".into(), ack, 0)
        ]
    );
}

#[test]
fn test_established_linger_off_background_close() {
    let mut p = peer();
    p.establish_passive();
    p.set_linger(true, 4_000);
    let dont = p.call(Request::SetDontLinger {
        handle: p.h(),
        dont: true,
    });
    assert_eq!(dont.result, Errno::Ok);
    let g = p.call(Request::GetLinger { handle: p.h() });
    assert_eq!(
        g.detail,
        Detail::Linger(Linger {
            on: false,
            ms: 4_000
        })
    );
    p.write(b"bye");
    p.recv_all();
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Background));
    assert_eq!(p.expect_one().flags_str(), "FA");
    p.ack();
    p.fin();
    assert_eq!(p.expect_one().flags_str(), "A");
    assert_eq!(p.state(), Some(State::TimeWait));
}

#[test]
fn test_established_linger_zero_is_hard_close() {
    let mut p = peer();
    p.establish_passive();
    p.set_linger(true, 0);
    p.write(b"discarded");
    p.recv_all();
    let ud = p.close(true);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    assert_eq!(p.expect_one().sfa(), ("RA".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), None);
}

#[test]
fn test_established_set_linger_out_of_range_einval() {
    let mut p = peer();
    p.establish_passive();
    let c = p.call(Request::SetLinger {
        handle: p.h(),
        linger: Linger {
            on: true,
            ms: 65_535_001,
        },
    });
    assert_eq!(c.result, Errno::Inval);
    let g = p.call(Request::GetLinger { handle: p.h() });
    assert_eq!(g.detail, Detail::Linger(Linger::default()));
}

// ---------------------------------------------------------------------------
// Orphans and TIME-WAIT
// ---------------------------------------------------------------------------

#[test]
fn test_fin_wait_1_orphan_timeout_aborts() {
    let mut p = RawPeer::new(|c| c.tcp.orphan_timeout_ms = 5_000);
    p.establish_passive();
    let t = p.ms();
    p.close(false);
    let fin = p.expect_one();
    p.advance(4_999);
    let retx = p.recv_all();
    assert!(!retx.is_empty(), "the FIN is retransmitted");
    assert!(
        retx.iter().all(|s| s.sfa() == fin.sfa()),
        "only FIN retransmissions before the orphan timeout: {}",
        p.dump()
    );
    p.advance(2);
    let r = p.expect_one();
    assert_eq!(r.sfa(), ("RA".into(), fin.seq + 1, p.nxt));
    assert!(r.at_ms <= t + 5_001);
    assert_eq!(p.engine.counters().orphan_timeouts, 1);
    assert_eq!(p.engine.connection_count(), 1, "only the listener");
}

#[test]
fn test_fin_wait_2_orphan_timeout_aborts() {
    let mut p = RawPeer::new(|c| c.tcp.orphan_timeout_ms = 5_000);
    p.establish_passive();
    p.close(false);
    let fin = p.expect_one();
    p.advance(500);
    p.expect_none();
    p.ack();
    assert_eq!(p.state(), Some(State::FinWait2));
    // Bounded by the orphan timeout counted from the close.
    p.advance(4_499);
    p.expect_none();
    p.advance(2);
    assert_eq!(p.expect_one().sfa(), ("RA".into(), fin.seq + 1, p.nxt));
    assert_eq!(p.engine.counters().orphan_timeouts, 1);
    assert_eq!(p.state(), None);
}

/// TIME-WAIT reached by an ordinary close (handle released).
fn time_wait_after_close(p: &mut RawPeer) {
    p.establish_passive();
    p.close(false);
    assert_eq!(p.expect_one().flags_str(), "FA");
    p.ack();
    p.fin();
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::TimeWait));
    assert_eq!(p.engine.counters().time_wait_entered, 1);
}

#[test]
fn test_time_wait_retransmitted_fin_reacked() {
    let mut p = RawPeer::new(|c| c.tcp.time_wait_ms = 1_000);
    time_wait_after_close(&mut p);
    p.advance(600);
    // The peer did not get our ACK and sends its FIN again.
    let again = seg(FIN | ACK).seq(p.nxt - 1).ack(p.rcv);
    p.send(again);
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    // 2×MSL restarts from the retransmitted FIN.
    p.advance(999);
    assert_eq!(p.state(), Some(State::TimeWait));
    p.advance(2);
    assert_eq!(p.state(), None);
    p.expect_none();
}

#[test]
fn test_time_wait_expires_after_2msl() {
    let mut p = RawPeer::new(|c| c.tcp.time_wait_ms = 1_000);
    time_wait_after_close(&mut p);
    p.advance(999);
    assert_eq!(p.state(), Some(State::TimeWait));
    p.advance(2);
    assert_eq!(p.state(), None);
    assert_eq!(p.engine.connection_count(), 1);
    p.expect_none();
}

/// A reload (`QueueEngine::retune`) shortens TIME-WAIT: the next
/// connection to enter it waits the new time.
#[test]
fn test_time_wait_retuned_applies_to_the_next_entry() {
    let mut p = peer();
    let mut t = p.engine.config().tunables();
    t.time_wait_ms = 1_000;
    p.engine.retune(t);
    time_wait_after_close(&mut p);
    p.advance(999);
    assert_eq!(p.state(), Some(State::TimeWait));
    p.advance(2);
    assert_eq!(p.state(), None, "the retuned 2xMSL");
}

/// A reload does not move a deadline already in the wheel.
#[test]
fn test_time_wait_retuned_keeps_an_armed_deadline() {
    let mut p = RawPeer::new(|c| c.tcp.time_wait_ms = 1_000);
    time_wait_after_close(&mut p);
    let mut t = p.engine.config().tunables();
    t.time_wait_ms = 60_000;
    p.engine.retune(t);
    p.advance(1_001);
    assert_eq!(p.state(), None, "armed with 1 s before the reload");
}

/// A reload of the default linger applies to connections accepted
/// afterwards: linger {on, 0} makes their close abortive.
#[test]
fn test_established_retuned_default_linger_zero_is_hard_close() {
    let mut p = peer();
    let mut t = p.engine.config().tunables();
    t.default_linger = Linger { on: true, ms: 0 };
    p.engine.retune(t);
    p.establish_passive();
    let ud = p.close(true);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    assert_eq!(p.expect_one().sfa(), ("RA".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), None);
}

#[test]
fn test_time_wait_rst_closes() {
    let mut p = peer();
    time_wait_after_close(&mut p);
    p.send(seg(RST).seq(p.nxt));
    p.expect_none();
    assert_eq!(
        p.state(),
        None,
        "RFC 9293 §3.10.7.4: RST in TIME-WAIT closes"
    );
    assert_demux_forgot(&mut p);
}

#[test]
fn test_time_wait_rst_ignored_rfc1337() {
    let mut p = RawPeer::new(|c| c.tcp.time_wait_rst = TimeWaitRst::Ignore);
    time_wait_after_close(&mut p);
    p.send(seg(RST).seq(p.nxt));
    p.expect_none();
    assert_eq!(p.state(), Some(State::TimeWait), "RFC 1337: ignored");
}

#[test]
fn test_time_wait_new_syn_reopens() {
    let mut p = peer();
    time_wait_after_close(&mut p);
    let old = p.h();
    // A SYN that does not move past the old incarnation: challenge ACK
    // (RFC 5961 §4.2; RFC 6191 reuse needs a higher sequence number).
    p.send(seg(SYN).seq(p.nxt).mss(1460));
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::TimeWait));
    assert_eq!(p.engine.counters().challenge_acks, 1);
    p.send(seg(SYN).seq(p.nxt + 100_000).mss(1460));
    let sa = p.expect_one();
    assert_eq!(sa.flags_str(), "SA");
    assert_eq!(sa.ack, p.nxt + 100_001);
    assert_eq!(p.state(), None, "the old incarnation is gone");
    assert!(p.engine.tuple(old).is_none());
    assert_eq!(p.engine.connection_count(), 2, "listener + new handshake");
}

#[test]
fn test_last_ack_acked_handle_kept_until_close() {
    let mut p = peer();
    p.to_last_ack();
    let h = p.h();
    p.ack();
    p.expect_none();
    assert_eq!(
        p.state(),
        Some(State::Closed),
        "#handle-death: the connection ended, the handle lives until close"
    );
    assert_demux_forgot(&mut p);
    let send = p.call(Request::Send {
        handle: h,
        data: b"x".to_vec(),
    });
    assert_eq!(send.result, Errno::NotConn);
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Graceful));
    assert_eq!(p.state(), None);
    assert_eq!(p.engine.connection_count(), 1, "only the listener");
    assert_eq!(p.engine.timers_armed(), 0);
}

#[test]
fn test_time_wait_expiry_handle_kept_until_close() {
    let mut p = RawPeer::new(|c| c.tcp.time_wait_ms = 1_000);
    p.to_time_wait();
    p.advance(1_001);
    assert_eq!(p.state(), Some(State::Closed));
    assert_eq!(p.engine.timers_armed(), 0);
    assert_demux_forgot(&mut p);
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Graceful));
    assert_eq!(p.state(), None);
    p.expect_none();
}

#[test]
fn test_time_wait_new_syn_reopens_handle_kept() {
    let mut p = peer();
    p.to_time_wait();
    p.send(seg(SYN).seq(p.nxt + 100_000).mss(1460));
    assert_eq!(p.expect_one().flags_str(), "SA");
    assert_eq!(
        p.state(),
        Some(State::Closed),
        "the old handle outlives its incarnation"
    );
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Graceful));
    assert_eq!(p.engine.connection_count(), 2, "listener + new handshake");
}

// ---------------------------------------------------------------------------
// shutdown (docs/close-semantics.md#shutdown)
// ---------------------------------------------------------------------------

#[test]
fn shutdown_send_then_receive() {
    let mut p = peer();
    p.establish_passive();
    p.write(b"last words");
    assert_eq!(p.expect_one().payload_len, 10);
    assert_eq!(p.shutdown(1).result, Errno::Ok);
    let fin = p.expect_one();
    assert_eq!(fin.sfa(), ("FA".into(), p.engine_iss + 11, p.nxt));
    let send = p.call(Request::Send {
        handle: p.h(),
        data: b"more".to_vec(),
    });
    assert_eq!(send.result, Errno::Shutdown);
    p.ack();
    assert_eq!(p.state(), Some(State::FinWait2));
    // The connection goes on receiving.
    p.push(b"reply");
    assert_eq!(p.read_all(), b"reply");
    p.advance(200);
    assert_eq!(
        p.expect_one().sfa(),
        ("A".into(), p.rcv, p.nxt),
        "delayed ACK"
    );
    p.fin();
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::TimeWait));
    assert!(
        p.completions()
            .iter()
            .any(|c| c.is_event && c.detail == Detail::PeerClosed)
    );
    // The recommended pattern ends with close: graceful, no RST.
    let ud = p.close(false);
    assert_eq!(p.answer(ud).unwrap().result, Errno::Ok);
    assert!(rsts(&p.log).is_empty());
}

#[test]
fn shutdown_receive_resets() {
    // Unread data is waiting: RST at once.
    let mut p = peer();
    p.establish_passive();
    p.push(b"unread");
    let c = p.shutdown(0);
    assert_eq!(c.result, Errno::Ok);
    assert_eq!(p.expect_one().sfa(), ("RA".into(), p.rcv, p.nxt));
    let ev = p.completions();
    assert!(
        ev.iter()
            .any(|c| c.is_event && c.result == Errno::ConnAborted && c.detail == Detail::Reset),
        "{ev:?}"
    );
    assert_eq!(p.engine.counters().rst_close_unread, 1);
    let send = p.call(Request::Send {
        handle: p.h(),
        data: b"x".to_vec(),
    });
    assert_eq!(send.result, Errno::ConnAborted, "the handle stays valid");
    assert_demux_forgot(&mut p);
    let ud = p.close(false);
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    assert_eq!(p.state(), None);

    // Data arriving after shutdown(RECEIVE): RST.
    let mut p = peer();
    p.establish_passive();
    assert_eq!(p.shutdown(0).result, Errno::Ok);
    p.expect_none();
    let before = p.nxt;
    p.push(b"late");
    assert_eq!(p.expect_one().sfa(), ("RA".into(), p.rcv, before));
    assert_eq!(p.engine.counters().rst_data_after_close, 1);
    assert!(
        p.completions()
            .iter()
            .all(|c| !matches!(c.detail, Detail::Data(_)))
    );

    // A FIN after shutdown(RECEIVE) is fine.
    let mut p = peer();
    p.establish_passive();
    assert_eq!(p.shutdown(0).result, Errno::Ok);
    p.fin();
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::CloseWait));
    assert!(rsts(&p.log).is_empty());
}

/// A bad `how` (3, 4, 255) cannot be expressed as an engine request any
/// more: the ring decoder answers it EINVAL (`tests/rings.rs`
/// `shutdown_with_a_bad_how_is_einval_before_the_engine`). What stays here:
/// the engine's good `how`s leave an established connection usable.
#[test]
fn shutdown_receive_keeps_the_connection_open() {
    let mut p = peer();
    p.establish_passive();
    let c = p.shutdown(0);
    assert_eq!(rd(&c), (Errno::Ok, Detail::None));
    p.expect_none();
    assert_eq!(p.state(), Some(State::Established));
    p.write(b"still open");
    assert_eq!(p.expect_one().payload_len, 10);
}

#[test]
fn test_shutdown_not_connected_enotconn() {
    let mut p = peer();
    p.to_syn_sent();
    assert_eq!(p.shutdown(1).result, Errno::NotConn, "SYN-SENT");
    p.expect_none();

    let mut p = peer();
    let l = p.listen(8);
    let c = p.call(Request::Shutdown {
        handle: l,
        how: lingerd_abi::Shutdown::Both,
    });
    assert_eq!(
        c.result,
        Errno::NotConn,
        "#shutdown: a listener is not connected"
    );
}

// ---------------------------------------------------------------------------
// Handles (docs/close-semantics.md#errors)
// ---------------------------------------------------------------------------

#[test]
fn stale_handle_enotsock() {
    let mut p = RawPeer::new(|c| c.max_connections = 2);
    p.establish_passive();
    let old = p.h();
    let c = p.call(Request::Abort { handle: old });
    assert_eq!(c.result, Errno::Ok);
    p.recv_all();
    // A second connection reuses the slot with a new generation.
    p.send(seg(SYN).seq(7_000).mss(1460).sport(40_001));
    let sa = p.expect_one();
    p.send(
        seg(ACK)
            .seq(7_001)
            .ack(sa.seq.wrapping_add(1))
            .sport(40_001),
    );
    let new = p
        .completions()
        .iter()
        .find(|c| matches!(c.detail, Detail::Accepted { .. }))
        .map(|c| c.handle)
        .expect("accepted");
    assert_eq!(new.slot(), old.slot(), "the slot was recycled");
    assert_ne!(new, old);
    for req in [
        Request::GetLinger { handle: old },
        Request::Send {
            handle: old,
            data: b"x".to_vec(),
        },
        Request::Shutdown {
            handle: old,
            how: lingerd_abi::Shutdown::Send,
        },
        Request::Close {
            handle: old,
            nonblocking: false,
        },
        Request::Abort { handle: old },
        Request::GetLinger {
            handle: Handle::new(3, old.slot(), old.generation()),
        },
        Request::GetLinger {
            handle: Handle::from_raw(u64::MAX),
        },
    ] {
        let c = p.call(req.clone());
        assert_eq!(c.result, Errno::NotSock, "{req:?}");
    }
    p.expect_none();
    assert_eq!(p.engine.state(new), Some(State::Established));
}

#[test]
fn handle_wrong_owner_eperm() {
    let mut p = peer();
    let l = p.establish_passive();
    let _ = l;
    let h = p.h();
    let other = ClientId(8);
    for req in [
        Request::GetLinger { handle: h },
        Request::Send {
            handle: h,
            data: b"x".to_vec(),
        },
        Request::Shutdown {
            handle: h,
            how: lingerd_abi::Shutdown::Both,
        },
        Request::Close {
            handle: h,
            nonblocking: false,
        },
        Request::Abort { handle: h },
    ] {
        let c = p.call_as(other, req.clone());
        assert_eq!(c.result, Errno::Perm, "{req:?}");
    }
    let lc = p.call_as(
        other,
        Request::Close {
            handle: p.listener.unwrap(),
            nonblocking: false,
        },
    );
    assert_eq!(lc.result, Errno::Perm);
    p.expect_none();
    assert_eq!(p.state(), Some(State::Established));
    let admin = p.call_as(ADMIN_CLIENT, Request::GetLinger { handle: h });
    assert_eq!(admin.result, Errno::Ok);
}

/// 0 is never a valid handle (`LD_INVALID_HANDLE`): the very first
/// connection of a fresh engine on core 0, passive or active, and its
/// listener get non-zero handles.
#[test]
fn test_first_handles_on_a_fresh_engine_are_not_zero() {
    let mut p = peer();
    let h = p.establish_passive();
    let listener = p.listener.expect("listening");
    assert_eq!(listener.core(), 0);
    assert_ne!(listener, Handle::INVALID);
    assert_ne!(listener.raw(), 0);
    assert_ne!(h.raw(), 0);

    let mut p = peer();
    p.to_syn_sent();
    assert_eq!(p.h().slot(), 0, "the first slot of a fresh table");
    assert_ne!(p.h().raw(), 0);
}

#[test]
fn test_every_request_gets_exactly_one_completion() {
    let mut p = peer();
    p.establish_passive();
    let h = p.h();
    let bogus = Handle::from_raw(0x00ff_ffff_ffff);
    let reqs = vec![
        Request::Listen {
            port: 0,
            backlog: 1,
        },
        Request::Listen {
            port: SERVER_PORT,
            backlog: 1,
        },
        Request::Listen {
            port: 81,
            backlog: 0,
        },
        Request::Connect {
            remote: std::net::SocketAddr::new(p.ip, 0),
            local_port: None,
            local_addr: None,
        },
        Request::Send {
            handle: bogus,
            data: vec![1],
        },
        Request::Send {
            handle: h,
            data: vec![0; 1 << 20],
        },
        Request::Send {
            handle: h,
            data: b"ok".to_vec(),
        },
        Request::RecvDone { handle: h, len: 0 },
        Request::SetLinger {
            handle: h,
            linger: Linger {
                on: true,
                ms: u32::MAX,
            },
        },
        Request::SetDontLinger {
            handle: h,
            dont: false,
        },
        Request::GetLinger { handle: h },
        Request::CloseMatching {
            filter: Filter {
                local_port: Some(1),
                ..Filter::default()
            },
            mode: CloseMode::Linger {
                ms: lingerd_dataplane::tcp::linger::MAX_LINGER_MS + 1,
            },
            pace_per_s: 0,
        },
        Request::CloseMatching {
            filter: Filter {
                remote_port: Some(1),
                ..Filter::default()
            },
            mode: CloseMode::Graceful,
            pace_per_s: 0,
        },
        Request::Close {
            handle: h,
            nonblocking: false,
        },
        Request::Close {
            handle: h,
            nonblocking: false,
        },
        Request::Abort { handle: bogus },
    ];
    let mut uds = Vec::new();
    for r in reqs {
        uds.push(p.request(r));
    }
    p.advance(1_000);
    let all = p.completions();
    for ud in &uds {
        let n = all
            .iter()
            .filter(|c| !c.is_event && c.user_data == *ud)
            .count();
        assert_eq!(n, 1, "request {ud}: {all:?}");
    }
    let results: Vec<Errno> = uds
        .iter()
        .map(|ud| {
            all.iter()
                .find(|c| !c.is_event && c.user_data == *ud)
                .unwrap()
                .result
        })
        .collect();
    assert_eq!(
        results,
        [
            Errno::Inval,
            Errno::AddrInUse,
            Errno::Inval,
            Errno::Inval,
            Errno::NotSock,
            Errno::NoBufs,
            Errno::Ok,
            Errno::Ok,
            Errno::Inval,
            Errno::Ok,
            Errno::Ok,
            Errno::Inval,
            Errno::Ok,
            Errno::Ok,
            Errno::NotSock,
            Errno::NotSock,
        ]
    );
}

// ---------------------------------------------------------------------------
// Receiving: RFC 5961
// ---------------------------------------------------------------------------

#[test]
fn rst_window_matrix() {
    for s in SYNCHRONIZED {
        for (name, off) in [
            ("RCV.NXT-1", -1i64),
            ("RCV.NXT", 0),
            ("RCV.NXT+WND-1", 1),
            ("RCV.NXT+WND", 2),
        ] {
            let mut p = peer();
            reach(&mut p, s);
            let wnd = u32::from(p.engine_wnd);
            assert!(wnd > 1, "{s:?}: the engine offers a window");
            let seq = match off {
                -1 => p.nxt.wrapping_sub(1),
                0 => p.nxt,
                1 => p.nxt.wrapping_add(wnd - 1),
                _ => p.nxt.wrapping_add(wnd),
            };
            let unacceptable = p.engine.counters().rx_unacceptable;
            p.send(seg(RST).seq(seq));
            let out = p.recv_all();
            match off {
                0 => {
                    assert!(out.is_empty(), "{s:?} {name}: never answer an RST");
                    assert!(
                        matches!(p.state(), None | Some(State::Closed)),
                        "{s:?} {name}: reset, got {:?}",
                        p.state()
                    );
                    assert_demux_forgot(&mut p);
                    let reset = p
                        .completions()
                        .into_iter()
                        .filter(|c| c.is_event && c.detail == Detail::Reset)
                        .count();
                    assert_eq!(reset, 1, "{s:?}: the client hears of the reset once");
                    let c = p.call(Request::Close {
                        handle: p.h(),
                        nonblocking: false,
                    });
                    assert_eq!(
                        rd(&c),
                        closed(Outcome::ResetByPeer),
                        "{s:?}: closing the reset handle"
                    );
                }
                1 => {
                    assert_eq!(out.len(), 1, "{s:?} {name}: {}", p.dump());
                    assert_eq!(
                        out[0].sfa(),
                        ("A".into(), p.rcv, p.nxt),
                        "{s:?} {name}: challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT><ACK>"
                    );
                    assert_eq!(p.state(), Some(s));
                    assert_eq!(p.engine.counters().challenge_acks, 1);
                }
                _ => {
                    assert!(out.is_empty(), "{s:?} {name}: dropped: {}", p.dump());
                    assert_eq!(p.state(), Some(s), "{s:?} {name}");
                    assert_eq!(
                        p.engine.counters().rx_unacceptable,
                        unacceptable + 1,
                        "{s:?} {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn test_synchronized_syn_challenge_ack() {
    for s in [
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
    ] {
        let mut p = peer();
        reach(&mut p, s);
        // In the window, at RCV.NXT and beyond it.
        for seq in [p.nxt, p.nxt + 10] {
            p.send(seg(SYN).seq(seq).mss(1460));
            let a = p.expect_one();
            assert_eq!(a.sfa(), ("A".into(), p.rcv, p.nxt), "{s:?} SYN at {seq}");
            assert_eq!(p.state(), Some(s), "{s:?}");
        }
        assert_eq!(p.engine.counters().challenge_acks, 2, "{s:?}");
    }
}

#[test]
fn test_established_challenge_ack_budget_per_connection() {
    let mut p = peer();
    p.establish_passive();
    let budget = p.engine.config().tcp.challenge_acks_per_s;
    assert_eq!(budget, 10);
    for _ in 0..budget + 2 {
        p.send(seg(RST).seq(p.nxt + 5));
    }
    let acks = p.recv_all();
    assert_eq!(acks.len(), 10, "{}", p.dump());
    assert!(acks.iter().all(|a| a.sfa() == ("A".into(), p.rcv, p.nxt)));
    assert_eq!(p.engine.counters().challenge_acks_suppressed, 2);
    // Another connection has its own budget (a global one is a side channel).
    p.send(seg(SYN).seq(9_000).mss(1460).sport(40_001));
    let sa = p.expect_one();
    p.send(seg(ACK).seq(9_001).ack(sa.seq + 1).sport(40_001));
    p.send(seg(RST).seq(9_001 + 5).sport(40_001));
    let other = p.expect_one();
    assert_eq!(other.dst.port(), 40_001);
    assert_eq!(
        (other.flags_str(), other.seq, other.ack),
        ("A".into(), sa.seq + 1, 9_001)
    );
    // A second later the first connection's budget is back.
    p.advance(1_000);
    p.send(seg(RST).seq(p.nxt + 5));
    assert_eq!(p.expect_one().sfa(), ("A".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), Some(State::Established));
}

#[test]
fn test_established_ack_acceptability() {
    let mut p = peer();
    p.establish_passive();
    p.write(&[5u8; 1000]);
    assert_eq!(p.expect_one().payload_len, 1000);
    let una = p.engine_iss + 1;
    let nxt = una + 1000;
    let max_wnd = 65_535u32;
    // SEG.ACK > SND.NXT: challenge ACK, the data on it is dropped.
    p.send(p.here(ACK | PSH).ack(nxt + 1).data(b"bad"));
    assert_eq!(p.expect_one().sfa(), ("A".into(), nxt, p.nxt));
    // SEG.ACK < SND.UNA - MAX.SND.WND: challenge ACK too.
    p.send(
        p.here(ACK | PSH)
            .ack(una.wrapping_sub(max_wnd + 1))
            .data(b"old"),
    );
    assert_eq!(p.expect_one().sfa(), ("A".into(), nxt, p.nxt));
    assert!(p.read_all().is_empty(), "neither segment's data was taken");
    assert_eq!(p.engine.counters().challenge_acks, 2);
    // SEG.ACK = SND.UNA - MAX.SND.WND: acceptable (an old duplicate).
    p.send(
        p.here(ACK | PSH)
            .ack(una.wrapping_sub(max_wnd))
            .data(b"dup"),
    );
    p.nxt += 3;
    assert_eq!(p.read_all(), b"dup");
    assert_eq!(p.engine.counters().challenge_acks, 2);
    // SEG.ACK = SND.NXT acknowledges everything: nothing is retransmitted.
    p.ack();
    p.advance(5_000);
    let out = p.recv_all();
    assert!(out.iter().all(|s| s.payload_len == 0), "{}", p.dump());
}

// ---------------------------------------------------------------------------
// The stateless responder (RFC 9293 §3.10.7.1)
// ---------------------------------------------------------------------------

#[test]
fn test_closed_responder_rst() {
    let mut p = peer();
    // With ACK: <SEQ=SEG.ACK><CTL=RST>.
    p.send(seg(ACK).seq(5).ack(777));
    assert_eq!(p.expect_one().sfa(), ("R".into(), 777, 0));
    p.send(seg(ACK | PSH).seq(5).ack(0xffff_fff0).data(b"abc"));
    assert_eq!(p.expect_one().sfa(), ("R".into(), 0xffff_fff0, 0));
    // Without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN count.
    for (s, len) in [
        (seg(SYN).seq(100), 1),
        (seg(SYN | FIN).seq(100).data(&[0; 10]), 12),
        (seg(PSH).seq(200).data(&[0; 5]), 5),
        (seg(FIN).seq(u32::MAX), 1),
        (seg(0).seq(300), 0),
    ] {
        let expect = s.seq.wrapping_add(len);
        assert_eq!(s.len(), len);
        p.send(s);
        assert_eq!(p.expect_one().sfa(), ("RA".into(), 0, expect));
    }
    // Never answer an RST.
    p.send(seg(RST).seq(1));
    p.send(seg(RST | ACK).seq(1).ack(2));
    p.send(seg(RST | SYN).seq(1));
    p.expect_none();
    assert_eq!(p.engine.counters().rst_responder, 7);
}

/// The responder answers every segment while the core's bound on answers
/// to peers has room: 500 at once is half its burst at the default rate
/// (the bound itself: `rst_pacing.rs`).
#[test]
fn test_closed_responder_answers_each_segment_within_the_core_bound() {
    let mut p = peer();
    for i in 0..500u32 {
        p.send(seg(ACK).seq(i).ack(i * 3));
    }
    let out = p.recv_all();
    assert_eq!(out.len(), 500);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as u32 * 3 && r.flags_str() == "R")
    );
}

#[test]
fn test_listen_stray_ack_gets_rst() {
    let mut p = peer();
    p.listen(8);
    p.send(seg(ACK).seq(PEER_ISS).ack(12_345));
    assert_eq!(p.expect_one().sfa(), ("R".into(), 12_345, 0));
    p.send(seg(RST).seq(PEER_ISS));
    p.expect_none();
    assert_eq!(p.engine.connection_count(), 1);
}

#[test]
fn test_syn_received_bad_ack_rst() {
    let mut p = peer();
    p.listen(8);
    p.send(seg(SYN).seq(PEER_ISS).mss(1460));
    let sa = p.expect_one();
    p.nxt = PEER_ISS + 1;
    // An ACK that does not acknowledge our SYN: <SEQ=SEG.ACK><RST>.
    p.send(seg(ACK).seq(p.nxt).ack(sa.seq + 7));
    assert_eq!(p.expect_one().sfa(), ("R".into(), sa.seq + 7, 0));
    // The handshake survives and still completes.
    p.send(seg(ACK).seq(p.nxt).ack(sa.seq + 1));
    p.expect_none();
    assert!(
        p.completions()
            .iter()
            .any(|c| matches!(c.detail, Detail::Accepted { .. }))
    );
}

#[test]
fn test_syn_received_retransmitted_syn_resends_synack() {
    let mut p = peer();
    p.listen(8);
    p.send(seg(SYN).seq(PEER_ISS).mss(1460));
    let sa = p.expect_one();
    p.send(seg(SYN).seq(PEER_ISS).mss(1460));
    let again = p.expect_one();
    assert_eq!(again.sfa(), sa.sfa());
    assert_eq!(p.engine.connection_count(), 2);
}

// ---------------------------------------------------------------------------
// SYN cookies
// ---------------------------------------------------------------------------

#[test]
fn test_listen_backlog_full_syn_cookie() {
    let mut p = peer();
    p.listen(1);
    p.send(seg(SYN).seq(PEER_ISS).mss(1460));
    assert_eq!(p.expect_one().flags_str(), "SA");
    assert_eq!(p.engine.connection_count(), 2);
    // The backlog is full: the next SYN gets a cookie and no record.
    p.send(seg(SYN).seq(5_000).mss(1400).sport(40_001));
    let cookie = p.expect_one();
    assert_eq!(cookie.flags_str(), "SA");
    assert_eq!(cookie.dst.port(), 40_001);
    assert_eq!(cookie.ack, 5_001);
    assert_eq!(cookie.mss, Some(1400), "the cookie keeps the MSS");
    assert_eq!(p.engine.connection_count(), 2, "no state for a cookie");
    assert_eq!(p.engine.counters().syn_cookies_sent, 1);
    // A forged completion is refused by the responder.
    p.send(seg(ACK).seq(5_001).ack(cookie.seq + 2).sport(40_001));
    assert_eq!(p.expect_one().sfa(), ("R".into(), cookie.seq + 2, 0));
    // The right one creates an accepted, established connection, and data
    // on it is within the window the cookie SYN-ACK offered.
    p.send(
        seg(ACK | PSH)
            .seq(5_001)
            .ack(cookie.seq + 1)
            .data(b"hello")
            .sport(40_001),
    );
    let events = p.completions();
    let acc = events
        .iter()
        .find(|c| matches!(c.detail, Detail::Accepted { .. }))
        .expect("accepted");
    match &acc.detail {
        Detail::Accepted { remote, .. } => assert_eq!(remote.port(), 40_001),
        _ => unreachable!(),
    }
    let h = acc.handle;
    assert_eq!(p.engine.state(h), Some(State::Established));
    assert_eq!(p.engine.counters().syn_cookies_accepted, 1);
    assert!(
        events
            .iter()
            .any(|c| c.handle == h && c.detail == Detail::Data(b"hello".to_vec())),
        "{events:?}"
    );
    p.advance(100);
    let ack = p.expect_one();
    assert_eq!((ack.flags_str(), ack.ack), ("A".into(), 5_006));
}

// ---------------------------------------------------------------------------
// Bulk teardown
// ---------------------------------------------------------------------------

#[test]
fn test_established_close_matching_abort() {
    let mut p = peer();
    p.establish_passive();
    let ud = p.request(Request::CloseMatching {
        filter: Filter {
            remote_port: Some(PEER_PORT),
            ..Filter::default()
        },
        mode: CloseMode::Abort,
        pace_per_s: 0,
    });
    p.advance(1);
    assert_eq!(rd(&p.answer(ud).unwrap()), (Errno::Ok, Detail::Count(1)));
    assert_eq!(p.expect_one().sfa(), ("RA".into(), p.rcv, p.nxt));
    assert_eq!(p.state(), None);
    let c = p.call(Request::GetLinger { handle: p.h() });
    assert_eq!(c.result, Errno::NotSock);
}

#[test]
fn test_syn_sent_abort_cancels_the_connect_and_sends_nothing() {
    let mut p = peer();
    p.to_syn_sent();
    let ud = p.request(Request::Abort {
        handle: p.handle.unwrap(),
    });
    p.expect_none();
    assert_eq!(rd(&p.answer(ud).unwrap()), closed(Outcome::Aborted));
    let connect = p.answer(p.connect_ud.unwrap()).unwrap();
    assert_eq!(connect.result, Errno::OperationAborted, "#rule-cancel");
    assert_eq!(p.engine.connection_count(), 0);
    p.advance(10_000);
    p.expect_none();
}

#[test]
fn test_established_out_of_order_segments_each_get_a_duplicate_ack() {
    let mut p = peer();
    p.establish_passive();
    let hole = p.nxt;
    // Three segments beyond a 100-byte hole arrive in one burst, before the
    // engine transmits anything: each still gets its own duplicate ACK
    // (RFC 5681 §4.2), so the peer reaches three and fast-retransmits.
    for i in 0..3u32 {
        let s = p
            .here(ACK | PSH)
            .seq(hole.wrapping_add(100 + 100 * i))
            .data(&[1; 100]);
        let frame = p.frame(&s);
        p.engine.handle_rx(p.now, &frame);
    }
    let acks = p.recv_all();
    assert_eq!(acks.len(), 3, "{}", p.dump());
    for a in &acks {
        assert_eq!(a.sfa().0, "A");
        assert_eq!(a.ack, hole, "each acknowledges only up to the hole");
    }
}

#[test]
fn test_last_ack_a_second_fin_is_dropped_and_rcv_nxt_stays() {
    let mut p = peer();
    let fin = p.to_last_ack();
    // A FIN beyond the one already received (forged, or a broken peer):
    // the peer's sequence space is closed, so it is dropped unanswered.
    let second = p.here(FIN | ACK).ack(fin.seq);
    p.send(second);
    p.expect_none();
    assert_eq!(p.state(), Some(State::LastAck));
    // RCV.NXT did not move, so the peer's real ACK of our FIN still lands
    // and ends LAST-ACK without an ACK in reply.
    let ack = p.here(ACK).ack(fin.seq.wrapping_add(1));
    p.send(ack);
    p.expect_none();
    assert_ne!(p.state(), Some(State::LastAck), "{}", p.dump());
}

#[test]
fn test_time_wait_zero_still_acks_the_peers_fin() {
    let mut p = RawPeer::new(|cfg| cfg.tcp.time_wait_ms = 0);
    p.to_fin_wait_2();
    // The peer's FIN, then the timers in the same loop iteration before any
    // transmit, as the core loop runs them: TIME-WAIT of 0 ends at once,
    // and the ACK of the FIN must still go out.
    let fin = p.here(FIN | ACK);
    p.nxt = p.nxt.wrapping_add(1);
    let frame = p.frame(&fin);
    p.engine.handle_rx(p.now, &frame);
    p.engine.handle_timeout(p.now);
    p.pump();
    let a = p.expect_one();
    assert_eq!(a.sfa(), ("A".into(), p.rcv, p.nxt), "{}", p.dump());
    // Then no TIME-WAIT: the record leaves it on the next tick.
    p.advance(1);
    assert_ne!(p.state(), Some(State::TimeWait), "{}", p.dump());
}

#[test]
fn test_zero_window_probe_acks_are_not_duplicate_acks() {
    let mut p = peer();
    p.establish_passive();
    // The peer stops reading; a linger close waits behind its zero window
    // with more than one segment of data queued.
    p.wnd = 0;
    p.ack();
    p.set_linger(true, 60_000);
    p.write(&[4u8; 3000]);
    p.expect_none();
    let ud = p.close(false);
    let una = p.engine_iss + 1;
    // A live peer answers every probe at once, still with a zero window:
    // those ACKs repeat SND.UNA and the window, but they are not duplicate
    // ACKs, and nothing but one-byte probes at SND.UNA may go out.
    let mut probes = 0;
    for _ in 0..120 {
        p.advance(1_000);
        for s in p.recv_all() {
            assert!(
                s.seq == una && s.payload_len <= 1 && !s.flags.rst,
                "only one-byte probes at SND.UNA into a zero window: {}",
                p.dump()
            );
            if s.payload_len == 1 {
                probes += 1;
                p.send(seg(ACK).seq(p.nxt).ack(una).win(0));
            }
        }
        if probes >= 5 {
            break;
        }
    }
    assert!(probes >= 5, "{}", p.dump());
    assert_eq!(p.engine.counters().fast_retransmits, 0);
    // The window opens: sending resumes from the first unacknowledged byte
    // (the probe byte the peer did not take), in order, up to the FIN.
    p.wnd = 65_535;
    p.send(seg(ACK).seq(p.nxt).ack(una).win(65_535));
    let out = p.recv_all();
    let data: Vec<_> = out.iter().filter(|s| s.payload_len > 0).collect();
    assert_eq!(data.first().map(|s| s.seq), Some(una), "{}", p.dump());
    let mut next = una;
    for s in &data {
        assert_eq!(s.seq, next, "in order, no gap, no resend: {}", p.dump());
        next = next.wrapping_add(s.payload_len as u32);
    }
    assert_eq!(next, una.wrapping_add(3000), "{}", p.dump());
    assert!(out.last().is_some_and(|s| s.flags.fin), "{}", p.dump());
    assert!(p.answer(ud).is_none(), "still lingering for the ACK");
}

#[test]
fn test_close_matching_linger_ends_gracefully_once_the_fin_is_acked() {
    let mut p = peer();
    p.establish_passive();
    let ud = p.request(Request::CloseMatching {
        filter: Filter::default(),
        mode: CloseMode::Linger { ms: 2_000 },
        pace_per_s: 0,
    });
    p.advance(1);
    assert_eq!(rd(&p.answer(ud).unwrap()), (Errno::Ok, Detail::Count(1)));
    let fin = p.expect_one();
    assert_eq!(fin.flags_str(), "FA");
    // The peer acknowledges the FIN at once but keeps its own side open:
    // as with SO_LINGER, nothing is unacknowledged at the deadline, so no
    // RST. FIN-WAIT-2 is then bounded by the orphan timeout.
    p.ack();
    assert_eq!(p.state(), Some(State::FinWait2));
    p.advance(5_000);
    assert!(rsts(&p.recv_all()).is_empty(), "{}", p.dump());
    assert_eq!(p.engine.counters().rst_linger_expired, 0);
    assert_eq!(p.state(), Some(State::FinWait2), "{}", p.dump());
    p.advance(60_000);
    assert_eq!(p.state(), None, "the orphan timeout bounds FIN-WAIT-2");
    assert_eq!(p.engine.counters().orphan_timeouts, 1);
}

#[test]
fn test_close_matching_deadline_resets_what_is_not_closed_both_ways() {
    let mut p = peer();
    p.establish_passive();
    let ud = p.request(Request::CloseMatching {
        filter: Filter::default(),
        mode: CloseMode::Deadline { ms: 2_000 },
        pace_per_s: 0,
    });
    p.advance(1);
    assert_eq!(rd(&p.answer(ud).unwrap()), (Errno::Ok, Detail::Count(1)));
    assert_eq!(p.expect_one().flags_str(), "FA");
    // The FIN is acknowledged but the peer keeps its side open: a hard
    // deadline still ends FIN-WAIT-2 with an RST, on time.
    p.ack();
    assert_eq!(p.state(), Some(State::FinWait2));
    p.advance(1_998);
    assert!(rsts(&p.recv_all()).is_empty(), "{}", p.dump());
    p.advance(2);
    let r = p.expect_one();
    assert_eq!(r.flags_str(), "RA", "{}", p.dump());
    assert_eq!(p.state(), None);
    assert_eq!(p.engine.counters().rst_deadline_expired, 1);
    assert_eq!(p.engine.counters().rst_linger_expired, 0);
}

// ---------------------------------------------------------------------------
// Reassembly (RFC 9293 §3.10.7.4 seventh step, RFC 5681 §4.2)
// ---------------------------------------------------------------------------

/// `n` bytes of a stream whose byte at offset `i` is a function of `i`, so
/// that any misplaced byte shows.
fn stream(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7) ^ (i >> 8) as u8)
        .collect()
}

/// Sends `data[from..to]` at the hole's offset `from`, ACKing what the
/// peer has received.
fn send_at(p: &mut RawPeer, hole: u32, data: &[u8], from: usize, to: usize) {
    let s = p
        .here(ACK | PSH)
        .seq(hole.wrapping_add(from as u32))
        .data(&data[from..to]);
    p.send(s);
}

fn reasm_queues(p: &RawPeer) -> u64 {
    p.engine.reasm_usage().queues
}

#[test]
fn test_established_segment_2_before_segment_1_is_kept_and_delivered_with_one_cumulative_ack() {
    let mut p = peer();
    p.establish_passive();
    p.read_all();
    let hole = p.nxt;
    let data = stream(2_000);
    // Segment 2 first: kept, not delivered, one immediate duplicate ACK.
    send_at(&mut p, hole, &data, 1_000, 2_000);
    let dup = p.expect_one();
    assert_eq!(dup.sfa(), ("A".into(), p.rcv, hole), "a duplicate ACK");
    assert!(p.read_all().is_empty(), "nothing is delivered past a hole");
    assert_eq!(p.engine.reasm_queued(p.h()), 1_000);
    assert_eq!(p.engine.counters().ooo_segments_kept, 1);
    // Segment 1 fills the gap: one ACK, at once (no delayed-ACK wait), for
    // both segments; both are delivered, in order.
    send_at(&mut p, hole, &data, 0, 1_000);
    let ack = p.expect_one();
    assert_eq!(ack.sfa(), ("A".into(), p.rcv, hole + 2_000), "{}", p.dump());
    assert_eq!(p.read_all(), data);
    // Segment 2 is never asked for again: whatever follows (a window
    // update once the client read) acknowledges both.
    p.advance(1_000);
    for a in p.recv_all() {
        assert_eq!(a.ack, hole + 2_000, "{}", p.dump());
    }
    assert_eq!(p.engine.counters().ooo_bytes_delivered, 1_000);
    assert_eq!(p.engine.reasm_queued(p.h()), 0);
    assert_eq!(reasm_queues(&p), 0);
    assert_eq!(p.engine.reasm_usage().used_bytes, 0);
    // The connection goes on from there.
    p.nxt = hole + 2_000;
    p.push(b"more");
    assert_eq!(p.read_all(), b"more");
}

#[test]
fn test_established_overlapping_and_duplicate_segments_fill_only_the_holes() {
    let mut p = peer();
    p.establish_passive();
    p.read_all();
    let hole = p.nxt;
    let data = stream(1_000);
    // Out of order, overlapping each other, and one twice: every one of
    // them gets its own duplicate ACK.
    let pieces = [
        (300, 500),
        (300, 500),
        (400, 700),
        (200, 350),
        (800, 1_000),
        (650, 850),
    ];
    for &(from, to) in &pieces {
        send_at(&mut p, hole, &data, from, to);
        let a = p.expect_one();
        assert_eq!(a.ack, hole, "duplicate ACK for [{from}, {to})");
    }
    assert_eq!(p.engine.reasm_queued(p.h()), 800, "[200, 1000) once");
    // A segment overlapping the in-order edge and the queue: the new part
    // is delivered, then the queue, up to the end.
    send_at(&mut p, hole, &data, 0, 250);
    assert_eq!(p.expect_one().ack, hole + 1_000);
    assert_eq!(p.read_all(), data);
    // A retransmission of what was queued is old data now: a plain ACK.
    send_at(&mut p, hole, &data, 400, 700);
    assert_eq!(p.expect_one().ack, hole + 1_000);
    assert!(p.read_all().is_empty());
    assert_eq!(reasm_queues(&p), 0);
}

#[test]
fn test_established_out_of_order_data_is_trimmed_to_the_window() {
    let mut p = RawPeer::new(|c| c.tcp.recv_buffer = 3_000);
    p.establish_passive();
    p.read_all();
    let hole = p.nxt;
    assert_eq!(u32::from(p.engine_wnd), 3_000);
    let data = stream(4_000);
    // [2000, 3500) with a FIN after it: only [2000, 3000) lies in the
    // window; the rest and the FIN are not kept.
    let s = p
        .here(ACK | FIN)
        .seq(hole + 2_000)
        .data(&data[2_000..3_500]);
    p.send(s);
    assert_eq!(p.expect_one().ack, hole);
    assert_eq!(p.engine.reasm_queued(p.h()), 1_000);
    // Entirely beyond the window: unacceptable, nothing kept.
    send_at(&mut p, hole, &data, 3_000, 4_000);
    assert_eq!(p.expect_one().ack, hole);
    assert_eq!(p.engine.reasm_queued(p.h()), 1_000);
    send_at(&mut p, hole, &data, 0, 1_000);
    send_at(&mut p, hole, &data, 1_000, 2_000);
    assert_eq!(p.recv_all().last().map(|a| a.ack), Some(hole + 3_000));
    assert_eq!(p.read_all(), &data[..3_000]);
    assert_eq!(p.state(), Some(State::Established), "the FIN was not kept");
}

#[test]
fn test_established_out_of_order_fin_is_processed_once_the_data_before_it_arrives() {
    let mut p = peer();
    p.establish_passive();
    p.read_all();
    let hole = p.nxt;
    let data = stream(600);
    let s = p.here(ACK | FIN).seq(hole + 300).data(&data[300..]);
    p.send(s);
    assert_eq!(p.expect_one().ack, hole);
    assert_eq!(p.state(), Some(State::Established));
    send_at(&mut p, hole, &data, 0, 300);
    let a = p.expect_one();
    assert_eq!(
        a.sfa(),
        ("A".into(), p.rcv, hole + 601),
        "data and FIN acknowledged"
    );
    assert_eq!(p.state(), Some(State::CloseWait));
    let h = p.h();
    let cs = p.completions();
    let mut bytes = Vec::new();
    let mut eof_after = None;
    for c in cs.iter().filter(|c| c.handle == h && c.is_event) {
        match &c.detail {
            Detail::Data(d) => bytes.extend_from_slice(d),
            Detail::PeerClosed => eof_after = Some(bytes.len()),
            _ => {}
        }
    }
    assert_eq!(bytes, data);
    assert_eq!(eof_after, Some(600), "EOF after every byte");
    assert_eq!(reasm_queues(&p), 0);

    // A bare FIN out of order is remembered too.
    let mut p = peer();
    p.establish_passive();
    let hole = p.nxt;
    p.send(p.here(ACK | FIN).seq(hole + 10));
    assert_eq!(p.expect_one().ack, hole, "a duplicate ACK for it");
    send_at(&mut p, hole, &data, 0, 10);
    assert_eq!(p.expect_one().ack, hole + 11);
    assert_eq!(p.state(), Some(State::CloseWait));
}

#[test]
fn test_established_reassembly_budget_prunes_the_highest_data_and_counts_it() {
    use lingerd_dataplane::tcp::reasm::{CHUNK_BYTES, ReasmConfig};
    let mut p = RawPeer::new(|c| {
        c.reassembly = ReasmConfig {
            budget_bytes: 2 * CHUNK_BYTES as u32,
            per_conn_bytes: 65_536,
        }
    });
    p.establish_passive();
    p.read_all();
    let hole = p.nxt;
    let data = stream(6_000);
    assert_eq!(p.engine.reasm_usage().budget_bytes, 2 * CHUNK_BYTES as u64);
    send_at(&mut p, hole, &data, 1_000, 2_000);
    send_at(&mut p, hole, &data, 5_000, 6_000);
    assert_eq!(p.engine.reasm_usage().used_bytes, 2 * CHUNK_BYTES as u64);
    // The pool is full: [3000, 4000) lies below [5000, 6000), which goes.
    send_at(&mut p, hole, &data, 3_000, 4_000);
    assert_eq!(p.engine.counters().ooo_bytes_pruned, 1_000);
    assert_eq!(p.engine.reasm_queued(p.h()), 2_000);
    // Higher data than anything held finds no room: dropped and counted.
    send_at(&mut p, hole, &data, 5_500, 6_000);
    assert_eq!(p.engine.counters().ooo_bytes_pruned, 1_500);
    assert_eq!(p.recv_all().len(), 4, "a duplicate ACK each, pruned or not");
    // The connection never fails for it: the gaps fill, the peer resends
    // what was pruned, and every byte arrives in order.
    send_at(&mut p, hole, &data, 0, 1_000);
    assert_eq!(p.expect_one().ack, hole + 2_000);
    send_at(&mut p, hole, &data, 2_000, 3_000);
    assert_eq!(p.expect_one().ack, hole + 4_000);
    send_at(&mut p, hole, &data, 4_000, 6_000);
    assert_eq!(p.read_all(), data);
    assert_eq!(p.state(), Some(State::Established));
    assert_eq!(reasm_queues(&p), 0);
}

#[test]
fn test_reassembly_queue_is_freed_on_every_ending() {
    // Each way a connection holding out-of-order data can end, or stop
    // being able to deliver it, gives its queue back to the pool.
    type Ending = fn(&mut RawPeer);
    let endings: [(&str, Ending); 6] = [
        ("abort", |p| {
            let _ = p.call(Request::Abort { handle: p.h() });
        }),
        ("peer RST", |p| p.send(p.here(RST))),
        ("graceful close", |p| {
            p.read_all();
            p.close(false);
        }),
        ("shutdown(RECEIVE)", |p| {
            let _ = p.shutdown(0);
        }),
        ("in-order FIN", |p| p.fin()),
        ("retransmission timeout", |p| {
            p.write(b"never acknowledged");
            p.advance(3_600_000);
        }),
    ];
    for (what, end) in endings {
        let mut p = peer();
        p.establish_passive();
        p.read_all();
        let hole = p.nxt;
        send_at(&mut p, hole, &stream(3_000), 100, 3_000);
        p.recv_all();
        assert_eq!(reasm_queues(&p), 1, "{what}: queued");
        end(&mut p);
        p.advance(1);
        assert_eq!(reasm_queues(&p), 0, "{what}: freed\n{}", p.dump());
        assert_eq!(p.engine.reasm_usage().used_bytes, 0, "{what}");
    }
}

#[test]
fn test_out_of_order_data_after_close_is_not_kept() {
    let mut p = peer();
    p.establish_passive();
    p.read_all();
    let _ = p.shutdown(0);
    let hole = p.nxt;
    send_at(&mut p, hole, &stream(200), 100, 200);
    assert_eq!(p.expect_one().ack, hole, "still a duplicate ACK");
    assert_eq!(reasm_queues(&p), 0, "it can never be delivered");
    assert_eq!(p.engine.counters().ooo_segments_kept, 0);
}

#[test]
fn test_established_zero_receive_window_still_takes_the_peers_ack() {
    let mut p = RawPeer::new(|cfg| cfg.tcp.recv_buffer = 2_048);
    p.establish_passive();
    // Our data goes out; the peer fills our window, and the client does
    // not read: we advertise a zero window.
    p.write(&[5u8; 1_000]);
    let data = p.expect_one();
    assert_eq!(data.payload_len, 1_000);
    // (Its data does not acknowledge ours yet.)
    let fill = seg(ACK | PSH).seq(p.nxt).ack(data.seq).data(&[6u8; 2_048]);
    p.nxt = p.nxt.wrapping_add(2_048);
    p.send(fill);
    p.advance(100); // the delayed ACK
    let zero = p.recv_all();
    assert_eq!(zero.last().map(|s| s.window), Some(0), "{}", p.dump());
    // The peer sent 80 bytes into a window it thought open (they are
    // dropped), so its pure ACK of our data is numbered beyond RCV.NXT.
    // RFC 9293: with a zero window, valid ACKs are still accepted.
    let ack = seg(ACK)
        .seq(p.nxt.wrapping_add(80))
        .ack(data.seq.wrapping_add(1_000))
        .win(65_535);
    p.send(ack);
    let answer = p.recv_all();
    assert!(answer.iter().all(|s| s.payload_len == 0), "{}", p.dump());
    // Acknowledged: no retransmission when the RTO would have come.
    p.advance(5_000);
    let later = p.recv_all();
    assert!(
        later.iter().all(|s| s.payload_len == 0),
        "acknowledged data sent again: {}",
        p.dump()
    );
    assert_eq!(p.engine.counters().retransmits, 0);
}

// ---------------------------------------------------------------------------
// Both families; IPv6 only: Neighbor Discovery, Packet Too Big, fragments
// ---------------------------------------------------------------------------

/// Every scenario of this file runs over IPv6 as well: this test runs the
/// file's own binary again with [`support::raw_peer::FAMILY_ENV`] = `v6`
/// (every `RawPeer::new` then speaks IPv6 to a dual-stack engine) and
/// fails if any scenario fails there.
#[test]
fn test_every_scenario_also_passes_over_ipv6() {
    if support::raw_peer::family_is_v6() {
        return;
    }
    let passed = support::raw_peer::rerun_over_v6("test_every_scenario_also_passes_over_ipv6");
    assert!(passed >= 70, "only {passed} scenarios ran over IPv6");
}

/// The peer speaks the family the run asks for, and so does the engine:
/// what makes the run above an IPv6 run.
#[test]
fn test_the_peer_and_the_engine_speak_the_family_of_the_run() {
    let mut p = peer();
    let v6 = support::raw_peer::family_is_v6();
    assert_eq!(p.ip.is_ipv6(), v6);
    p.establish_passive();
    p.write(b"hello");
    let a = p.expect_one();
    assert_eq!(a.payload, b"hello");
    assert_eq!(a.src.ip(), p.engine_ip);
    assert_eq!(a.dst.ip(), p.ip);
    assert_eq!(a.src.is_ipv6(), v6);
    let tuple = p.engine.tuple(p.h()).expect("live");
    assert_eq!((tuple.local_addr, tuple.remote_addr), (p.engine_ip, p.ip));
}

fn peer6() -> RawPeer {
    RawPeer::with_family(true, |_| {})
}

/// An IPv6 frame from the peer (`next` and `body` after the fixed header).
fn v6_frame(p: &RawPeer, src: std::net::Ipv6Addr, next: u8, body: &[u8]) -> Vec<u8> {
    let std::net::IpAddr::V6(dst) = p.engine_ip else {
        panic!("an IPv6 peer")
    };
    let mut f = Vec::new();
    f.extend_from_slice(&p.engine_mac);
    f.extend_from_slice(&p.mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(body);
    f
}

/// A Packet Too Big from a router for the peer's side of the scripted
/// connection, quoting our segment with sequence number `seq`; ICMPv6
/// checksum by etherparse.
fn packet_too_big(p: &RawPeer, mtu: u32, seq: u32) -> Vec<u8> {
    let (std::net::IpAddr::V6(us), std::net::IpAddr::V6(peer)) = (p.engine_ip, p.ip) else {
        panic!("an IPv6 peer")
    };
    let router: std::net::Ipv6Addr = "2001:db8::fe".parse().unwrap();
    let mut quote = vec![0x60, 0, 0, 0, 0x05, 0xa0, 6, 64];
    quote.extend_from_slice(&us.octets());
    quote.extend_from_slice(&peer.octets());
    quote.extend_from_slice(&p.engine_port.to_be_bytes());
    quote.extend_from_slice(&PEER_PORT.to_be_bytes());
    quote.extend_from_slice(&seq.to_be_bytes());
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(p.mac, p.engine_mac)
        .ipv6(router.octets(), us.octets(), 64)
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu })
        .write(&mut v, &quote)
        .expect("PTB builds");
    v
}

#[test]
fn test_v6_packet_too_big_for_data_in_flight_lowers_the_mss_and_resends() {
    let mut p = peer6();
    p.establish_passive();
    p.write(&[7u8; 3000]);
    let sent = p.recv_all();
    assert_eq!(sent[0].payload_len, 1440, "MSS 1460 less 20 for IPv6");
    let first = sent[0].seq;
    let frame = packet_too_big(&p, 1280, first);
    p.send_frame(&frame);
    assert_eq!(p.engine.counters().ptb_mss_lowered, 1);
    assert_eq!(p.engine.counters().ptb_ignored, 0);
    let again = p.recv_all();
    let resent = again
        .iter()
        .find(|s| s.seq == first)
        .expect("the segment that did not fit is sent again");
    assert_eq!(resent.payload_len, 1220, "1280 - 40 - 20");
    // Everything afterwards fits too.
    p.ack();
    p.write(&[8u8; 4000]);
    assert!(p.recv_all().iter().all(|s| s.payload_len <= 1220));
}

#[test]
fn test_v6_packet_too_big_is_ignored_unless_it_quotes_data_in_flight() {
    let mut p = peer6();
    p.establish_passive();
    // Nothing in flight: whatever it quotes, nothing changes.
    let f = packet_too_big(&p, 1280, p.engine_iss.wrapping_add(1));
    p.send_frame(&f);
    assert_eq!(p.engine.counters().ptb_ignored, 1);
    p.write(&[1u8; 2000]);
    let sent = p.recv_all();
    let (una, max) = (
        sent[0].seq,
        sent.last().unwrap().seq + sent.last().unwrap().payload_len as u32,
    );
    // Before SND.UNA, at SND.MAX, far away: ignored (RFC 5927 §4.1).
    for seq in [una.wrapping_sub(1), max, una.wrapping_add(1 << 30)] {
        let f = packet_too_big(&p, 1280, seq);
        p.send_frame(&f);
    }
    // An MTU that does not lower the MSS: ignored.
    let f = packet_too_big(&p, 9000, una);
    p.send_frame(&f);
    // For a connection we do not have: ignored.
    p.engine_port = 81;
    let f = packet_too_big(&p, 1280, una);
    p.send_frame(&f);
    p.engine_port = SERVER_PORT;
    assert_eq!(p.engine.counters().ptb_ignored, 6);
    assert_eq!(p.engine.counters().ptb_mss_lowered, 0);
    p.expect_none();
}

#[test]
fn test_v6_fragments_are_dropped_and_counted_atomic_ones_accepted() {
    let mut p = peer6();
    p.listen(8);
    let syn = p.frame(&seg(SYN).seq(PEER_ISS).mss(1460));
    let std::net::IpAddr::V6(src) = p.ip else {
        panic!()
    };
    // The TCP segment of `syn`, behind a Fragment header.
    let tcp = &syn[14 + 40..];
    let with_fragment = |offset_flags: u16| {
        let mut body = vec![6u8, 0];
        body.extend_from_slice(&offset_flags.to_be_bytes());
        body.extend_from_slice(&7u32.to_be_bytes());
        body.extend_from_slice(tcp);
        v6_frame(&p, src, 44, &body)
    };
    // First fragment (M set), later fragment (offset 1), atomic fragment.
    let frames = [with_fragment(1), with_fragment(1 << 3), with_fragment(0)];
    let fragmented = lingerd_dataplane::wire::Error::Fragmented.index();
    for f in &frames[..2] {
        p.send_frame(f);
        p.expect_none();
    }
    assert_eq!(p.engine.counters().rx_parse_errors[fragmented], 2);
    // An atomic fragment (offset 0, M clear) is a whole packet.
    p.send_frame(&frames[2]);
    assert_eq!(p.expect_one().flags_str(), "SA");
    assert_eq!(p.engine.counters().rx_parse_errors[fragmented], 2);
}

#[test]
fn test_v6_gateway_may_be_link_local_and_is_solicited() {
    let gw: std::net::Ipv6Addr = "fe80::1".parse().unwrap();
    let mut p = RawPeer::with_family(true, |c| c.gateway6 = Some(gw));
    let off_link: std::net::IpAddr = "2001:db9::2".parse().unwrap();
    let ud = p.request(Request::Connect {
        remote: std::net::SocketAddr::new(off_link, 443),
        local_port: None,
        local_addr: None,
    });
    p.pump();
    let ns = p.arp_seen.last().expect("a solicitation for the gateway");
    assert!(ns.request);
    assert_eq!(ns.target_ip, std::net::IpAddr::V6(gw));
    assert_eq!(ns.sender_ip, p.engine_ip);
    assert_eq!(
        ns.target_mac,
        [0x33, 0x33, 0xff, 0, 0, 1],
        "solicited-node group"
    );
    assert_eq!(p.engine.counters().nd_solicits_sent, 1);
    // The gateway answers from its link-local address: the SYN goes to its MAC.
    let gw_mac = [2, 0, 0, 0, 0, 0xfe];
    let mut body = gw.octets().to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&gw_mac);
    let std::net::IpAddr::V6(us) = p.engine_ip else {
        panic!()
    };
    let mut na = Vec::new();
    etherparse::PacketBuilder::ethernet2(gw_mac, p.engine_mac)
        .ipv6(gw.octets(), us.octets(), 255)
        .icmpv6_raw(136, 0, [0x60, 0, 0, 0])
        .write(&mut na, &body)
        .expect("NA builds");
    p.engine.handle_rx(p.now, &na);
    let mut buf = [0u8; 2048];
    let len = p
        .engine
        .poll_transmit(p.now, &mut buf)
        .expect("the SYN leaves");
    assert_eq!(&buf[..6], &gw_mac);
    let syn = support::summarize(&buf[..len]).expect("a TCP segment");
    assert!(syn.flags.syn && syn.checksum_ok);
    assert_eq!(syn.dst.ip(), off_link);
    assert!(p.answer(ud).is_none(), "still connecting");
}

#[test]
fn test_v6_connect_without_a_v6_address_is_unreachable() {
    let mut p = RawPeer::with_family(false, |c| c.addrs.retain(|a| a.addr().is_ipv4()));
    let c = p.call(Request::Connect {
        remote: "[2001:db8::2]:80".parse().unwrap(),
        local_port: None,
        local_addr: None,
    });
    assert_eq!(c.result, Errno::NetUnreach);
    // Bound to an address of the other family: EINVAL.
    let mut p = peer6();
    let c = p.call(Request::Connect {
        remote: "[2001:db8::2]:80".parse().unwrap(),
        local_port: None,
        local_addr: Some(std::net::IpAddr::from([198, 18, 0, 1])),
    });
    assert_eq!(c.result, Errno::Inval);
}

#[test]
fn test_v4_and_v6_connections_share_one_engine_and_close_matching_by_v6_prefix() {
    let mut p = peer6();
    p.establish_passive();
    let v6 = p.h();
    // A v4 peer on the same engine, same ports.
    let v4_syn = {
        let q = RawPeer::with_family(false, |_| {});
        q.frame(&seg(SYN).seq(PEER_ISS).mss(1460))
    };
    p.send_frame(&v4_syn);
    let sa = p.expect_one();
    assert_eq!(sa.flags_str(), "SA");
    assert!(sa.dst.is_ipv4());
    assert_eq!(p.engine.connection_count(), 3, "listener, v6 and v4");
    let ud = p.request_as(
        ADMIN_CLIENT,
        Request::CloseMatching {
            filter: Filter {
                remote: Some("2001:db8::/64".parse::<Prefix>().unwrap()),
                ..Filter::default()
            },
            mode: CloseMode::Abort,
            pace_per_s: 0,
        },
    );
    p.advance(1);
    assert_eq!(rd(&p.answer(ud).unwrap()), (Errno::Ok, Detail::Count(1)));
    let out = p.recv_all();
    assert_eq!(rsts(&out).len(), 1, "{out:?}");
    assert!(rsts(&out)[0].dst.is_ipv6());
    assert_eq!(p.engine.state(v6), None);
    assert_eq!(p.engine.connection_count(), 2, "listener and the v4 one");
}
