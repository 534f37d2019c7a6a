//! `lingerd ctl conns|kill|jobs|cancel|stats|capture`: the command line of
//! the operator's interface, and how its answers are printed (`capture`'s
//! in `ctl_capture.rs`).
//!
//! It owns the flags (filters that mirror the engine's `Filter`, checked
//! with the same parsers the daemon uses, so a bad value fails here with
//! exit 2 before anything is sent) and the output: an `ss`-like table, or
//! with `--json` one JSON object per line (JSON Lines; see
//! [`lingerd_daemon::ctl::proto::Row`] for the fields). It finds the ctl
//! socket from the configuration, as `run` does. A foreground `kill` on a
//! terminal owns Ctrl-C: the first one asks "cancel or detach?" (a second
//! one, or end of input, detaches); off a terminal Ctrl-C keeps its
//! default, which leaves the kill running (detached). It may not talk to
//! the socket itself ([`lingerd_daemon::ctl::client`] does).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lingerd_abi::vocab::{CloseMode, Duration as Span, Linger};
use lingerd_config::Config;
use lingerd_daemon::ctl::client::CtlClient;
use lingerd_daemon::ctl::proto::{self, Body, FilterSpec, JobRow, Op, Request, Row};

/// The configuration `lingerd ctl` reads when `--config` is not given
/// (where the systemd unit and the container put it).
pub(crate) const DEFAULT_CONFIG: &str = "/etc/lingerd/lingerd.yaml";

/// How long `conns` and `stats` wait for each reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a foreground kill on a terminal looks for Ctrl-C.
const CTRL_C_POLL: Duration = Duration::from_millis(100);

/// `lingerd ctl`'s own options and its command.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The daemon's YAML configuration: the ctl socket sits beside its
    /// `clients.socket`, with the extension `.ctl`.
    #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG, global = true)]
    config: PathBuf,
    /// The ctl socket itself, instead of reading the configuration.
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// List connections (listeners and closing ones included) like `ss`.
    ///
    /// Streams the daemon's tables as each core walks them in bounded
    /// slices, so the list is a moving picture, as with `ss`, and not
    /// sorted. Columns: state, receive and send queue (bytes), our and the
    /// peer's address, NIC queue, owner (`daemon` for its `listen:` ports,
    /// or the attached client's id), idle time, linger setting, timers.
    Conns {
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object per connection, one per line (JSON Lines).
        #[arg(long)]
        json: bool,
    },
    /// Close the matching connections of every owner, like `ss -K`.
    ///
    /// Runs `close_matching` on every queue as the operator: each owner
    /// is told its connection was aborted (ECONNABORTED). The job id and
    /// progress go to stderr; the count to stdout. A kill runs on its own
    /// once started: `lingerd ctl jobs` lists it, `lingerd ctl cancel ID`
    /// stops it. Ctrl-C on a terminal asks whether to cancel it or detach
    /// from it; elsewhere Ctrl-C detaches. A filter is required: `--state
    /// all` closes everything.
    Kill {
        #[command(flatten)]
        filter: FilterArgs,
        /// abort (RST), graceful (FIN, bounded by tcp.orphan_timeout),
        /// linger=DURATION (graceful, RST if still unacknowledged when it
        /// expires: linger=5s), or deadline=DURATION (graceful, RST at the
        /// deadline for whatever is not closed both ways: deadline=5s).
        #[arg(long, value_name = "MODE")]
        mode: CloseMode,
        /// At most N closes per second in total, split evenly across the
        /// queues (N / queues each, rounded up); 0 = as fast as possible.
        #[arg(long, value_name = "N", default_value_t = 0)]
        pace: u32,
        /// The result as one JSON object.
        #[arg(long)]
        json: bool,
        /// Start the kill, print its job id on stdout (`job ID`, or
        /// `{"job": ID}` with --json) and return at once.
        #[arg(long)]
        detach: bool,
    },
    /// The kills running: job id, progress and rate, filter and mode.
    Jobs {
        /// One JSON object per job, one per line (JSON Lines).
        #[arg(long)]
        json: bool,
    },
    /// Stop a running kill on every queue: what it closed stays closed,
    /// the connections it has not reached stay open.
    Cancel {
        /// The job id (`lingerd ctl kill` printed it; `lingerd ctl jobs`).
        #[arg(value_name = "ID")]
        job: u64,
        /// The result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Every figure `/metrics` has, per queue and in total.
    Stats {
        /// One JSON object: `queues` and `metrics` (name → one value per queue).
        #[arg(long)]
        json: bool,
    },
    /// Copy the frames lingerd receives and sends into a pcapng file, like
    /// tcpdump.
    ///
    /// Each core copies the frames its filter accepts into a bounded
    /// buffer; when `lingerd ctl` cannot keep up, copies are dropped (and
    /// counted in the summary), never the frames. Stops at --count, at
    /// --duration, or on Ctrl-C.
    Capture(crate::ctl_capture::CaptureArgs),
}

