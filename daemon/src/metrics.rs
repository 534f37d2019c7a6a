//! Prometheus `/metrics`: every core's latest snapshot, one series per
//! queue (label `queue`), in the OpenMetrics text format, served from a
//! plain thread on the configured local address.
//!
//! It owns the metric names beyond the engine's own counters (states,
//! timers, rings, the port's: AF_XDP or DPDK, through [`PortFigures`]),
//! the labelled families, the rendering and the HTTP endpoint. Cores never
//! block on it: each core publishes a copy of its figures now and then into
//! its own slot ([`MetricsHub::publish`]), and a scrape reads the latest
//! copies. It may not touch engines or rings directly.
//!
//! The encoding is the `prometheus-client` crate's: a
//! [`Collector`] over the snapshots, run at each scrape. The crate's own
//! metric types (atomic counters that the code increments) do not fit a
//! dataplane whose counters are plain integers owned by one core each,
//! but its collector does: the figures stay where they are, and the crate
//! writes the text (names, `_total`, `# HELP`/`# TYPE`/`# UNIT`, label
//! escaping, cumulative histogram buckets, `# EOF`). Labels follow the
//! Prometheus idiom: an outcome, reason or state is a label of one family
//! (`lingerd_closes_total{outcome=…}`), never a family of its own, and
//! nothing is pre-summed (`sum by (…)` in a query does that). [`series`]
//! is the one list of what a core's snapshot says: `/metrics` renders it
//! and `lingerd ctl stats` prints it, so the two cannot drift apart.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lingerd_dataplane::engine::counters::{Counters, FAMILIES, Log2Histogram};
use lingerd_dataplane::port::afxdp::{AfXdpStats, PortCounters, XskStats};
#[cfg(feature = "dpdk")]
use lingerd_dataplane::port::dpdk::{DpdkCounters, DpdkStats, EthStats};
use lingerd_dataplane::rings::RingStats;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::reasm::ReasmUsage;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::{Registry, Unit};

use crate::stoppable::StoppableThread;

/// A port's figures as `(name, help, value)`, counters only.
pub type PortSeries = Vec<(&'static str, &'static str, u64)>;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One core's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Engine counters (and the close histograms).
    pub counters: Counters,
    /// Records per TCP state (index = `State as usize`).
    pub states: [u64; 11],
    /// Armed connection timers (linger, orphan, TIME-WAIT, retransmission…).
    pub timers_armed: u64,
    /// Connections with a linger deadline armed (blocking `SO_LINGER`
    /// closes not yet acknowledged, and rule-3c background closes), from
    /// the last full census of the table.
    pub linger_timers_armed: u64,
    /// The reassembly pool: its budget and what out-of-order queues hold.
    pub reasm: ReasmUsage,
    /// RSTs of our own closes waiting for a pacing token.
    pub rsts_paced_waiting: u64,
    /// The longest a paced RST has waited for its token, in milliseconds.
    pub rst_paced_wait_max_ms: u64,
    /// Client rings of this core, summed over clients.
    pub rings: RingStats,
    /// Nanoseconds the core's loop spent in iterations that did work
    /// (`LoopView::busy`).
    pub loop_busy_ns: u64,
    /// AF_XDP figures of this core's socket ([`xdp_series`]); rendered as
    /// `lingerd_xdp_<name>_total{queue}`.
    pub xdp: PortSeries,
    /// DPDK figures of this core's queue (`dpdk_series`, feature `dpdk`);
    /// rendered as `lingerd_dpdk_<name>_total{queue}`.
    pub dpdk: PortSeries,
    /// DPDK figures of the whole device, published by core 0 only;
    /// rendered as `lingerd_dpdk_<name>_total` without a queue label.
    pub dpdk_device: PortSeries,
}

/// A port's statistics as the metrics show them: the one thing the
/// per-core shell needs to know about the port's `Stats` type.
pub trait PortFigures: Copy + std::fmt::Debug {
    /// Writes these figures into core `core`'s snapshot (figures of the
    /// whole device, which every core reads alike, only from core 0, so
    /// that they are rendered once).
    fn publish_into(&self, core: usize, snapshot: &mut CoreSnapshot);
}

