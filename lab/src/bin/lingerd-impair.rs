//! `lingerd-impair`: the lab's impairment stage, run by `deploy/lab up
//! --impair` inside the lab's middle namespace. It bridges the two
//! interfaces it is given and impairs what crosses them; `--check` only
//! validates a spec. SIGTERM or SIGINT stops it (final stats written);
//! SIGUSR1 writes the stats file at once.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Parser;
use lingerd_lab::impair::spec::Spec;
use lingerd_lab::impair::stage::{self, Config};

/// The lab's impairment stage (loss, reordering, duplication, delay).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Validate SPEC, print its canonical form and exit.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["spec", "dut_if", "peer_if", "stats"])]
    check: Option<String>,
    /// What to do to the frames, e.g. "loss 1% reorder 5% delay 10ms 5ms"
    /// or "to-dut: loss 1%; to-peer: delay 5ms".
    #[arg(long, required_unless_present = "check")]
    spec: Option<String>,
    /// The interface towards the dut (in this namespace).
    #[arg(long, required_unless_present = "check")]
    dut_if: Option<String>,
    /// The interface towards the peer (in this namespace).
    #[arg(long, required_unless_present = "check")]
    peer_if: Option<String>,
    /// Seed of the random streams; the same seed replays the same fates.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The stats file (JSON), rewritten while the counters move.
    #[arg(long, required_unless_present = "check")]
    stats: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(s) = &args.check {
        return match s.parse::<Spec>() {
            Ok(spec) => {
                println!("{spec}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lingerd-impair: {e}");
                ExitCode::from(2)
            }
        };
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lingerd-impair: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: Args) -> anyhow::Result<()> {
    let (Some(spec), Some(dut_if), Some(peer_if), Some(stats)) =
        (args.spec, args.dut_if, args.peer_if, args.stats)
    else {
        anyhow::bail!("--spec, --dut-if, --peer-if and --stats are required");
    };
    let spec: Spec = spec.parse()?;
    let stop = Arc::new(AtomicBool::new(false));
    let dump = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&dump))
        .context("installing SIGUSR1 handler")?;
    let cfg = Config {
        dut_if,
        peer_if,
        spec,
        seed: args.seed,
        stats,
    };
    eprintln!(
        "lingerd-impair: {} <-> {}: {} (seed {})",
        cfg.dut_if, cfg.peer_if, cfg.spec, cfg.seed
    );
    let end = stage::run(&cfg, &stop, &dump)?;
    eprintln!(
        "lingerd-impair: stopped; to-dut {:?}; to-peer {:?}",
        end.to_dut, end.to_peer
    );
    Ok(())
}
