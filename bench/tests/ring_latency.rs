//! System test of `lingerd-bench ring-latency`: `ring-latency --timers 2000
//! --samples 200 --idle sleep --json` runs to completion on a lab of its
//! own, and its last stdout line is a JSON object in which the daemon's
//! gauge shows at least 2000 linger timers armed before and after the
//! samples, no lingering close ended meanwhile, every sample's RST arrived
//! (`lost` = 0), and the percentiles, lingerd's and the kernel's, are
//! positive and ordered.
//!
//! A correctness test of the tool, not a timing assertion (sleep mode, as
//! TESTING.md asks). It needs root and the `lingerd` binary (built here
//! with cargo when missing), so it is ignored unless asked for
//! (`--ignored`; `deploy/test` runs it); without root, or when the
//! benchmark fails, it fails. The benchmark owns its lab and removes it on
//! every exit path.

mod support;

const TEST: &str = "ring_latency_2000_timers_json";

#[test]
#[ignore = "needs root and netns"]
fn ring_latency_2000_timers_json() {
    let (stdout, stderr) = support::run_bench(
        TEST,
        &[
            "ring-latency",
            "--timers",
            "2000",
            "--samples",
            "200",
            "--idle",
            "sleep",
            "--json",
            "--id",
            &format!("tr{}", std::process::id() % 1_000_000),
        ],
    );
    let last = stdout.lines().last().expect("some output");
    let j: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    let int = |k: &str| {
        j[k].as_u64()
            .unwrap_or_else(|| panic!("{k} is not a count in {last}"))
    };
    let us = |k: &str| {
        let v = j[k].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{k} = {v} in {last}");
        v
    };
    assert_eq!(int("timers"), 2000);
    assert!(int("timers_armed") >= 2000, "{last}\n{stderr}");
    assert!(int("wheel_timers") >= 2000, "{last}");
    assert_eq!(int("linger_ended"), 0, "{last}");
    // The peer dropped the lingering connections' FINs unread.
    assert!(int("peer_muted_frames") >= 2000, "{last}");
    assert_eq!(int("samples"), 200, "{last}");
    assert_eq!(int("lost"), 0, "{last}\n{stderr}");
    assert_eq!(int("unexpected"), 0, "{last}");
    assert_eq!(int("request_errors"), 0, "{last}");
    for prefix in ["", "kernel_"] {
        let p = |q: &str| us(&format!("{prefix}{q}"));
        assert!(
            p("p50_us") <= p("p99_us")
                && p("p99_us") <= p("p999_us")
                && p("p999_us") <= p("max_us"),
            "{prefix} percentiles out of order in {last}"
        );
    }
    assert_eq!(int("kernel_samples"), 200);
    assert_eq!(int("kernel_lost"), 0);
    us("ratio_to_goal");
    us("ratio_to_kernel");
    assert!(j["goal_met"].is_boolean() && j["idle"] == "sleep", "{last}");
    // The table comes first.
    assert!(stdout.contains("p99_us") && stdout.contains("timers_armed"));
}
