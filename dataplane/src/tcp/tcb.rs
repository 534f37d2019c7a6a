//! The transmission control block: one connection's record in the table.
//!
//! It owns the per-connection protocol variables of RFC 9293 §3.3.1 plus
//! lingerd's close bookkeeping (owner, linger, pending request, flags) and
//! three deadlines. It is a plain value: the engine stores it in the slab and
//! files its earliest deadline in the timing wheel. Keep it small: every idle
//! connection costs exactly one of these (see `table` for the accounting).

use super::congestion::NewReno;
use super::linger::Linger;
use super::rtt::{RtoBounds, RttEstimator};
use super::sendbuf::SendBuf;
use super::state::State;
use crate::shared::ClientId;
use crate::wire::SeqNumber;

/// "No deadline" for the three per-connection timers.
pub const NEVER: u64 = u64::MAX;

/// Per-connection flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcbFlags(pub u32);

impl TcbFlags {
    /// The client closed the handle (it is dead to the client); the record
    /// lives on only for the protocol.
    pub const ORPHAN: u32 = 1 << 0;
    /// `shutdown(RECEIVE)`: more data from the peer resets the connection.
    pub const SHUT_RD: u32 = 1 << 1;
    /// `shutdown(SEND)` or close: a FIN goes after the queued data.
    pub const FIN_QUEUED: u32 = 1 << 2;
    /// Our FIN has been sent (it occupies SND.NXT - 1 until acknowledged).
    pub const FIN_SENT: u32 = 1 << 3;
    /// An ACK must go out at the next transmit opportunity.
    pub const NEED_ACK: u32 = 1 << 4;
    /// The connection is on the engine's transmit list.
    pub const ON_TX_LIST: u32 = 1 << 5;
    /// Timestamps were negotiated (RFC 7323).
    pub const TIMESTAMPS: u32 = 1 << 6;
    /// A blocking linger close waits for the graceful close to finish.
    pub const CLOSE_PENDING: u32 = 1 << 7;
    /// A connect request waits for the handshake.
    pub const CONNECT_PENDING: u32 = 1 << 8;
    /// The SYN (or SYN-ACK) must be (re)sent.
    pub const NEED_SYN: u32 = 1 << 9;
    /// We opened actively (SYN-SENT came first).
    pub const ACTIVE_OPEN: u32 = 1 << 10;
    /// The peer reset the connection (state is Closed; the client's handle
    /// stays valid until it closes it).
    pub const PEER_RESET: u32 = 1 << 11;
    /// The connection was aborted by a timeout (retransmissions, handshake).
    pub const TIMED_OUT: u32 = 1 << 12;
    /// The peer's FIN arrived.
    pub const FIN_RECEIVED: u32 = 1 << 13;
    /// A segment is being timed for an RTT sample (Karn: never a retransmission).
    pub const RTT_TIMING: u32 = 1 << 14;
    /// The send side was shut down by the client (sends fail with ESHUTDOWN).
    pub const SHUT_WR: u32 = 1 << 15;
    /// The lifetime deadline is a linger deadline of a close that already
    /// returned (CLOSE-SEMANTICS.md §2 rule 3c): expiry counts as a linger abort.
    pub const LINGER_DEADLINE: u32 = 1 << 16;
    /// Retransmit the first unacknowledged segment once (fast retransmit,
    /// NewReno partial ACK) without rewinding SND.NXT.
    pub const RETRANSMIT_ONE: u32 = 1 << 17;
    /// Send a zero-window probe (one byte beyond the window) now.
    pub const PROBE: u32 = 1 << 18;
    /// The connection was reset by us (shutdown(RECEIVE) with data waiting,
    /// data after shutdown): the handle stays valid, operations fail with
    /// ECONNABORTED.
    pub const LOCAL_ABORT: u32 = 1 << 19;

    /// Whether all bits of `f` are set.
    #[inline]
    pub fn has(self, f: u32) -> bool {
        self.0 & f == f
    }

    /// Sets the bits of `f`.
    #[inline]
    pub fn set(&mut self, f: u32) {
        self.0 |= f;
    }

    /// Clears the bits of `f`.
    #[inline]
    pub fn clear(&mut self, f: u32) {
        self.0 &= !f;
    }
}

