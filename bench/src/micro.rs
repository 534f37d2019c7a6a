//! `lingerd-bench micro`: the figures of the "foundation" and "engine"
//! issues, each the median of repeated timed runs after a warm-up.
//!
//! Phases, in order, each freeing its big structures before the next:
//! 1. wire: `RstTemplate` frame builds;
//! 2. lookup: parse + 4-tuple lookup of random frames against a
//!    `Table<Tcb>` (1M entries), one by one and in bursts; the burst figure
//!    copies each burst into a 64-buffer receive ring first (untimed, the
//!    kernel's copy into the UMEM) so frames are hot as in the daemon,
//!    while connections stay random among 1M;
//! 3. timers: a `Table<Tcb>` of 10M connections (its `memory()` gives the
//!    bytes per connection) with all 10M timers armed, then cancel and arm
//!    of random (and, as a variant, sequential) slots;
//! 4. engine: pairs of engines with 1M established connections: abort all,
//!    graceful-close all, linger deadlines expiring;
//! 5. smoltcp: abort of 10k smoltcp sockets vs lingerd at 10k.
//!
//! It owns the sizes, iteration counts and the goals; the measuring itself
//! is in `measure`, the set-ups in `fixtures`, `engine` and `smol`.

use std::hint::black_box;
use std::time::Instant;

use lingerd_dataplane::table::Table;
use lingerd_dataplane::tcp::Tcb;
use lingerd_dataplane::timer::Wheel;
use lingerd_dataplane::wire::RST_FRAME_LEN;
use lingerd_testkit::rng::SplitMix64;

use crate::engine::{BURST, Lab, Timing};
use crate::fixtures::{self, FRAME_LEN};
use crate::measure::{
    MIN_RUNS, cycles_source, median, median_of, ns_per, per_second, progress, time, tsc_hz,
};
use crate::report::{Goal, Report};
use crate::smol::SmolLab;

/// Largest linger/timer deadline of the timer figures: 65,535 s in ms.
const MAX_DEADLINE_MS: u64 = 65_535_000;

/// What to measure, and how big.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Established connections of the engine figures.
    pub connections: u32,
    /// Entries of the lookup table.
    pub lookup_entries: u32,
    /// Connections (and armed timers) of the timer and memory figures.
    pub timers: u32,
    /// Sockets of the smoltcp comparison (and of lingerd's run beside it).
    pub smoltcp_sockets: u32,
    /// RST frames built per run.
    pub rst_builds: u32,
    /// Whether this is the `--quick` smoke run.
    pub quick: bool,
    /// Run only these phases (all when empty).
    pub only: Vec<Phase>,
}

/// The phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// `RstTemplate` builds.
    Wire,
    /// Parse + lookup.
    Lookup,
    /// Table memory and timers.
    Timers,
    /// Engine close rates.
    Engine,
    /// The smoltcp comparison.
    Smoltcp,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::Wire,
        Phase::Lookup,
        Phase::Timers,
        Phase::Engine,
        Phase::Smoltcp,
    ];
}

impl Options {
    /// The sizes the issues ask for: 1M connections and lookup entries,
    /// 10M timers, 10k smoltcp sockets.
    pub fn full() -> Options {
        Options {
            connections: 1_000_000,
            lookup_entries: 1_000_000,
            timers: 10_000_000,
            smoltcp_sockets: 10_000,
            rst_builds: 20_000_000,
            quick: false,
            only: Vec::new(),
        }
    }

    /// The CI smoke sizes: 100k connections and lookup entries, 1M timers.
    pub fn quick() -> Options {
        Options {
            connections: 100_000,
            lookup_entries: 100_000,
            timers: 1_000_000,
            smoltcp_sockets: 2_000,
            rst_builds: 2_000_000,
            quick: true,
            only: Vec::new(),
        }
    }
}

/// Runs every phase and returns the report.
pub fn run(opts: &Options) -> Report {
    let mut report = Report::default();
    for phase in Phase::ALL {
        if !opts.only.is_empty() && !opts.only.contains(&phase) {
            continue;
        }
        match phase {
            Phase::Wire => wire(&mut report, opts),
            Phase::Lookup => lookup(&mut report, opts),
            Phase::Timers => timers(&mut report, opts),
            Phase::Engine => engine(&mut report, opts),
            Phase::Smoltcp => smoltcp(&mut report, opts),
        }
    }
    report
}

