//! The daemon side of the client rings, driven from a client's point of
//! view over an in-process region: exactly one completion per request
//! (well-formed or not), backpressure instead of loss when the completion
//! ring is full, RX chunk ownership, and hostile entries.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_abi::entry::{self, Body, Op};
use lingerd_abi::layout::{Layout, LayoutParams};
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Request};
use lingerd_dataplane::rings::ClientRings;
use proptest::prelude::*;
use support::engine::{self, drain};

const CLIENT: ClientId = ClientId(3);

/// A client's view of its region: it produces requests and consumes
/// completions.
struct Client {
    region: Arc<SharedRegion>,
    layout: Layout,
    tx: Producer,
    rx: Consumer,
}

impl Client {
    fn read_completions(&mut self) -> Vec<entry::Completion> {
        let n = self.rx.available();
        let out = (0..n)
            .filter_map(|_| self.rx.pop())
            .map(|b| entry::Completion::decode(&b).expect("daemon writes valid completions"))
            .collect();
        self.rx.release();
        out
    }
}

fn setup(ring_entries: u32) -> (Client, ClientRings) {
    let layout = Layout::new(LayoutParams {
        cores: 1,
        ring_entries,
        chunk_size: 256,
        tx_chunks: 16,
        rx_chunks: 16,
    })
    .unwrap();
    let region = Arc::new(SharedRegion::anonymous(layout.total));
    let rings = ClientRings::new(CLIENT, 0, region.clone(), layout).unwrap();
    let tx = Producer::new(
        region.clone(),
        layout.request_ring(0).unwrap(),
        ring_entries,
    )
    .unwrap();
    let rx = Consumer::new(
        region.clone(),
        layout.completion_ring(0).unwrap(),
        ring_entries,
    )
    .unwrap();
    (
        Client {
            region,
            layout,
            tx,
            rx,
        },
        rings,
    )
}

/// One daemon loop iteration for this client: requests in, completions out.
fn daemon_step(rings: &mut ClientRings, e: &mut QueueEngine, now: Instant) {
    rings.poll_requests(e, now, 1024);
    e.handle_timeout(now);
    let mut buf = [0u8; 2048];
    while e.poll_transmit(now, &mut buf).is_some() {}
    for c in drain(e) {
        assert_eq!(c.client, CLIENT);
        rings.deliver(c);
    }
    rings.flush();
}

#[test]
fn every_request_gets_one_completion_even_under_backpressure() {
    let (mut client, mut rings) = setup(8);
    let t0 = Instant::now();
    let mut e = engine::engine(1, t0);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let total = 1_000u64;
    let mut next = 0u64;
    // The client submits as fast as the request ring allows but reads
    // completions only every third round: the completion ring fills.
    for round in 0..10_000 {
        while next < total
            && client.tx.push(&entry::encode_request(
                next,
                &Op::GetLinger { handle: next },
            ))
        {
            next += 1;
        }
        client.tx.publish();
        daemon_step(&mut rings, &mut e, t0);
        if round % 3 == 0 {
            for c in client.read_completions() {
                assert_eq!(c.result, Errno::NotSock, "no such handle");
                *seen.entry(c.user_data).or_default() += 1;
            }
        }
        if seen.len() as u64 == total {
            break;
        }
    }
    assert_eq!(seen.len() as u64, total, "no completion lost");
    assert!(seen.values().all(|&n| n == 1), "no completion duplicated");
    assert!(
        rings.stats().backpressure > 0,
        "the completion ring did fill up"
    );
    assert_eq!(rings.stats().requests, total);
    assert_eq!(rings.stats().completions, total);
}

/// A `shutdown` whose `how` is not 0, 1 or 2 is answered EINVAL by the
/// ring decoder: the engine, which takes a `Shutdown` enum, never sees it
/// (were it to, the unknown handle would be ENOTSOCK).
#[test]
fn an_armed_doorbell_asks_the_client_to_ring_and_sees_late_requests() {
    let (mut client, mut rings) = setup(4);
    let t0 = Instant::now();
    let mut e = engine::engine(1, t0);
    assert!(
        !client.tx.needs_wakeup(),
        "an awake core asks for no doorbell"
    );
    assert!(!rings.arm_doorbell(), "nothing pending: the core may sleep");
    assert!(client.tx.needs_wakeup(), "armed: the client must ring");
    rings.disarm_doorbell();
    assert!(!client.tx.needs_wakeup());

    // A request published before the core armed is seen by the second look.
    assert!(
        client
            .tx
            .push(&entry::encode_request(1, &Op::GetLinger { handle: 1 }))
    );
    client.tx.publish();
    assert!(rings.arm_doorbell(), "a late request keeps the core awake");
    rings.disarm_doorbell();

    // With the completion ring full, a pending request cannot be taken:
    // the core may sleep (the client's reaping is what unblocks it).
    for n in 2..=4 {
        assert!(
            client
                .tx
                .push(&entry::encode_request(n, &Op::GetLinger { handle: n }))
        );
    }
    client.tx.publish();
    daemon_step(&mut rings, &mut e, t0);
    assert!(
        client
            .tx
            .push(&entry::encode_request(5, &Op::GetLinger { handle: 5 }))
    );
    client.tx.publish();
    assert!(
        !rings.arm_doorbell(),
        "no room to answer: sleeping is right"
    );
    rings.disarm_doorbell();
    assert_eq!(client.read_completions().len(), 4);
    assert!(
        rings.arm_doorbell(),
        "room again: the pending request is work"
    );
}

