//! The command line: `check-config` and `run` (`ctl` comes with the control
//! socket), and the exit statuses they end with.
//!
//! Exit statuses follow sysexits(3) so systemd can tell a bad configuration
//! (never worth a restart: `RestartPreventExitStatus=78`) from a transient
//! failure:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 2 | usage error (clap) |
//! | 69 `EX_UNAVAILABLE` | `run`: the dataplane cannot start (for now: not wired to AF_XDP) |
//! | 78 `EX_CONFIG` | the configuration is missing, unreadable or invalid |
//! | 1 | anything else |

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};
use lingerd_config::{Config, ConfigError};

/// `EX_CONFIG`: the configuration is missing, unreadable or invalid.
pub(crate) const EX_CONFIG: u8 = 78;
/// `EX_UNAVAILABLE`: a required service (the dataplane port) is unavailable.
pub(crate) const EX_UNAVAILABLE: u8 = 69;

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
        /// The YAML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the daemon.
    ///
    /// Validates the configuration (exit 78 if it is invalid). The AF_XDP
    /// dataplane is not wired in yet, so for now it then exits 69
    /// (EX_UNAVAILABLE) without starting anything.
    Run {
        /// The YAML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

/// `run` refused to start because the dataplane has no port to run on yet.
#[derive(Debug)]
struct NotWired {
    config: PathBuf,
}

impl std::fmt::Display for NotWired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot run: the dataplane is not wired to AF_XDP yet, so nothing was started \
             ({} is valid; `lingerd check-config` validates without running)",
            self.config.display()
        )
    }
}

impl std::error::Error for NotWired {}

/// Carries out the command.
pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Run { config } => run_daemon(&config),
    }
}

/// The exit status for an error `run` returned (see the module table).
pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<ConfigError>().is_some() {
        EX_CONFIG
    } else if e.downcast_ref::<NotWired>().is_some() {
        EX_UNAVAILABLE
    } else {
        1
    }
}

fn check_config(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    println!("OK: {}", path.display());
    print!("{}", crate::summary::summary(&config));
    Ok(())
}

fn run_daemon(path: &Path) -> Result<()> {
    let _config = Config::load(path)?;
    Err(NotWired {
        config: path.to_owned(),
    }
    .into())
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
    fn exit_codes() {
        let bad = Config::parse("x: 1\n", "t.yaml").unwrap_err();
        assert_eq!(exit_code(&bad.into()), EX_CONFIG);
        let nw = NotWired { config: "x".into() };
        assert_eq!(exit_code(&nw.into()), EX_UNAVAILABLE);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}