/// Filters; every one given must match. `src`/`sport` are our side and
/// `dst`/`dport` the peer's, as in `ss`.
#[derive(Debug, Args)]
struct FilterArgs {
    /// State (repeatable): established, syn-sent, syn-recv, fin-wait-1,
    /// fin-wait-2, time-wait, closed, close-wait, last-ack, listening,
    /// closing, or a group: all, connected, synchronized, bucket, big.
    #[arg(long = "state", value_name = "STATE", value_parser = state_name)]
    states: Vec<String>,
    /// Our address within this prefix (198.18.0.0/24, 2001:db8::/32, or one
    /// address: 198.18.0.1, 2001:db8::1 or `[2001:db8::1]`).
    #[arg(long, visible_alias = "local", value_name = "PREFIX", value_parser = prefix)]
    src: Option<String>,
    /// The peer's address within this prefix.
    #[arg(long, visible_alias = "remote", value_name = "PREFIX", value_parser = prefix)]
    dst: Option<String>,
    /// Our port.
    #[arg(long, visible_alias = "local-port", value_name = "PORT")]
    sport: Option<u16>,
    /// The peer's port.
    #[arg(long, visible_alias = "remote-port", value_name = "PORT")]
    dport: Option<u16>,
    /// Idle (no segment in or out) for at least this long: 30s, 500ms, 2m.
    #[arg(long, value_name = "DURATION", value_parser = idle)]
    idle: Option<u32>,
}

fn state_name(s: &str) -> Result<String, String> {
    proto::parse_states(s).map(|_| s.to_owned())
}

/// A duration in the shared grammar (`30s`), as the protocol's `u32`
/// milliseconds.
fn idle(s: &str) -> Result<u32, String> {
    let d: Span = s.parse().map_err(|e| format!("{e}"))?;
    d.as_millis_u32()
        .ok_or_else(|| format!("{s:?} is too long (at most {}ms)", u32::MAX))
}

fn prefix(s: &str) -> Result<String, String> {
    proto::parse_prefix(s).map(|_| s.to_owned())
}

impl FilterArgs {
    fn spec(&self) -> FilterSpec {
        FilterSpec {
            states: self.states.clone(),
            local: self.src.clone(),
            remote: self.dst.clone(),
            local_port: self.sport,
            remote_port: self.dport,
            min_idle_ms: self.idle.unwrap_or(0),
        }
    }
}

/// Where the ctl socket is: `--socket`, or beside the configuration's
/// attach socket.
fn socket_path(args: &CtlArgs) -> Result<PathBuf> {
    if let Some(s) = &args.socket {
        return Ok(s.clone());
    }
    let config = Config::load(&args.config)?;
    Ok(config.clients.ctl_socket())
}

