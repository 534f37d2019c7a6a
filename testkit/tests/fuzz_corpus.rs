//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/*`)
//! through the same harnesses the cargo-fuzz targets run
//! (`lingerd_testkit::fuzz`), so that a plain `cargo test` on stable
//! exercises them and their invariants on every input, no nightly needed.
//!
//! It also keeps the corpus honest: every seed that `fuzz::seeds` defines
//! must be on disk with the same bytes (rerun `make_corpus` after changing
//! an input type), and each engine seed must still reach the states it was
//! written for. Files the fuzzer adds beside the seeds are replayed too.

use std::fs;
use std::path::{Path, PathBuf};

use lingerd_testkit::fuzz::{self, seeds};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Every file of a corpus directory, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn seeds_are_committed() {
    for (target, seeds) in seeds::all() {
        let dir = corpus_dir(target);
        for seed in seeds {
            let on_disk = fs::read(dir.join(seed.name)).unwrap_or_default();
            assert!(
                on_disk == seed.bytes,
                "{target}/{} is missing or stale: run \
                 `cargo run --manifest-path testkit/fuzz/Cargo.toml --bin make_corpus`",
                seed.name
            );
        }
    }
}

#[test]
fn wire_parse_corpus() {
    let files = files(&corpus_dir("wire_parse"));
    assert!(!files.is_empty());
    for (name, bytes) in files {
        eprintln!("wire_parse/{name}");
        fuzz::wire_parse(&bytes);
    }
}

#[test]
fn engine_rx_corpus() {
    let files = files(&corpus_dir("engine_rx"));
    assert!(!files.is_empty());
    for (name, bytes) in files {
        eprintln!("engine_rx/{name}");
        let _ = fuzz::engine_rx(&bytes);
    }
}

/// Each engine seed still does what it was written for.
#[test]
fn engine_seeds_reach_their_states() {
    for seed in seeds::engine_rx() {
        let report = fuzz::engine_rx(&seed.bytes);
        for state in &seed.reaches {
            assert!(
                report.states_seen & state.bit() != 0,
                "{}: never reached {state:?}: {report:?}",
                seed.name
            );
        }
        if seed.sends_rst {
            assert!(report.rsts > 0, "{}: sent no RST: {report:?}", seed.name);
        }
    }
}

#[test]
fn ring_entries_corpus() {
    let files = files(&corpus_dir("ring_entries"));
    assert!(!files.is_empty());
    for (name, bytes) in files {
        eprintln!("ring_entries/{name}");
        let _ = fuzz::ring_entries(&bytes);
    }
}

/// Each ring seed still takes the paths it was written for, and settles.
#[test]
fn ring_seeds_take_their_paths() {
    for s in seeds::ring_entries() {
        let report = fuzz::ring_entries(&s.seed.bytes);
        let name = s.seed.name;
        assert!(report.settled, "{name}: did not settle: {report:?}");
        assert!(report.taken > 0, "{name}: took nothing: {report:?}");
        if s.backpressure {
            assert!(
                report.backpressure > 0,
                "{name}: no backpressure: {report:?}"
            );
        }
        if s.invalid {
            assert!(report.invalid > 0, "{name}: nothing invalid: {report:?}");
        }
        assert_eq!(report.cursors_touched, s.cursors, "{name}: {report:?}");
    }
}
