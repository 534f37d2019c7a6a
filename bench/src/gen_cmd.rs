//! `lingerd-bench gen`: lingerd as a load generator aimed at a device the
//! user chose, on an interface and its queues (AF_XDP) or (feature `dpdk`)
//! a DPDK device. It turns the arguments into a checked
//! [`Plan`](lingerd_bench::generator::run::Plan), supervises the run (the
//! phases, a progress line per second on stderr, the `--duration` bound,
//! Ctrl-C), and prints the report: a table, and with `--json` one JSON
//! object as the last line; `--svg` draws it.
//!
//! It owns the run it starts; whatever ends it (done, the bound, Ctrl-C,
//! an error in a queue), the queues are stopped, the XDP program is
//! detached, and the report covers what was done.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lingerd_bench::generator::run::{Generator, Plan, PortChoice, Results};
use lingerd_bench::generator::{self, CLOSE_PHASE_MARK, Close, Rate, report};
use lingerd_bench::lab::setup::{interrupted, stop_on_signals};
use lingerd_daemon::run::RunError;
use lingerd_dataplane::port::afxdp::IdleMode;
use serde_json::Value;

/// Arguments of `gen`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The interface to send and receive on (AF_XDP).
    #[arg(long, value_name = "IF", required_unless_present = "dpdk")]
    interface: Option<String>,
    /// Its queues, one engine and thread each (default 0).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    queues: Vec<u32>,
    /// A DPDK device instead of an interface (EAL vdev arguments, e.g.
    /// `net_memif0,role=client,socket=/run/memif.sock`; feature dpdk).
    #[arg(long, value_name = "DEVARGS", conflicts_with = "interface")]
    dpdk: Option<String>,
    /// Source addresses with their prefix: `198.18.0.9/24`, a range
    /// `198.18.0.200-198.18.0.215/24`, or a list. The generator answers
    /// ARP for them; no kernel on the link may hold them.
    #[arg(long, value_name = "ADDR/LEN[,…]", value_parser = generator::parse_sources)]
    source: Vec<Vec<generator::Source>>,
    /// The next hop for targets on no source's link.
    #[arg(long)]
    gateway: Option<std::net::Ipv4Addr>,
    /// The device's listeners: `198.18.0.2:80`, `198.18.0.2:8000-8015`, a
    /// list.
    #[arg(long, value_name = "ADDR:PORT[,…]", value_parser = generator::parse_targets)]
    target: Vec<Vec<std::net::SocketAddrV4>>,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// SYNs per second (200k, 1.5M).
    #[arg(long, default_value = "100k")]
    open_rate: Rate,
    /// Handshakes unanswered at most.
    #[arg(long, default_value_t = 10_000)]
    in_flight: usize,
    /// Send this file once per connection when it is established.
    #[arg(long, value_name = "FILE", conflicts_with = "request_bytes")]
    request: Option<PathBuf>,
    /// Send this many bytes once per connection instead of a file.
    #[arg(long, value_name = "N")]
    request_bytes: Option<usize>,
    /// Answer bytes that make a request answered.
    #[arg(long, value_name = "N", default_value_t = 0)]
    expect_bytes: u64,
    /// Wait this long after every connection is ready, before closing.
    #[arg(long, default_value = "0s")]
    hold: lingerd_abi::vocab::Duration,
    /// abort, graceful, linger=DURATION, half or peer.
    #[arg(long, default_value = "abort")]
    close: Close,
    /// Closes per second.
    #[arg(long, default_value = "1M")]
    close_rate: Rate,
    /// How long an answer, a graceful close's acknowledgement or the
    /// device's FIN (half) may take before it counts as a timeout.
    #[arg(long, default_value = "10s")]
    close_timeout: lingerd_abi::vocab::Duration,
    /// Stop after this long whatever is left (the report covers what was
    /// done).
    #[arg(long, default_value = "10m")]
    duration: lingerd_abi::vocab::Duration,
    /// Busy-poll the queues (else sleep when idle).
    #[arg(long)]
    busy_poll: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Write opens and closes over time and the latency CDFs to this SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Write every frame the generator sent and received to this pcapng
    /// file (as `lingerd ctl capture` writes it; tcpdump and Wireshark
    /// read it). Copies the writer cannot keep up with are dropped and
    /// counted, never frames.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Bytes kept of each captured frame (with --pcap).
    #[arg(long, default_value_t = 256, requires = "pcap")]
    pcap_snaplen: u32,
}

