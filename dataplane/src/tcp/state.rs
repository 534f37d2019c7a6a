//! The eleven connection states of RFC 9293 §3.3.2.
//!
//! It owns the state names and the predicates the rest of the engine asks of
//! them, so no other module matches on raw state lists. Transitions are made
//! by the connection logic, not here.

/// A connection's state (RFC 9293 §3.3.2), plus nothing else: a freed
/// connection has no record at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum State {
    /// Not in use; a record in this state is about to be freed, or a client's
    /// handle to a connection the peer reset, kept until the client closes it.
    #[default]
    Closed = 0,
    /// A listener.
    Listen = 1,
    /// We sent SYN.
    SynSent = 2,
    /// We received SYN and sent SYN-ACK.
    SynReceived = 3,
    /// Data flows both ways.
    Established = 4,
    /// We sent FIN; it is not yet acknowledged.
    FinWait1 = 5,
    /// Our FIN is acknowledged; waiting for the peer's.
    FinWait2 = 6,
    /// The peer sent FIN; we may still send.
    CloseWait = 7,
    /// Both sent FIN at once; ours is not yet acknowledged.
    Closing = 8,
    /// The peer closed first, then we sent FIN; waiting for its ACK.
    LastAck = 9,
    /// Both FINs acknowledged; waiting 2×MSL before the 4-tuple is reused.
    TimeWait = 10,
}

impl State {
    /// Every state, in numeric order.
    pub const ALL: [State; 11] = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    /// The state's bit in a state set (a bulk close filter's `states`).
    pub const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// RFC 9293 §3.3.2: the synchronized states (a SYN was exchanged both ways).
    pub const fn is_synchronized(self) -> bool {
        matches!(
            self,
            State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
                | State::TimeWait
        )
    }

    /// States in which an abort sends RST (RFC 9293 §3.10.5, the ABORT call):
    /// SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT.
    pub const fn abort_sends_rst(self) -> bool {
        matches!(
            self,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
        )
    }

    /// States in which we may still send data.
    pub const fn can_send(self) -> bool {
        matches!(self, State::Established | State::CloseWait)
    }

    /// States in which data from the peer is accepted (RFC 9293 §3.10.7.4, seventh).
    pub const fn can_receive(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }

    /// Our FIN has been queued or sent: the send side is finished.
    pub const fn fin_queued(self) -> bool {
        matches!(
            self,
            State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait
        )
    }

    /// States in which our FIN is queued or in flight but not yet
    /// acknowledged: the only ones in which a FIN may (re)go out.
    pub const fn fin_outstanding(self) -> bool {
        matches!(self, State::FinWait1 | State::Closing | State::LastAck)
    }

    /// The short name `ss` uses, for `lingerd ctl conns`.
    pub const fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECV",
            State::Established => "ESTAB",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct_and_all_is_in_order() {
        let mut seen = 0u16;
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(seen & s.bit(), 0);
            seen |= s.bit();
        }
    }

    #[test]
    fn abort_rst_states_match_the_checklist() {
        let rst: Vec<State> = State::ALL
            .into_iter()
            .filter(|s| s.abort_sends_rst())
            .collect();
        assert_eq!(
            rst,
            [
                State::SynReceived,
                State::Established,
                State::FinWait1,
                State::FinWait2,
                State::CloseWait
            ]
        );
    }
}
