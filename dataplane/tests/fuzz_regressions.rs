//! Replays every input that once crashed a fuzz target
//! (`fuzz/regressions/<target>/*`, copied there from `fuzz/artifacts/`)
//! through the same harness, so that a fixed bug stays fixed in a plain
//! `cargo test`. Each file's commit message says what it found.
//!
//! Add a crash with
//! `cp fuzz/artifacts/<target>/crash-<sha1> fuzz/regressions/<target>/`
//! in the commit that fixes it.

use std::fs;
use std::path::Path;

use lingerd_dataplane::fuzzing;

/// Runs `harness` on every file in `fuzz/regressions/<target>/`; returns
/// how many there were.
fn replay(target: &str, harness: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in &paths {
        eprintln!("{}", path.display());
        harness(&fs::read(path).unwrap());
    }
    paths.len()
}

/// `wire_parse` crashes: short unchecked views (commit "wire: options,
/// payload and ARP addresses never panic on a short buffer").
#[test]
fn wire_parse_regressions() {
    assert!(replay("wire_parse", fuzzing::wire_parse) > 0);
}

#[test]
fn engine_rx_regressions() {
    replay("engine_rx", |data| {
        let _ = fuzzing::engine_rx(data);
    });
}
