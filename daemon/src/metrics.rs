//! Prometheus `/metrics`: per-core snapshots summed into the text exposition
//! format, served from a plain thread on the configured local address.
//!
//! It owns the metric names beyond the engine's own counters (states,
//! timers, rings, the port's: AF_XDP or DPDK, through [`PortFigures`]),
//! the rendering and the HTTP endpoint. Cores never
//! block on it: each core publishes a copy of its figures now and then into
//! its own slot ([`MetricsHub::publish`]), and a scrape sums the latest
//! copies. It may not touch engines or rings directly.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lingerd_dataplane::engine::counters::Counters;
use lingerd_dataplane::port::afxdp::{AfXdpStats, PortCounters, XskStats};
#[cfg(feature = "dpdk")]
use lingerd_dataplane::port::dpdk::{DpdkCounters, DpdkStats, EthStats};
use lingerd_dataplane::rings::RingStats;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::reasm::ReasmUsage;

use crate::stoppable::StoppableThread;

/// One core's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Engine counters.
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
    /// AF_XDP figures as `(name, help, value)`, counters only
    /// ([`xdp_series`]); rendered as `lingerd_xdp_<name>_total`.
    pub xdp: Vec<(&'static str, &'static str, u64)>,
    /// DPDK figures, likewise (`dpdk_series`, feature `dpdk`); rendered as
    /// `lingerd_dpdk_<name>_total`.
    pub dpdk: Vec<(&'static str, &'static str, u64)>,
}

/// A port's statistics as the metrics show them: the one thing the
/// per-core shell needs to know about the port's `Stats` type.
pub trait PortFigures: Copy + std::fmt::Debug {
    /// Writes these figures into core `core`'s snapshot (figures of the
    /// whole device, which every core reads alike, only from core 0, so
    /// that the sum over cores counts them once).
    fn publish_into(&self, core: usize, snapshot: &mut CoreSnapshot);
}

impl PortFigures for AfXdpStats {
    fn publish_into(&self, _core: usize, snapshot: &mut CoreSnapshot) {
        snapshot.xdp = xdp_series(self);
    }
}