fn request_bytes(args: &Args) -> Result<Option<Arc<[u8]>>> {
    match (&args.request, args.request_bytes) {
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading --request {}", path.display()))?;
            ensure!(
                !bytes.is_empty(),
                "--request {}: the file is empty",
                path.display()
            );
            ensure!(
                bytes.len() <= 64 * 1024,
                "--request {}: at most 64 KiB (one send per connection)",
                path.display()
            );
            Ok(Some(bytes.into()))
        }
        (None, Some(n)) => {
            ensure!(
                (1..=64 * 1024).contains(&n),
                "--request-bytes must be 1 to 65536"
            );
            Ok(Some((0..n).map(|i| b'a' + (i % 26) as u8).collect()))
        }
        (None, None) => Ok(None),
    }
}

fn plan(args: &Args, port: PortChoice) -> Result<Plan> {
    let sources: Vec<_> = args.source.iter().flatten().copied().collect();
    ensure!(
        !sources.is_empty(),
        "give --source (the generator's addresses)"
    );
    let targets: Vec<_> = args.target.iter().flatten().copied().collect();
    ensure!(
        !targets.is_empty(),
        "give --target (the device's address and port)"
    );
    let request = request_bytes(args)?;
    Ok(Plan {
        port,
        sources,
        gateway: args.gateway,
        targets,
        connections: args.connections,
        open_rate: args.open_rate.0,
        in_flight: args.in_flight,
        request,
        expect_bytes: args.expect_bytes,
        hold: args.hold.to_std(),
        close: args.close,
        close_rate: args.close_rate.0,
        close_timeout: args.close_timeout.to_std(),
        duration: args.duration.to_std(),
        capture_snaplen: args
            .pcap
            .as_ref()
            .map(|_| args.pcap_snaplen.clamp(64, 65_535)),
        idle: if args.busy_poll {
            IdleMode::BusyPoll
        } else {
            IdleMode::Sleep {
                max: Duration::from_millis(1),
            }
        },
    })
}

pub(crate) fn run(args: Args) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; use --release for meaningful figures");
    }
    stop_on_signals()?;
    #[cfg(feature = "dpdk")]
    let mut eal_guard = None;
    let port = match (&args.interface, &args.dpdk) {
        (Some(iface), None) => {
            let nic = lingerd_daemon::run::inspect(Path::new("/sys/class/net"), iface)?;
            let mut queues = args.queues.clone();
            queues.sort_unstable();
            queues.dedup();
            ensure!(!queues.is_empty(), "give at least one queue");
            if let Some(&queue) = queues.iter().find(|&&q| q >= nic.rx_queues.max(1)) {
                return Err(RunError::QueueOutOfRange {
                    iface: iface.clone(),
                    queue,
                    have: nic.rx_queues.max(1),
                }
                .into());
            }
            PortChoice::AfXdp {
                iface: iface.clone(),
                queues,
                mac: nic.mac,
            }
        }
        #[cfg(feature = "dpdk")]
        (None, Some(devargs)) => {
            use lingerd_dataplane::port::dpdk::{DpdkConfig, Eal, EalConfig};
            let device = DpdkConfig::new(devargs);
            let eal = Eal::init(&EalConfig::default()).context("starting DPDK's EAL")?;
            eal_guard = Some(eal);
            PortChoice::Dpdk { eal, device }
        }
        #[cfg(not(feature = "dpdk"))]
        (None, Some(_)) => bail!("this lingerd-bench was built without the dpdk feature"),
        _ => bail!("give --interface IF (or --dpdk DEVARGS)"),
    };
    let plan = plan(&args, port)?;
    let pcap = match &args.pcap {
        Some(path) => Some(pcap::create(path, plan.capture_snaplen.unwrap_or(256))?),
        None => None,
    };
    let results = supervise(&plan, args.quiet, pcap);
    #[cfg(feature = "dpdk")]
    if let Some(eal) = eal_guard {
        eal.shutdown().context("stopping DPDK's EAL")?;
    }
    print_report(&args, &plan, &results?)
}