/// One connection (or listener) record.
#[derive(Debug)]
pub struct Tcb {
    /// RFC 9293 state.
    pub state: State,
    /// Flags, see [`TcbFlags`].
    pub flags: TcbFlags,
    /// The client that owns the handle.
    pub owner: ClientId,
    /// The peer's window scale shift (applied to windows it sends).
    pub snd_wscale: u8,
    /// Our window scale shift (applied to windows we send).
    pub rcv_wscale: u8,
    /// Segments received since our last ACK (delayed-ACK policy).
    pub unacked_segments: u8,
    /// Duplicate ACKs owed for out-of-order segments: one each, not
    /// coalesced (RFC 5681 §4.2), so the peer can fast-retransmit.
    pub dup_acks_owed: u8,
    /// The most payload we put in one segment (the peer's MSS, capped by ours).
    pub mss: u16,
    /// Challenge ACKs sent in the current one-second window.
    pub challenge_count: u16,
    /// Initial send sequence number.
    pub iss: SeqNumber,
    /// Oldest unacknowledged sequence number.
    pub snd_una: SeqNumber,
    /// Next sequence number to send.
    pub snd_nxt: SeqNumber,
    /// Highest sequence number sent (snd_nxt rewinds on a timeout).
    pub snd_max: SeqNumber,
    /// Segment sequence number of the last window update.
    pub snd_wl1: SeqNumber,
    /// Segment acknowledgment number of the last window update.
    pub snd_wl2: SeqNumber,
    /// The peer's window, scaled, bytes.
    pub snd_wnd: u32,
    /// The largest window the peer ever offered (RFC 5961 §5.2).
    pub max_snd_wnd: u32,
    /// Initial receive sequence number.
    pub irs: SeqNumber,
    /// Next sequence number expected.
    pub rcv_nxt: SeqNumber,
    /// Right edge of the window we advertised (never moves left).
    pub rcv_adv: SeqNumber,
    /// Bytes delivered to the client and not yet returned by `RecvDone`.
    pub unconsumed: u32,
    /// The peer's most recent timestamp value (RFC 7323 TS.Recent).
    pub ts_recent: u32,
    /// Start of the current challenge-ACK budget window, ms.
    pub challenge_window_start: u32,
    /// Sequence number whose acknowledgment ends the timed RTT sample.
    pub rtt_seq: SeqNumber,
    /// When the timed segment was sent, ms (low 32 bits).
    pub rtt_start: u32,
    /// RTO estimator.
    pub rtt: RttEstimator,
    /// Congestion control.
    pub cc: NewReno,
    /// Linger setting.
    pub linger: Linger,
    /// Retransmission / persist / SYN retry deadline, ms, or [`NEVER`].
    pub rtx_at: u64,
    /// Lifetime deadline: linger, orphan, TIME-WAIT, SYN-RECEIVED, ms.
    pub close_at: u64,
    /// Delayed-ACK deadline, ms.
    pub ack_at: u64,
    /// Last segment received or sent, ms (the `idle` filter).
    pub last_active: u64,
    /// `user_data` of the pending connect or blocking close, or (listener)
    /// of the listen request, echoed in accepted events.
    pub user_data: u64,
    /// Send buffer, present only while data is pending.
    pub send: Option<Box<SendBuf>>,
}

impl Default for Tcb {
    fn default() -> Self {
        Tcb::new(
            ClientId(0),
            Linger::default(),
            &RtoBounds::default(),
            536,
            SeqNumber(0),
            0,
        )
    }
}

impl Tcb {
    /// A fresh record owned by `owner`, in state Closed.
    pub fn new(
        owner: ClientId,
        linger: Linger,
        rto: &RtoBounds,
        mss: u16,
        iss: SeqNumber,
        now_ms: u64,
    ) -> Tcb {
        Tcb {
            state: State::Closed,
            flags: TcbFlags::default(),
            owner,
            snd_wscale: 0,
            rcv_wscale: 0,
            unacked_segments: 0,
            dup_acks_owed: 0,
            mss,
            challenge_count: 0,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wl1: SeqNumber(0),
            snd_wl2: SeqNumber(0),
            snd_wnd: 0,
            max_snd_wnd: 0,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            unconsumed: 0,
            ts_recent: 0,
            challenge_window_start: 0,
            rtt_seq: iss,
            rtt_start: 0,
            rtt: RttEstimator::new(rto),
            cc: NewReno::new(u32::from(mss), iss),
            linger,
            rtx_at: NEVER,
            close_at: NEVER,
            ack_at: NEVER,
            last_active: now_ms,
            user_data: 0,
            send: None,
        }
    }

    /// The earliest of the three deadlines, or [`NEVER`].
    #[inline]
    pub fn next_deadline(&self) -> u64 {
        self.rtx_at.min(self.close_at).min(self.ack_at)
    }

    /// Bytes queued (sent or not, unacknowledged).
    #[inline]
    pub fn queued(&self) -> usize {
        self.send.as_ref().map_or(0, |b| b.len())
    }

    /// Sequence space outstanding (sent, not acknowledged), SYN/FIN included.
    #[inline]
    pub fn flight(&self) -> u32 {
        self.snd_nxt.distance_from(self.snd_una)
    }

    /// The client gave the handle up or is closing it: no events, and data
    /// from the peer can no longer be delivered.
    #[inline]
    pub fn closed_by_client(&self) -> bool {
        self.flags.0 & (TcbFlags::ORPHAN | TcbFlags::CLOSE_PENDING) != 0
    }

    /// Whether a linger deadline is armed: a blocking close waiting for
    /// its data and FIN to be acknowledged (`SO_LINGER {on, ms > 0}`), or
    /// the background close of §2 rule 3c, bounded by the linger time.
    #[inline]
    pub fn linger_armed(&self) -> bool {
        self.close_at != NEVER
            && (self.flags.has(TcbFlags::CLOSE_PENDING)
                || (self.flags.has(TcbFlags::ORPHAN) && self.flags.has(TcbFlags::LINGER_DEADLINE)))
    }

    /// Whether everything we queued and our FIN (if any) is acknowledged.
    pub fn all_acked(&self) -> bool {
        self.queued() == 0 && self.snd_una == self.snd_max
    }

    /// The receive window we can offer now, bytes (RFC 9293 §3.8.6.2.2:
    /// buffer space less what the client holds unconsumed).
    pub fn receive_space(&self, recv_buffer: u32) -> u32 {
        let max = 0xffff_u32 << self.rcv_wscale;
        recv_buffer.saturating_sub(self.unconsumed).min(max)
    }

    /// RCV.WND as the sequence checks see it: what we advertised, less what
    /// has arrived since.
    pub fn rcv_wnd(&self) -> u32 {
        let w = self.rcv_adv.diff(self.rcv_nxt);
        if w > 0 { w as u32 } else { 0 }
    }
}
