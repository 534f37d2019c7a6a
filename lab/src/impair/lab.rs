//! [`Lab`] with the impairment stage: `deploy/lab up --impair`, and the
//! stage's counters.
//!
//! It adds to [`Lab`] only; the lab's own helpers ([`Lab::up`], drop)
//! stay where they are, and a lab made here is taken down the same way.

use std::path::{Path as FsPath, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::stage::Stats;
use crate::{Lab, is_root, script};

/// How `deploy/lab` finds the `lingerd-impair` binary.
pub const STAGE_BIN_ENV: &str = "LINGERD_IMPAIR";

/// [`crate::need`] for a lab with the stage: the lab, or a panic naming
/// why it cannot be made (not root, or `deploy/lab up --impair` failed, e.g.
/// no `lingerd-impair` built). `stage_bin`: as in [`Lab::up_impaired`].
pub fn need_impaired(
    test: &str,
    id: &str,
    queues: u32,
    spec: &str,
    seed: Option<u64>,
    stage_bin: Option<&FsPath>,
) -> Lab {
    assert!(
        is_root(),
        "system test {test} cannot run: it needs root (network namespaces, AF_PACKET)"
    );
    Lab::up_impaired(id, queues, spec, seed, stage_bin)
        .unwrap_or_else(|why| panic!("system test {test} cannot run: {why}"))
}

impl Lab {
    /// `deploy/lab up --id id --queues queues --impair spec [--seed seed]`;
    /// `stage_bin` is the `lingerd-impair` binary (`None`: `deploy/lab`
    /// looks for it). `Err(reason)` when it fails.
    pub fn up_impaired(
        id: &str,
        queues: u32,
        spec: &str,
        seed: Option<u64>,
        stage_bin: Option<&FsPath>,
    ) -> Result<Lab, String> {
        let mut c = Command::new(script());
        c.args(["up", "--id", id, "--queues", &queues.to_string()])
            .args(["--impair", spec]);
        if let Some(seed) = seed {
            c.args(["--seed", &seed.to_string()]);
        }
        if let Some(bin) = stage_bin {
            c.env(STAGE_BIN_ENV, bin);
        }
        Lab::up_with(id, c)
    }

    /// The stage's stats file (`LAB_IMPAIR_STATS`).
    pub fn impair_stats_path(&self) -> PathBuf {
        PathBuf::from(self.get("LAB_IMPAIR_STATS"))
    }

    /// The stage's counters as last written (they may lag by about twice
    /// [`super::stage::STATS_INTERVAL`]).
    pub fn impair_stats(&self) -> Result<Stats, String> {
        Stats::read(&self.impair_stats_path())
    }

    /// The stage's counters now: sends it SIGUSR1 and waits (at most 2 s)
    /// for the write that answers.
    pub fn impair_stats_now(&self) -> Result<Stats, String> {
        let before = self.impair_stats()?.writes;
        let pid = self.get("LAB_IMPAIR_PID");
        let kill = Command::new("kill")
            .args(["-USR1", &pid])
            .output()
            .map_err(|e| format!("running kill: {e}"))?;
        if !kill.status.success() {
            return Err(format!("kill -USR1 {pid}: {kill:?}"));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let stats = self.impair_stats()?;
            if stats.writes > before {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(format!("stage {pid} did not answer SIGUSR1 within 2 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
