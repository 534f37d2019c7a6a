//! The command line: `check-config`, `run` and `ctl` (its flags and
//! output live in `ctl_cmd.rs`), and the exit statuses they end with.
//!
//! Exit statuses follow sysexits(3) so systemd can tell a bad configuration
//! (never worth a restart: `RestartPreventExitStatus=78`) from a transient
//! failure:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 2 | usage error (clap) |
//! | 69 `EX_UNAVAILABLE` | `run`: the dataplane cannot start (interface missing, AF_XDP or XDP failed); `ctl`: the daemon's ctl socket cannot be reached |
//! | 77 `EX_NOPERM` | `run`: not root |
//! | 78 `EX_CONFIG` | the configuration is missing, unreadable or invalid, or does not fit this host (queue out of range, core outside the allowed mask) |
//! | 1 | anything else |

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lingerd_config::{Config, ConfigError};
use lingerd_daemon::run::{BUILD, Daemon, EX_CONFIG, EX_UNAVAILABLE, RunError};

/// lingerd: a kernel-bypass TCP daemon whose speciality is the end of a
/// connection.
#[derive(Debug, Parser)]
#[command(name = "lingerd", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file and print a summary of it.
    ///
    /// Exits 0 when the file is valid, 78 (EX_CONFIG) with the file, line
    /// and column of every problem when it is not. Touches nothing else:
    /// safe for ExecStartPre= and ExecReload=.
    CheckConfig {
        /// The YAML configuration file (or give it with `--config`).
        #[arg(value_name = "FILE", required_unless_present = "config")]
        file: Option<PathBuf>,
        /// The YAML configuration file.
        #[arg(long, short, value_name = "FILE", conflicts_with = "file")]
        config: Option<PathBuf>,
    },
    /// Run the daemon.
    ///
    /// Validates the configuration (exit 78 if it is invalid), then runs one
    /// pinned engine per configured queue (AF_XDP, or DPDK with `port:
    /// dpdk` in a build with the `dpdk` feature) until SIGTERM or SIGINT,
    /// and exits 0 after applying `close.on_client_exit`.
    Run {
        /// The YAML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Talk to the running daemon: list connections, close them, figures.
    ///
    /// Connects to the daemon's ctl socket (beside `clients.socket`, with
    /// the extension `.ctl`; mode 0600: root or the daemon's user, whose
    /// uid must also be in `clients.allow_uids`). Exits 69 when the daemon
    /// cannot be reached, 1 when it refuses the request.
    Ctl(crate::ctl_cmd::CtlArgs),
}

/// Carries out the command.
pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CheckConfig { file, config } => {
            // clap requires one of the two.
            let path = file.or(config).context("check-config needs a FILE")?;
            check_config(&path)
        }
        Command::Run { config } => run_daemon(&config),
        Command::Ctl(args) => crate::ctl_cmd::run(args),
    }
}

/// `lingerd run`: start, serve until SIGTERM or SIGINT, shut down.
fn run_daemon(config: &Path) -> Result<()> {
    let mut daemon = Daemon::start(config)?;
    daemon.serve();
    daemon.shutdown()
}

/// The exit status for an error `run` returned (see the module table).
pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() {
        EX_CONFIG
    } else if let Some(r) = e.downcast_ref::<RunError>() {
        r.exit_code()
    } else if crate::ctl_cmd::unreachable(e) {
        EX_UNAVAILABLE
    } else {
        1
    }
}

fn check_config(path: &Path) -> Result<()> {
    let config = Config::load_for(path, BUILD)?;
    println!("OK: {}", path.display());
    print!("{}", crate::summary::summary(&config));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_config_takes_the_file_positionally_or_with_config() {
        for args in [
            &["lingerd", "check-config", "a.yaml"][..],
            &["lingerd", "check-config", "--config", "a.yaml"],
            &["lingerd", "check-config", "-c", "a.yaml"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::CheckConfig { file, config } = cli.command else {
                panic!("{args:?}: not check-config");
            };
            assert_eq!(file.or(config), Some(PathBuf::from("a.yaml")), "{args:?}");
        }
        for bad in [
            &["lingerd", "check-config"][..],
            &["lingerd", "check-config", "a.yaml", "--config", "b.yaml"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let run = Cli::try_parse_from(["lingerd", "run", "--test-app", "--config", "a.yaml"]);
        assert!(run.is_err(), "--test-app is gone");
    }

    #[test]
    fn exit_codes() {
        let bad = Config::parse("x: 1\n", "t.yaml").unwrap_err();
        assert_eq!(exit_code(&bad.into()), EX_CONFIG);
        let nw = RunError::NoInterface("x".into());
        assert_eq!(exit_code(&nw.into()), EX_UNAVAILABLE);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}
