//! How a record is born: a listener, an active open, a passive open from a
//! SYN, and a connection rebuilt from a SYN cookie.
//!
//! It owns the initial state and variables of each (RFC 9293 §3.10.1 OPEN,
//! §3.10.7.2 LISTEN), so that only `tcp` ever sets a connection's state. It
//! may not pick sequence numbers or insert records: the engine passes the
//! ISS in and files the record it gets back.

use super::input::negotiate;
use super::linger::Linger;
use super::state::State;
use super::tcb::{Deadline, Pending, Tcb, TcbFlags};
use crate::shared::ClientId;
use crate::shared::config::TcpConfig;
use crate::wire::{SeqNumber, TcpRepr};

/// Who a new record belongs to and how it closes by default.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Birth<'a> {
    /// The client that will own the handle.
    pub(crate) owner: ClientId,
    /// Echoed in its events: the listen or connect request's `user_data`.
    pub(crate) user_data: u64,
    /// Its linger setting.
    pub(crate) linger: Linger,
    /// TCP parameters.
    pub(crate) cfg: &'a TcpConfig,
    /// The current time, ms, rounded down.
    pub(crate) now_ms: u64,
    /// The current time, ms, rounded up (deadlines are armed from it).
    pub(crate) arm_ms: u64,
}

impl Birth<'_> {
    fn tcb(&self, mss: u16, iss: SeqNumber, state: State) -> Tcb {
        let mut tcb = Tcb::new(
            self.owner,
            self.linger,
            &self.cfg.rto,
            mss,
            iss,
            self.now_ms,
        );
        tcb.state = state;
        tcb.user_data = self.user_data;
        tcb
    }
}

/// A listener record (LISTEN).
pub(crate) fn listener(b: Birth<'_>) -> Tcb {
    b.tcb(b.cfg.mss, SeqNumber(0), State::Listen)
}

/// An active open (SYN-SENT) with its connect pending. The SYN retry timer
/// runs from now, even if the first SYN waits for ARP: an unresolvable
/// peer ends in ETIMEDOUT, never in silence.
pub(crate) fn active(b: Birth<'_>, iss: SeqNumber) -> Tcb {
    let mut tcb = b.tcb(b.cfg.mss, iss, State::SynSent);
    tcb.pending = Pending::Connect;
    tcb.flags.insert(TcbFlags::ACTIVE_OPEN | TcbFlags::NEED_SYN);
    tcb.rtx_at = Deadline::after(b.arm_ms, tcb.rtt.rto_ms(&b.cfg.rto));
    if b.cfg.window_shift > 0 {
        tcb.rcv_wscale = b.cfg.window_shift;
    }
    tcb
}

/// A passive open from the peer's SYN (SYN-RECEIVED), bounded by the
/// handshake timeout.
pub(crate) fn passive(b: Birth<'_>, iss: SeqNumber, syn: &TcpRepr<'_>) -> Tcb {
    let mut tcb = b.tcb(b.cfg.mss, iss, State::SynReceived);
    tcb.irs = syn.seq;
    tcb.rcv_nxt = syn.seq.wrapping_add(1);
    tcb.rcv_adv = tcb.rcv_nxt;
    tcb.snd_wnd = u32::from(syn.window);
    tcb.snd_wl1 = syn.seq;
    tcb.flags.insert(TcbFlags::NEED_SYN);
    tcb.close_at = Deadline::after(b.arm_ms, b.cfg.syn_received_timeout_ms);
    negotiate(&mut tcb, b.cfg, &syn.options, false);
    tcb
}

/// The ACK completing a cookie handshake: an ESTABLISHED record straight
/// away (no options beyond the MSS survive a cookie). `mss` is the one the
/// cookie carried.
pub(crate) fn from_cookie(b: Birth<'_>, mss: u16, ack: &TcpRepr<'_>) -> Tcb {
    let peer_isn = ack.seq.wrapping_sub(1);
    let ours = ack.ack.wrapping_sub(1);
    let mut tcb = b.tcb(mss.min(b.cfg.mss), ours, State::Established);
    tcb.irs = peer_isn;
    tcb.rcv_nxt = ack.seq;
    // The cookie SYN-ACK offered this window (unscaled; a cookie
    // connection has no scaling): its right edge stands, data within it
    // must be accepted (RFC 9293 §3.8.6.2.2, never shrink the window).
    tcb.rcv_adv = ack.seq.wrapping_add(b.cfg.recv_buffer.min(0xffff));
    tcb.snd_una = ack.ack;
    tcb.snd_nxt = ack.ack;
    tcb.snd_max = ack.ack;
    tcb.snd_wnd = u32::from(ack.window);
    tcb.max_snd_wnd = tcb.snd_wnd;
    tcb.snd_wl1 = ack.seq;
    tcb.snd_wl2 = ack.ack;
    tcb
}