fn wire(report: &mut Report, opts: &Options) {
    progress(format!(
        "wire: RstTemplate builds, {} per run",
        opts.rst_builds
    ));
    let template = fixtures::rst_template();
    let segs = fixtures::rst_segments(4096, 1);
    // Frames land in a ring of buffers, as in a UMEM, not in one hot line.
    let mut ring = vec![[0u8; RST_FRAME_LEN]; 256];
    let n = opts.rst_builds as usize;
    let ns = median_of(MIN_RUNS, |_| {
        let d = time(|| {
            for i in 0..n {
                let seg = black_box(&segs[i & 4095]);
                template.build_array(&mut ring[i & 255], seg);
            }
        });
        black_box(&ring);
        ns_per(d, n)
    });
    report.goal(
        "rst_build_ns",
        "RST frame from RstTemplate (both checksums)",
        ns,
        "ns",
        Goal::AtMost(25.0),
    );
}

fn lookup(report: &mut Report, opts: &Options) {
    let n = opts.lookup_entries;
    progress(format!(
        "lookup: Table<Tcb> of {n} entries, {n} random frames"
    ));
    let (table, _) = fixtures::filled_table(n, n);
    let frames = fixtures::random_frames(n, n as usize, 2);
    let count = frames.len();

    let single = median_of(5, |_| {
        let mut found = 0usize;
        let d = time(|| {
            for f in &frames {
                found += usize::from(
                    fixtures::parse_lookup(&table, black_box(&f[..FRAME_LEN])).is_some(),
                );
            }
        });
        assert_eq!(found, count, "every frame's connection is in the table");
        ns_per(d, count)
    });
    let burst_cold = median_of(5, |_| {
        let mut found = 0;
        let d = time(|| found = fixtures::parse_lookup_burst(&table, black_box(&frames)));
        assert_eq!(found, count, "every frame's connection is in the table");
        ns_per(d, count)
    });
    let burst = median_of(5, |_| {
        let (found, d) = fixtures::parse_lookup_burst_ring(&table, black_box(&frames));
        assert_eq!(found, count, "every frame's connection is in the table");
        ns_per(d, count)
    });
    // The parse alone on frames hot in cache (a ring of reused buffers).
    let ring: Vec<_> = frames[..fixtures::RX_RING].to_vec();
    let parse_hot = median_of(MIN_RUNS, |_| {
        let mut ok = 0usize;
        let d = time(|| {
            for i in 0..count {
                let f = &ring[i % fixtures::RX_RING];
                ok += usize::from(fixtures::parse_tuple(black_box(&f[..FRAME_LEN])).is_ok());
            }
        });
        assert_eq!(ok, count);
        ns_per(d, count)
    });
    let parse_only = median_of(MIN_RUNS, |_| {
        let mut ok = 0usize;
        let d = time(|| {
            for f in &frames {
                ok += usize::from(fixtures::parse_tuple(black_box(&f[..FRAME_LEN])).is_ok());
            }
        });
        assert_eq!(ok, count);
        ns_per(d, count)
    });
    let tuples: Vec<_> = frames
        .iter()
        .map(|f| fixtures::parse_tuple(&f[..FRAME_LEN]).expect("valid frame"))
        .collect();
    drop(frames);
    let lookup_only = median_of(MIN_RUNS, |_| {
        let mut found = 0usize;
        let d = time(|| {
            for t in &tuples {
                found += usize::from(table.lookup(black_box(t)).is_some());
            }
        });
        assert_eq!(found, count);
        ns_per(d, count)
    });
    report.goal(
        "parse_lookup_ns",
        format!(
            "parse Eth+IPv4+TCP (checksums) + lookup, {} entries, random",
            si(n)
        ),
        single,
        "ns",
        Goal::AtMost(40.0),
    );
    report.goal(
        "parse_lookup_burst_ns",
        format!(
            "same, bursts of 32 via lookup_burst (prefetch), frames in a {}-buffer RX ring",
            fixtures::RX_RING
        ),
        burst,
        "ns",
        Goal::AtMost(30.0),
    );
    report.info(
        "parse_lookup_burst_cold_ns",
        "  variant: frames read from a 64 MB array (cold, as before)",
        burst_cold,
        "ns",
    );
    report.info(
        "parse_ns",
        "  of which: parse only (frames from the 64 MB array)",
        parse_only,
        "ns",
    );
    report.info(
        "parse_hot_ns",
        "  of which: parse only, frames hot (RX ring)",
        parse_hot,
        "ns",
    );
    report.info(
        "lookup_ns",
        "  of which: lookup only (random, cold)",
        lookup_only,
        "ns",
    );
    report.info("lookup_entries", "lookup table entries", f64::from(n), "");
}

