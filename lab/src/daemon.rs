//! The daemon under test: `lingerd run --config FILE` in the lab's dut
//! namespace, as an appliance runs it, with its configuration file and
//! client runtime directory in a scratch directory of its own.
//!
//! It owns that process (a [`Proc`], SIGTERM then SIGKILL on drop) and the
//! scratch directory (removed on drop). What the configuration says is the
//! caller's: the file is written as given, with `@SOCKET@` standing for
//! the client socket's path.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::Lab;
use crate::proc::{Ending, Proc, Stderr};

/// How long start-up may take (every queue bound, the sockets open).
pub const START: Duration = Duration::from_secs(30);

/// The placeholder for the client socket's path in a configuration.
pub const SOCKET: &str = "@SOCKET@";

/// What to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The `lingerd` binary.
    pub bin: &'a Path,
    /// The configuration file's text ([`SOCKET`] is replaced).
    pub yaml: &'a str,
    /// Environment variables for the daemon (`NOTIFY_SOCKET`, …).
    pub env: &'a [(&'a str, &'a Path)],
    /// Where its standard error goes.
    pub stderr: Stderr<'a>,
    /// Whether the configuration serves `/metrics` (then start-up waits
    /// for its address too).
    pub metrics: bool,
}

/// A running `lingerd run` (see the module text).
#[derive(Debug)]
pub struct Daemon {
    proc: Proc,
    config: PathBuf,
    yaml: String,
    socket: PathBuf,
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
        let dir = tempfile::Builder::new()
            .prefix(&format!("lingerd-{}-", lab.id()))
            .tempdir()?;
        // The daemon makes its runtime directory itself (0700).
        let socket = dir.path().join("run/lingerd.sock");
        let yaml = launch
            .yaml
            .replace(SOCKET, socket.to_str().expect("a UTF-8 temp dir"));
        let config = dir.path().join("lingerd.yaml");
        std::fs::write(&config, &yaml)?;
        let mut cmd = lab.command(
            "LAB_DUT_NS",
            launch.bin.to_str().expect("a UTF-8 binary path"),
            &[
                "run",
                "--config",
                config.to_str().expect("a UTF-8 temp dir"),
            ],
        );
        for (k, v) in launch.env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn("lingerd run", cmd, launch.stderr, Ending::TermThenKill)?;
        let mut d = Daemon {
            proc,
            config,
            yaml,
            socket,
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
        if launch.metrics {
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
        &self.socket
    }

    /// The client runtime directory (the attach and ctl sockets).
    pub fn runtime(&self) -> &Path {
        self.socket.parent().expect("the socket is in a directory")
    }

    /// The configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The configuration as started.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    /// Where `/metrics` listens (in the dut namespace), when it does.
    pub fn metrics(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// What it printed on standard output while starting.
    pub fn startup(&self) -> &[String] {
        &self.startup
    }

    /// Rewrites the configuration file with `yaml` and sends SIGHUP.
    pub fn reload(&mut self, yaml: &str) -> io::Result<()> {
        std::fs::write(&self.config, yaml)?;
        self.proc.signal(rustix::process::Signal::HUP);
        Ok(())
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