/// Carries out `lingerd ctl …`.
pub(crate) fn run(args: CtlArgs) -> Result<()> {
    let path = socket_path(&args)?;
    if let CtlCommand::Capture(capture) = &args.command {
        return crate::ctl_capture::run(&path, capture, |message| {
            use clap::CommandFactory;
            crate::cli::Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, message)
                .exit()
        });
    }
    let (op, timeout) = match &args.command {
        CtlCommand::Conns { filter, .. } => (
            Op::Conns {
                filter: filter.spec(),
            },
            Some(REPLY_TIMEOUT),
        ),
        CtlCommand::Kill {
            filter, mode, pace, ..
        } => {
            let filter = filter.spec();
            if filter.is_empty() {
                bail!(
                    "kill needs a filter (--state, --src, --dst, --sport, --dport, --idle); \
                     to close every connection say --state all"
                );
            }
            (
                Op::Kill {
                    filter,
                    mode: *mode,
                    pace: *pace,
                },
                // A paced kill may run for hours with nothing to report.
                None,
            )
        }
        CtlCommand::Jobs { .. } => (Op::Jobs, Some(REPLY_TIMEOUT)),
        CtlCommand::Cancel { job, .. } => (Op::Cancel { job: *job }, Some(REPLY_TIMEOUT)),
        CtlCommand::Stats { .. } => (Op::Stats, Some(REPLY_TIMEOUT)),
        CtlCommand::Capture(_) => unreachable!("handled above"),
    };
    // A foreground kill on a terminal owns Ctrl-C (and so must wake up to
    // look at it); elsewhere Ctrl-C keeps its default and ends `lingerd
    // ctl`, which leaves the kill running.
    let ctrl_c = match &args.command {
        CtlCommand::Kill { detach: false, .. } if std::io::stdin().is_terminal() => {
            Some(ctrl_c_flag()?)
        }
        _ => None,
    };
    let timeout = if ctrl_c.is_some() {
        Some(CTRL_C_POLL)
    } else {
        timeout
    };
    let mut client = CtlClient::connect(&path, timeout)?;
    client.send(&Request {
        v: proto::VERSION,
        op,
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.command {
        CtlCommand::Conns { json, .. } => conns(&mut client, &mut out, json),
        CtlCommand::Kill { json, detach, .. } => {
            let job = started(&mut client)?;
            if detach {
                if json {
                    writeln!(out, "{}", serde_json::json!({ "job": job }))?;
                } else {
                    writeln!(out, "job {job}")?;
                }
                out.flush().context("writing to stdout")?;
                return Ok(());
            }
            eprintln!(
                "lingerd ctl: kill job {job} started (lingerd ctl jobs shows it, \
                 lingerd ctl cancel {job} stops it)"
            );
            let ask = ctrl_c.map(|flag| Interrupt {
                flag,
                socket: path.clone(),
                job,
            });
            kill(&mut client, &mut out, json, ask)
        }
        CtlCommand::Jobs { json } => jobs(&mut client, &mut out, json),
        CtlCommand::Cancel { json, .. } => cancel(&mut client, &mut out, json),
        CtlCommand::Stats { json } => stats(&mut client, &mut out, json),
        CtlCommand::Capture(_) => unreachable!("handled above"),
    }
}

/// The first Ctrl-C sets the flag; a second one, with the flag already
/// set, ends the process as Ctrl-C always does (detached).
fn ctrl_c_flag() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::SIGINT;
    let flag = Arc::new(AtomicBool::new(false));
    // Registered first, so that it sees the flag as the first Ctrl-C left it.
    signal_hook::flag::register_conditional_default(SIGINT, flag.clone())
        .context("installing the Ctrl-C handler")?;
    signal_hook::flag::register(SIGINT, flag.clone()).context("installing the Ctrl-C handler")?;
    Ok(flag)
}

/// A kill's first reply: its job id (within [`REPLY_TIMEOUT`], however
/// short the connection's own timeout is).
fn started(client: &mut CtlClient) -> Result<u64> {
    let until = std::time::Instant::now() + REPLY_TIMEOUT;
    loop {
        match client.reply_within()? {
            Some(Body::Started { job }) => return Ok(job),
            Some(other) => return Err(unexpected(other)),
            None if std::time::Instant::now() >= until => {
                bail!("no answer from the daemon within {REPLY_TIMEOUT:?}")
            }
            None => {}
        }
    }
}

/// What a foreground kill on a terminal needs when Ctrl-C comes.
struct Interrupt {
    flag: Arc<AtomicBool>,
    socket: PathBuf,
    job: u64,
}

/// The operator's answer to "cancel or detach?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Cancel,
    Detach,
}

/// Asks on `err` and reads the answer from `input` until it is one:
/// `c`/`cancel` or `d`/`detach` (any case); the end of input detaches.
fn ask_cancel_or_detach(
    input: &mut impl BufRead,
    err: &mut impl Write,
    job: u64,
    closed: u64,
) -> Choice {
    loop {
        let _ = write!(
            err,
            "\nlingerd ctl: kill job {job} is running ({closed} closed so far). \
             [c]ancel it (the rest stay open) or [d]etach (it goes on)? "
        );
        let _ = err.flush();
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return Choice::Detach,
            Ok(_) => {}
        }
        match line.trim().to_ascii_lowercase().as_str() {
            "c" | "cancel" => return Choice::Cancel,
            "d" | "detach" => return Choice::Detach,
            _ => {}
        }
    }
}

