//! System tests of `lingerd-bench gen` through `gen-lab`, each on a lab of
//! its own, judged by the device (a real server in the dut namespace):
//! - against the kernel: 10,000 connections aborted, and the kernel
//!   server saw every one of them reset; the kernel-socket generator does
//!   the same job in the same run; gen's `--pcap` file holds the 10,000
//!   RSTs (counted by tcpdump);
//! - against nginx: 20,000 connections closed gracefully, every request
//!   answered, and nothing left at nginx in ESTABLISHED or CLOSE-WAIT;
//! - against HAProxy (`--close peer`): its `timeout client` closes every
//!   connection first, and the generator sees each FIN;
//! - (feature `dpdk`) gen on the DPDK port, net_af_packet on the same
//!   veth: 2,000 aborts, each seen reset by the kernel server.
//!
//! Correctness, not timing: rates are only checked to be positive. They
//! need root, so they are ignored unless asked for (`--ignored`;
//! `deploy/test` runs them); without root they fail.

mod support;

use serde_json::Value;

fn gen_lab(test: &str, args: &[&str]) -> (String, Value) {
    let id = format!("gn{}{}", std::process::id() % 100_000, test.len() % 10);
    let mut all = vec!["gen-lab", "--json", "--id", &id];
    all.extend(args);
    let (stdout, stderr) = support::run_tool(test, &all);
    let (last, json) = support::last_json(&stdout, &["connections", "lost", "dut_leftover"]);
    assert_eq!(json["lost"].as_u64(), Some(0), "{last}\n{stderr}");
    assert_eq!(json["dut_leftover"].as_u64(), Some(0), "{last}\n{stderr}");
    (last, json)
}

#[test]
#[ignore = "needs root and netns"]
fn gen_aborts_10000_and_the_kernel_sees_every_reset() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let pcap = dir.path().join("gen.pcapng");
    let (last, j) = gen_lab(
        "gen_aborts_10000_and_the_kernel_sees_every_reset",
        &[
            "--dut",
            "kernel",
            "--connections",
            "10000",
            "--close",
            "abort",
            "--pcap",
            pcap.to_str().expect("a UTF-8 path"),
        ],
    );
    assert_eq!(j["established"].as_u64(), Some(10_000), "{last}");
    assert_eq!(j["answered"].as_u64(), Some(10_000), "{last}");
    assert_eq!(j["confirmed"].as_u64(), Some(10_000), "{last}");
    // The device's own count: every connection ended by an RST.
    assert_eq!(j["dut_server"]["resets"].as_u64(), Some(10_000), "{last}");
    assert_eq!(j["dut_server"]["open"].as_u64(), Some(0), "{last}");
    assert_eq!(j["kernel_confirmed"].as_u64(), Some(10_000), "{last}");
    assert_eq!(j["kernel_dut_leftover"].as_u64(), Some(0), "{last}");
    support::assert_positive(
        &j,
        &["closes_per_s", "kernel_closes_per_s", "ratio_to_kernel"],
        &last,
    );
    // gen --pcap: tcpdump reads the file and counts one RST per connection.
    let out = std::process::Command::new("tcpdump")
        .args([
            "-nr",
            pcap.to_str().expect("a UTF-8 path"),
            "tcp[tcpflags] & tcp-rst != 0",
        ])
        .output()
        .expect("running tcpdump");
    assert!(out.status.success(), "tcpdump: {out:?}");
    let rsts = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(rsts, 10_000, "RSTs in gen's capture");
}

#[test]
#[ignore = "needs root and netns"]
fn gen_closes_20000_gracefully_at_nginx_and_leaves_nothing() {
    let (last, j) = gen_lab(
        "gen_closes_20000_gracefully_at_nginx_and_leaves_nothing",
        &[
            "--dut",
            "nginx",
            "--connections",
            "20000",
            "--close",
            "graceful",
            "--no-kernel",
        ],
    );
    assert_eq!(j["established"].as_u64(), Some(20_000), "{last}");
    assert_eq!(j["answered"].as_u64(), Some(20_000), "{last}");
    assert_eq!(j["confirmed"].as_u64(), Some(20_000), "{last}");
    let states = &j["dut_states"];
    for s in ["ESTAB", "CLOSE-WAIT"] {
        assert!(
            states.get(s).is_none_or(|n| n.as_u64() == Some(0)),
            "{s} left at nginx: {last}"
        );
    }
}

#[test]
#[ignore = "needs root and netns"]
fn gen_waits_for_haproxy_timeout_client_with_close_peer() {
    let (last, j) = gen_lab(
        "gen_waits_for_haproxy_timeout_client_with_close_peer",
        &[
            "--dut",
            "haproxy",
            "--connections",
            "2000",
            "--close",
            "peer",
            "--client-timeout",
            "2s",
            "--no-kernel",
        ],
    );
    assert_eq!(j["established"].as_u64(), Some(2_000), "{last}");
    assert_eq!(j["answered"].as_u64(), Some(2_000), "{last}");
    // Each close is HAProxy's: its FIN after `timeout client`.
    assert_eq!(j["confirmed"].as_u64(), Some(2_000), "{last}");
    let p50 = j["close_p50_us"].as_f64().expect("close latency");
    assert!(p50 >= 1.5e6, "HAProxy closed before its 2s timeout: {last}");
}

/// gen on the DPDK port (net_af_packet on the peer's veth): the same
/// judge as on AF_XDP, the kernel server counting the resets.
#[cfg(feature = "dpdk")]
#[test]
#[ignore = "needs root and netns"]
fn gen_on_dpdk_aborts_2000_and_the_kernel_sees_every_reset() {
    let (last, j) = gen_lab(
        "gen_on_dpdk_aborts_2000_and_the_kernel_sees_every_reset",
        &[
            "--dut",
            "kernel",
            "--port",
            "dpdk",
            "--connections",
            "2000",
            "--close",
            "abort",
            "--close-rate",
            "20k",
            "--no-kernel",
        ],
    );
    assert_eq!(j["port"], "dpdk", "{last}");
    assert_eq!(j["confirmed"].as_u64(), Some(2_000), "{last}");
    assert_eq!(j["dut_server"]["resets"].as_u64(), Some(2_000), "{last}");
}
