//! Writes the seed corpus (`lingerd_testkit::fuzz::seeds`) into
//! `corpus/<target>/`, next to this file. Run it from anywhere on stable:
//!
//! ```text
//! cargo run --manifest-path testkit/fuzz/Cargo.toml --bin make_corpus
//! ```
//!
//! It only writes the seeds' files; anything else in the directories (what
//! a fuzzing run added) is left alone.

use std::fs;
use std::path::Path;

use lingerd_testkit::fuzz::seeds;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in seeds::all() {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for seed in &seeds {
            fs::write(dir.join(seed.name), &seed.bytes)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