#[test]
fn shutdown_with_a_bad_how_is_einval_before_the_engine() {
    let (mut client, mut rings) = setup(8);
    let t0 = Instant::now();
    let mut e = engine::engine(1, t0);
    let bad = [3u16, 4, 255, u16::MAX];
    for (ud, how) in bad.into_iter().enumerate() {
        let mut b = entry::encode_request(
            ud as u64,
            &Op::Shutdown {
                handle: 1,
                how: lingerd_abi::Shutdown::Send,
            },
        );
        // The `how` field: the request's first 16-bit argument.
        b[18..20].copy_from_slice(&how.to_le_bytes());
        assert!(client.tx.push(&b));
    }
    assert!(client.tx.push(&entry::encode_request(
        99,
        &Op::Shutdown {
            handle: 1,
            how: lingerd_abi::Shutdown::Both,
        },
    )));
    client.tx.publish();
    daemon_step(&mut rings, &mut e, t0);
    let answers: HashMap<u64, Errno> = client
        .read_completions()
        .iter()
        .map(|c| (c.user_data, c.result))
        .collect();
    for ud in 0..bad.len() as u64 {
        assert_eq!(
            answers.get(&ud),
            Some(&Errno::Inval),
            "how = {}",
            bad[ud as usize]
        );
    }
    assert_eq!(
        answers.get(&99),
        Some(&Errno::NotSock),
        "a good how reaches the engine"
    );
    assert_eq!(rings.stats().invalid, bad.len() as u64);
}

#[test]
fn data_arrives_in_rx_chunks_that_must_be_returned_once() {
    let (mut client, mut rings) = setup(64);
    let t0 = Instant::now();
    let mut a = engine::engine(1, t0);
    let mut b = engine::engine(2, t0);
    // The client listens through its ring.
    client.tx.push(&entry::encode_request(
        1,
        &Op::Listen {
            port: 80,
            backlog: 16,
        },
    ));
    client.tx.publish();
    daemon_step(&mut rings, &mut a, t0);
    let listen = client.read_completions();
    assert_eq!((listen.len(), listen[0].result), (1, Errno::Ok));
    // B connects and sends 600 bytes: more than two 256-byte chunks.
    b.handle_request(
        t0,
        engine::CLIENT,
        9,
        Request::Connect {
            remote: engine::addr(1, 80),
            local_port: None,
            local_addr: None,
        },
    );
    let mut now = t0;
    let mut bh = None;
    let mut events = Vec::new();
    for _ in 0..50 {
        now += Duration::from_millis(1);
        shuttle(&mut a, &mut b, now);
        for c in drain(&mut b) {
            if c.user_data == 9 {
                bh = Some(c.handle);
            }
        }
        if let Some(h) = bh.take() {
            b.handle_request(
                now,
                engine::CLIENT,
                10,
                Request::Send {
                    handle: h,
                    data: vec![7u8; 600],
                },
            );
        }
        daemon_step(&mut rings, &mut a, now);
        events.extend(client.read_completions());
    }
    let data: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|c| match c.body {
            Body::Data { chunk, len } => Some((chunk, len)),
            _ => None,
        })
        .collect();
    assert_eq!(data.iter().map(|d| d.1).sum::<u32>(), 600, "{events:?}");
    assert!(data.iter().all(|d| d.1 <= 256));
    let conn = events
        .iter()
        .find(|c| matches!(c.body, Body::Accepted { .. }))
        .unwrap()
        .handle;
    for &(chunk, len) in &data {
        let mut buf = vec![0u8; len as usize];
        assert!(
            client
                .region
                .read(client.layout.rx_chunk(chunk, len).unwrap(), &mut buf)
        );
        assert!(buf.iter().all(|&x| x == 7));
    }
    // Return the first chunk twice and a chunk never handed out.
    let (c0, l0) = data[0];
    for (ud, chunk) in [(20, c0), (21, c0), (22, 15)] {
        client.tx.push(&entry::encode_request(
            ud,
            &Op::RecvDone {
                handle: conn,
                chunk,
                len: l0,
            },
        ));
    }
    client.tx.publish();
    daemon_step(&mut rings, &mut a, now);
    let answers: HashMap<u64, Errno> = client
        .read_completions()
        .iter()
        .map(|c| (c.user_data, c.result))
        .collect();
    assert_eq!(answers.get(&20), Some(&Errno::Ok));
    assert_eq!(answers.get(&21), Some(&Errno::Inval), "returned twice");
    assert_eq!(answers.get(&22), Some(&Errno::Inval), "never handed out");
}

