//! System test of `lingerd-bench lab --port dpdk`: `lab --port dpdk
//! --connections 2000 --json --allow-busy --idle sleep` runs to completion
//! on the memif lab (lingerd run on a memif server, the load generator on
//! the memif client), its last stdout line is a JSON object with the lab's
//! keys plus `dpdk_ceiling_pps`, `lost` = 0, the kernel figures null with
//! a reason, every RST counted by the load generator's bare classifier
//! (`peer_bare_closes`), and it leaves no EAL runtime directory of its own
//! behind. `ring-latency --port dpdk` (issue 16, item 5) runs the same way
//! with 2,000 linger timers armed.
//!
//! A correctness test of the tool, not a timing assertion: `--allow-busy`
//! because CI machines are not idle, the daemon and the generator sleep
//! when idle, and only the 1-second ceiling busy-polls. It needs root (the
//! daemon's DPDK and the generator's nice level) and a `lingerd` built with
//! the `dpdk` feature (built here with cargo), so it is ignored unless asked
//! for (`--ignored`; `deploy/test` runs it in its DPDK system stage);
//! without root, or when the benchmark fails, it fails.

use std::process::{Command, Stdio};

mod support;

/// The keys of `lab` (issue 6, item 1) and of its DPDK run (issue 11).
const KEYS: &[&str] = &[
    "mode",
    "port",
    "connections",
    "closes_per_s",
    "dpdk_ceiling_pps",
    "xsk_ceiling_pps",
    "kernel_closes_per_s",
    "ratio_to_ceiling",
    "ratio_to_kernel",
    "p50_us",
    "p99_us",
    "p999_us",
    "lost",
    "closed",
    "idle",
    "kernel_note",
    "peer_bare_closes",
    "fair_ceiling_pps",
    "ratio_to_fair_ceiling",
];

const TEST: &str = "lab_dpdk_abort_2000_json";

#[test]
#[ignore = "needs root and DPDK"]
fn lab_dpdk_abort_2000_json() {
    assert!(
        lingerd_lab::is_root(),
        "{TEST} cannot run: it needs root (DPDK, the load generator's priority)"
    );
    let lingerd = support::lingerd_bin_with(&["--features", "dpdk"]);
    let child = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args([
            "lab",
            "--port",
            "dpdk",
            "--connections",
            "2000",
            "--mode",
            "abort",
            "--json",
            "--allow-busy",
            "--idle",
            "sleep",
            "--ceiling-duration",
            "1s",
            "--lingerd",
        ])
        .arg(&lingerd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lingerd-bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for lingerd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let (last, json) = support::last_json(&stdout, KEYS);
    assert_eq!(json["mode"], "abort");
    assert_eq!(json["port"], "dpdk");
    assert_eq!(json["connections"].as_u64(), Some(2000));
    assert_eq!(json["lost"].as_u64(), Some(0), "{last}\n{stderr}");
    assert_eq!(json["closed"].as_u64(), Some(2000), "{last}");
    assert_eq!(json["unexpected"].as_u64(), Some(0), "{last}");
    support::assert_positive(
        &json,
        &[
            "closes_per_s",
            "dpdk_ceiling_pps",
            "ratio_to_ceiling",
            "p50_us",
            "p99_us",
            "p999_us",
        ],
        &last,
    );
    let ratio = json["closes_per_s"].as_f64().unwrap() / json["dpdk_ceiling_pps"].as_f64().unwrap();
    let reported = json["ratio_to_ceiling"].as_f64().unwrap();
    assert!(
        (ratio - reported).abs() <= 0.01 * ratio,
        "ratio_to_ceiling {reported} is not closes_per_s ÷ dpdk_ceiling_pps ({ratio})"
    );
    assert!(json["p50_us"].as_f64() <= json["p999_us"].as_f64());
    assert_eq!(json["peer_bare_closes"].as_u64(), Some(2000), "{last}");
    // The fair ceiling is the AF_XDP lab's (its generator's AF_XDP socket).
    for key in [
        "kernel_closes_per_s",
        "ratio_to_kernel",
        "xsk_ceiling_pps",
        "fair_ceiling_pps",
        "ratio_to_fair_ceiling",
    ] {
        assert!(json[key].is_null(), "{key} is not null in {last}");
    }
    assert!(
        json["kernel_note"]
            .as_str()
            .is_some_and(|n| n.contains("memif")),
        "{last}"
    );
    // The EAL of lingerd-bench (its --file-prefix is lingerd-<pid>) shut
    // down; its daemon's and the ceiling receiver's are checked by the
    // command itself.
    let runtime = format!("/var/run/dpdk/lingerd-{pid}");
    assert!(
        !std::path::Path::new(&runtime).exists(),
        "{runtime} left behind"
    );
}

/// `ring-latency --port dpdk --timers 2000 --samples 200 --idle sleep
/// --allow-busy --json`: the gauge shows the timers armed before and after,
/// every sample's RST arrived, the percentiles are positive and ordered,
/// and there is no kernel part.
#[test]
#[ignore = "needs root and DPDK"]
fn ring_latency_dpdk_2000_timers_json() {
    assert!(
        lingerd_lab::is_root(),
        "ring_latency_dpdk_2000_timers_json cannot run: it needs root"
    );
    let lingerd = support::lingerd_bin_with(&["--features", "dpdk"]);
    let out = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args([
            "ring-latency",
            "--port",
            "dpdk",
            "--timers",
            "2000",
            "--samples",
            "200",
            "--idle",
            "sleep",
            "--allow-busy",
            "--json",
            "--lingerd",
        ])
        .arg(&lingerd)
        .output()
        .expect("run lingerd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let (last, j) = support::last_json(
        &stdout,
        &[
            "port",
            "timers_armed",
            "samples",
            "lost",
            "p50_us",
            "p99_us",
        ],
    );
    assert_eq!(j["port"], "dpdk");
    assert!(j["timers_armed"].as_u64() >= Some(2000), "{last}\n{stderr}");
    assert_eq!(j["linger_ended"].as_u64(), Some(0), "{last}");
    assert_eq!(j["samples"].as_u64(), Some(200), "{last}");
    assert_eq!(j["lost"].as_u64(), Some(0), "{last}\n{stderr}");
    assert_eq!(j["unexpected"].as_u64(), Some(0), "{last}");
    support::assert_positive(&j, &["p50_us", "p99_us", "p999_us", "max_us"], &last);
    assert!(j["p50_us"].as_f64() <= j["p99_us"].as_f64());
    assert!(
        j["kernel_p99_us"].is_null(),
        "no kernel part on memif: {last}"
    );
}
