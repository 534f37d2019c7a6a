//! `lingerd-bench xsk-ceiling`: how many 54-byte RST frames one core pushes
//! through the AF_XDP port, against a bare xsk-rs loop, in one run; and
//! the ceilings of a lab run, whose RSTs are of the run's family (74 bytes
//! over IPv6, `lingerd_testkit::frames::rst_frame`).
//!
//! It creates its own lab (`deploy/lab up --id <id>`, torn down by a guard on
//! every exit path, panics included: `lingerd_lab` covers `panic = "abort"`),
//! runs each sender in a thread that has entered the dut namespace (setns),
//! and counts what the peer's veth received
//! (`/sys/class/net/<peer-if>/statistics/rx_packets`, read through
//! `ip netns exec` before and after) — not just TX completions. First the
//! port's sender (lingerd's XDP program attached, frames through
//! `Port::tx_frame`), then `lingerd_testkit::sys::xsk_bare::bare_tx_loop`. It owns the lab it
//! made and nothing else; it may not touch other namespaces or addresses
//! outside 198.18.0.0/15 and 2001:db8::/32.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lingerd_dataplane::port::Port;
use lingerd_dataplane::port::afxdp::{AfXdpConfig, AfXdpPort, TxOutcome, XskConfig};
use lingerd_dataplane::sys::netns;
use lingerd_dataplane::wire::{EthernetAddress, SeqNumber};
use lingerd_testkit::frames::rst_frame;
use lingerd_testkit::sys::xsk_bare;

/// Arguments of `xsk-ceiling`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// How long each sender runs, 1s to 60s (`3s`, `1500ms`).
    #[arg(long, default_value = "3s")]
    duration: lingerd_abi::vocab::Duration,
    /// Lab id (1 to 10 letters or digits); default: "xc" + pid.
    #[arg(long)]
    id: Option<String>,
}

use lingerd_lab::{Family, Lab};

/// A MAC the lab printed (`LAB_*_MAC`), parsed by the shared vocabulary.
pub(crate) fn parse_mac(s: &str) -> Result<EthernetAddress> {
    s.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("bad MAC {s}: {e}"))
}

/// Sends `frame` through `port` for `secs`, in bursts of 64 and one flush
/// per burst, reading the clock once every `clock_every` bursts; then lets
/// the last frames leave (at most 1 s of flushes 1 ms apart). Returns the
/// seconds spent sending. Both ceilings (AF_XDP and DPDK) send this way.
pub(crate) fn send_for<P: Port>(
    port: &mut P,
    frame: &[u8],
    secs: f64,
    clock_every: u32,
) -> std::io::Result<f64> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let mut bursts = 0u32;
    loop {
        bursts = bursts.wrapping_add(1);
        if bursts.is_multiple_of(clock_every.max(1)) && Instant::now() >= deadline {
            break;
        }
        for _ in 0..64 {
            let out = port.tx_frame(|buf| {
                buf.get_mut(..frame.len())?.copy_from_slice(frame);
                Some(frame.len())
            });
            if out != TxOutcome::Queued {
                break;
            }
        }
        port.flush()?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let drain_until = Instant::now() + Duration::from_secs(1);
    while port.tx_in_flight() > 0 && Instant::now() < drain_until {
        port.flush()?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(seconds)
}

/// One sender's result.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) seconds: f64,
    pub(crate) xdp: String,
    pub(crate) bind: String,
}

impl Run {
    pub(crate) fn pps(&self) -> f64 {
        self.received as f64 / self.seconds
    }
}

/// The port's sender: the same `tx_frame`/`flush` the engine shell uses.
fn port_sender(iface: &str, addr: IpAddr, frame: &[u8], secs: f64) -> Result<Run> {
    let mut cfg = AfXdpConfig::new(iface, 0, vec![addr]);
    cfg.xsk = XskConfig::default();
    let mut port = AfXdpPort::open(&cfg)?;
    let info = port.info().clone();
    let seconds = send_for(&mut port, frame, secs, 1)?;
    let stats = port.stats()?;
    Ok(Run {
        sent: stats.port.tx_frames - port.tx_in_flight() as u64,
        received: 0,
        seconds,
        xdp: info.xdp.as_str().to_owned(),
        bind: info.bind_str().to_owned(),
    })
}

fn bare_sender(iface: &str, frame: &[u8], secs: f64) -> Result<Run> {
    let t0 = Instant::now();
    let r = xsk_bare::bare_tx_loop(
        iface,
        0,
        &XskConfig::default(),
        frame,
        t0 + Duration::from_secs_f64(secs),
    )?;
    Ok(Run {
        sent: r.sent,
        received: 0,
        seconds: secs,
        xdp: "none".to_owned(),
        bind: if r.zero_copy { "zero-copy" } else { "copy" }.to_owned(),
    })
}

