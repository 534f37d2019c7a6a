//! The transmission control block: one connection's record in the table.
//!
//! It owns the per-connection protocol variables of RFC 9293 §3.3.1 plus
//! lingerd's close bookkeeping (owner, linger, pending request, flags) and
//! three deadlines. It is a plain value: the engine stores it in the slab and
//! files its earliest deadline in the timing wheel. Keep it small: every idle
//! connection costs exactly one of these (see `table` for the accounting).

use std::num::NonZeroU64;

use super::congestion::NewReno;
use super::linger::Linger;
use super::matrix::End;
use super::reasm::QueueId;
use super::rtt::{RtoBounds, RttEstimator};
use super::sendbuf::SendBuf;
use super::state::State;
use crate::shared::ClientId;
use crate::wire::SeqNumber;

/// A per-connection deadline, ms since the engine's epoch, or none: eight
/// bytes, like the plain `u64` it replaces, without a sentinel value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadline(Option<NonZeroU64>);

impl Deadline {
    /// No deadline.
    pub const NONE: Deadline = Deadline(None);

    /// At `ms` (stored as `ms + 1`, so that 0 is a time like any other).
    #[inline]
    pub fn at(ms: u64) -> Deadline {
        Deadline(NonZeroU64::new(ms.saturating_add(1)))
    }

    /// `ms` after `now_ms`.
    #[inline]
    pub fn after(now_ms: u64, ms: u32) -> Deadline {
        Deadline::at(now_ms.saturating_add(u64::from(ms)))
    }

    /// The time, if armed.
    #[inline]
    pub fn ms(self) -> Option<u64> {
        self.0.map(|v| v.get() - 1)
    }

    /// Whether a time is set.
    #[inline]
    pub fn is_set(self) -> bool {
        self.0.is_some()
    }

    /// Whether it is set and at or before `now_ms`.
    #[inline]
    pub fn is_due(self, now_ms: u64) -> bool {
        self.ms().is_some_and(|d| d <= now_ms)
    }

    /// The earlier of the two (none counts as later than any time).
    #[inline]
    pub fn earliest(self, other: Deadline) -> Deadline {
        let key = |d: Deadline| d.0.map_or(u64::MAX, NonZeroU64::get);
        if key(other) < key(self) { other } else { self }
    }
}

bitflags::bitflags! {
    /// Per-connection flags: facts that are independently true or false.
    /// (One-of-N facts are enums: [`Pending`], [`End`].)
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcbFlags: u16 {
        /// The client closed the handle (it is dead to the client); the record
        /// lives on only for the protocol.
        const ORPHAN = 1 << 0;
        /// `shutdown(RECEIVE)`: more data from the peer resets the connection.
        const SHUT_RD = 1 << 1;
        /// `shutdown(SEND)` or close: a FIN goes after the queued data.
        const FIN_QUEUED = 1 << 2;
        /// Our FIN has been sent (it occupies SND.NXT - 1 until acknowledged).
        const FIN_SENT = 1 << 3;
        /// An ACK must go out at the next transmit opportunity.
        const NEED_ACK = 1 << 4;
        /// The connection is on the engine's transmit list.
        const ON_TX_LIST = 1 << 5;
        /// Timestamps were negotiated (RFC 7323).
        const TIMESTAMPS = 1 << 6;
        /// The SYN (or SYN-ACK) must be (re)sent.
        const NEED_SYN = 1 << 7;
        /// We opened actively (SYN-SENT came first).
        const ACTIVE_OPEN = 1 << 8;
        /// The peer's FIN arrived.
        const FIN_RECEIVED = 1 << 9;
        /// A segment is being timed for an RTT sample (Karn: never a retransmission).
        const RTT_TIMING = 1 << 10;
        /// The send side was shut down by the client (sends fail with ESHUTDOWN).
        const SHUT_WR = 1 << 11;
        /// The lifetime deadline is a linger deadline of a close that already
        /// returned (docs/close-semantics.md#non-blocking): expiry counts as a linger abort.
        const LINGER_DEADLINE = 1 << 12;
        /// Retransmit the first unacknowledged segment once (fast retransmit,
        /// NewReno partial ACK) without rewinding SND.NXT.
        const RETRANSMIT_ONE = 1 << 13;
        /// Send a zero-window probe (one byte beyond the window) now.
        const PROBE = 1 << 14;
        /// The lifetime deadline is a bulk close's hard bound (`deadline=N`):
        /// it stays through FIN-WAIT-2, and its expiry counts apart.
        const HARD_DEADLINE = 1 << 15;
    }
}

