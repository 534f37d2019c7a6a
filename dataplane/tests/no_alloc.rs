//! The steady-state echo path allocates nothing: two engines, each with a
//! client's rings over an in-process region, echo a message back and forth;
//! after warm-up, a counting global allocator must see no allocation on
//! this thread while the data flows (segments in and out, payload placed
//! straight into RX chunks, SENDs copied straight from TX chunks,
//! completions, RecvDone), nor while segments arrive out of order and go
//! through the reassembly pool, nor when an abort's RST leaves and is timed
//! into the close histogram. Other threads (libtest's) are not counted.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerd_abi::entry::{self, Body, Op};
use lingerd_abi::layout::{Layout, LayoutParams};
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::ClientId;
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::rings::ClientRings;
use lingerd_dataplane::wire::EthernetAddress;
use lingerd_testkit::sys::alloc_count::{self, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const CLIENT: ClientId = ClientId(3);
const MSG: usize = 100;
/// The rings' chunk size.
const CHUNK: usize = 2048;

/// One side: an engine, its rings, and the client's end of them.
struct Side {
    engine: QueueEngine,
    rings: ClientRings,
    region: Arc<SharedRegion>,
    layout: Layout,
    tx: Producer,
    rx: Consumer,
    handle: u64,
    /// A connection was opened.
    open: bool,
    next_ud: u64,
    received: usize,
}

impl Side {
    fn new(host: u8, t0: Instant) -> Side {
        let mut cfg = EngineConfig::new(
            0,
            EthernetAddress([2, 0, 0, 0, 0, host]),
            Prefix::new(Ipv4Addr::new(198, 18, 0, host).into(), 24).expect("an IPv4 prefix length"),
        );
        cfg.isn_secret = [u64::from(host), 1];
        cfg.cookie_secret = [u64::from(host), 2];
        let layout = Layout::new(LayoutParams {
            cores: 1,
            ring_entries: 64,
            chunk_size: CHUNK as u32,
            tx_chunks: 8,
            rx_chunks: 16,
        })
        .expect("layout");
        let region = Arc::new(SharedRegion::anonymous(layout.total));
        let rings = ClientRings::new(CLIENT, 0, region.clone(), layout).expect("rings");
        let tx = Producer::new(region.clone(), layout.request_ring(0).expect("ring"), 64)
            .expect("producer");
        let rx = Consumer::new(region.clone(), layout.completion_ring(0).expect("ring"), 64)
            .expect("consumer");
        Side {
            engine: QueueEngine::new(cfg, t0),
            rings,
            region,
            layout,
            tx,
            rx,
            handle: 0,
            open: false,
            next_ud: 1,
            received: 0,
        }
    }

    fn request(&mut self, op: &Op) {
        self.next_ud += 1;
        assert!(self.tx.push(&entry::encode_request(self.next_ud, op)));
        self.tx.publish();
    }

    /// Sends `MSG` bytes from TX chunk 0.
    fn send(&mut self) {
        self.send_n(MSG);
    }

    /// Sends `n` (at most a chunk) bytes from TX chunk 0.
    fn send_n(&mut self, n: usize) {
        let range = self.layout.tx_chunk(0, n as u32).expect("chunk");
        assert!(self.region.write(range, &[0x5a; CHUNK][..n]));
        let handle = self.handle;
        self.request(&Op::Send {
            handle,
            chunk: 0,
            len: n as u32,
        });
    }

    /// The daemon's side of one loop iteration, frames going to `peer`.
    fn step(&mut self, now: Instant, peer: &mut Side) {
        self.rings.poll_requests(&mut self.engine, now, 64);
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        let mut frame = [0u8; 2048];
        while let Some(n) = self.engine.poll_transmit(now, &mut frame) {
            peer.engine
                .handle_rx_into(now, &frame[..n], &mut peer.rings);
        }
        while let Some(c) = self.engine.poll_completion() {
            self.rings.deliver(c);
        }
        self.rings.flush();
    }

    /// The client reads its completions: records the connection's handle,
    /// returns each RX chunk and, when `echo`, sends what it read back.
    fn client(&mut self, echo: bool) {
        let n = self.rx.available();
        let mut out: [Option<(u32, u32)>; 64] = [None; 64];
        for slot in out.iter_mut().take(n as usize) {
            let Some(b) = self.rx.pop() else { break };
            let c = entry::Completion::decode(&b).expect("valid completion");
            match c.body {
                Body::Accepted { .. } | Body::Connecting => {
                    self.handle = c.handle;
                    self.open = true;
                }
                Body::Data { chunk, len } => *slot = Some((chunk, len)),
                _ => {}
            }
        }
        self.rx.release();
        for (chunk, len) in out.into_iter().flatten() {
            let mut bytes = [0u8; CHUNK];
            let range = self.layout.rx_chunk(chunk, len).expect("own chunk");
            assert!(self.region.read(range, &mut bytes[..len as usize]));
            assert!(bytes[..len as usize].iter().all(|&b| b == 0x5a));
            self.received += len as usize;
            let handle = self.handle;
            self.request(&Op::RecvDone { handle, chunk, len });
            if echo {
                self.send_n(len as usize);
            }
        }
    }
}

/// A link that holds back one data segment and delivers it right after the
/// next one: the peer sees the two out of order (a fixed buffer, so holding
/// allocates nothing).
struct Swap {
    frame: [u8; 2048],
    len: usize,
    /// Whether the next data segment is to be held.
    armed: bool,
}

/// Ethernet + IPv4 + TCP headers with timestamps: longer frames carry data.
const HEADERS: usize = 14 + 20 + 20 + 12;

impl Side {
    /// [`Side::step`] through `swap`.
    fn step_swapped(&mut self, now: Instant, peer: &mut Side, swap: &mut Swap) {
        self.rings.poll_requests(&mut self.engine, now, 64);
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        let mut frame = [0u8; 2048];
        while let Some(n) = self.engine.poll_transmit(now, &mut frame) {
            let data = n > HEADERS;
            if data && swap.armed {
                swap.frame[..n].copy_from_slice(&frame[..n]);
                swap.len = n;
                swap.armed = false;
                continue;
            }
            peer.engine
                .handle_rx_into(now, &frame[..n], &mut peer.rings);
            if data && swap.len > 0 {
                peer.engine
                    .handle_rx_into(now, &swap.frame[..swap.len], &mut peer.rings);
                swap.len = 0;
            }
        }
        while let Some(c) = self.engine.poll_completion() {
            self.rings.deliver(c);
        }
        self.rings.flush();
    }
}

fn round(a: &mut Side, b: &mut Side, now: Instant) {
    a.step(now, b);
    b.step(now, a);
    a.client(false);
    b.client(true);
}

#[test]
fn the_steady_state_echo_path_does_not_allocate() {
    let t0 = Instant::now();
    let (mut a, mut b) = (Side::new(1, t0), Side::new(2, t0));
    b.request(&Op::Listen {
        port: 80,
        backlog: 16,
    });
    let mut now = t0;
    round(&mut a, &mut b, now);
    a.request(&Op::Connect {
        addr: std::net::IpAddr::from([198, 18, 0, 2]),
        port: 80,
        local_port: 0,
    });
    for _ in 0..20 {
        round(&mut a, &mut b, now);
    }
    assert!(a.open && b.open, "connected and accepted");
    // Warm-up: queues, pools and the timer wheel reach their working size.
    let exchange = |a: &mut Side, b: &mut Side, now: &mut Instant, n: usize| {
        for _ in 0..n {
            let before = a.received;
            a.send();
            for _ in 0..8 {
                *now += Duration::from_millis(1);
                round(a, b, *now);
                if a.received > before {
                    break;
                }
            }
            assert_eq!(a.received, before + MSG, "the echo came back");
        }
    };
    exchange(&mut a, &mut b, &mut now, 200);
    assert!(alloc_count::is_installed(), "the counting allocator counts");
    let ((), stats) = alloc_count::measure(|| exchange(&mut a, &mut b, &mut now, 500));
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the echo path allocated: {stats:?}"
    );
    assert!(b.received >= 700 * MSG);

    // Reordered: two messages leave as two segments, and the second
    // reaches the peer first, is kept in the reassembly pool, and is
    // delivered when the first fills the gap.
    let reordered = |a: &mut Side, b: &mut Side, now: &mut Instant, n: usize| {
        let mut swap = Swap {
            frame: [0; 2048],
            len: 0,
            armed: false,
        };
        for _ in 0..n {
            let before = a.received;
            swap.armed = true;
            a.send();
            for _ in 0..8 {
                *now += Duration::from_millis(1);
                a.step_swapped(*now, b, &mut swap);
                if swap.len > 0 {
                    break;
                }
            }
            assert!(swap.len > 0, "the first segment is held");
            a.send();
            for _ in 0..16 {
                *now += Duration::from_millis(1);
                a.step_swapped(*now, b, &mut swap);
                b.step(*now, a);
                a.client(false);
                b.client(true);
                if a.received >= before + 2 * MSG {
                    break;
                }
            }
            assert_eq!(swap.len, 0, "the held segment went after the next");
            assert_eq!(a.received, before + 2 * MSG, "both echoes came back");
        }
    };
    reordered(&mut a, &mut b, &mut now, 50);
    let kept = b.engine.counters().ooo_segments_kept;
    let ((), stats) = alloc_count::measure(|| reordered(&mut a, &mut b, &mut now, 200));
    assert_eq!(
        b.engine.counters().ooo_segments_kept - kept,
        200,
        "each second segment was kept out of order"
    );
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the reordered echo path allocated: {stats:?}"
    );

    // The close path: an abort's RST leaves and is timed into the close
    // histogram, its completion reaches the client. One abort first sizes
    // the queues; each connection is opened outside the measurement.
    let abort = |a: &mut Side, b: &mut Side, now: &mut Instant| {
        let handle = a.handle;
        a.request(&Op::Abort { handle });
        *now += Duration::from_millis(1);
        round(a, b, *now);
        a.client(false);
    };
    let reconnect = |a: &mut Side, b: &mut Side, now: &mut Instant| {
        let old = a.handle;
        a.request(&Op::Connect {
            addr: std::net::IpAddr::from([198, 18, 0, 2]),
            port: 80,
            local_port: 0,
        });
        for _ in 0..20 {
            *now += Duration::from_millis(1);
            round(a, b, *now);
        }
        assert_ne!(a.handle, old, "a new connection");
    };
    abort(&mut a, &mut b, &mut now);
    reconnect(&mut a, &mut b, &mut now);
    let timed = a.engine.counters().close_rst_wire.count();
    let ((), stats) = alloc_count::measure(|| abort(&mut a, &mut b, &mut now));
    assert_eq!(
        a.engine.counters().close_rst_wire.count(),
        timed + 1,
        "the abort's RST left and was timed"
    );
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the abort path allocated: {stats:?}"
    );
}
