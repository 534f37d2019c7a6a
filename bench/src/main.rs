//! `lingerd-bench`: the benchmark driver. Each subcommand owns its module:
//! `micro` measures the dataplane's foundation (parse + lookup, RST build,
//! timers, memory) and engine close rates (abort, graceful, linger expiry,
//! vs smoltcp) in one process; `xsk-ceiling` measures the AF_XDP transmit
//! ceiling on the lab against a bare xsk-rs sender; `lab` is the end-to-end
//! close benchmark (the daemon, its client, lingerd as load generator, the
//! ceiling and the kernel baseline in one run); `ring-latency` times abort
//! request → RST at the peer with 1M linger timers armed on the dut's core
//! (beside the kernel's close() → RST); `gen` is lingerd as a load
//! generator aimed at a device the user chose; `transfer` measures echo goodput
//! through the lab's impairment stage against the kernel's. `lab-dut-client` and
//! `kernel-worker` are `lab`'s own helper processes (hidden).
//!
//! Stdout carries the human table and, with `--json`, one JSON object as
//! the last line; progress goes to stderr. Build with `--release`: the
//! figures of a debug build mean nothing.
#![deny(unsafe_code)]

#[cfg(feature = "dpdk")]
mod dpdk_ceiling;
mod gen_cmd;
mod gen_lab_cmd;
mod lab_cmd;
mod ring_latency;
mod transfer;
mod xsk_ceiling;

use anyhow::Context;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use lingerd_bench::lab::{Mode, dut, kernel};
use lingerd_bench::measure::{cpu_time, progress};
use lingerd_bench::micro::{self, Options, Phase};
use serde_json::Value;

/// lingerd benchmarks.
#[derive(Debug, Parser)]
#[command(name = "lingerd-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// AF_XDP TX ceiling on the lab's veth: the port's sender vs a bare
    /// xsk-rs loop (root).
    XskCeiling(xsk_ceiling::Args),
    /// memif ceiling (feature dpdk): 54-byte RSTs from this process to a
    /// child over memif, counted by the child, after an idle check.
    #[cfg(feature = "dpdk")]
    DpdkCeiling(dpdk_ceiling::Args),
    /// lingerd as a load generator aimed at a device you choose (root):
    /// open N connections, optionally request, hold, close in a mode at a
    /// rate, and report what the device did.
    Gen(gen_cmd::Args),
    /// `gen` judged on the netns lab (root): against the kernel, nginx or
    /// HAProxy in the dut namespace, beside a kernel-socket generator
    /// doing the same job, in one run.
    GenLab(gen_lab_cmd::Args),
    /// The end-to-end close benchmark on the lab (root): lingerd (daemon +
    /// client, lingerd as load generator) vs the xsk ceiling and the Linux
    /// kernel, in one run.
    Lab(lab_cmd::Args),
    /// Abort request → RST at the peer (p50/p99/p99.9) with linger timers
    /// armed on the dut's core (default 1M), beside the Linux kernel's
    /// close() → RST, on the lab (root).
    RingLatency(ring_latency::Args),
    /// Echo goodput through the lab's impairment stage (root): a kernel
    /// client against lingerd beside the same client against the kernel,
    /// in one run.
    Transfer(transfer::Args),
    /// `lab`'s client of the daemon, in the dut namespace (internal).
    #[command(hide = true)]
    LabDutClient {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long, value_delimiter = ',')]
        ports: Vec<u16>,
        #[arg(long)]
        connections: usize,
        #[arg(long)]
        mode: Mode,
        #[arg(long)]
        bulk: bool,
        #[arg(long, default_value_t = 0)]
        pace: u32,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "300s")]
        timeout: lingerd_abi::vocab::Duration,
        #[arg(long, default_value_t = 0)]
        timer_ports: usize,
        #[arg(long, default_value = "0s")]
        timer_linger: lingerd_abi::vocab::Duration,
        #[arg(long, default_value = "v4")]
        family: lingerd_bench::lab::Family,
    },
    /// `lab`'s kernel-baseline worker (internal).
    #[command(hide = true)]
    KernelWorker {
        #[arg(long, value_parser = ["server", "client"])]
        role: String,
        #[arg(long)]
        addr: std::net::IpAddr,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        mode: Mode,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value = "120s")]
        timeout: lingerd_abi::vocab::Duration,
    },
    /// `gen-lab`'s kernel server, in the dut namespace (internal).
    #[command(hide = true)]
    GenLabServer(lingerd_bench::generator::server::ServerArgs),
    /// `gen-lab`'s kernel-socket generator worker (internal).
    #[command(hide = true)]
    GenKernelWorker(lingerd_bench::generator::kernel::WorkerArgs),
    /// Micro benchmarks: wire, table, timers, memory, engine close rates,
    /// smoltcp comparison. Medians of ≥ 3 runs after a warm-up.
    Micro {
        /// Print the figures as one JSON object on the last line.
        #[arg(long)]
        json: bool,
        /// Established connections of the engine figures (default 1M;
        /// 100k with --quick).
        #[arg(long, value_name = "N")]
        connections: Option<u32>,
        /// Smoke-test sizes: 100k connections and lookup entries, 1M
        /// timers, 2k smoltcp sockets.
        #[arg(long)]
        quick: bool,
        /// Run only these phases (repeatable; default: all). The JSON then
        /// holds only their keys.
        #[arg(long, value_enum, value_name = "PHASE")]
        only: Vec<PhaseArg>,
    },
}