impl PortFigures for AfXdpStats {
    fn publish_into(&self, _core: usize, snapshot: &mut CoreSnapshot) {
        snapshot.xdp = xdp_series(self);
    }
}

/// A port's statistics as [`CoreSnapshot::xdp`] series: the port's own
/// counters, then the kernel's `XDP_STATISTICS` of its socket.
pub fn xdp_series(s: &AfXdpStats) -> PortSeries {
    // Destructured so that a new counter does not compile until it is named.
    let AfXdpStats {
        port:
            PortCounters {
                rx_frames,
                tx_frames,
                tx_no_frame,
                wakeups,
                sleeps,
                loops,
            },
        xdp:
            XskStats {
                rx_dropped,
                rx_invalid_descs,
                tx_invalid_descs,
                rx_ring_full,
                rx_fill_ring_empty_descs,
                tx_ring_empty_descs,
            },
    } = *s;
    vec![
        (
            "rx_frames",
            "Frames taken off the AF_XDP RX rings.",
            rx_frames,
        ),
        (
            "tx_frames",
            "Frames handed to the AF_XDP TX rings.",
            tx_frames,
        ),
        (
            "tx_no_frame",
            "Times a frame was wanted for TX and every UMEM frame was in flight.",
            tx_no_frame,
        ),
        (
            "wakeups",
            "Syscalls made to wake the kernel (TX sendto, fill-ring poll).",
            wakeups,
        ),
        (
            "sleeps",
            "Times an idle dataplane loop slept in poll(2) (idle: sleep).",
            sleeps,
        ),
        ("loops", "Iterations of the dataplane loops.", loops),
        (
            "rx_dropped",
            "Kernel XDP_STATISTICS: received frames dropped for other reasons.",
            rx_dropped,
        ),
        (
            "rx_invalid_descs",
            "Kernel XDP_STATISTICS: received frames dropped for an invalid descriptor.",
            rx_invalid_descs,
        ),
        (
            "tx_invalid_descs",
            "Kernel XDP_STATISTICS: frames not sent for an invalid descriptor.",
            tx_invalid_descs,
        ),
        (
            "rx_ring_full",
            "Kernel XDP_STATISTICS: received frames dropped because the RX ring was full.",
            rx_ring_full,
        ),
        (
            "rx_fill_ring_empty_descs",
            "Kernel XDP_STATISTICS: times the kernel found the fill ring empty.",
            rx_fill_ring_empty_descs,
        ),
        (
            "tx_ring_empty_descs",
            "Kernel XDP_STATISTICS: times the kernel found the TX ring empty.",
            tx_ring_empty_descs,
        ),
    ]
}

