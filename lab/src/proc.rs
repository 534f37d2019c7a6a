//! The one child-process helper of the system tests and the lab benchmark:
//! a process whose standard output is read line by line (a reader thread
//! feeding a channel), which takes lines on standard input, and which is
//! stopped when dropped (SIGTERM first when asked, then SIGKILL; every wait
//! bounded).
//!
//! It owns the child and its reader threads, nothing else: where the child
//! runs (which namespace, which arguments) is the caller's `Command`'s
//! business.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Where a child's standard error goes.
#[derive(Clone, Copy, Debug)]
pub enum Stderr<'a> {
    /// Our own standard error.
    Inherit,
    /// Read line by line ([`Proc::log_line`]) and kept whole
    /// ([`Proc::stop`] returns it).
    Capture,
    /// Into this file (a log to read after the fact).
    File(&'a Path),
}

/// How a dropped (or [`Proc::stop`]ped) child is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Close its stdin and give it `GRACE` to leave, then SIGKILL.
    EofThenKill,
    /// SIGTERM (a daemon's clean shutdown), `GRACE` to leave, then SIGKILL.
    TermThenKill,
}

/// How long a child may take to leave once asked.
pub const GRACE: Duration = Duration::from_secs(10);

/// A spawned child process (see the module text).
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Option<Receiver<String>>,
    log: Option<Receiver<String>>,
    /// All of standard error, once the child closed it ([`Stderr::Capture`]).
    stderr: Option<JoinHandle<String>>,
    ending: Ending,
}

/// Sends each line of `from` into a channel (until either side is gone).
fn line_reader(from: impl io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    /// Spawns `cmd` with stdin and stdout piped; `name` labels errors.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        stderr: Stderr<'_>,
        ending: Ending,
    ) -> io::Result<Proc> {
        cmd.stdin(Stdio::piped());
        match stderr {
            Stderr::Inherit => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
            }
            Stderr::Capture => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Stderr::File(path) => {
                cmd.stdout(Stdio::piped()).stderr(File::create(path)?);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {name}: {e}")))?;
        let lines = child.stdout.take().map(line_reader);
        let (log, stderr) = match child.stderr.take() {
            Some(pipe) => {
                let (tx, rx) = mpsc::channel();
                let whole = thread::spawn(move || {
                    let mut all = String::new();
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        all.push_str(&line);
                        all.push('\n');
                        let _ = tx.send(line);
                    }
                    all
                });
                (Some(rx), Some(whole))
            }
            None => (None, None),
        };
        Ok(Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            log,
            stderr,
            ending,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, waiting until `until`; `None` at the end of
    /// the time or of the output.
    pub fn next_line(&self, until: Instant) -> Option<String> {
        self.lines
            .as_ref()?
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// The next stdout line, which must start with `prefix` (within
    /// `within`); returns the whole line.
    pub fn expect(&mut self, prefix: &str, within: Duration) -> io::Result<String> {
        let lines = self
            .lines
            .as_ref()
            .ok_or_else(|| io::Error::other(format!("{}: stdout is not read", self.name)))?;
        match lines.recv_timeout(within) {
            Ok(line) if line.starts_with(prefix) => Ok(line),
            Ok(line) => Err(io::Error::other(format!(
                "{}: expected {prefix:?}, got {line:?}",
                self.name
            ))),
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}: no {prefix:?} within {within:?}", self.name),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                Err(io::Error::other(format!(
                    "{}: exited ({status:?}) before {prefix:?}",
                    self.name
                )))
            }
        }
    }

    /// [`Proc::expect`], returning what follows `prefix`, trimmed.
    pub fn expect_rest(&mut self, prefix: &str, within: Duration) -> io::Result<String> {
        let line = self.expect(prefix, within)?;
        Ok(line[prefix.len()..].trim().to_owned())
    }

    /// The first stdout line that contains `needle` (others are passed to
    /// `skipped`), within `within`.
    pub fn expect_containing(
        &mut self,
        needle: &str,
        within: Duration,
        mut skipped: impl FnMut(&str),
    ) -> io::Result<String> {
        let until = Instant::now() + within;
        loop {
            match self.next_line(until) {
                Some(l) if l.contains(needle) => return Ok(l),
                Some(l) => skipped(&l),
                None => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(io::Error::other(format!(
                        "{}: no line with {needle:?} within {within:?} (exit: {status:?})",
                        self.name
                    )));
                }
            }
        }
    }

    /// The next standard-error line ([`Stderr::Capture`]), waiting until
    /// `until`.
    pub fn log_line(&self, until: Instant) -> Option<String> {
        self.log
            .as_ref()?
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// Sends the child one line.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other(format!("{}: stdin is closed", self.name)))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits at most `within` for it to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (by pid; nothing if it has exited and been reaped).
    pub fn signal(&mut self, signal: rustix::process::Signal) {
        if self.exited().is_none() {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ends it as its [`Ending`] says (SIGKILL after [`GRACE`]) and returns
    /// how it exited (`None`: it had to be killed) and all of its standard
    /// error when captured.
    pub fn stop(&mut self) -> (Option<ExitStatus>, String) {
        drop(self.stdin.take());
        if self.ending == Ending::TermThenKill {
            self.signal(rustix::process::Signal::TERM);
        }
        let status = self.wait_exit(GRACE);
        if status.is_none() {
            self.kill();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // A drop during a panic does not wait out a grace period for a
            // child that was asked nothing: SIGTERM-ended children get it,
            // the others are killed at once after their stdin closes.
            drop(self.stdin.take());
            if self.ending == Ending::TermThenKill {
                self.signal(rustix::process::Signal::TERM);
                if self.wait_exit(GRACE).is_some() {
                    return;
                }
            } else if self.wait_exit(Duration::from_millis(500)).is_some() {
                return;
            }
            self.kill();
        }
    }
}