/// `--only` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PhaseArg {
    Wire,
    Lookup,
    Timers,
    Engine,
    Smoltcp,
}

impl From<PhaseArg> for Phase {
    fn from(p: PhaseArg) -> Phase {
        match p {
            PhaseArg::Wire => Phase::Wire,
            PhaseArg::Lookup => Phase::Lookup,
            PhaseArg::Timers => Phase::Timers,
            PhaseArg::Engine => Phase::Engine,
            PhaseArg::Smoltcp => Phase::Smoltcp,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::XskCeiling(args) => return xsk_ceiling::run(args),
        #[cfg(feature = "dpdk")]
        Command::DpdkCeiling(args) => return dpdk_ceiling::run(args),
        Command::RingLatency(args) => return ring_latency::run(args),
        Command::Transfer(args) => return transfer::run(args),
        Command::Lab(args) => return lab_cmd::run(args),
        Command::Gen(args) => return gen_cmd::run(args),
        Command::GenLab(args) => return gen_lab_cmd::run(args),
        Command::LabDutClient {
            socket,
            ports,
            connections,
            mode,
            bulk,
            pace,
            out,
            timeout,
            timer_ports,
            timer_linger,
            family,
        } => {
            return dut::run(&dut::Args {
                family,
                socket,
                ports,
                connections,
                mode,
                bulk,
                pace,
                out,
                timeout: timeout.to_std(),
                timer_ports,
                timer_linger_ms: timer_linger
                    .as_millis_u32()
                    .context("--timer-linger is too long")?,
            });
        }
        Command::KernelWorker {
            role,
            addr,
            port,
            count,
            mode,
            out,
            timeout,
        } => {
            let role = if role == "server" {
                kernel::Role::Server
            } else {
                kernel::Role::Client
            };
            return kernel::worker(&kernel::WorkerArgs {
                role,
                addr,
                port,
                count,
                mode,
                out,
                timeout: timeout.to_std(),
            });
        }
        Command::GenLabServer(args) => return lingerd_bench::generator::server::serve(&args),
        Command::GenKernelWorker(args) => return lingerd_bench::generator::kernel::worker(&args),
        Command::Micro {
            json,
            connections,
            quick,
            only,
        } => {
            let mut opts = if quick {
                Options::quick()
            } else {
                Options::full()
            };
            if let Some(n) = connections {
                anyhow::ensure!(
                    (1_000..=12_000_000).contains(&n),
                    "--connections must be between 1000 and 12000000"
                );
                opts.connections = n;
            }
            opts.only = only.into_iter().map(Phase::from).collect();
            if cfg!(debug_assertions) {
                progress("warning: debug build; use --release for meaningful figures");
            }
            let (wall, cpu) = (std::time::Instant::now(), cpu_time());
            let mut report = micro::run(&opts);
            if let (Some(before), Some(after)) = (cpu, cpu_time()) {
                let share = (after - before).as_secs_f64() / wall.elapsed().as_secs_f64();
                report.info(
                    "cpu_share",
                    "CPU time ÷ wall time of this run (< 1: shared, noisy)",
                    share.max(0.001),
                    "",
                );
            }
            println!("{}", report.table());
            if json {
                let mode = if quick { "quick" } else { "full" };
                let extra = [("mode", Value::String(mode.to_string()))];
                println!("{}", report.json(&extra));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn gen_takes_lists_and_refuses_bad_values() {
        let ok = [
            "lingerd-bench",
            "gen",
            "--interface",
            "eth1",
            "--source",
            "198.18.0.200-198.18.0.203/24",
            "--source",
            "198.18.0.9/24",
            "--target",
            "198.18.0.1:80,198.18.0.1:81",
            "--close",
            "linger=2s",
            "--close-rate",
            "500k",
        ];
        Cli::try_parse_from(ok).unwrap();
        for (flag, bad) in [
            ("--close", "rst"),
            ("--close-rate", "0"),
            ("--source", "198.18.0.9"),
            ("--target", "198.18.0.1"),
        ] {
            let mut argv = ok.to_vec();
            let i = argv.iter().position(|a| *a == flag).unwrap();
            argv[i + 1] = bad;
            assert!(Cli::try_parse_from(&argv).is_err(), "{flag} {bad}");
        }
    }
}
