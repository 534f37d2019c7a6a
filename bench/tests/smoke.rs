//! Smoke test of the `lingerd-bench` tool itself: `micro --quick --json`
//! runs to completion and its last stdout line is a JSON object holding
//! every figure the issues ask for, each a positive finite number.
//!
//! A correctness test of the tool, not of performance: it never compares
//! a figure with a goal (timings on a shared CI machine prove nothing).

use std::process::Command;

/// Every key the `foundation`, `engine` and IPv6 issues require.
const REQUIRED: &[&str] = &[
    "parse_lookup_ns",
    "parse_lookup_burst_ns",
    "rst_build_ns",
    "timer_arm_ns",
    "timer_cancel_ns",
    "table_bytes_per_conn",
    "table_bytes_per_conn_v6",
    "tcb_bytes",
    "abort_closes_per_s",
    "bulk_abort_closes_per_s",
    "graceful_closes_per_s",
    "linger_expiry_closes_per_s",
    "connections",
    "smoltcp_abort_closes_per_s",
    "lingerd_abort_closes_per_s_10k",
    "vs_smoltcp_ratio",
];

#[test]
fn micro_quick_json_has_every_key_positive_and_finite() {
    let out = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args(["micro", "--quick", "--json"])
        .output()
        .expect("run lingerd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("[lingerd-bench]"),
        "progress goes to stderr: {stderr}"
    );
    let last = stdout.lines().last().expect("some output");
    let json: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    let obj = json.as_object().expect("a JSON object");
    for key in REQUIRED {
        let v = obj
            .get(*key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{key} missing or not a number in {last}"));
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    assert_eq!(obj["connections"].as_f64(), Some(100_000.0));
    assert_eq!(obj["mode"], "quick");
    // The human table comes first and names every key.
    let table = &stdout[..stdout.len() - last.len()];
    for key in REQUIRED {
        assert!(table.contains(key), "{key} missing from the table");
    }
}

#[test]
fn bad_connection_count_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_lingerd-bench"))
        .args(["micro", "--connections", "5"])
        .output()
        .expect("run lingerd-bench");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--connections"));
}
