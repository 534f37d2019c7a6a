//! System test of `lingerd-bench transfer`: 1 MiB echoed through the lab's
//! impairment stage (`loss 1% reorder 5% dup 1% delay 10ms 5ms`), once
//! against a kernel echo server and once against lingerd, in one run; the
//! last stdout line is a JSON object with every key the issue asks for, no
//! byte mismatched, both goodputs positive, and the kernel baseline under
//! the congestion control it was given.
//!
//! A correctness test of the tool, not a timing assertion. It needs root,
//! so it is ignored unless asked for (`--ignored`; `deploy/test` runs it);
//! without root, or when the benchmark fails, it fails.

mod support;

/// The keys of issue 13, item 6.
const KEYS: &[&str] = &[
    "goodput_ratio",
    "lingerd_goodput_bps",
    "kernel_goodput_bps",
    "retransmits",
    "ooo_segments_kept",
    "bytes_mismatched",
];

const TEST: &str = "transfer_1mib_json";

#[test]
#[ignore = "needs root and netns"]
fn transfer_1mib_json() {
    let (stdout, stderr) = support::run_bench(
        TEST,
        &[
            "transfer",
            "--bytes",
            "1048576",
            "--impair",
            "loss 1% reorder 5% dup 1% delay 10ms 5ms",
            "--seed",
            "3",
            "--json",
            "--id",
            &format!("tt{}", std::process::id() % 1_000_000),
        ],
    );
    let (last, json) = support::last_json(&stdout, KEYS);
    assert_eq!(json["bytes"].as_u64(), Some(1 << 20));
    // The kernel baseline runs under Linux's default congestion control,
    // whatever this host's sysctl says (bbr here): its socket reports it.
    assert_eq!(json["kernel_cc"].as_str(), Some("cubic"), "{last}");
    assert_eq!(
        json["bytes_mismatched"].as_u64(),
        Some(0),
        "{last}\n{stderr}"
    );
    support::assert_positive(
        &json,
        &["goodput_ratio", "lingerd_goodput_bps", "kernel_goodput_bps"],
        &last,
    );
}
