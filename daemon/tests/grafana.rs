//! `deploy/grafana/lingerd.json` asks only for series the daemon exports:
//! every `lingerd_…` name in a query of the dashboard (panel `expr`s and
//! the variables' queries) must be the name of a sample that
//! `lingerd_daemon::metrics::render` writes for a core with every figure
//! present. It also must keep showing the families the operator's issue
//! asked for, so an emptied dashboard fails too.
//!
//! It owns only the dashboard walk and the name extraction.

use std::collections::BTreeSet;

use lingerd_daemon::metrics::{CoreSnapshot, render, xdp_series};
use lingerd_dataplane::port::afxdp::AfXdpStats;

/// The `lingerd_…` names in a PromQL text.
fn metric_names(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("lingerd_") {
        // Part of a longer word (`mylingerd_x`) is not a name.
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// Every query string of the dashboard: `expr`, and the variables'
/// `query` / `definition`.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone());
                    }
                    _ => queries(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| queries(x, out)),
        _ => {}
    }
}

/// The sample names `/metrics` writes for one core with every figure.
fn exported() -> BTreeSet<String> {
    let snap = CoreSnapshot {
        xdp: xdp_series(&AfXdpStats::default()),
        ..CoreSnapshot::default()
    };
    render(vec![(0, snap)])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_dashboard_query_names_an_exported_series() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/lingerd.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut all = Vec::new();
    queries(&dash, &mut all);
    let exprs = all.iter().filter(|q| q.contains("lingerd_")).count();
    assert!(exprs >= 20, "{exprs} queries name lingerd series");
    let exported = exported();
    let mut used = BTreeSet::new();
    for q in &all {
        for name in metric_names(q) {
            assert!(
                exported.contains(&name),
                "{name} (in {q:?}) is not exported; /metrics has {exported:#?}"
            );
            used.insert(name);
        }
    }
    for family in [
        "lingerd_closes_total",
        "lingerd_rst_sent_total",
        "lingerd_connections",
        "lingerd_close_to_wire_seconds_bucket",
        "lingerd_linger_rst_lateness_seconds_bucket",
        "lingerd_rsts_paced_waiting",
    ] {
        assert!(used.contains(family), "the dashboard shows {family}");
    }
}

#[test]
fn names_are_found_whole() {
    assert_eq!(
        metric_names(
            "sum by (le) (rate(lingerd_close_to_wire_seconds_bucket{queue=~\"$q\"}[5m])) \
             / mylingerd_x + lingerd_nope_total"
        ),
        ["lingerd_close_to_wire_seconds_bucket", "lingerd_nope_total"]
    );
    assert!(!exported().contains("lingerd_nope_total"));
    assert!(!exported().contains("lingerd_time_wait_connections"));
}
