//! System test of `lingerd-bench lab --port dpdk`: `lab --port dpdk
//! --connections 2000 --json --allow-busy --idle sleep` runs to completion
//! on the memif lab (lingerd run on a memif server, the load generator on
//! the memif client), its last stdout line is a JSON object with the lab's
//! keys plus `dpdk_ceiling_pps`, `lost` = 0, the kernel figures null with
//! a reason, and it leaves no EAL runtime directory of its own behind.
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
    for key in ["kernel_closes_per_s", "ratio_to_kernel", "xsk_ceiling_pps"] {
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