/// Runs the phases to the end, the bound, or Ctrl-C.
fn supervise(plan: &Plan, quiet: bool, pcap: Option<pcap::File>) -> Result<Results> {
    let mut g = Generator::start(plan)?;
    let writer = match pcap {
        Some(file) => Some(pcap::spawn(file, g.take_captures())?),
        None => None,
    };
    let t0 = g.started();
    let mut next_line = t0 + Duration::from_secs(1);
    let cut_short = loop {
        std::thread::sleep(Duration::from_millis(10));
        if g.tick() {
            eprintln!("{CLOSE_PHASE_MARK}");
        }
        let now = Instant::now();
        if !quiet && now >= next_line {
            next_line += Duration::from_secs(1);
            let s = g.snapshot();
            eprintln!(
                "gen {:>6.1}s  opened {}  established {}  answered {}  closes sent {}  \
                 confirmed {}  errors {}",
                now.duration_since(t0).as_secs_f64(),
                s.issued,
                s.established,
                s.answered,
                s.closes_sent,
                s.confirmed,
                s.errors
            );
        }
        if g.finished() {
            break None;
        }
        if interrupted() {
            break Some("interrupted (SIGINT or SIGTERM)".to_owned());
        }
        if now.duration_since(t0) >= plan.duration {
            break Some(format!(
                "the --duration bound ({}) passed",
                lingerd_abi::vocab::Duration::from_millis(plan.duration.as_millis() as u64)
            ));
        }
    };
    if let Some(why) = &cut_short {
        eprintln!("gen: stopping: {why}");
    }
    let results = g.stop(cut_short);
    if let Some(w) = writer {
        // The queues have finished their taps: the writer drains and ends.
        match w.join() {
            Ok(Ok(s)) => eprintln!(
                "gen: pcap: {} packets written to {}, {} copies dropped",
                s.written,
                s.path.display(),
                s.dropped
            ),
            Ok(Err(e)) => eprintln!("gen: pcap: writing failed: {e:#}"),
            Err(_) => eprintln!("gen: pcap: the writer panicked"),
        }
    }
    results
}

/// `--pcap`: the file, and the thread that writes the queues' batches to it.
mod pcap {
    use std::io::{BufWriter, Write};
    use std::path::{Path, PathBuf};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use anyhow::{Context, Result};
    use lingerd_daemon::ctl::pcapng::{self, PcapngOut};
    use lingerd_daemon::ctl::proto::QueueCapture;
    use lingerd_dataplane::capture::{Batch, CaptureReader};

    /// An open capture file, its header not yet written.
    pub(crate) struct File {
        path: PathBuf,
        out: BufWriter<std::fs::File>,
        snaplen: u32,
    }

    /// What the writer did.
    pub(crate) struct Written {
        pub(crate) path: PathBuf,
        pub(crate) written: u64,
        pub(crate) dropped: u64,
    }

    /// Creates `path` (0600, truncated): before the run, so that a bad
    /// path is an error before anything is opened.
    pub(crate) fn create(path: &Path, snaplen: u32) -> Result<File> {
        let f = pcapng::create_private(path)
            .with_context(|| format!("creating --pcap {}", path.display()))?;
        Ok(File {
            path: path.to_owned(),
            out: BufWriter::with_capacity(1 << 17, f),
            snaplen,
        })
    }

    /// Writes the batches of `readers` to the file until every tap has
    /// finished and its last batch is written, then each queue's counts.
    pub(crate) fn spawn(
        file: File,
        readers: Vec<(u32, CaptureReader)>,
    ) -> Result<JoinHandle<Result<Written>>> {
        std::thread::Builder::new()
            .name("gen-pcap".into())
            .spawn(move || write(file, &readers))
            .context("starting the pcap writer")
    }

