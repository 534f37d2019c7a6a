//! System test of `lingerd-bench lab`: `lab --connections 2000 --mode abort
//! --json --idle sleep` runs to completion on a lab of its own and its last
//! stdout line is a JSON object with every key the issue asks for, `lost`
//! = 0 and positive rates, the fair ceiling (issue 16: the bare sender
//! counted by the load generator's own receive path) among them, and every
//! RST counted by the generator's bare classifier. `lab_v6_abort_2000_json`
//! is the same run with `--family v6` (a dual-stack lab, every address of
//! the run IPv6); the two never run at once (one lock), as two labs
//! measured together would share the CPUs.
//!
//! A correctness test of the tool, not a timing assertion. It needs root
//! and the `lingerd` binary (built here with cargo when missing), so it is
//! ignored unless asked for (`--ignored`; `deploy/test` runs it); without
//! root, or when the benchmark fails, it fails. The benchmark owns its lab
//! and removes it on every exit path.

mod support;

use std::sync::Mutex;

/// Held by a lab test for its whole run.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The keys of issue 6, item 1.
const KEYS: &[&str] = &[
    "mode",
    "connections",
    "closes_per_s",
    "xsk_ceiling_pps",
    "kernel_closes_per_s",
    "ratio_to_ceiling",
    "fair_ceiling_pps",
    "ratio_to_fair_ceiling",
    "peer_bare_closes",
    "ratio_to_kernel",
    "p50_us",
    "p99_us",
    "p999_us",
    "lost",
];

#[test]
#[ignore = "needs root and netns"]
fn lab_abort_2000_json() {
    abort_2000_json("lab_abort_2000_json", "v4", "tl");
}

#[test]
#[ignore = "needs root and netns"]
fn lab_v6_abort_2000_json() {
    abort_2000_json("lab_v6_abort_2000_json", "v6", "tl6");
}

/// The run of `test`: `--family family`, a lab whose id starts with
/// `prefix`.
fn abort_2000_json(test: &str, family: &str, prefix: &str) {
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (stdout, stderr) = support::run_bench(
        test,
        &[
            "lab",
            "--family",
            family,
            "--connections",
            "2000",
            "--mode",
            "abort",
            "--json",
            "--idle",
            "sleep",
            "--kernel-connections",
            "2000",
            "--ceiling-duration",
            "1s",
            "--id",
            &format!("{prefix}{}", std::process::id() % 1_000_000),
        ],
    );
    let (last, json) = support::last_json(&stdout, KEYS);
    assert_eq!(json["family"], family, "{last}");
    assert_eq!(json["mode"], "abort");
    assert_eq!(json["connections"].as_u64(), Some(2000));
    assert_eq!(json["lost"].as_u64(), Some(0), "{last}\n{stderr}");
    support::assert_positive(
        &json,
        &[
            "closes_per_s",
            "xsk_ceiling_pps",
            "kernel_closes_per_s",
            "ratio_to_ceiling",
            "fair_ceiling_pps",
            "ratio_to_fair_ceiling",
            "ratio_to_kernel",
            "p50_us",
            "p99_us",
            "p999_us",
        ],
        &last,
    );
    assert!(json["p50_us"].as_f64() <= json["p999_us"].as_f64());
    let ratio = json["closes_per_s"].as_f64().unwrap() / json["fair_ceiling_pps"].as_f64().unwrap();
    let reported = json["ratio_to_fair_ceiling"].as_f64().unwrap();
    assert!(
        (ratio - reported).abs() <= 0.01 * ratio,
        "ratio_to_fair_ceiling {reported} is not closes_per_s ÷ fair_ceiling_pps ({ratio})"
    );
    // Every abort's RST counted on the frame, once.
    assert_eq!(json["peer_bare_closes"].as_u64(), Some(2000), "{last}");
    // The table comes first.
    assert!(stdout.contains("closes_per_s") && stdout.contains("kernel_closes_per_s"));
}