fn timers(report: &mut Report, opts: &Options) {
    let n = opts.timers;
    progress(format!(
        "timers: Table<Tcb> of {n} connections, {n} timers armed"
    ));
    // The IPv6 figure first, its table dropped before the IPv4 one is built.
    let (table6, _) = fixtures::filled_table_v6(n, n);
    let (bytes_v6, slot_v6) = (table6.bytes_per_connection(), table6.memory().slot_bytes);
    drop(table6);
    let (mut table, _) = fixtures::filled_table(n, n);
    let memory = table.memory();
    report.goal(
        "table_bytes_per_conn",
        format!(
            "table bytes per connection at {} (slot {} B + index)",
            si(n),
            memory.slot_bytes
        ),
        table.bytes_per_connection() as f64,
        "B",
        Goal::AtMost(256.0),
    );
    report.goal(
        "table_bytes_per_conn_v6",
        format!(
            "same, {} IPv6 connections (slot {} B + index)",
            si(n),
            slot_v6
        ),
        bytes_v6 as f64,
        "B",
        Goal::AtMost(256.0),
    );
    report.info(
        "tcb_bytes",
        "size_of::<Tcb>()",
        size_of::<Tcb>() as f64,
        "B",
    );
    report.info(
        "table_total_bytes",
        "table memory() total",
        memory.total_bytes() as f64,
        "B",
    );

    let mut rng = SplitMix64::new(3);
    let mut wheel = Wheel::new(0);
    for slot in 0..n {
        wheel.arm(&mut table, slot, 1 + rng.below(MAX_DEADLINE_MS));
    }
    assert_eq!(wheel.len(), n as usize);
    let k = (n / 10) as usize;
    let deadlines: Vec<u64> = (0..k).map(|_| 1 + rng.below(MAX_DEADLINE_MS)).collect();

    // Sequential variant: contiguous slot ranges, in order.
    progress(format!("timers: sequential cancel/arm, {k} per run"));
    let seq_slots: Vec<u32> = (0..n).collect();
    let (seq_cancel, seq_arm) = cancel_arm_runs(&mut table, &mut wheel, &seq_slots, &deadlines);
    // Random variant: distinct random slots.
    progress(format!("timers: random cancel/arm, {k} per run"));
    let mut slots = seq_slots;
    rng.shuffle(&mut slots);
    let (cancel, arm) = cancel_arm_runs(&mut table, &mut wheel, &slots, &deadlines);
    assert_eq!(wheel.len(), n as usize);

    report.goal(
        "timer_arm_ns",
        format!(
            "timer arm, random slot, {} armed, deadline 0..65535 s",
            si(n)
        ),
        arm,
        "ns",
        Goal::AtMost(20.0),
    );
    report.goal(
        "timer_cancel_ns",
        format!("timer cancel, random slot, {} armed", si(n)),
        cancel,
        "ns",
        Goal::AtMost(20.0),
    );
    report.info(
        "timer_arm_seq_ns",
        "  variant: arm, sequential slots",
        seq_arm,
        "ns",
    );
    report.info(
        "timer_cancel_seq_ns",
        "  variant: cancel, sequential slots",
        seq_cancel,
        "ns",
    );
    report.info("timers_armed", "timers armed", f64::from(n), "");
}

/// Warm-up plus [`MIN_RUNS`] runs, each cancelling then re-arming the next
/// `deadlines.len()` slots of `order`; returns the median (cancel, arm) ns.
fn cancel_arm_runs(
    table: &mut Table<Tcb>,
    wheel: &mut Wheel,
    order: &[u32],
    deadlines: &[u64],
) -> (f64, f64) {
    let k = deadlines.len();
    let (mut cancels, mut arms) = (Vec::new(), Vec::new());
    for (run, chunk) in order.chunks_exact(k).take(MIN_RUNS + 1).enumerate() {
        let mut cancelled = 0usize;
        let d_cancel = time(|| {
            for &slot in chunk {
                cancelled += usize::from(wheel.cancel(table, black_box(slot)));
            }
        });
        assert_eq!(cancelled, k, "every slot was armed");
        let d_arm = time(|| {
            for (&slot, &deadline) in chunk.iter().zip(deadlines) {
                wheel.arm(table, black_box(slot), deadline);
            }
        });
        if run > 0 {
            cancels.push(ns_per(d_cancel, k));
            arms.push(ns_per(d_arm, k));
        }
    }
    (median(&cancels), median(&arms))
}

/// The medians of one engine scenario's runs.
#[derive(Clone, Copy, Debug, Default)]
struct EngineRuns {
    /// Closes per second.
    rate: f64,
    /// Engine A's closes per second.
    rate_a: f64,
    /// The median and the longest loop round (µs).
    round: f64,
    longest: f64,
    /// TSC cycles per close, overall and engine A's only.
    cycles: f64,
    cycles_a: f64,
}