/// A DPDK port's statistics as series: the port's own counters and its
/// queue's ([`CoreSnapshot::dpdk`]), and (with `device`) the device's
/// `rte_eth_stats` totals ([`CoreSnapshot::dpdk_device`]; empty without).
#[cfg(feature = "dpdk")]
pub fn dpdk_series(s: &DpdkStats, device: bool) -> (PortSeries, PortSeries) {
    // Destructured so that a new counter does not compile until it is named.
    let DpdkStats {
        port:
            DpdkCounters {
                rx_frames,
                rx_chained,
                tx_frames,
                tx_no_frame,
                sleeps,
                loops,
            },
        dev:
            EthStats {
                ipackets,
                opackets,
                ibytes,
                obytes,
                imissed,
                ierrors,
                oerrors,
                rx_nombuf,
                queue_ipackets,
                queue_opackets,
            },
    } = *s;
    let queue = vec![
        (
            "rx_frames",
            "Frames received from the DPDK queues and handed on.",
            rx_frames,
        ),
        (
            "rx_chained",
            "Multi-segment frames received and dropped unread.",
            rx_chained,
        ),
        ("tx_frames", "Frames queued for the DPDK PMD.", tx_frames),
        (
            "tx_no_frame",
            "Times a frame was wanted for TX and the mempool had no free mbuf.",
            tx_no_frame,
        ),
        (
            "sleeps",
            "Times an idle dataplane loop slept (idle: sleep).",
            sleeps,
        ),
        ("loops", "Iterations of the dataplane loops.", loops),
        (
            "queue_rx_packets",
            "Frames the device counted on lingerd's RX queues.",
            queue_ipackets,
        ),
        (
            "queue_tx_packets",
            "Frames the device counted on lingerd's TX queues.",
            queue_opackets,
        ),
    ];
    if !device {
        return (queue, Vec::new());
    }
    let dev = vec![
        (
            "rx_packets",
            "rte_eth_stats: frames received by the device.",
            ipackets,
        ),
        (
            "tx_packets",
            "rte_eth_stats: frames sent by the device.",
            opackets,
        ),
        ("rx_bytes", "rte_eth_stats: bytes received.", ibytes),
        ("tx_bytes", "rte_eth_stats: bytes sent.", obytes),
        (
            "rx_missed",
            "rte_eth_stats: frames dropped for lack of room in an RX queue.",
            imissed,
        ),
        ("rx_errors", "rte_eth_stats: receive errors.", ierrors),
        ("tx_errors", "rte_eth_stats: send errors.", oerrors),
        (
            "rx_nombuf",
            "rte_eth_stats: RX mbuf allocation failures.",
            rx_nombuf,
        ),
    ];
    (queue, dev)
}

#[cfg(feature = "dpdk")]
impl PortFigures for DpdkStats {
    fn publish_into(&self, core: usize, snapshot: &mut CoreSnapshot) {
        (snapshot.dpdk, snapshot.dpdk_device) = dpdk_series(self, core == 0);
    }
}

/// How a series is typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (rendered with `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One scalar figure of one core's snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// Its family, without `lingerd_` and `_total`.
    pub family: Cow<'static, str>,
    /// The family's help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Its label beyond `queue`, `(key, value)`.
    pub label: Option<(&'static str, &'static str)>,
    /// Whether it belongs to the queue (labelled `queue`) rather than to
    /// the whole device (published by one core, unlabelled).
    pub per_queue: bool,
    /// The value.
    pub value: u64,
}

impl Series {
    fn new(
        family: impl Into<Cow<'static, str>>,
        help: &'static str,
        kind: Kind,
        value: u64,
    ) -> Series {
        Series {
            family: family.into(),
            help,
            kind,
            label: None,
            per_queue: true,
            value,
        }
    }

    fn labelled(mut self, key: &'static str, value: &'static str) -> Series {
        self.label = Some((key, value));
        self
    }

    /// The name `lingerd ctl stats` shows: the family, and the label's
    /// value in lower case with `_` for `-` (`connections_time_wait`).
    pub fn stat_name(&self) -> String {
        match self.label {
            None => self.family.clone().into_owned(),
            Some((_, v)) => format!(
                "{}_{}",
                self.family,
                v.to_ascii_lowercase().replace('-', "_")
            ),
        }
    }
}

/// A close histogram: its family, label, help.
pub struct HistogramSpec {
    /// The family, without `lingerd_` and the unit (`_seconds`).
    pub family: &'static str,
    /// Its label beyond `queue`.
    pub label: Option<(&'static str, &'static str)>,
    /// The family's help text.
    pub help: &'static str,
    /// Where the core's counters keep it.
    pub of: fn(&Counters) -> &Log2Histogram,
}

/// The close histograms of every core, rendered in seconds.
pub const HISTOGRAMS: [HistogramSpec; 3] = [
    HistogramSpec {
        family: "close_to_wire",
        label: Some(("frame", "rst")),
        help: "Close request to its RST or FIN handed to the port, by frame: aborts, hard and \
               bulk closes, closes with unread data (rst, RST pacing included); graceful and \
               linger closes (fin, after any queued data).",
        of: |c| &c.close_rst_wire,
    },
    HistogramSpec {
        family: "close_to_wire",
        label: Some(("frame", "fin")),
        help: "",
        of: |c| &c.close_fin_wire,
    },
    HistogramSpec {
        family: "linger_rst_lateness",
        label: None,
        help: "How long after its deadline a linger (or close_matching deadline=) RST was \
               handed to the port.",
        of: |c| &c.linger_rst_late,
    },
];