/// A port's statistics as [`CoreSnapshot::xdp`] series: the port's own
/// counters, then the kernel's `XDP_STATISTICS` of its socket.
pub fn xdp_series(s: &AfXdpStats) -> Vec<(&'static str, &'static str, u64)> {
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

/// A DPDK port's statistics as [`CoreSnapshot::dpdk`] series: the port's
/// own counters and its queue's, then (with `device`) the device's
/// `rte_eth_stats` totals.
#[cfg(feature = "dpdk")]
pub fn dpdk_series(s: &DpdkStats, device: bool) -> Vec<(&'static str, &'static str, u64)> {
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
    let mut out = vec![
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
    if device {
        out.extend([
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
        ]);
    }
    out
}

#[cfg(feature = "dpdk")]
impl PortFigures for DpdkStats {
    fn publish_into(&self, core: usize, snapshot: &mut CoreSnapshot) {
        snapshot.dpdk = dpdk_series(self, core == 0);
    }
}

/// Adds each `(name, help, value)` of `from` to the series of that name in
/// `into` (appended when new).
fn sum_series(
    into: &mut Vec<(&'static str, &'static str, u64)>,
    from: &[(&'static str, &'static str, u64)],
) {
    for &(name, help, v) in from {
        match into.iter_mut().find(|x| x.0 == name) {
            Some(x) => x.2 += v,
            None => into.push((name, help, v)),
        }
    }
}

/// Where cores publish and scrapes read: one slot per core.
#[derive(Debug)]
pub struct MetricsHub {
    cores: Vec<Mutex<CoreSnapshot>>,
}

impl MetricsHub {
    /// A hub for `cores` cores, all zero.
    pub fn new(cores: usize) -> MetricsHub {
        MetricsHub {
            cores: (0..cores)
                .map(|_| Mutex::new(CoreSnapshot::default()))
                .collect(),
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

    /// The text exposition of every core's latest figures, summed.
    pub fn render(&self) -> String {
        let snaps: Vec<CoreSnapshot> = self
            .cores
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        render(&snaps)
    }
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP lingerd_{name} {help}");
    let _ = writeln!(out, "# TYPE lingerd_{name} {kind}");
}

/// Renders snapshots (summed across cores) in the Prometheus text format.
pub fn render(snaps: &[CoreSnapshot]) -> String {
    let mut total = Counters::default();
    let mut states = [0u64; 11];
    let mut timers = 0;
    let mut linger_timers = 0;
    let mut rsts_waiting = 0;
    let mut rst_wait_max = 0;
    let mut rings = RingStats::default();
    let mut reasm = ReasmUsage::default();
    let mut xdp: Vec<(&'static str, &'static str, u64)> = Vec::new();
    let mut dpdk: Vec<(&'static str, &'static str, u64)> = Vec::new();
    for s in snaps {
        total.add(&s.counters);
        for (a, b) in states.iter_mut().zip(s.states) {
            *a += b;
        }
        timers += s.timers_armed;
        linger_timers += s.linger_timers_armed;
        rsts_waiting += s.rsts_paced_waiting;
        rst_wait_max = rst_wait_max.max(s.rst_paced_wait_max_ms);
        rings.add(s.rings);
        reasm.budget_bytes += s.reasm.budget_bytes;
        reasm.used_bytes += s.reasm.used_bytes;
        reasm.held_bytes += s.reasm.held_bytes;
        reasm.queues += s.reasm.queues;
        sum_series(&mut xdp, &s.xdp);
        sum_series(&mut dpdk, &s.dpdk);
    }
    let mut out = String::with_capacity(8 * 1024);
    for (name, help, value) in total.fields() {
        family(&mut out, &format!("{name}_total"), help, "counter");
        let _ = writeln!(out, "lingerd_{name}_total {value}");
    }
    family(
        &mut out,
        "rx_parse_errors_total",
        "Frames dropped by parse errors, by cause.",
        "counter",
    );
    for e in lingerd_dataplane::wire::Error::ALL {
        let _ = writeln!(
            out,
            "lingerd_rx_parse_errors_total{{cause=\"{}\"}} {}",
            e.as_str(),
            total.rx_parse_errors[e.index()]
        );
    }
    family(
        &mut out,
        "connections",
        "Connection records by TCP state (listeners included).",
        "gauge",
    );
    for st in State::ALL {
        let _ = writeln!(
            out,
            "lingerd_connections{{state=\"{}\"}} {}",
            st.name(),
            states[st as usize]
        );
    }
    family(
        &mut out,
        "time_wait_connections",
        "Connections in TIME-WAIT.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "lingerd_time_wait_connections {}",
        states[State::TimeWait as usize]
    );
    family(
        &mut out,
        "timers_armed",
        "Connection timers armed (linger, orphan, TIME-WAIT, retransmission).",
        "gauge",
    );
    let _ = writeln!(out, "lingerd_timers_armed {timers}");
    family(
        &mut out,
        "linger_timers_armed",
        "Connections with a linger deadline armed (SO_LINGER closes waiting for their FIN \
         to be acknowledged), from the last full census of the table.",
        "gauge",
    );
    let _ = writeln!(out, "lingerd_linger_timers_armed {linger_timers}");
    family(
        &mut out,
        "rsts_paced_waiting",
        "RSTs of our own closes waiting in the pacing queues for a token \
         (close.max_rst_per_sec).",
        "gauge",
    );
    let _ = writeln!(out, "lingerd_rsts_paced_waiting {rsts_waiting}");
    family(
        &mut out,
        "rst_paced_wait_max_ms",
        "The longest any paced RST waited for its token, in milliseconds (highest core).",
        "gauge",
    );
    let _ = writeln!(out, "lingerd_rst_paced_wait_max_ms {rst_wait_max}");
    for (name, help, v) in [
        (
            "reassembly_budget_bytes",
            "Memory of the per-core reassembly pools (out-of-order segments), bytes.",
            reasm.budget_bytes,
        ),
        (
            "reassembly_used_bytes",
            "Reassembly pool memory held by out-of-order queues (whole chunks), bytes.",
            reasm.used_bytes,
        ),
        (
            "reassembly_held_bytes",
            "Out-of-order payload bytes waiting for the gap before them to fill.",
            reasm.held_bytes,
        ),
        (
            "reassembly_queues",
            "Connections holding out-of-order data or an out-of-order FIN.",
            reasm.queues,
        ),
    ] {
        family(&mut out, name, help, "gauge");
        let _ = writeln!(out, "lingerd_{name} {v}");
    }
    for (name, help, v) in [
        (
            "ring_requests_total",
            "Request entries taken from client rings.",
            rings.requests,
        ),
        (
            "ring_invalid_requests_total",
            "Request entries answered EINVAL (malformed, bad chunk).",
            rings.invalid,
        ),
        (
            "ring_completions_total",
            "Completion entries published to client rings.",
            rings.completions,
        ),
        (
            "ring_full_total",
            "Times request intake paused because a completion ring was full.",
            rings.backpressure,
        ),
        (
            "ring_refused_requests_total",
            "Requests answered EPERM: on handles the client does not own.",
            rings.refused,
        ),
        (
            "ring_hostile_indexes_total",
            "Client ring heads or tails found out of range (clamped, never trusted).",
            rings.hostile_indexes,
        ),
    ] {
        family(&mut out, name, help, "counter");
        let _ = writeln!(out, "lingerd_{name} {v}");
    }
    for (port, series) in [("xdp", xdp), ("dpdk", dpdk)] {
        for (name, help, v) in series {
            family(&mut out, &format!("{port}_{name}_total"), help, "counter");
            let _ = writeln!(out, "lingerd_{port}_{name}_total {v}");
        }
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
                        &b"text/plain; version=0.0.4"[..],
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

    #[test]
    fn cores_are_summed_and_every_family_is_typed() {
        let hub = MetricsHub::new(2);
        let mut a = CoreSnapshot::default();
        a.counters.rst_abort = 3;
        a.counters.closes_graceful = 1;
        a.states[State::TimeWait as usize] = 5;
        a.timers_armed = 7;
        a.linger_timers_armed = 3;
        a.reasm.budget_bytes = 4 << 20;
        a.reasm.used_bytes = 2048;
        a.reasm.held_bytes = 1460;
        a.reasm.queues = 1;
        a.rsts_paced_waiting = 11;
        a.rst_paced_wait_max_ms = 40;
        a.counters.rst_paced_wait_ms = 100;
        a.rings.backpressure = 2;
        a.xdp = vec![("rx_ring_full", "RX ring full.", 4)];
        hub.publish(0, a.clone());
        a.rst_paced_wait_max_ms = 25;
        hub.publish(1, a);
        hub.publish(9, CoreSnapshot::default());
        let text = hub.render();
        for line in [
            "lingerd_rst_abort_total 6",
            "lingerd_closes_graceful_total 2",
            "lingerd_connections{state=\"TIME-WAIT\"} 10",
            "lingerd_time_wait_connections 10",
            "lingerd_timers_armed 14",
            "lingerd_linger_timers_armed 6",
            "lingerd_reassembly_budget_bytes 8388608",
            "lingerd_reassembly_used_bytes 4096",
            "lingerd_reassembly_held_bytes 2920",
            "lingerd_reassembly_queues 2",
            "lingerd_rsts_paced_waiting 22",
            "lingerd_rst_paced_wait_max_ms 40",
            "lingerd_rst_paced_wait_ms_total 200",
            "lingerd_ring_full_total 4",
            "lingerd_xdp_rx_ring_full_total 8",
            "lingerd_rx_parse_errors_total{cause=\"checksum\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a family with HELP and TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
    }

    #[test]
    fn xdp_series_are_summed_typed_and_complete() {
        let mut a = AfXdpStats::default();
        a.port.rx_frames = 10;
        a.port.tx_frames = 4;
        a.port.loops = 100;
        a.xdp.rx_fill_ring_empty_descs = 2;
        let series = xdp_series(&a);
        assert_eq!(series.len(), 12, "every port counter and kernel statistic");
        let hub = MetricsHub::new(2);
        for core in 0..2 {
            hub.publish(
                core,
                CoreSnapshot {
                    xdp: series.clone(),
                    ..CoreSnapshot::default()
                },
            );
        }
        let text = hub.render();
        for (name, _, _) in &series {
            let family = format!("lingerd_xdp_{name}_total");
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(
                text.contains(&format!("# TYPE {family} counter")),
                "{family}"
            );
        }
        for line in [
            "lingerd_xdp_rx_frames_total 20",
            "lingerd_xdp_tx_frames_total 8",
            "lingerd_xdp_loops_total 200",
            "lingerd_xdp_rx_fill_ring_empty_descs_total 4",
            "lingerd_xdp_rx_ring_full_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn dpdk_series_count_the_device_once() {
        let mut a = DpdkStats::default();
        a.port.rx_frames = 10;
        a.dev.ipackets = 30;
        a.dev.queue_ipackets = 10;
        let hub = MetricsHub::new(2);
        for core in 0..2 {
            let mut snap = CoreSnapshot::default();
            a.publish_into(core, &mut snap);
            assert_eq!(snap.dpdk.len(), if core == 0 { 16 } else { 8 });
            hub.publish(core, snap);
        }
        let text = hub.render();
        for line in [
            "lingerd_dpdk_rx_frames_total 20",
            "lingerd_dpdk_queue_rx_packets_total 20",
            "lingerd_dpdk_rx_packets_total 30",
            "# TYPE lingerd_dpdk_rx_nombuf_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("lingerd_xdp_"), "{text}");
    }

    #[test]
    fn served_over_http() {
        let hub = Arc::new(MetricsHub::new(1));
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
        assert!(body.contains("lingerd_challenge_acks_total 42"));
        server.stop();
    }
}