/// Runs `sender` in a thread inside the dut namespace and counts what the
/// peer received meanwhile.
fn measure(lab: &Lab, sender: impl FnOnce() -> Result<Run> + Send + 'static) -> Result<Run> {
    let ns = lab.get("LAB_DUT_NS");
    let before = lab.peer_stat("rx_packets").map_err(anyhow::Error::msg)?;
    let mut run = std::thread::spawn(move || -> Result<Run> {
        netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
        sender()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    std::thread::sleep(Duration::from_millis(100));
    run.received = lab.peer_stat("rx_packets").map_err(anyhow::Error::msg)? - before;
    Ok(run)
}

/// `lingerd-bench xsk-ceiling`.
pub(crate) fn run(args: Args) -> Result<()> {
    let seconds = args.duration.to_std().as_secs_f64();
    if !(1.0..=60.0).contains(&seconds) {
        bail!("--duration must be within 1s..=60s");
    }
    let id = args
        .id
        .unwrap_or_else(|| format!("xc{}", std::process::id() % 100_000_000));
    lingerd_lab::down_all_on_panic();

    let lab = Lab::up(&id, 1).map_err(anyhow::Error::msg)?;
    let iface = lab.get("LAB_DUT_IF");
    let (port, bare) = ceiling(&lab, Family::V4, seconds)?;
    let ratio = if bare.pps() > 0.0 {
        port.pps() / bare.pps()
    } else {
        0.0
    };
    if args.json {
        let v = serde_json::json!({
            "bench": "xsk-ceiling",
            "iface": iface,
            "frame_len": lingerd_dataplane::wire::RST_FRAME_LEN,
            "pps": port.pps().round(),
            "sent": port.sent,
            "received": port.received,
            "seconds": port.seconds,
            "xdp_mode": port.xdp,
            "bind_mode": port.bind,
            "bare_pps": bare.pps().round(),
            "bare_sent": bare.sent,
            "bare_received": bare.received,
            "bare_seconds": bare.seconds,
            "bare_bind_mode": bare.bind,
            "ratio_to_bare": (ratio * 1000.0).round() / 1000.0,
        });
        println!("{v}");
    } else {
        println!(
            "xsk-ceiling on {iface} (lab {id}), {}-byte RST frames, one core",
            lingerd_dataplane::wire::RST_FRAME_LEN
        );
        println!(
            "  port: {:>10.0} pps received  (sent {}, received {}, {:.2} s, XDP {}, {} mode)",
            port.pps(),
            port.sent,
            port.received,
            port.seconds,
            port.xdp,
            port.bind
        );
        println!(
            "  bare: {:>10.0} pps received  (sent {}, received {}, {:.2} s, {} mode)",
            bare.pps(),
            bare.sent,
            bare.received,
            bare.seconds,
            bare.bind
        );
        println!("  ratio to bare: {ratio:.3}");
    }
    drop(lab);
    Ok(())
}

/// The bare sender from the dut's veth end to the load generator's address,
/// `secs`, counted by the generator's own receive path (see the module
/// text), on `cpu`, RSTs of `family`. `received` is what that receiver
/// counted; the figure is received ÷ the sender's seconds.
pub(crate) fn fair_ceiling(
    lab: &Lab,
    family: Family,
    secs: f64,
    cpu: Option<usize>,
) -> Result<Run> {
    use std::sync::atomic::Ordering;

    use lingerd_bench::lab::Addressing;
    use lingerd_bench::lab::loadgen::{LAB_IDLE, Receiver, Side};

    let iface = lab.get("LAB_DUT_IF");
    let peer_mac = parse_mac(&lab.get("LAB_PEER_MAC"))?;
    let frame = rst_frame(
        parse_mac(&lab.get("LAB_DUT_MAC"))?,
        peer_mac,
        (lab.dut_addr(family), 9),
        (Addressing::of(family).generator, 40_000),
        SeqNumber(1),
    )
    .context("the lab's addresses of one family")?;
    let side = Side::AfXdp {
        ns: lab.get("LAB_PEER_NS"),
        iface: lab.get("LAB_PEER_IF"),
        mac: peer_mac,
    };
    let rx = Receiver::start(&side, family, cpu, LAB_IDLE)?;
    let until = Instant::now() + Duration::from_secs(10);
    while !rx.ready.load(Ordering::Relaxed) {
        if rx.finished() || Instant::now() > until {
            rx.stop()?;
            bail!("the counting receiver did not start within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = rx.rsts.load(Ordering::Relaxed);
    let ns = lab.get("LAB_DUT_NS");
    let mut run = std::thread::spawn(move || -> Result<Run> {
        netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
        bare_sender(&iface, &frame, secs)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("sender thread panicked"))??;
    std::thread::sleep(Duration::from_millis(100));
    run.received = rx.rsts.load(Ordering::Relaxed) - before;
    rx.stop()?;
    run.xdp = "lingerd (load generator's)".to_owned();
    Ok(run)
}

/// The port's sender then the bare loop, `secs` each, on `lab`'s dut end
/// (nothing else may hold an XDP program there meanwhile), RSTs of
/// `family` from the dut's kernel address to the peer's.
pub(crate) fn ceiling(lab: &Lab, family: Family, secs: f64) -> Result<(Run, Run)> {
    let iface = lab.get("LAB_DUT_IF");
    let dut_ip = lab.dut_addr(family);
    // An RST to a port nobody listens on: the peer's kernel drops it quietly.
    let frame = rst_frame(
        parse_mac(&lab.get("LAB_DUT_MAC"))?,
        parse_mac(&lab.get("LAB_PEER_MAC"))?,
        (dut_ip, 40_000),
        (lab.peer_addr(family), 9),
        SeqNumber(1),
    )
    .context("the lab's addresses of one family")?;

    let port = {
        let (iface, frame) = (iface.clone(), frame.clone());
        measure(lab, move || port_sender(&iface, dut_ip, &frame, secs))?
    };
    let bare = {
        let iface = iface.clone();
        measure(lab, move || bare_sender(&iface, &frame, secs))?
    };
    Ok((port, bare))
}
