//! The generator's report: a run's [`Results`] as a human table, as one JSON
//! object, and as an SVG (opens and closes over time, latency CDFs).
//!
//! It owns the figures' names and units and the one file it is asked to
//! write; it starts nothing and measures nothing.

use std::path::Path;

use anyhow::Result;
use comfy_table::{Table, presets};
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

use super::run::{BUCKET, Results};
use crate::lab::plot::{self, Figure, Panel, Series};

/// p50, p99, p99.9 and max of `h` in µs (`None` when empty).
pub fn percentiles_us(h: &Histogram<u64>) -> Option<[f64; 4]> {
    if h.is_empty() {
        return None;
    }
    let us = |ns: u64| ns as f64 / 1e3;
    Some([
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
    ])
}

fn latencies(r: &Results) -> [(&'static str, &'static str, &Histogram<u64>); 3] {
    [
        ("connect", "SYN → established", &r.latencies.connect),
        ("response", "request → answer", &r.latencies.response),
        ("close", "close → confirmed at the wire", &r.latencies.close),
    ]
}

/// An engine's non-zero counters, `(name, value)`, in declaration order.
pub fn nonzero(c: &lingerd_dataplane::engine::counters::Counters) -> Vec<(&'static str, u64)> {
    c.fields()
        .into_iter()
        .filter(|f| f.value != 0)
        .map(|f| (f.name, f.value))
        .collect()
}

/// The figures as one JSON object (`extra` first).
pub fn json(r: &Results, connections: usize, extra: &[(&str, Value)]) -> Value {
    let c = &r.counts;
    let mut m = Map::new();
    for (k, v) in extra {
        m.insert((*k).to_owned(), v.clone());
    }
    let fields = json!({
        "connections": connections,
        "issued": c.issued,
        "established": c.established,
        "answered": c.answered,
        "unanswered": c.unanswered,
        "bytes_received": c.bytes_received,
        "opens_per_s": r.opens_per_s().round(),
        "closes_sent": c.closes_sent,
        "confirmed": c.confirmed,
        "closes_per_s": r.closes_per_s().round(),
        "lost": c.lost,
        "device_rsts": c.device_rsts,
        "refused": c.refused,
        "unanswered_syns": c.unanswered_syns,
        "connect_errors": c.connect_errors,
        "resets_during_data": c.resets_during_data,
        "device_closed_first": c.device_closed_first,
        "timeouts": c.timeouts,
        "linger_expired": c.linger_expired,
        "engine_connections_left": r.engine_connections,
        "cut_short": r.cut_short,
    });
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    let engine: Map<String, Value> = nonzero(&r.engine_counters)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    m.insert("engine".to_owned(), Value::Object(engine));
    for (name, _, h) in latencies(r) {
        if let Some([p50, p99, p999, max]) = percentiles_us(h) {
            m.insert(format!("{name}_p50_us"), json!(p50.round()));
            m.insert(format!("{name}_p99_us"), json!(p99.round()));
            m.insert(format!("{name}_p999_us"), json!(p999.round()));
            m.insert(format!("{name}_max_us"), json!(max.round()));
        }
    }
    Value::Object(m)
}

/// The human table.
pub fn table(r: &Results, connections: usize) -> String {
    let c = &r.counts;
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(["figure", "value", "meaning"]);
    let rows: [(&str, String, &str); 16] = [
        ("connections", connections.to_string(), "asked for"),
        (
            "established",
            c.established.to_string(),
            "handshakes completed",
        ),
        (
            "opens/s",
            format!("{:.0}", r.opens_per_s()),
            "established ÷ open phase",
        ),
        (
            "answered",
            c.answered.to_string(),
            "requests answered in full",
        ),
        (
            "unanswered",
            c.unanswered.to_string(),
            "requests not answered in time",
        ),
        (
            "closes sent",
            c.closes_sent.to_string(),
            "closes the generator started",
        ),
        (
            "confirmed",
            c.confirmed.to_string(),
            "closes confirmed at the wire",
        ),
        (
            "closes/s",
            format!("{:.0}", r.closes_per_s()),
            "confirmed ÷ close phase",
        ),
        (
            "lost",
            c.lost.to_string(),
            "established, never confirmed closed",
        ),
        (
            "device RSTs",
            c.device_rsts.to_string(),
            "RSTs from the device",
        ),
        ("refused", c.refused.to_string(), "SYNs answered with RST"),
        (
            "unanswered SYNs",
            c.unanswered_syns.to_string(),
            "connects timed out",
        ),
        (
            "resets in data",
            c.resets_during_data.to_string(),
            "RSTs while a request was out",
        ),
        (
            "device closed first",
            c.device_closed_first.to_string(),
            "FIN before our close",
        ),
        (
            "timeouts",
            c.timeouts.to_string(),
            "answers, ACKs or FINs overdue",
        ),
        (
            "linger expired",
            c.linger_expired.to_string(),
            "linger deadlines hit (RST)",
        ),
    ];
    for (a, b, m) in rows {
        t.add_row([a, &b, m]);
    }
    for (name, meaning, h) in latencies(r) {
        if let Some([p50, p99, p999, max]) = percentiles_us(h) {
            t.add_row([
                format!("{name} µs"),
                format!("p50 {p50:.0}  p99 {p99:.0}  p99.9 {p999:.0}  max {max:.0}"),
                meaning.to_owned(),
            ]);
        }
    }
    if let Some(why) = &r.cut_short {
        t.add_row(["cut short", why.as_str(), "the report covers what was done"]);
    }
    t.to_string()
}

fn cumulative(buckets: &[u64]) -> Vec<(f64, f64)> {
    let mut sum = 0;
    buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            sum += n;
            ((i + 1) as f64 * BUCKET.as_secs_f64(), sum as f64)
        })
        .collect()
}

fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = h.len() as f64;
    h.iter_quantiles(1)
        .map(|v| {
            (
                v.value_iterated_to() as f64 / 1e3,
                v.count_since_last_iteration() as f64,
            )
        })
        .scan(0.0, |acc, (x, n)| {
            *acc += n;
            Some((x, *acc / total))
        })
        .collect()
}

/// Writes the SVG: opens and confirmed closes over time, and the latency
/// CDFs.
pub fn svg(path: &Path, title: &str, r: &Results) -> Result<()> {
    let fig = Figure {
        title: title.to_owned(),
        over_time: vec![
            Series {
                label: "established".into(),
                points: cumulative(&r.timeline.established),
            },
            Series {
                label: "closes confirmed".into(),
                points: cumulative(&r.timeline.confirmed),
            },
        ],
        cdf: latencies(r)
            .into_iter()
            .filter(|(_, _, h)| !h.is_empty())
            .map(|(name, _, h)| Series {
                label: name.to_owned(),
                points: cdf(h),
            })
            .collect(),
        panels: [
            Panel::text(
                "connections over time",
                "seconds since the start",
                "connections",
            ),
            Panel::text("latency (CDF)", "latency, µs", "fraction"),
        ],
    };
    plot::write_svg(path, &fig)
}