/// Moves frames both ways until both engines are quiet (bounded).
fn shuttle(a: &mut QueueEngine, b: &mut QueueEngine, now: Instant) {
    let mut buf = vec![0u8; 2048];
    for _ in 0..1_000 {
        let mut moved = false;
        if let Some(n) = a.poll_transmit(now, &mut buf) {
            b.handle_rx(now, &buf[..n]);
            moved = true;
        }
        if let Some(n) = b.poll_transmit(now, &mut buf) {
            a.handle_rx(now, &buf[..n]);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    a.handle_timeout(now);
    b.handle_timeout(now);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes as request entries: each gets exactly one completion
    /// (EINVAL when malformed), the daemon never panics.
    #[test]
    fn hostile_entries_each_get_one_completion(valid_connect in any::<bool>(), entries in proptest::collection::vec(proptest::array::uniform32(any::<u8>()), 1..64)) {
        let (mut client, mut rings) = setup(64);
        let t0 = Instant::now();
        let mut e = engine::engine(1, t0);
        for (i, half) in entries.iter().enumerate() {
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(half);
            bytes[32..].copy_from_slice(half);
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            prop_assert!(client.tx.push(&bytes));
        }
        if valid_connect {
            // Make sure the deferred-answer path is exercised every other case.
            let n = entries.len() as u64;
            let op = Op::Connect { addr: std::net::IpAddr::from([198, 18, 0, 9]), port: 80, local_port: 0 };
            prop_assert!(client.tx.push(&entry::encode_request(n, &op)));
        }
        client.tx.publish();
        let expected = entries.len() + usize::from(valid_connect);
        let mut seen = HashMap::new();
        // Long enough for any deferred answer (a connect's SYN retries
        // run out after about two minutes) to arrive.
        for step in 0..60u64 {
            daemon_step(&mut rings, &mut e, t0 + Duration::from_secs(5 * step));
            for c in client.read_completions() {
                if !c.event {
                    *seen.entry(c.user_data).or_insert(0u32) += 1;
                }
            }
        }
        prop_assert_eq!(seen.len(), expected);
        prop_assert!(seen.values().all(|&n| n == 1));
    }
}

/// The `ring_entries` fuzz property (`lingerd_testkit::fuzz::rings`)
/// over structured op sequences: whatever the client writes, the daemon
/// side never panics, writes only what it owns, never publishes over
/// unreleased completions, takes requests only with room for the answers,
/// and, once the client is honest again, every entry it took has exactly
/// one answer.
mod ring_entries_property {
    use lingerd_testkit::fuzz::ring_entries;
    use lingerd_testkit::fuzz::rings::{Op, Req, Value, Word, encode, setup};
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn op(cursors: bool) -> impl Strategy<Value = Op> {
        let word = prop_oneof![
            Just(Word::RequestHead),
            Just(Word::RequestTail),
            Just(Word::CompletionHead),
            Just(Word::CompletionTail),
        ];
        let value = prop_oneof![
            any::<u32>().prop_map(Value::Raw),
            any::<i8>().prop_map(Value::Delta)
        ];
        prop_oneof![
            6 => (0..11u8, 0..4u8, any::<u32>(), proptest::bool::weighted(0.2))
                .prop_map(|(kind, target, arg, hold)| Op::Submit {
                    req: Req { kind, target, arg },
                    hold,
                }),
            1 => vec(any::<u8>(), 64).prop_map(Op::Raw),
            1 => (any::<u32>(), vec(any::<u8>(), 0..64))
                .prop_map(|(offset, bytes)| Op::Scribble { offset, bytes }),
            u32::from(cursors) => (word, value).prop_map(|(word, value)| Op::Cursor { word, value }),
            4 => (any::<u8>(), 0..200u16)
                .prop_map(|(budget, advance_ms)| Op::Step { budget, advance_ms }),
            2 => (0..4u8).prop_map(Op::Reap),
            1 => any::<bool>().prop_map(Op::Sleep),
            1 => Just(Op::NextDeadline),
            1 => (0..10u8, 0..200u16).prop_map(|(chunk, len)| Op::TxData { chunk, len }),
            1 => Just(Op::Publish),
        ]
    }

    fn run(setup_byte: u8, start: [u32; 4], ops: &[Op]) -> Result<(), TestCaseError> {
        let report = ring_entries(&encode(setup_byte, start, ops));
        prop_assert!(report.settled, "inconclusive: {report:?}");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Hostile entries, scribbles and arenas, honest cursors: every
        /// request the client published is taken and answered once.
        #[test]
        fn honest_cursors(setup_byte in any::<u8>(), ops in vec(op(false), 1..80)) {
            run(setup_byte & !setup::HOSTILE_START, [0; 4], &ops)?;
        }

        /// Hostile cursors too, from the start or later.
        #[test]
        fn hostile_cursors(setup_byte in any::<u8>(), start in any::<[u32; 4]>(), ops in vec(op(true), 1..80)) {
            run(setup_byte, start, &ops)?;
        }
    }
}
