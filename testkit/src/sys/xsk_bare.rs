//! The bare AF_XDP sender: the ceiling lingerd's port is measured against.
//!
//! [`bare_tx_loop`] sends one frame over and over on `(iface, queue)` with
//! as little as xsk-rs allows: no port, no frame tokens, no engine, no XDP
//! program (TX needs none). Every UMEM frame is written once before the
//! loop; the loop only moves descriptors from the completion ring back to
//! the TX ring in batches and kicks the kernel. It owns its socket and UMEM
//! for the length of one call and nothing else.

use std::io::Write as _;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use lingerd_dataplane::sys::xsk::{XskConfig, XskError, ZeroCopy};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{FrameDesc, Socket, Umem};

/// Descriptors pushed into the TX ring per call.
const BATCH: usize = 64;

/// What [`bare_tx_loop`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BareTx {
    /// Frames the kernel completed.
    pub sent: u64,
    /// Copy or zero-copy.
    pub zero_copy: bool,
}

/// Sends `frame` on `(iface, queue)` as fast as a minimal loop on xsk-rs
/// can, until `deadline`, then waits (at most 1 s) for the last
/// completions.
///
/// The socket is bound with `XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`, zero-copy
/// first when `cfg.zero_copy` allows it, with `cfg`'s sizes. A bind that
/// fails is [`XskError::Socket`] (e.g. the queue is still bound by a
/// process on its way out: worth a retry).
pub fn bare_tx_loop(
    iface: &str,
    queue: u32,
    cfg: &XskConfig,
    frame: &[u8],
    deadline: Instant,
) -> Result<BareTx, XskError> {
    let bad = |e: &dyn std::fmt::Display| XskError::Config(e.to_string());
    if frame.len() > cfg.frame_size as usize {
        return Err(bad(&"the frame is larger than a UMEM frame"));
    }
    let ring = QueueSize::new(cfg.ring_size).map_err(|e| bad(&e))?;
    let frame_size = FrameSize::new(cfg.frame_size).map_err(|e| bad(&e))?;
    let frames = NonZeroU32::new(cfg.frames).ok_or_else(|| bad(&"zero frames"))?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| bad(&e))?;
    let (umem, mut descs) =
        Umem::new(umem_cfg, frames, false).map_err(|e| XskError::Umem(e.to_string()))?;
    let ifname: Interface = iface.parse().map_err(|e| bad(&e))?;
    let modes: &[(BindFlags, bool)] = match cfg.zero_copy {
        ZeroCopy::Auto => &[
            (BindFlags::XDP_ZEROCOPY, true),
            (BindFlags::XDP_COPY, false),
        ],
        ZeroCopy::Require => &[(BindFlags::XDP_ZEROCOPY, true)],
        ZeroCopy::Off => &[(BindFlags::XDP_COPY, false)],
    };
    let mut bound = None;
    let mut last_err = String::new();
    for &(mut flags, zero_copy) in modes {
        if cfg.need_wakeup {
            flags |= BindFlags::XDP_USE_NEED_WAKEUP;
        }
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(flags)
            .build();
        // SAFETY: xsk-rs requires the inhibit flag when the UMEM is shared
        // and `(iface, queue)` is already bound from it. This UMEM was made
        // above for this call only and the flag is set anyway.
        match unsafe { Socket::new(sock_cfg, &umem, &ifname, queue) } {
            Ok((tx, _rx, Some((_fq, cq)))) => {
                bound = Some((tx, cq, zero_copy));
                break;
            }
            Ok(_) => last_err = "no fill/completion ring returned (queue already bound?)".into(),
            Err(e) => last_err = e.to_string(),
        }
    }
    let Some((mut tx, mut cq, zero_copy)) = bound else {
        return Err(XskError::Socket {
            iface: iface.to_owned(),
            queue,
            reason: last_err,
        });
    };
    for d in &mut descs {
        // SAFETY: `d` is one of the UMEM's initial descriptors: no ring has
        // seen it yet, so user space owns the frame and nothing else
        // accesses it while it is written.
        let mut data = unsafe { umem.data_mut(d) };
        let mut cursor = data.cursor();
        cursor.set_pos(0);
        // Cannot fail: the frame fits (checked above).
        let _ = cursor.write_all(frame);
    }
    let mut comp = vec![FrameDesc::default(); cfg.ring_size as usize];
    let mut in_flight = 0u64;
    let mut sent = 0u64;
    let mut iterations = 0u64;
    loop {
        iterations += 1;
        let done = iterations.is_multiple_of(1024) && Instant::now() >= deadline;
        if !done && !descs.is_empty() {
            let take = descs.len().min(BATCH);
            let from = descs.len() - take;
            // SAFETY: `descs` holds frames of this UMEM that user space owns
            // (written above, or returned by the completion ring); those the
            // ring accepts are truncated away at once and are not touched
            // again until the completion ring returns them.
            let n = unsafe { tx.produce(&descs[from..]) };
            descs.truncate(descs.len() - n);
            in_flight += n as u64;
        }
        if in_flight > 0 && tx.needs_wakeup() {
            let _ = tx.wakeup();
        }
        // SAFETY: the completion ring returns frames of this UMEM that we
        // pushed, each once; they go back to `descs`, which owns them.
        let n = unsafe { cq.consume(&mut comp) };
        in_flight -= n as u64;
        sent += n as u64;
        for d in &mut comp[..n] {
            // The completion ring reports no length: set it back to the
            // frame's.
            // SAFETY: `d` was just returned by the completion ring, so the
            // frame is ours again and nothing else accesses it.
            unsafe { umem.data_mut(d) }.cursor().set_pos(frame.len());
        }
        descs.extend_from_slice(&comp[..n]);
        if done {
            break;
        }
    }
    // Drain: bounded by 1 s of wakeups and 1 ms sleeps.
    let drain_until = Instant::now() + Duration::from_secs(1);
    while in_flight > 0 && Instant::now() < drain_until {
        let _ = tx.wakeup();
        // SAFETY: as in the loop above.
        let n = unsafe { cq.consume(&mut comp) };
        in_flight -= n as u64;
        sent += n as u64;
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(BareTx { sent, zero_copy })
}