/// Everything one core's snapshot says, as scalar series (the histograms
/// are [`HISTOGRAMS`]), in the order `/metrics` shows their families.
pub fn series(s: &CoreSnapshot) -> Vec<Series> {
    use Kind::{Counter, Gauge};
    let mut out = Vec::with_capacity(128);
    let fields = s.counters.fields();
    for f in fields.iter().filter(|f| f.family.is_none()) {
        out.push(Series::new(f.name, f.help, Counter, f.value));
    }
    for (family, help) in FAMILIES {
        for f in &fields {
            if let Some((fam, key, value)) = f.family
                && fam == family
            {
                out.push(Series::new(family, help, Counter, f.value).labelled(key, value));
            }
        }
    }
    for e in lingerd_dataplane::wire::Error::ALL {
        out.push(
            Series::new(
                "rx_parse_errors",
                "Frames dropped by parse errors, by cause.",
                Counter,
                s.counters.rx_parse_errors[e.index()],
            )
            .labelled("cause", e.as_str()),
        );
    }
    for st in State::ALL {
        out.push(
            Series::new(
                "connections",
                "Connection records by TCP state (listeners included), from the last full \
                 census of the table.",
                Gauge,
                s.states[st as usize],
            )
            .labelled("state", st.name()),
        );
    }
    for (name, help, v) in [
        (
            "timers_armed",
            "Connection timers armed (linger, orphan, TIME-WAIT, retransmission).",
            s.timers_armed,
        ),
        (
            "linger_timers_armed",
            "Connections with a linger deadline armed (SO_LINGER closes waiting for their FIN \
             to be acknowledged), from the last full census of the table.",
            s.linger_timers_armed,
        ),
        (
            "rsts_paced_waiting",
            "RSTs of our own closes waiting in the pacing queue for a token \
             (close.max_rst_per_sec).",
            s.rsts_paced_waiting,
        ),
        (
            "rst_paced_wait_max_ms",
            "The longest any paced RST waited for its token, in milliseconds.",
            s.rst_paced_wait_max_ms,
        ),
        (
            "reassembly_budget_bytes",
            "Memory of the reassembly pool (out-of-order segments), bytes.",
            s.reasm.budget_bytes,
        ),
        (
            "reassembly_per_connection_bytes",
            "Reassembly pool memory one connection may hold \
             (tcp.reassembly_per_connection in whole chunks), bytes.",
            s.reasm.per_connection_bytes,
        ),
        (
            "reassembly_used_bytes",
            "Reassembly pool memory held by out-of-order queues (whole chunks), bytes.",
            s.reasm.used_bytes,
        ),
        (
            "reassembly_held_bytes",
            "Out-of-order payload bytes waiting for the gap before them to fill.",
            s.reasm.held_bytes,
        ),
        (
            "reassembly_queues",
            "Connections holding out-of-order data or an out-of-order FIN.",
            s.reasm.queues,
        ),
    ] {
        out.push(Series::new(name, help, Gauge, v));
    }
    out.push(Series::new(
        "loop_busy_ns",
        "Nanoseconds the core's loop spent in iterations that received, sent or completed \
         something: its rate over wall time is the core's load, which a busy-polling core \
         hides (top shows 100% either way).",
        Counter,
        s.loop_busy_ns,
    ));
    let r = &s.rings;
    for (name, help, v) in [
        (
            "ring_requests",
            "Request entries taken from client rings.",
            r.requests,
        ),
        (
            "ring_invalid_requests",
            "Request entries answered EINVAL (malformed, bad chunk).",
            r.invalid,
        ),
        (
            "ring_completions",
            "Completion entries published to client rings.",
            r.completions,
        ),
        (
            "ring_full",
            "Times request intake paused because a completion ring was full.",
            r.backpressure,
        ),
        (
            "ring_refused_requests",
            "Requests answered EPERM: on handles the client does not own.",
            r.refused,
        ),
        (
            "ring_hostile_indexes",
            "Client ring heads or tails found out of range (clamped, never trusted).",
            r.hostile_indexes,
        ),
    ] {
        out.push(Series::new(name, help, Counter, v));
    }
    for (port, figures, per_queue) in [
        ("xdp", &s.xdp, true),
        ("dpdk", &s.dpdk, true),
        ("dpdk", &s.dpdk_device, false),
    ] {
        for &(name, help, v) in figures {
            let mut x = Series::new(format!("{port}_{name}"), help, Counter, v);
            x.per_queue = per_queue;
            out.push(x);
        }
    }
    out
}