/// Warm-up on a small lab, then [`MIN_RUNS`] labs of `n` connections, each
/// running `scenario` once; returns the medians of its figures.
fn engine_runs(name: &str, n: u32, scenario: impl Fn(&mut Lab) -> Timing) -> EngineRuns {
    let mut all: Vec<Timing> = Vec::new();
    for run in 0..=MIN_RUNS {
        let size = if run == 0 { (n / 10).max(1000) } else { n };
        let (mut lab, setup) = {
            let start = Instant::now();
            let lab = Lab::establish(size);
            (lab, start.elapsed())
        };
        let t = scenario(&mut lab);
        drop(lab);
        if run > 0 {
            progress(format!(
                "engine: {name} run {run}/{MIN_RUNS}: {} closes in {:.1} ms ({:.2}M/s, {:.0} cycles each; set-up {:.1} s)",
                t.closes,
                t.total.as_secs_f64() * 1e3,
                t.per_s() / 1e6,
                t.cycles_per_close(),
                setup.as_secs_f64()
            ));
            all.push(t);
        }
    }
    let med = |f: &dyn Fn(&Timing) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
    EngineRuns {
        rate: med(&|t| t.per_s()),
        rate_a: med(&|t| t.per_s_engine_a()),
        round: med(&|t| t.median_round.as_secs_f64() * 1e6),
        longest: med(&|t| t.longest_round.as_secs_f64() * 1e6),
        cycles: med(&|t| t.cycles_per_close()),
        cycles_a: med(&|t| t.cycles_per_close_a()),
    }
}

/// The client-ring abort scenario's medians: (closes per second on the
/// daemon's side, cycles per request on the daemon's side, of which
/// request intake, TX per frame, completion per request).
fn ring_runs(n: u32) -> [f64; 5] {
    let mut runs: Vec<[f64; 5]> = Vec::new();
    for run in 0..=MIN_RUNS {
        let size = if run == 0 { (n / 10).max(1000) } else { n };
        let mut lab = Lab::establish(size);
        let r = lab.ring_abort_all();
        drop(lab);
        if run > 0 {
            let closes = r.timing.closes;
            let figures = [
                r.timing.per_s_engine_a(),
                r.timing.cycles_per_close_a(),
                r.requests.cycles_per(closes),
                r.tx.cycles_per(r.frames as usize),
                r.completions.cycles_per(closes),
            ];
            progress(format!(
                "engine: client-ring abort run {run}/{MIN_RUNS}: {closes} closes, daemon side {:.2}M/s, {:.0} cycles each (requests {:.0}, TX {:.0}/frame, completions {:.0})",
                figures[0] / 1e6,
                figures[1],
                figures[2],
                figures[3],
                figures[4]
            ));
            runs.push(figures);
        }
    }
    std::array::from_fn(|i| median(&runs.iter().map(|r| r[i]).collect::<Vec<_>>()))
}