/// A reply we did not expect here.
fn unexpected(body: Body) -> anyhow::Error {
    match body {
        Body::Error { message } => anyhow::anyhow!("the daemon refused: {message}"),
        other => anyhow::anyhow!("unexpected reply from the daemon: {other:?}"),
    }
}

fn conns(client: &mut CtlClient, out: &mut impl Write, json: bool) -> Result<()> {
    if !json {
        writeln!(
            out,
            "{:<11} {:>6} {:>6} {:<21} {:<21} {:>5} {:<12} {:>8} {:<9} Timers",
            "State",
            "Recv-Q",
            "Send-Q",
            "Local Address:Port",
            "Peer Address:Port",
            "Queue",
            "Owner",
            "Idle",
            "Linger"
        )?;
    }
    loop {
        match client.next_reply()? {
            Body::Rows { rows } => {
                for r in rows {
                    if json {
                        serde_json::to_writer(&mut *out, &r)?;
                        writeln!(out)?;
                    } else {
                        writeln!(out, "{}", table_line(&r))?;
                    }
                }
            }
            Body::End { .. } => break,
            other => return Err(unexpected(other)),
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// `1.5s`, `250ms`, `3m2s`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

fn table_line(r: &Row) -> String {
    let linger = Linger {
        on: r.linger_on,
        ms: r.linger_ms,
    }
    .to_string();
    let mut timers = Vec::new();
    if let Some((kind, ms)) = &r.close_timer {
        timers.push(format!("{kind},{}", human_ms(*ms)));
    }
    if let Some(ms) = r.rtx_in_ms {
        timers.push(format!("rtx,{}", human_ms(ms)));
    }
    let mut owner = r.owner_name();
    if r.orphan {
        owner.push('*'); // closed by its owner, finishing in the background
    }
    format!(
        "{:<11} {:>6} {:>6} {:<21} {:<21} {:>5} {:<12} {:>8} {:<9} {}",
        r.state,
        r.recv_q,
        r.send_q,
        r.local,
        r.remote,
        r.queue,
        owner,
        human_ms(r.idle_ms),
        linger,
        if timers.is_empty() {
            "-".into()
        } else {
            timers.join(" ")
        }
    )
}

/// `queue 0: 3, queue 1: 4`.
fn queues_text(per_queue: &[(u32, u64)]) -> String {
    per_queue
        .iter()
        .map(|(q, n)| format!("queue {q}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kill(
    client: &mut CtlClient,
    out: &mut impl Write,
    json: bool,
    interrupt: Option<Interrupt>,
) -> Result<()> {
    let mut so_far = 0;
    loop {
        let reply = match &interrupt {
            None => client.next_reply()?,
            Some(i) => match client.reply_within()? {
                Some(b) => b,
                None if i.flag.load(Ordering::Relaxed) => {
                    let stdin = std::io::stdin();
                    let choice = ask_cancel_or_detach(
                        &mut stdin.lock(),
                        &mut std::io::stderr(),
                        i.job,
                        so_far,
                    );
                    if choice == Choice::Detach {
                        eprintln!(
                            "lingerd ctl: detached; kill job {} goes on (lingerd ctl jobs, \
                             lingerd ctl cancel {})",
                            i.job, i.job
                        );
                        return Ok(());
                    }
                    return cancel_job(&i.socket, i.job, out, json);
                }
                None => continue,
            },
        };
        match reply {
            Body::Progress { closed } => {
                so_far = closed;
                eprintln!("lingerd ctl: kill: {closed} closed so far");
            }
            Body::Killed {
                job,
                closed,
                per_queue,
                errors,
                cancelled,
            } => {
                if json {
                    let v = serde_json::json!({
                        "job": job,
                        "closed": closed,
                        "per_queue": per_queue,
                        "errors": errors,
                        "cancelled": cancelled,
                    });
                    writeln!(out, "{v}")?;
                } else if cancelled {
                    writeln!(
                        out,
                        "kill job {job} was cancelled: closed {closed} connection(s) ({}); \
                         the rest stay open",
                        queues_text(&per_queue)
                    )?;
                } else {
                    writeln!(
                        out,
                        "closed {closed} connection(s) ({})",
                        queues_text(&per_queue)
                    )?;
                }
                out.flush().context("writing to stdout")?;
                if !errors.is_empty() {
                    bail!("{}", errors.join("; "));
                }
                return Ok(());
            }
            other => return Err(unexpected(other)),
        }
    }
}

/// Cancels `job` over a connection of its own and prints the result.
fn cancel_job(socket: &Path, job: u64, out: &mut impl Write, json: bool) -> Result<()> {
    let mut client = CtlClient::connect(socket, Some(REPLY_TIMEOUT))?;
    client.send(&Request {
        v: proto::VERSION,
        op: Op::Cancel { job },
    })?;
    cancel(&mut client, out, json)
}

fn cancel(client: &mut CtlClient, out: &mut impl Write, json: bool) -> Result<()> {
    match client.next_reply()? {
        Body::Cancelled {
            job,
            closed,
            per_queue,
        } => {
            if json {
                let v = serde_json::json!({
                    "job": job,
                    "closed": closed,
                    "per_queue": per_queue,
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "cancelled kill job {job}: closed {closed} connection(s) ({}); \
                     the rest stay open",
                    queues_text(&per_queue)
                )?;
            }
            out.flush().context("writing to stdout")?;
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

fn jobs(client: &mut CtlClient, out: &mut impl Write, json: bool) -> Result<()> {
    let rows = match client.next_reply()? {
        Body::Jobs { jobs } => jobs,
        other => return Err(unexpected(other)),
    };
    if json {
        for r in &rows {
            serde_json::to_writer(&mut *out, r)?;
            writeln!(out)?;
        }
    } else {
        writeln!(
            out,
            "{:>6} {:<14} {:>7} {:>9} {:>10} {:>9} {:>6}  Filter",
            "Job", "Mode", "Pace", "Elapsed", "Closed", "Rate/s", "Walked"
        )?;
        for r in &rows {
            writeln!(out, "{}", job_line(r))?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

fn job_line(r: &JobRow) -> String {
    let pace = if r.pace == 0 {
        "-".to_owned()
    } else {
        r.pace.to_string()
    };
    let job = if r.cancelling {
        format!("{}*", r.job) // a cancel is on its way
    } else {
        r.job.to_string()
    };
    format!(
        "{:>6} {:<14} {:>7} {:>9} {:>10} {:>9.0} {:>5}%  {}",
        job,
        r.mode.to_string(),
        pace,
        human_ms(r.elapsed_ms),
        r.closed,
        r.rate_per_s,
        r.walked_percent,
        r.filter.to_flags()
    )
}

fn stats(client: &mut CtlClient, out: &mut impl Write, json: bool) -> Result<()> {
    let (queues, metrics) = match client.next_reply()? {
        Body::Stats { queues, metrics } => (queues, metrics),
        other => return Err(unexpected(other)),
    };
    if json {
        let metrics: serde_json::Map<String, serde_json::Value> = metrics
            .into_iter()
            .map(|m| (m.name, serde_json::json!(m.values)))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"queues": queues, "metrics": metrics})
        )?;
    } else {
        let width = metrics.iter().map(|m| m.name.len()).max().unwrap_or(6);
        write!(out, "{:<width$} {:>14}", "figure", "total")?;
        for q in &queues {
            write!(out, " {:>14}", format!("queue {q}"))?;
        }
        writeln!(out)?;
        for m in &metrics {
            let total = m.values.iter().fold(0u64, |a, &b| a.saturating_add(b));
            write!(out, "{:<width$} {total:>14}", m.name)?;
            for v in &m.values {
                write!(out, " {v:>14}")?;
            }
            writeln!(out)?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// Whether an error means the daemon could not be reached (exit 69).
pub(crate) fn unreachable(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<lingerd_daemon::ctl::client::CtlError>(),
        Some(lingerd_daemon::ctl::client::CtlError::Connect { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        assert_eq!(human_ms(250), "250ms");
        assert_eq!(human_ms(1500), "1.5s");
        assert_eq!(human_ms(125_000), "2m5s");
    }

    #[test]
    fn flags_use_the_shared_grammar() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            ctl: CtlCommand,
        }
        let kill = Cli::try_parse_from([
            "ctl",
            "kill",
            "--idle",
            "30s",
            "--mode",
            "linger=5s",
            "--dst",
            "198.18.0.2",
        ])
        .unwrap();
        match kill.ctl {
            CtlCommand::Kill { filter, mode, .. } => {
                assert_eq!(mode, CloseMode::Linger { ms: 5000 });
                assert_eq!(filter.idle, Some(30_000));
            }
            _ => panic!("not a kill"),
        }
        for bad in [
            ["--idle", "30"],
            ["--mode", "linger=70000s"],
            ["--idle", "5h"],
        ] {
            let args = ["ctl", "kill", "--state", "all", bad[0], bad[1]];
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["ctl", "kill", "--mode", "rst"]).is_err());
        assert!(idle("9999999999s").unwrap_err().contains("too long"));
        // IPv6 prefixes and addresses, as ss takes and prints them.
        let conns = Cli::try_parse_from([
            "ctl",
            "conns",
            "--src",
            "2001:db8::/32",
            "--dst",
            "[2001:db8::2]",
        ])
        .unwrap();
        match conns.ctl {
            CtlCommand::Conns { filter, .. } => {
                let f = filter.spec().to_filter().unwrap();
                assert_eq!(f.local, Some("2001:db8::/32".parse().unwrap()));
                assert_eq!(f.remote, Some("2001:db8::2/128".parse().unwrap()));
            }
            _ => panic!("not conns"),
        }
        assert!(Cli::try_parse_from(["ctl", "conns", "--src", "2001:db8::/129"]).is_err());
    }

    #[test]
    fn ctrl_c_asks_until_answered_and_end_of_input_detaches() {
        let mut err = Vec::new();
        let mut input = std::io::Cursor::new(b"what\n\nC\n".to_vec());
        assert_eq!(
            ask_cancel_or_detach(&mut input, &mut err, 4, 12),
            Choice::Cancel
        );
        let said = String::from_utf8(err).unwrap();
        assert_eq!(
            said.matches("kill job 4 is running (12 closed so far)")
                .count(),
            3
        );
        let mut input = std::io::Cursor::new(b"detach\n".to_vec());
        assert_eq!(
            ask_cancel_or_detach(&mut input, &mut Vec::new(), 4, 0),
            Choice::Detach
        );
        let mut input = std::io::Cursor::new(Vec::new());
        assert_eq!(
            ask_cancel_or_detach(&mut input, &mut Vec::new(), 4, 0),
            Choice::Detach,
            "end of input"
        );
    }

    #[test]
    fn jobs_and_cancel_take_their_arguments() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            ctl: CtlCommand,
        }
        assert!(matches!(
            Cli::try_parse_from(["ctl", "cancel", "17"]).unwrap().ctl,
            CtlCommand::Cancel {
                job: 17,
                json: false
            }
        ));
        for bad in [
            &["ctl", "cancel"][..],
            &["ctl", "cancel", "-1"],
            &["ctl", "cancel", "x"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Cli::try_parse_from(["ctl", "jobs", "--json"]).unwrap().ctl,
            CtlCommand::Jobs { json: true }
        ));
        let row = JobRow {
            job: 3,
            filter: FilterSpec {
                states: vec!["established".into()],
                remote_port: Some(80),
                ..FilterSpec::default()
            },
            mode: CloseMode::Linger { ms: 5000 },
            pace: 100,
            elapsed_ms: 2500,
            closed: 250,
            per_queue: vec![(0, 250)],
            walked_percent: 40,
            rate_per_s: 100.0,
            cancelling: true,
        };
        let line = job_line(&row);
        for part in [
            "3*",
            "linger=5s",
            "100",
            "2.5s",
            "250",
            "40%",
            "--state established --dport 80",
        ] {
            assert!(line.contains(part), "{part:?} in {line:?}");
        }
    }

    #[test]
    fn socket_flag_wins_over_the_config() {
        let args = CtlArgs {
            config: PathBuf::from("/nonexistent/lingerd.yaml"),
            socket: Some(PathBuf::from("/run/x.ctl")),
            command: CtlCommand::Stats { json: false },
        };
        assert_eq!(
            socket_path(&args).unwrap(),
            std::path::Path::new("/run/x.ctl")
        );
    }
}