    fn write(file: File, readers: &[(u32, CaptureReader)]) -> Result<Written> {
        let File { path, out, snaplen } = file;
        let mut pcap = PcapngOut::new(out).context("writing the pcapng header")?;
        let queues: Vec<u32> = readers.iter().map(|(q, _)| *q).collect();
        pcap.interfaces(&queues, snaplen, "")?;
        let mut per_queue = vec![0u64; readers.len()];
        loop {
            let mut idle = true;
            let mut all_done = true;
            for (i, (_, r)) in readers.iter().enumerate() {
                // Read `finished` first: a batch filled before it is seen.
                let done = r.finished();
                while let Some(buf) = r.next_batch() {
                    idle = false;
                    if let Ok(batch) = Batch::parse(&buf) {
                        per_queue[i] += pcap.batch(&batch, u64::MAX)?;
                    }
                    r.recycle(buf);
                }
                all_done &= done;
            }
            if all_done {
                break;
            }
            if idle {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let stats: Vec<QueueCapture> = readers
            .iter()
            .zip(&per_queue)
            .map(|((queue, r), &written)| {
                let s = r.stats();
                QueueCapture {
                    queue: *queue,
                    seen: s.seen,
                    matched: s.matched,
                    dropped: s.dropped,
                    written,
                }
            })
            .collect();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        pcap.statistics(&stats, at)?;
        let mut out = pcap.into_inner();
        out.flush().context("flushing the pcap file")?;
        Ok(Written {
            path,
            written: per_queue.iter().sum(),
            dropped: stats.iter().map(|s| s.dropped).sum(),
        })
    }
}

fn print_report(args: &Args, plan: &Plan, r: &Results) -> Result<()> {
    for p in &r.ports {
        eprintln!("gen: port {p}");
    }
    if !r.failures.is_empty() {
        let f: Vec<String> = r
            .failures
            .iter()
            .map(|(e, n)| format!("{e:?} {n}"))
            .collect();
        eprintln!("gen: connect failures: {}", f.join(", "));
    }
    for note in shortfalls(plan, r) {
        eprintln!("gen: {note}");
    }
    println!(
        "lingerd-bench gen: {} connections to {} target(s) from {} source(s), close {}",
        plan.connections,
        plan.targets.len(),
        plan.sources.len(),
        plan.close
    );
    println!("{}", report::table(r, plan.connections));
    if let Some(path) = &args.svg {
        let title = format!(
            "lingerd-bench gen: {} connections, close {}",
            plan.connections, plan.close
        );
        report::svg(path, &title, r).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("gen: wrote {}", path.display());
    }
    if args.json {
        let extra = [
            ("close", Value::String(plan.close.to_string())),
            ("queues", Value::from(r.ports.len())),
        ];
        println!("{}", report::json(r, plan.connections, &extra));
    }
    Ok(())
}

/// What the run could not do as asked, said plainly: nothing opened, or
/// a rate it did not reach (by more than a tenth, over a phase long
/// enough to judge).
fn shortfalls(plan: &Plan, r: &Results) -> Vec<String> {
    let mut notes = Vec::new();
    let c = &r.counts;
    if c.issued > 0 && c.established == 0 {
        notes.push(format!(
            "no connection was established ({} unanswered SYNs, {} refused): check that the \
             targets are reachable from the sources (ARP on the link, or --gateway) and listen",
            c.unanswered_syns, c.refused
        ));
    }
    let judged = |secs: f64| secs >= 1.0;
    if let Some(open) = r.open_phase
        && judged(open.as_secs_f64())
        && r.opens_per_s() < 0.9 * f64::from(plan.open_rate)
    {
        notes.push(format!(
            "asked for {} opens/s, reached {:.0}/s (the device, --in-flight {} or this machine is \
             the bound)",
            plan.open_rate,
            r.opens_per_s(),
            plan.in_flight
        ));
    }
    if let (Some(a), Some(b)) = (r.first_close_ns, r.last_confirm_ns)
        && plan.close.we_close()
        && judged((b.saturating_sub(a)) as f64 / 1e9)
        && r.closes_per_s() < 0.9 * f64::from(plan.close_rate)
    {
        notes.push(format!(
            "asked for {} closes/s, reached {:.0}/s confirmed (the device or this machine is the \
             bound)",
            plan.close_rate,
            r.closes_per_s()
        ));
    }
    notes
}