/// Where cores publish and scrapes read: one slot per core.
#[derive(Debug)]
pub struct MetricsHub {
    cores: Vec<Mutex<CoreSnapshot>>,
    /// The NIC queue of each core: its `queue` label.
    queues: Vec<u32>,
}

impl MetricsHub {
    /// A hub for `cores` cores serving queues `0..cores`, all zero.
    pub fn new(cores: usize) -> MetricsHub {
        MetricsHub::with_queues((0..cores as u32).collect())
    }

    /// A hub with one core per entry of `queues` (each core's NIC queue,
    /// by core index), all zero.
    pub fn with_queues(queues: Vec<u32>) -> MetricsHub {
        MetricsHub {
            cores: queues
                .iter()
                .map(|_| Mutex::new(CoreSnapshot::default()))
                .collect(),
            queues,
        }
    }

    /// Core `core` publishes its latest figures (ignored for an unknown core).
    pub fn publish(&self, core: usize, snapshot: CoreSnapshot) {
        if let Some(slot) = self.cores.get(core) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        }
    }

    /// Every core's latest figures, by core (for `lingerd ctl stats`).
    pub fn snapshots(&self) -> Vec<CoreSnapshot> {
        self.cores
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// The text exposition of every core's latest figures.
    pub fn render(&self) -> String {
        let snaps: Vec<(u32, CoreSnapshot)> =
            self.queues.iter().copied().zip(self.snapshots()).collect();
        render(snaps)
    }
}

/// The snapshots a scrape renders, each with its queue.
#[derive(Debug)]
struct Scrape(Vec<(u32, CoreSnapshot)>);

