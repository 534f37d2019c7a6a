//! The daemon under test: `lingerd run --config FILE` in the lab's dut
//! namespace, as an appliance runs it, with its configuration file and
//! client runtime directory in a scratch directory of its own (or, for a
//! device that needs no namespace such as a memif socket, in this process's
//! own namespace: [`Daemon::start_here`]).
//!
//! It owns that process (a [`Proc`], SIGTERM then SIGKILL on drop) and the
//! scratch directory (removed on drop). What the configuration says is the
//! caller's, a `lingerd_config::Config` value, but for where clients
//! attach: `clients.socket` is set to a path in the scratch directory, and
//! the file is that value serialized (`Config::to_yaml`).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use lingerd_config::Config;

use crate::Lab;
use crate::proc::{Ending, Proc, Stderr};

/// How long start-up may take (every queue bound, the sockets open).
pub const START: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The `lingerd` binary.
    pub bin: &'a Path,
    /// The configuration (its `clients.socket` is replaced). When it
    /// serves `/metrics` (`metrics.listen`), start-up waits for the
    /// address too.
    pub config: &'a Config,
    /// Environment variables for the daemon (`NOTIFY_SOCKET`, …).
    pub env: &'a [(&'a str, &'a Path)],
    /// Where its standard error goes.
    pub stderr: Stderr<'a>,
}

/// A running `lingerd run` (see the module text).
#[derive(Debug)]
pub struct Daemon {
    proc: Proc,
    file: PathBuf,
    config: Config,
    metrics: Option<SocketAddr>,
    startup: Vec<String>,
    // Last: removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Writes the configuration, starts the daemon in `lab`'s dut namespace
    /// and waits (at most [`START`]) until it says where clients attach
    /// (and, when it serves `/metrics`, where). A daemon that exits or
    /// stays silent is an error carrying what it printed.
    pub fn start(lab: &Lab, launch: &Launch<'_>) -> io::Result<Daemon> {
        Daemon::start_with(lab.id(), launch, |file| {
            lab.command(
                "LAB_DUT_NS",
                launch.bin.to_str().expect("a UTF-8 binary path"),
                &["run", "--config", file.to_str().expect("a UTF-8 temp dir")],
            )
        })
    }

    /// [`Daemon::start`] in this process's own network namespace, for a
    /// device that needs none (a memif socket file); `label` names the
    /// scratch directory (`lingerd-<label>-…`).
    pub fn start_here(label: &str, launch: &Launch<'_>) -> io::Result<Daemon> {
        Daemon::start_with(label, launch, |file| {
            let mut cmd = Command::new(launch.bin);
            cmd.arg("run").arg("--config").arg(file);
            cmd
        })
    }

    fn start_with(
        label: &str,
        launch: &Launch<'_>,
        command: impl FnOnce(&Path) -> Command,
    ) -> io::Result<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lingerd-{label}-"))
            .tempdir()?;
        // The daemon makes its runtime directory itself (0700).
        let mut config = launch.config.clone();
        config.clients.socket = dir.path().join("run/lingerd.sock");
        let file = dir.path().join("lingerd.yaml");
        std::fs::write(&file, config.to_yaml())?;
        let mut cmd = command(&file);
        for (k, v) in launch.env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn("lingerd run", cmd, launch.stderr, Ending::TermThenKill)?;
        let mut d = Daemon {
            proc,
            file,
            config,
            metrics: None,
            startup: Vec::new(),
            _dir: dir,
        };
        let until = Instant::now() + START;
        loop {
            let Some(line) = d.proc.next_line(until) else {
                let (status, mut stderr) = d.proc.stop();
                if let Stderr::File(log) = launch.stderr {
                    stderr = std::fs::read_to_string(log).unwrap_or_default();
                }
                return Err(io::Error::other(format!(
                    "lingerd did not start (exit {status:?}); it said:\n{}\n{stderr}",
                    d.startup.join("\n")
                )));
            };
            let done = line.contains("lingerd: clients attach at ");
            d.startup.push(line);
            if done {
                break;
            }
        }
        if d.config.metrics.listen.is_some() {
            let line = d.proc.expect("lingerd: metrics at http://", START)?;
            let addr = line
                .trim_start_matches("lingerd: metrics at http://")
                .trim_end_matches("/metrics");
            d.metrics = Some(
                addr.parse()
                    .map_err(|e| io::Error::other(format!("metrics address {addr:?}: {e}")))?,
            );
        }
        Ok(d)
    }

    /// The process.
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// Its pid (`ip netns exec` execs the daemon: the same process).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The client (attach) socket.
    pub fn socket(&self) -> &Path {
        &self.config.clients.socket
    }

    /// The client runtime directory (the attach and ctl sockets).
    pub fn runtime(&self) -> &Path {
        self.socket()
            .parent()
            .expect("the socket is in a directory")
    }

    /// The configuration file.
    pub fn config_file(&self) -> &Path {
        &self.file
    }

    /// The configuration it was started with, or the one the last
    /// [`Daemon::reload`] wrote (whether the daemon applied it is for its
    /// log to say), socket included. Edit a clone and pass it to `reload`.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where `/metrics` listens (in the dut namespace), when it does.
    pub fn metrics(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// What it printed on standard output while starting.
    pub fn startup(&self) -> &[String] {
        &self.startup
    }

    /// Rewrites the configuration file with `config` (its `clients.socket`
    /// kept: the one the daemon was started with) and sends SIGHUP.
    pub fn reload(&mut self, config: &Config) -> io::Result<()> {
        let mut config = config.clone();
        config
            .clients
            .socket
            .clone_from(&self.config.clients.socket);
        std::fs::write(&self.file, config.to_yaml())?;
        self.config = config;
        self.hup();
        Ok(())
    }

    /// Rewrites the configuration file with `text` as it is and sends
    /// SIGHUP: only for a file the daemon must refuse (one that does not
    /// parse), to check that it keeps running on the old configuration.
    /// [`Daemon::config`] stays as it was.
    pub fn reload_text(&mut self, text: &str) -> io::Result<()> {
        std::fs::write(&self.file, text)?;
        self.hup();
        Ok(())
    }

    fn hup(&mut self) {
        self.proc.signal(rustix::process::Signal::HUP);
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.proc.exited().is_none()
    }

    /// SIGTERM; how it exited (`None`: it had to be killed after
    /// [`crate::proc::GRACE`]) and its standard error when captured.
    pub fn stop(&mut self) -> (Option<ExitStatus>, String) {
        self.proc.stop()
    }
}
