//! Criterion benches of the dataplane's hot paths, kept quick (small
//! measurement times): `wire` (parse, rst_build), `table` (lookup at 1M),
//! `timer` (arm/cancel at 1M armed), `engine` (abort of one connection,
//! frame build included). `cargo bench -p lingerd-bench`; the
//! `lingerd-bench micro` binary reports the issue figures at full size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lingerd_bench::engine::{CLIENT, Lab, TxRing};
use lingerd_bench::fixtures::{self, FRAME_LEN};
use lingerd_bench::measure::Rng;
use lingerd_dataplane::engine::api::Request;
use lingerd_dataplane::timer::Wheel;
use lingerd_dataplane::wire::RST_FRAME_LEN;

const MILLION: u32 = 1_000_000;
const MAX_DEADLINE_MS: u64 = 65_535_000;

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    let frames = fixtures::random_frames(1_000, 1_024, 1);
    let mut i = 0;
    g.bench_function("parse", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            fixtures::parse_tuple(black_box(&frames[i][..FRAME_LEN]))
        })
    });
    let template = fixtures::rst_template();
    let segs = fixtures::rst_segments(1_024, 2);
    let mut ring = vec![[0u8; RST_FRAME_LEN]; 256];
    let mut j = 0;
    g.bench_function("rst_build", |b| {
        b.iter(|| {
            j += 1;
            template.build_array(&mut ring[j & 255], black_box(&segs[j & 1023]));
        })
    });
    g.finish();
}

fn table(c: &mut Criterion) {
    let (table, _) = fixtures::filled_table(MILLION, MILLION);
    let mut rng = Rng::new(3);
    let tuples: Vec<_> = (0..1 << 20)
        .map(|_| fixtures::tuple(rng.below(u64::from(MILLION)) as u32))
        .collect();
    let mut g = c.benchmark_group("table");
    let mut i = 0;
    g.bench_function("lookup_1M_random", |b| {
        b.iter(|| {
            i = (i + 1) & ((1 << 20) - 1);
            table.lookup(black_box(&tuples[i]))
        })
    });
    g.finish();
}

fn timer(c: &mut Criterion) {
    let (mut table, _) = fixtures::filled_table(MILLION, MILLION);
    let mut wheel = Wheel::new(0);
    let mut rng = Rng::new(4);
    for slot in 0..MILLION {
        wheel.arm(&mut table, slot, 1 + rng.below(MAX_DEADLINE_MS));
    }
    let mut order: Vec<u32> = (0..MILLION).collect();
    rng.shuffle(&mut order);
    let deadlines: Vec<u64> = (0..MILLION)
        .map(|_| 1 + rng.below(MAX_DEADLINE_MS))
        .collect();
    let mut g = c.benchmark_group("timer");
    // Each timed pass cancels (or arms) distinct random slots; the other
    // half of the pair runs untimed so that ~1M stay armed throughout.
    let mut at = 0usize;
    let mut next = |count: usize| {
        if at + count > MILLION as usize {
            at = 0;
        }
        at += count;
        at - count..at
    };
    g.bench_function("cancel_1M_armed_random", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let range = next(left.min(100_000));
                left -= range.len();
                let slots = &order[range.clone()];
                let start = Instant::now();
                for &s in slots {
                    wheel.cancel(&mut table, black_box(s));
                }
                total += start.elapsed();
                for (&s, &d) in slots.iter().zip(&deadlines[range]) {
                    wheel.arm(&mut table, s, d);
                }
            }
            total
        })
    });
    g.bench_function("arm_1M_armed_random", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let range = next(left.min(100_000));
                left -= range.len();
                let slots = &order[range.clone()];
                for &s in slots {
                    wheel.cancel(&mut table, s);
                }
                let start = Instant::now();
                for (&s, &d) in slots.iter().zip(&deadlines[range]) {
                    wheel.arm(&mut table, black_box(s), d);
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn engine(c: &mut Criterion) {
    const LAB: u32 = 20_000;
    let mut g = c.benchmark_group("engine");
    g.bench_function("abort_one_with_frame", |b| {
        let mut lab = Lab::establish(LAB);
        let mut ring = TxRing::default();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                if lab.handles.is_empty() {
                    lab = Lab::establish(LAB);
                }
                // One ring burst at a time, timed as a whole.
                let k = left.min(lab.handles.len()).min(256);
                let burst = lab.handles.split_off(lab.handles.len() - k);
                let now = lab.now;
                let start = Instant::now();
                for &handle in &burst {
                    lab.a
                        .handle_request(now, CLIENT, 0, Request::Abort { handle });
                }
                let (frames, rsts) = ring.drain(&mut lab.a, now);
                total += start.elapsed();
                assert_eq!((frames, rsts), (k, k));
                while lab.a.poll_completion().is_some() {}
                left -= k;
            }
            total
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = wire, table, timer, engine
}
criterion_main!(benches);