/// A family's samples: label sets and values.
type Samples = Vec<(Vec<(&'static str, String)>, u64)>;

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Families in first-seen order, each with every queue's samples.
        let mut families: Vec<(Series, Samples)> = Vec::new();
        for (queue, snap) in &self.0 {
            for x in series(snap) {
                let mut labels = Vec::with_capacity(2);
                if x.per_queue {
                    labels.push(("queue", queue.to_string()));
                }
                if let Some((k, v)) = x.label {
                    labels.push((k, v.to_owned()));
                }
                let i = match families.iter().position(|(f, _)| f.family == x.family) {
                    Some(i) => i,
                    None => {
                        families.push((x.clone(), Vec::new()));
                        families.len() - 1
                    }
                };
                let samples = &mut families[i].1;
                match samples.iter_mut().find(|(l, _)| *l == labels) {
                    // Device figures: published by one core, summed.
                    Some(s) => s.1 = s.1.saturating_add(x.value),
                    None => samples.push((labels, x.value)),
                }
            }
        }
        for (x, samples) in &families {
            let kind = match x.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(&x.family, x.help, None, kind)?;
            if let [(labels, v)] = samples.as_slice()
                && labels.is_empty()
            {
                // A device figure: one sample, no braces.
                encode_value(family, x.kind, *v)?;
                continue;
            }
            for (labels, v) in samples {
                encode_value(family.encode_family(labels)?, x.kind, *v)?;
            }
        }
        let mut i = 0;
        while let Some(h) = HISTOGRAMS.get(i) {
            // The specs of one family are adjacent; the first has the help.
            let n = HISTOGRAMS[i..]
                .iter()
                .take_while(|s| s.family == h.family)
                .count();
            let mut family = encoder.encode_descriptor(
                h.family,
                h.help,
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (queue, snap) in &self.0 {
                for spec in &HISTOGRAMS[i..i + n] {
                    let mut labels = vec![("queue", queue.to_string())];
                    if let Some((k, v)) = spec.label {
                        labels.push((k, v.to_owned()));
                    }
                    let hist = (spec.of)(&snap.counters);
                    let buckets: Vec<(f64, u64)> = hist
                        .buckets
                        .iter()
                        .enumerate()
                        .map(|(b, &count)| {
                            let bound =
                                Log2Histogram::bound_ns(b).map_or(f64::MAX, |ns| ns as f64 / 1e9);
                            (bound, count)
                        })
                        .collect();
                    family
                        .encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(
                            hist.sum_ns as f64 / 1e9,
                            hist.count(),
                            &buckets,
                            None,
                        )?;
                }
            }
            i += n;
        }
        Ok(())
    }
}

/// Writes one counter or gauge value.
fn encode_value(mut m: MetricEncoder<'_>, kind: Kind, v: u64) -> Result<(), std::fmt::Error> {
    match kind {
        Kind::Counter => ConstCounter::new(v).encode(m),
        Kind::Gauge => m.encode_gauge(&v),
    }
}

/// Renders snapshots, each with its queue, in the OpenMetrics text format.
pub fn render(snaps: Vec<(u32, CoreSnapshot)>) -> String {
    let mut registry = Registry::with_prefix("lingerd");
    registry.register_collector(Box::new(Scrape(snaps)));
    let mut out = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail; an error would be ours.
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// The `/metrics` endpoint: a thread answering scrapes until [`stop`](Self::stop).
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    thread: StoppableThread,
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks one) and serves `hub`.
    pub fn start(addr: SocketAddr, hub: Arc<MetricsHub>) -> std::io::Result<MetricsServer> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not an IP listener"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = StoppableThread::spawn("lingerd-metrics", stop, move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let response = if req.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        CONTENT_TYPE.as_bytes(),
                    )
                    .expect("static header is valid");
                    tiny_http::Response::from_string(hub.render()).with_header(header)
                } else {
                    tiny_http::Response::from_string("not found: try /metrics\n")
                        .with_status_code(404)
                };
                let _ = req.respond(response);
            }
        })?;
        Ok(MetricsServer { addr, thread })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread (within about 100 ms); dropping does the same.
    pub fn stop(mut self) {
        self.thread.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// The family a sample line belongs to, as `# TYPE` names it.
    fn family_of(sample: &str, text: &str) -> String {
        let name = sample.split(['{', ' ']).next().unwrap();
        for suffix in ["_total", "_bucket", "_sum", "_count", ""] {
            if let Some(base) = name.strip_suffix(suffix)
                && text.contains(&format!("# TYPE {base} "))
            {
                return base.to_owned();
            }
        }
        panic!("{name} has no TYPE in\n{text}");
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }

    #[test]
    fn every_series_is_per_queue_and_outcomes_reasons_states_are_labels() {
        let hub = MetricsHub::with_queues(vec![3, 7]);
        let mut a = CoreSnapshot::default();
        a.counters.rst_abort = 3;
        a.counters.rst_linger_expired = 2;
        a.counters.closes_graceful = 1;
        a.states[State::TimeWait as usize] = 5;
        a.timers_armed = 7;
        a.linger_timers_armed = 3;
        a.reasm.budget_bytes = 4 << 20;
        a.reasm.per_connection_bytes = 128 << 10;
        a.counters.sack_retransmits = 6;
        a.rsts_paced_waiting = 11;
        a.rst_paced_wait_max_ms = 40;
        a.counters.rst_paced_wait_ms = 100;
        a.rings.backpressure = 2;
        a.loop_busy_ns = 1_500;
        a.xdp = vec![("rx_ring_full", "RX ring full.", 4)];
        hub.publish(0, a.clone());
        a.rst_paced_wait_max_ms = 25;
        a.counters.rst_abort = 9;
        hub.publish(1, a);
        hub.publish(9, CoreSnapshot::default());
        let text = hub.render();
        for line in [
            "lingerd_rst_sent_total{queue=\"3\",reason=\"abort\"} 3",
            "lingerd_rst_sent_total{queue=\"7\",reason=\"abort\"} 9",
            "lingerd_rst_sent_total{queue=\"7\",reason=\"linger_expired\"} 2",
            "lingerd_rst_sent_total{queue=\"7\",reason=\"responder\"} 0",
            "lingerd_closes_total{queue=\"3\",outcome=\"graceful\"} 1",
            "lingerd_connections{queue=\"7\",state=\"TIME-WAIT\"} 5",
            "lingerd_timers_armed{queue=\"3\"} 7",
            "lingerd_linger_timers_armed{queue=\"7\"} 3",
            "lingerd_reassembly_budget_bytes{queue=\"3\"} 4194304",
            "lingerd_reassembly_per_connection_bytes{queue=\"3\"} 131072",
            "lingerd_sack_retransmits_total{queue=\"3\"} 6",
            "lingerd_rsts_paced_waiting{queue=\"3\"} 11",
            "lingerd_rst_paced_wait_max_ms{queue=\"3\"} 40",
            "lingerd_rst_paced_wait_max_ms{queue=\"7\"} 25",
            "lingerd_rst_paced_wait_ms_total{queue=\"7\"} 100",
            "lingerd_ring_full_total{queue=\"3\"} 2",
            "lingerd_loop_busy_ns_total{queue=\"3\"} 1500",
            "lingerd_xdp_rx_ring_full_total{queue=\"7\"} 4",
            "lingerd_rx_parse_errors_total{queue=\"3\",cause=\"checksum\"} 0",
            "# TYPE lingerd_rst_sent counter",
            "# TYPE lingerd_connections gauge",
            "# TYPE lingerd_close_to_wire_seconds histogram",
        ] {
            has(&text, line);
        }
        // The outcomes are exactly the five of the close contract.
        let outcomes: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("lingerd_closes_total{queue=\"3\""))
            .map(|l| {
                l.split("outcome=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                "graceful",
                "background",
                "aborted_linger",
                "aborted",
                "reset_by_peer"
            ]
        );
        // No family per outcome or reason, no pre-summed copy of a state.
        for gone in [
            "lingerd_rst_abort",
            "lingerd_closes_graceful",
            "lingerd_rst_linger_expired",
            "lingerd_abort_on_close_unread",
            "lingerd_time_wait_connections",
        ] {
            assert!(!text.contains(gone), "{gone} in\n{text}");
        }
        // Every sample is one queue's, and its family is typed.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.contains("queue=\""), "no queue label: {l}");
            family_of(l, &text);
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn histograms_are_cumulative_and_in_seconds() {
        let mut a = CoreSnapshot::default();
        for ns in [500, 3_000_000, 100_000_000_000] {
            a.counters.close_rst_wire.record_ns(ns);
        }
        a.counters.linger_rst_late.record_ns(1_500_000);
        let text = render(vec![(0, a)]);
        let rst = |rest: &str| format!("lingerd_close_to_wire_seconds_{rest}");
        for line in [
            rst("count{queue=\"0\",frame=\"rst\"} 3"),
            rst("sum{queue=\"0\",frame=\"rst\"} 100.0030005"),
            rst("bucket{le=\"0.000001024\",queue=\"0\",frame=\"rst\"} 1"),
            rst("bucket{le=\"0.004194304\",queue=\"0\",frame=\"rst\"} 2"),
            rst("bucket{le=\"34.359738368\",queue=\"0\",frame=\"rst\"} 2"),
            rst("bucket{le=\"+Inf\",queue=\"0\",frame=\"rst\"} 3"),
            rst("count{queue=\"0\",frame=\"fin\"} 0"),
            "lingerd_linger_rst_lateness_seconds_count{queue=\"0\"} 1".to_owned(),
            "lingerd_linger_rst_lateness_seconds_bucket{le=\"0.001048576\",queue=\"0\"} 0"
                .to_owned(),
            "lingerd_linger_rst_lateness_seconds_bucket{le=\"0.002097152\",queue=\"0\"} 1"
                .to_owned(),
            "# UNIT lingerd_linger_rst_lateness_seconds seconds".to_owned(),
        ] {
            has(&text, &line);
        }
    }

    #[test]
    fn ctl_stats_names_are_unique_and_cover_every_series() {
        let snap = CoreSnapshot {
            xdp: xdp_series(&AfXdpStats::default()),
            ..CoreSnapshot::default()
        };
        let list = series(&snap);
        let mut names: Vec<String> = list.iter().map(Series::stat_name).collect();
        assert!(names.contains(&"rst_sent_abort".to_owned()));
        assert!(names.contains(&"closes_aborted_linger".to_owned()));
        assert!(names.contains(&"connections_time_wait".to_owned()));
        assert!(names.contains(&"xdp_rx_frames".to_owned()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "unique");
    }

    #[test]
    fn xdp_series_are_typed_and_complete() {
        let mut a = AfXdpStats::default();
        a.port.rx_frames = 10;
        a.port.tx_frames = 4;
        a.port.loops = 100;
        a.xdp.rx_fill_ring_empty_descs = 2;
        let series = xdp_series(&a);
        assert_eq!(series.len(), 12, "every port counter and kernel statistic");
        let hub = MetricsHub::new(2);
        for core in 0..2 {
            let mut snap = CoreSnapshot::default();
            a.publish_into(core, &mut snap);
            hub.publish(core, snap);
        }
        let text = hub.render();
        for (name, _, _) in &series {
            let family = format!("lingerd_xdp_{name}");
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(
                text.contains(&format!("# TYPE {family} counter")),
                "{family}"
            );
        }
        for line in [
            "lingerd_xdp_rx_frames_total{queue=\"0\"} 10",
            "lingerd_xdp_tx_frames_total{queue=\"1\"} 4",
            "lingerd_xdp_loops_total{queue=\"1\"} 100",
            "lingerd_xdp_rx_fill_ring_empty_descs_total{queue=\"0\"} 2",
            "lingerd_xdp_rx_ring_full_total{queue=\"0\"} 0",
        ] {
            has(&text, line);
        }
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn dpdk_device_figures_are_unlabelled_and_counted_once() {
        let mut a = DpdkStats::default();
        a.port.rx_frames = 10;
        a.dev.ipackets = 30;
        a.dev.queue_ipackets = 10;
        let hub = MetricsHub::with_queues(vec![0, 1]);
        for core in 0..2 {
            let mut snap = CoreSnapshot::default();
            a.publish_into(core, &mut snap);
            assert_eq!(snap.dpdk.len(), 8);
            assert_eq!(snap.dpdk_device.len(), if core == 0 { 8 } else { 0 });
            hub.publish(core, snap);
        }
        let text = hub.render();
        for line in [
            "lingerd_dpdk_rx_frames_total{queue=\"1\"} 10",
            "lingerd_dpdk_queue_rx_packets_total{queue=\"0\"} 10",
            "lingerd_dpdk_rx_packets_total 30",
            "# TYPE lingerd_dpdk_rx_nombuf counter",
        ] {
            has(&text, line);
        }
        assert!(!text.contains("lingerd_xdp_"), "{text}");
    }

    #[test]
    fn served_over_http_as_openmetrics() {
        let hub = Arc::new(MetricsHub::with_queues(vec![4]));
        let mut s = CoreSnapshot::default();
        s.counters.challenge_acks = 42;
        hub.publish(0, s);
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), hub).unwrap();
        let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        conn.read_to_string(&mut body).unwrap();
        assert!(
            body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
            "{body}"
        );
        assert!(
            body.contains(&format!("Content-Type: {CONTENT_TYPE}")),
            "{body}"
        );
        assert!(body.contains("lingerd_challenge_acks_total{queue=\"4\"} 42"));
        server.stop();
    }
}
