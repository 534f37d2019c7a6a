//! The effects context a connection's logic runs in.
//!
//! It owns nothing: for the duration of one event it borrows the completion
//! queue, counters, send-buffer pool and TCP configuration (types of the
//! leaf module `shared`, which the engine owns instances of), so the
//! connection logic can post completions and count without knowing the
//! engine. It is one of two ways back: what the engine must do with the
//! record (free it, send a reply) is returned as a
//! [`Disposition`](crate::shared::Disposition), and output is left as flags
//! on the record.

use std::collections::VecDeque;

use lingerd_abi::Errno;

use super::reasm::ReasmPool;
use super::sendbuf::SendBufPool;
use super::tcb::{Tcb, TcbFlags};
use crate::shared::CtlSegment;
use crate::shared::config::TcpConfig;
use crate::shared::counters::Counters;
use crate::shared::reply_limit::ReplyLimit;
use crate::shared::{ClientId, Completion, Detail, RstClock, RxSink};
use crate::table::{FourTuple, Handle};
use crate::wire::{ControlSegment, SeqNumber};

/// What one event may touch.
pub(crate) struct Cx<'a> {
    /// The current time, ms since the engine's epoch, rounded down: what
    /// is due is judged by it.
    pub(crate) now_ms: u64,
    /// The current time rounded up: deadlines are armed from it, so none
    /// fires early (docs/close-semantics.md#deadlines).
    pub(crate) arm_ms: u64,
    /// The current time in nanoseconds since the engine's epoch (for the
    /// close histograms only; protocol decisions use the milliseconds).
    pub(crate) now_ns: u64,
    /// What an RST this event decides is timed against: set by the engine
    /// for the event (a close request's time, or untimed); a linger or
    /// `deadline=` expiry sets its deadline.
    pub(crate) rst_clock: &'a mut RstClock,
    /// The connection's handle.
    pub(crate) handle: Handle,
    /// The connection's 4-tuple.
    pub(crate) tuple: FourTuple,
    /// For a passive open: the listener it arrived on.
    pub(crate) listener: Option<Handle>,
    /// TCP parameters.
    pub(crate) cfg: &'a TcpConfig,
    /// Counters.
    pub(crate) counters: &'a mut Counters,
    /// Completion queue.
    pub(crate) completions: &'a mut VecDeque<Completion>,
    /// Send buffer pool.
    pub(crate) pool: &'a mut SendBufPool,
    /// Where received payload goes.
    pub(crate) sink: &'a mut dyn RxSink,
    /// The core's reassembly pool.
    pub(crate) reasm: &'a mut ReasmPool,
    /// The core's bound on answers to peers (challenge ACKs ask it).
    pub(crate) replies: &'a mut ReplyLimit,
}

impl Cx<'_> {
    /// Posts the answer to a request.
    pub(crate) fn complete(
        &mut self,
        client: ClientId,
        user_data: u64,
        result: Errno,
        detail: Detail,
    ) {
        self.completions.push_back(Completion {
            client,
            user_data,
            handle: self.handle,
            result,
            detail,
            is_event: false,
        });
    }

    /// Posts an event for the connection's owner, unless the client already
    /// closed the handle (no event follows an accepted close).
    pub(crate) fn event(&mut self, tcb: &Tcb, result: Errno, detail: Detail) {
        if tcb.flags.contains(TcbFlags::ORPHAN) {
            return;
        }
        self.completions.push_back(Completion {
            client: tcb.owner,
            user_data: tcb.user_data,
            handle: self.handle,
            result,
            detail,
            is_event: true,
        });
    }

    /// `<SEQ=seq><CTL=RST>` to the connection's peer.
    pub(crate) fn rst(&self, seq: SeqNumber) -> CtlSegment {
        let t = &self.tuple;
        ControlSegment::rst(t.remote_addr, t.local_port, t.remote_port, seq)
    }

    /// `<SEQ=seq><ACK=ack><CTL=RST,ACK>` to the connection's peer.
    pub(crate) fn rst_ack(&self, seq: SeqNumber, ack: SeqNumber) -> CtlSegment {
        let t = &self.tuple;
        ControlSegment::rst_ack(t.remote_addr, t.local_port, t.remote_port, seq, ack)
    }

    /// Delivers in-order payload to the connection's owner, through the
    /// sink when it takes it, unless the client already closed the handle.
    pub(crate) fn data(&mut self, tcb: &Tcb, data: &[u8]) {
        deliver(self.sink, self.completions, self.handle, tcb, data);
    }

    /// Delivers what the reassembly queue holds from RCV.NXT on, chunk by
    /// chunk, advancing RCV.NXT past it; returns the bytes delivered.
    pub(crate) fn data_from_queue(&mut self, tcb: &mut Tcb) -> u32 {
        let mut total = 0u32;
        while let Some(bytes) = self.reasm.ready(tcb.reasm, tcb.rcv_nxt) {
            let n = bytes.len() as u32;
            deliver(self.sink, self.completions, self.handle, tcb, bytes);
            tcb.rcv_nxt = tcb.rcv_nxt.wrapping_add(n);
            tcb.unconsumed = tcb.unconsumed.saturating_add(n);
            total = total.saturating_add(n);
            self.reasm.pop_front(&mut tcb.reasm);
        }
        total
    }

    /// Releases the connection's send buffer to the pool.
    pub(crate) fn release_send(&mut self, tcb: &mut Tcb) {
        if let Some(buf) = tcb.send.take() {
            self.pool.put(buf);
        }
    }
}

/// [`Cx::data`], on the parts of the context it needs (so that bytes
/// borrowed from the reassembly pool can be delivered).
fn deliver(
    sink: &mut dyn RxSink,
    completions: &mut VecDeque<Completion>,
    handle: Handle,
    tcb: &Tcb,
    data: &[u8],
) {
    if tcb.flags.contains(TcbFlags::ORPHAN) {
        return;
    }
    let detail = sink
        .place(tcb.owner, data)
        .unwrap_or_else(|| Detail::Data(data.to_vec()));
    completions.push_back(Completion {
        client: tcb.owner,
        user_data: tcb.user_data,
        handle,
        result: Errno::Ok,
        detail,
        is_event: true,
    });
}