/// The request a connection still owes a completion for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pending {
    /// None.
    #[default]
    Nothing,
    /// A connect waits for the handshake.
    Connect,
    /// A blocking linger close waits for the graceful close to finish.
    Close,
}

/// One connection (or listener) record.
#[derive(Debug)]
pub struct Tcb {
    /// RFC 9293 state.
    pub state: State,
    /// Flags, see [`TcbFlags`].
    pub flags: TcbFlags,
    /// The request waiting for the connection.
    pub pending: Pending,
    /// Why the connection ended (its state is then CLOSED and the client
    /// still holds the handle); `None` while it lives.
    pub end: Option<End>,
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
    /// Retransmission / persist / SYN retry deadline.
    pub rtx_at: Deadline,
    /// Lifetime deadline: linger, orphan, TIME-WAIT, SYN-RECEIVED, ms.
    pub close_at: Deadline,
    /// Delayed-ACK deadline, ms.
    pub ack_at: Deadline,
    /// Last segment received or sent, ms (the `idle` filter).
    pub last_active: u64,
    /// `user_data` of the pending connect or blocking close, or (listener)
    /// of the listen request, echoed in accepted events.
    pub user_data: u64,
    /// Send buffer, present only while data is pending.
    pub send: Option<Box<SendBuf>>,
    /// Reassembly queue in the core's pool, present only while out-of-order
    /// data (or an out-of-order FIN) is held.
    pub reasm: Option<QueueId>,
    /// When a close request queued our FIN, in microseconds since the
    /// engine's epoch (low 32 bits, odd so that it is never 0); 0 when no
    /// close is being timed. For the close → wire histogram only: cleared
    /// when the FIN first leaves (a FIN that waits 2^32 µs, 71 minutes, or
    /// longer is timed modulo that). It fills what was padding.
    pub fin_asked_us: u32,
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
            flags: TcbFlags::empty(),
            pending: Pending::Nothing,
            end: None,
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
            rtx_at: Deadline::NONE,
            close_at: Deadline::NONE,
            ack_at: Deadline::NONE,
            last_active: now_ms,
            user_data: 0,
            send: None,
            reasm: None,
            fin_asked_us: 0,
        }
    }

    /// The earliest of the three deadlines.
    #[inline]
    pub fn next_deadline(&self) -> Deadline {
        self.rtx_at.earliest(self.close_at).earliest(self.ack_at)
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
        self.flags.contains(TcbFlags::ORPHAN) || self.pending == Pending::Close
    }

    /// Whether a linger deadline is armed: a blocking close waiting for
    /// its data and FIN to be acknowledged (`SO_LINGER {on, ms > 0}`), or
    /// the background close of docs/close-semantics.md#non-blocking, bounded by the linger time.
    #[inline]
    pub fn linger_armed(&self) -> bool {
        self.close_at.is_set()
            && (self.pending == Pending::Close
                || self
                    .flags
                    .contains(TcbFlags::ORPHAN | TcbFlags::LINGER_DEADLINE)
                || self
                    .flags
                    .contains(TcbFlags::ORPHAN | TcbFlags::HARD_DEADLINE))
    }

    /// Whether out-of-order data may be kept for later delivery: the peer's
    /// FIN has not been processed and the client can still read what
    /// arrives. Otherwise a queue is released (the engine checks after every
    /// event).
    #[inline]
    pub fn may_reassemble(&self) -> bool {
        self.state.can_receive()
            && !self.closed_by_client()
            && !self.flags.contains(TcbFlags::SHUT_RD)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_eight_bytes_and_orders_none_last() {
        assert_eq!(std::mem::size_of::<Deadline>(), 8);
        let (a, b) = (Deadline::at(0), Deadline::at(5));
        assert_eq!(a.ms(), Some(0));
        assert_eq!(a.earliest(b), a);
        assert_eq!(Deadline::NONE.earliest(b), b);
        assert_eq!(b.earliest(Deadline::NONE), b);
        assert!(a.is_due(0) && !b.is_due(4) && b.is_due(5));
        assert!(!Deadline::NONE.is_due(u64::MAX));
    }

    #[test]
    fn the_record_stays_within_its_budget() {
        // 168 B before the reassembly queue's 4-byte index, 176 B with it
        // and the 4-byte FIN stamp, which took the last 4 bytes of padding
        // at the end of the record (what is left is scattered inside the
        // estimator, NewReno and Linger). Slot 32 B + 176 B + the index (≤ 17 B at any fill, see
        // table::tests, which models exactly this 208-byte slot): an idle
        // connection costs at most 225 B of the 256 B budget.
        assert_eq!(std::mem::size_of::<Option<QueueId>>(), 4);
        assert_eq!(std::mem::size_of::<Tcb>(), 176);
    }
}