fn engine(report: &mut Report, opts: &Options) {
    let n = opts.connections;
    progress(format!(
        "engine: {n} connections between two engines over mem"
    ));
    let abort = engine_runs("abort all", n, Lab::abort_all);
    let bulk = engine_runs("bulk abort (close_matching)", n, Lab::bulk_abort_all);
    let graceful = engine_runs("graceful close all", n, Lab::graceful_all);
    let linger = engine_runs("linger expiry", n, Lab::linger_expire_all);
    let [
        ring_rate,
        ring_cycles,
        ring_requests,
        tx_frame,
        ring_completions,
    ] = ring_runs(n);
    report.goal(
        "abort_closes_per_s",
        format!("abort all {}: Abort requests → RST frames", si(n)),
        abort.rate,
        "/s",
        Goal::AtLeast(15e6),
    );
    report.info(
        "abort_cycles",
        "  TSC cycles per abort (request → RST in TX ring → completion)",
        abort.cycles,
        "",
    );
    report.info(
        "bulk_abort_closes_per_s",
        format!(
            "bulk abort {}: one close_matching(abort) → RST frames",
            si(n)
        ),
        bulk.rate,
        "/s",
    );
    report.info(
        "bulk_abort_cycles",
        "  TSC cycles per connection (table walk → RST in TX ring)",
        bulk.cycles,
        "",
    );
    report.goal(
        "graceful_closes_per_s",
        format!("graceful close all {} (linger off), peer included", si(n)),
        graceful.rate,
        "/s",
        Goal::AtLeast(2e6),
    );
    report.goal(
        "graceful_closes_per_s_engine_a",
        "  same, counting engine A's time only",
        graceful.rate_a,
        "/s",
        Goal::AtLeast(4e6),
    );
    report.info(
        "graceful_engine_a_cycles",
        "  TSC cycles per graceful close, engine A only (Close, FIN, ACK+FIN in, ACK)",
        graceful.cycles_a,
        "",
    );
    report.goal(
        "linger_expiry_closes_per_s",
        format!("{} linger deadlines expire → RSTs", si(n)),
        linger.rate,
        "/s",
        Goal::AtLeast(10e6),
    );
    report.info(
        "linger_expiry_cycles",
        "  TSC cycles per linger expiry (timer → RST in TX ring → completion)",
        linger.cycles,
        "",
    );
    report.info(
        "linger_expiry_round_us",
        format!(
            "  median loop round (handle_timeout ≤ {} expiries + drains)",
            lingerd_dataplane::engine::MAX_EXPIRIES_PER_CALL
        ),
        linger.round,
        "µs",
    );
    report.info(
        "linger_expiry_longest_round_us",
        "  longest loop round (on a shared host: mostly preemption)",
        linger.longest,
        "µs",
    );
    report.info(
        "ring_abort_closes_per_s",
        format!(
            "abort all {} through a client's rings (daemon side: intake, TX via MemPort, completions)",
            si(n)
        ),
        ring_rate,
        "/s",
    );
    report.info(
        "ring_abort_cycles",
        "  TSC cycles per request → completion, daemon side",
        ring_cycles,
        "",
    );
    report.info(
        "ring_request_cycles",
        "  of which: request intake (ring read, decode, engine abort)",
        ring_requests,
        "",
    );
    report.info(
        "tx_frame_cycles",
        "  of which per frame: port TX (MemPort tx_frame: RST build + descriptor, flush)",
        tx_frame,
        "",
    );
    report.info(
        "ring_completion_cycles",
        "  of which: completion (poll, encode, ring write, publish)",
        ring_completions,
        "",
    );
    report.info("connections", "engine connections", f64::from(n), "");
    if let Some(hz) = tsc_hz() {
        report.info(
            "tsc_mhz",
            "TSC rate the cycle figures count at (rdtsc vs the monotonic clock, 5×20 ms)",
            hz / 1e6,
            "MHz",
        );
    }
    report.note("cycles_source", cycles_source());
}

fn smoltcp(report: &mut Report, opts: &Options) {
    let n = opts.smoltcp_sockets;
    progress(format!(
        "smoltcp: abort of {n} smoltcp sockets vs lingerd at {n}"
    ));
    let smol_run = |burst: usize, label: &str| {
        median_of(MIN_RUNS, |run| {
            let mut lab = SmolLab::establish(n);
            let d = lab.abort_all(burst);
            if run > 0 {
                progress(format!(
                    "smoltcp: {label} run {run}/{MIN_RUNS}: {n} aborts in {:.2} ms",
                    d.as_secs_f64() * 1e3
                ));
            }
            per_second(d, n as usize)
        })
    };
    let smol = smol_run(usize::MAX, "abort all, then poll");
    let smol_burst = smol_run(BURST, "bursts of 256, poll after each");
    let ours = median_of(5, |_| {
        let mut lab = Lab::establish(n);
        lab.abort_all().per_s()
    });
    report.info(
        "smoltcp_abort_closes_per_s",
        format!(
            "smoltcp 0.14: abort() all {}, then poll out the RSTs",
            si(n)
        ),
        smol,
        "/s",
    );
    report.info(
        "smoltcp_abort_burst_closes_per_s",
        "  variant: abort() 256 at a time, poll after each (lingerd's rhythm)",
        smol_burst,
        "/s",
    );
    report.info(
        "lingerd_abort_closes_per_s_10k",
        format!("lingerd abort all {} (bursts of 256)", si(n)),
        ours,
        "/s",
    );
    report.goal(
        "vs_smoltcp_ratio",
        "lingerd ÷ smoltcp (abort all, then poll)",
        ours / smol,
        "×",
        Goal::AtLeast(50.0),
    );
    report.info(
        "vs_smoltcp_burst_ratio",
        "  lingerd ÷ smoltcp (same 256-burst rhythm)",
        ours / smol_burst,
        "×",
    );
    report.info(
        "smoltcp_sockets",
        "smoltcp comparison size",
        f64::from(n),
        "",
    );
}

/// 1000000 → "1M", 10000 → "10k".
fn si(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
