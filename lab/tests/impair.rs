//! System tests of the impairment stage (root, netns): `deploy/lab up
//! --impair` puts `lingerd-impair` between the dut and the peer, a kernel
//! TCP transfer crosses it intact, its counters show what it did, and
//! `deploy/lab down` leaves nothing behind. Kernel sockets at both ends
//! (python3 in each namespace, as the lab's selftest uses); every wait is
//! bounded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lingerd_lab::impair::need_impaired;
use lingerd_lab::impair::stage::Stats;
use lingerd_lab::{Lab, is_root, script, unique_id};

const STAGE: &str = env!("CARGO_BIN_EXE_lingerd-impair");
const SPEC: &str = "loss 1% reorder 5% dup 1% delay 10ms 5ms";
/// Fixed, so a failure replays with the same fates per frame.
const SEED: u64 = 13;
const PORT: &str = "7788";
const BYTES: usize = 4 << 20;

/// Reads everything until EOF, then prints its length and SHA-256.
const SINK: &str = r#"
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(30)
c, _ = s.accept()
c.settimeout(30)
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
print(n, h.hexdigest())
"#;

/// Sends N seeded pseudo-random bytes, waits for the sink to close, then
/// prints their length and SHA-256.
const SOURCE: &str = r#"
import hashlib, random, socket, sys
data = random.Random(int(sys.argv[4])).randbytes(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
while c.recv(4096):
    pass
c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"#;

fn lab_or_fail(test: &str, spec: &str) -> Lab {
    let id = unique_id("imp");
    need_impaired(test, &id, 1, spec, Some(SEED), Some(Path::new(STAGE)))
}

/// Stats once nothing is in flight and two fresh reads 200 ms apart agree
/// (at most 5 s).
fn settled(lab: &Lab) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = lab.impair_stats_now().expect("stats file");
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = lab.impair_stats_now().expect("stats file");
        if (now.to_dut, now.to_peer) == (last.to_dut, last.to_peer)
            && now.to_dut.pending == 0
            && now.to_peer.pending == 0
        {
            return now;
        }
        assert!(Instant::now() < deadline, "stage did not settle: {now:?}");
        last = now;
    }
}

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `pid` still runs (a zombie waiting for its reaper does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
#[ignore = "needs root and netns"]
fn test_kernel_transfer_through_the_stage() {
    let test = "test_kernel_transfer_through_the_stage";
    let lab = lab_or_fail(test, SPEC);
    assert_eq!(lab.get("LAB_IMPAIR_SPEC"), SPEC);
    assert_eq!(lab.get("LAB_IMPAIR_SEED"), SEED.to_string());
    let status = Command::new(script())
        .args(["status", "--id", lab.id()])
        .output()
        .unwrap();
    let status_out = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(
        status_out.contains("LAB_IMPAIR_STATE=running"),
        "{status_out}"
    );
    // GSO bounded at both ends (tso/gso off), so the stage sees single
    // segments: checked below by its oversize counter.
    for (ns, dev) in [("LAB_DUT_NS", "LAB_DUT_IF"), ("LAB_PEER_NS", "LAB_PEER_IF")] {
        let k = lab.exec(ns, "ethtool", &["-k", &lab.get(dev)]);
        let k = String::from_utf8_lossy(&k.stdout);
        assert!(k.contains("generic-segmentation-offload: off"), "{k}");
        assert!(k.contains("tcp-segmentation-offload: off"), "{k}");
    }
    let dut_addr = lab.get("LAB_DUT_ADDR");
    let sink = lab
        .command(
            "LAB_DUT_NS",
            "timeout",
            &["60", "python3", "-c", SINK, &dut_addr, PORT],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 sink");
    let mut listening = false;
    for _ in 0..50 {
        let ss = lab.exec("LAB_DUT_NS", "ss", &["-Hltn", &format!("sport = :{PORT}")]);
        if !String::from_utf8_lossy(&ss.stdout).trim().is_empty() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(listening, "sink not listening within 5 s");
    let started = Instant::now();
    let source = lab.exec(
        "LAB_PEER_NS",
        "timeout",
        &[
            "60",
            "python3",
            "-c",
            SOURCE,
            &dut_addr,
            PORT,
            &BYTES.to_string(),
            &SEED.to_string(),
        ],
    );
    let took = started.elapsed();
    let sink = sink.wait_with_output().unwrap();
    assert!(source.status.success(), "source: {source:?}");
    assert!(sink.status.success(), "sink: {sink:?}");
    let sent = String::from_utf8_lossy(&source.stdout).trim().to_owned();
    let got = String::from_utf8_lossy(&sink.stdout).trim().to_owned();
    assert!(sent.starts_with(&format!("{BYTES} ")), "{sent}");
    assert_eq!(got, sent, "the bytes that arrived are not the bytes sent");

    let stats = settled(&lab);
    eprintln!("{BYTES} bytes in {took:?} through '{SPEC}' (seed {SEED}): {stats:#?}");
    assert!(stats.running);
    // SIGUSR1 writes the file at once, although nothing moved.
    let now = lab.impair_stats_now().expect("stats on SIGUSR1");
    assert!(now.writes > stats.writes);
    assert_eq!((now.to_dut, now.to_peer), (stats.to_dut, stats.to_peer));
    for (dir, c) in [("to_dut", stats.to_dut), ("to_peer", stats.to_peer)] {
        assert!(c.dropped > 0, "{dir}: nothing dropped: {c:?}");
        assert!(c.reordered > 0, "{dir}: nothing reordered: {c:?}");
        assert!(c.duplicated > 0, "{dir}: nothing duplicated: {c:?}");
        assert!(c.delayed > 0, "{dir}: nothing delayed: {c:?}");
        assert_eq!(c.oversize, 0, "{dir}: GSO frames reached the stage: {c:?}");
        // Every frame in (and every copy) went out or is accounted lost.
        assert_eq!(
            c.frames_in + c.duplicated,
            c.frames_out + c.dropped + c.overflow + c.send_errors,
            "{dir}: {c:?}"
        );
    }
    // The data direction carried the transfer: at least one frame per MSS.
    assert!(stats.to_dut.frames_in as usize > BYTES / 1460, "{stats:?}");

    let pid = lab.get("LAB_IMPAIR_PID");
    let stats_path = lab.impair_stats_path();
    let names = [
        lab.get("LAB_DUT_NS"),
        lab.get("LAB_PEER_NS"),
        lab.get("LAB_MID_NS"),
    ];
    drop(lab);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(&pid) {
        assert!(
            Instant::now() < deadline,
            "stage {pid} still runs after down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = namespaces();
    for ns in &names {
        assert!(
            !left
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns)),
            "{ns} left: {left}"
        );
    }
    assert!(!stats_path.exists(), "{} left", stats_path.display());
    assert!(!stats_path.parent().unwrap().exists(), "run dir left");
}

#[test]
#[ignore = "needs root and netns"]
fn test_bad_spec_names_the_token_and_makes_nothing() {
    assert!(is_root(), "needs root");
    let id = unique_id("imb");
    let out = Command::new(script())
        .args(["up", "--id", &id, "--impair", "loss 1% reorder 5% lossy 2%"])
        .env(lingerd_lab::impair::STAGE_BIN_ENV, STAGE)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(err.contains("'lossy'"), "{err}");
    assert!(
        !namespaces().contains(&format!("-{id}-")),
        "{}",
        namespaces()
    );
    let out = Command::new(script())
        .args(["up", "--id", &id, "--seed", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--seed alone: {out:?}");
    assert!(
        !namespaces().contains(&format!("-{id}-")),
        "{}",
        namespaces()
    );
}
