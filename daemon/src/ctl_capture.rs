//! `lingerd ctl capture`: the frames lingerd's cores receive and send,
//! written as pcapng to a file or to standard output (`-w -`, for
//! `lingerd ctl capture -w - | tcpdump -r -`).
//!
//! It owns the flags, the filter's compilation (libpcap, here in this
//! process: `lingerd_daemon::ctl::filter`), the file (created only once the
//! daemon has started the capture, mode 0600: it holds traffic), Ctrl-C
//! (the first one asks the daemon to end the capture, whose last batches
//! and figures still arrive; a second one exits at once) and the summary on
//! standard error. The daemon stops at `--count` and `--duration`. It may
//! not talk to the socket itself (`lingerd_daemon::ctl::client` does).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use lingerd_abi::vocab::Duration as Span;
use lingerd_daemon::ctl::client::{CtlClient, Message};
use lingerd_daemon::ctl::filter;
use lingerd_daemon::ctl::pcapng::{self, PcapngOut};
use lingerd_daemon::ctl::proto::{self, Body, CaptureSpec, Op, QueueCapture, Request};

/// How often the receive loop looks at Ctrl-C.
const POLL: Duration = Duration::from_millis(100);
/// How long the daemon may take to end a capture once asked.
const END_WAIT: Duration = Duration::from_secs(15);
/// The output's buffer: about one batch, written (and flushed) at once.
const OUT_BUFFER: usize = 128 * 1024;

/// `lingerd ctl capture`'s flags.
#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// Capture on this NIC queue (repeatable); default: every queue.
    #[arg(long = "queue", value_name = "N")]
    queues: Vec<u32>,
    /// A filter in tcpdump's syntax (pcap-filter(7)), compiled by libpcap:
    /// `--filter host 198.18.0.2 and port 80` (the words up to the next
    /// option). Default: every frame.
    #[arg(long, num_args = 1.., value_name = "EXPR")]
    filter: Vec<String>,
    /// Stop after N packets.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long: 10s, 500ms, 2m.
    #[arg(long, value_name = "DURATION")]
    duration: Option<Span>,
    /// Bytes kept of each frame; 0 (the default) keeps up to 16384, more
    /// than any frame lingerd handles.
    #[arg(long, value_name = "N", default_value_t = 0)]
    snaplen: u32,
    /// Write pcapng to FILE; `-` writes to standard output.
    #[arg(short = 'w', value_name = "FILE")]
    write: PathBuf,
}

impl CaptureArgs {
    fn expression(&self) -> String {
        self.filter.join(" ")
    }

    /// The request, with the filter compiled (`Err`: libpcap's message).
    fn spec(&self) -> Result<CaptureSpec, String> {
        let duration_ms = self.duration.map_or(0, |d| d.as_millis());
        if self.duration.is_some() && duration_ms == 0 {
            return Err("--duration must be at least 1ms".into());
        }
        if self.count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        Ok(CaptureSpec {
            queues: self.queues.clone(),
            program: filter::compile(&self.expression())?,
            snaplen: self.snaplen,
            count: self.count.unwrap_or(0),
            duration_ms,
        })
    }
}

/// Where the file goes.
enum Sink {
    /// Not opened yet (before the daemon started the capture).
    Pending,
    Open(PcapngOut<Box<dyn Write>>),
    /// The reader of standard output went away: the rest is not written.
    Gone,
}

/// Carries out `lingerd ctl capture` against the ctl socket at `socket`;
/// `usage` turns a bad flag value into clap's error (exit 2).
pub(crate) fn run(
    socket: &Path,
    args: &CaptureArgs,
    usage: impl FnOnce(String) -> anyhow::Error,
) -> Result<()> {
    let spec = match args.spec() {
        Ok(s) => s,
        Err(e) => return Err(usage(e)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal once the first is seen exits at once (status 1).
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handler")?;
    }
    let mut client = CtlClient::connect(socket, Some(POLL))?;
    client.send(&Request {
        v: proto::VERSION,
        op: Op::Capture(spec),
    })?;
    let expression = args.expression();
    let mut sink = Sink::Pending;
    let mut asked: Option<Instant> = None;
    loop {
        if asked.is_none() && stop.load(Ordering::Relaxed) {
            eprintln!("lingerd ctl: capture: stopping (the last packets and the figures follow)");
            client.shutdown_send()?;
            asked = Some(Instant::now());
        }
        if asked.is_some_and(|t| t.elapsed() > END_WAIT) {
            bail!("the daemon did not end the capture within {END_WAIT:?}");
        }
        let message = match client.next_message()? {
            None => continue,
            Some(m) => m,
        };
        match message {
            Message::Batch(batch) => {
                let Sink::Open(out) = &mut sink else {
                    if matches!(sink, Sink::Pending) {
                        bail!("the daemon sent packets before starting the capture");
                    }
                    continue;
                };
                match out.batch(&batch, u64::MAX) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        eprintln!("lingerd ctl: capture: the reader went away; stopping");
                        sink = Sink::Gone;
                        if asked.is_none() {
                            client.shutdown_send()?;
                            asked = Some(Instant::now());
                        }
                    }
                    Err(e) => return Err(e).context(format!("writing {}", args.write.display())),
                }
            }
            Message::Reply(Body::CaptureStarted { queues, snaplen }) => {
                let mut out = PcapngOut::new(open(&args.write)?)
                    .with_context(|| format!("writing {}", args.write.display()))?;
                out.interfaces(&queues, snaplen, &expression)
                    .with_context(|| format!("writing {}", args.write.display()))?;
                sink = Sink::Open(out);
                let on: Vec<String> = queues.iter().map(u32::to_string).collect();
                eprintln!(
                    "lingerd ctl: capturing on queue {} (snap length {snaplen}{}) to {}; Ctrl-C \
                     stops",
                    on.join(", "),
                    if expression.is_empty() {
                        String::new()
                    } else {
                        format!(", filter {expression:?}")
                    },
                    if args.write == Path::new("-") {
                        "standard output".to_owned()
                    } else {
                        args.write.display().to_string()
                    }
                );
            }
            Message::Reply(Body::Captured {
                written,
                per_queue,
                reason,
            }) => {
                if let Sink::Open(mut out) = sink {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                    match out.statistics(&per_queue, now) {
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                        other => {
                            other.with_context(|| format!("writing {}", args.write.display()))?
                        }
                    }
                }
                summary(written, &per_queue, &reason);
                return Ok(());
            }
            Message::Reply(Body::Error { message }) => bail!("the daemon refused: {message}"),
            Message::Reply(other) => bail!("unexpected reply from the daemon: {other:?}"),
        }
    }
}

/// The output: standard output for `-`, else a new file (0600; replaced
/// if it exists).
fn open(path: &Path) -> Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(OUT_BUFFER, io::stdout())));
    }
    let f = pcapng::create_private(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(OUT_BUFFER, f)))
}

/// tcpdump's closing lines, with lingerd's words.
fn summary(written: u64, per_queue: &[QueueCapture], reason: &str) {
    let sum = |f: fn(&QueueCapture) -> u64| per_queue.iter().map(f).fold(0u64, u64::saturating_add);
    eprintln!("{written} packets captured ({reason})");
    eprintln!("{} packets matched the filter", sum(|q| q.matched));
    eprintln!(
        "{} copies dropped (capture buffers full; the frames themselves went on)",
        sum(|q| q.dropped)
    );
    if per_queue.len() > 1 {
        for q in per_queue {
            eprintln!(
                "  queue {}: {} seen, {} matched, {} dropped, {} written",
                q.queue, q.seen, q.matched, q.dropped, q.written
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        c: CaptureArgs,
    }

    fn parse(args: &[&str]) -> Result<CaptureArgs, clap::Error> {
        use clap::Parser;
        let mut all = vec!["capture"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.c)
    }

    #[test]
    fn the_flags_of_the_issue_parse_and_compile() {
        let a = parse(&[
            "--queue",
            "0",
            "--filter",
            "host",
            "198.18.0.2",
            "and",
            "port",
            "80",
            "--count",
            "10",
            "--duration",
            "10s",
            "--snaplen",
            "96",
            "-w",
            "x.pcapng",
        ])
        .unwrap();
        assert_eq!(a.expression(), "host 198.18.0.2 and port 80");
        let spec = a.spec().unwrap();
        assert_eq!(spec.queues, [0]);
        assert!(!spec.program.is_empty());
        assert_eq!(
            (spec.count, spec.duration_ms, spec.snaplen),
            (10, 10_000, 96)
        );
        let a = parse(&["-w", "-"]).unwrap();
        assert!(
            a.spec().unwrap().program.is_empty(),
            "no filter: every frame"
        );
        assert!(parse(&["--count", "5"]).is_err(), "-w is required");
        assert!(
            parse(&["-w", "x", "--duration", "5"]).is_err(),
            "a unit is required"
        );
        let bad = parse(&["-w", "x", "--filter", "port", "banana"]).unwrap();
        assert!(bad.spec().is_err());
        assert!(parse(&["-w", "x", "--count", "0"]).unwrap().spec().is_err());
    }
}
