//! Two lingerd engines wired back to back over the in-process (`mem`)
//! frame path, and the close scenarios the `engine` figures time.
//!
//! Engine A is the lingerd under test (198.18.0.1, listening on ports
//! 10000.. so that one address holds millions of connections); engine B is
//! the load generator (198.18.0.2), a second `QueueEngine` that actively
//! opens from explicit ports. Frames move directly between them in a tight
//! loop (no `Pair`, no trace, no impairments) and time is a virtual clock
//! that only moves when a scenario says so. This module owns the set-up and
//! the scenario loops; it checks that every close really happened (frame
//! and counter totals) and panics on a miscount, but never judges a timing.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Completion, Detail, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::linger::Linger;
use lingerd_dataplane::wire::EthernetAddress;

/// The client that owns A's connections.
pub const CLIENT: ClientId = ClientId(1);
/// The load generator's client on B.
pub const PEER_CLIENT: ClientId = ClientId(2);
/// Engine A's address.
pub const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Engine B's address.
pub const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
/// A's first listening port; connection `i` goes to `BASE_PORT + i / 64000`.
pub const BASE_PORT: u16 = 10_000;
const PORTS_PER_LISTENER: u32 = 64_000;
/// Requests handed to the engine between two transmit drains: one client
/// ring burst, as in the shell's loop.
pub const BURST: usize = 256;
/// Connections opened between two pumps during set-up.
const OPEN_BATCH: u32 = 1024;
/// Bytes of one TX buffer slot (control frames and options fit).
const SLOT: usize = 256;
/// The linger time of the linger-expiry scenario.
pub const LINGER_MS: u32 = 5_000;

/// A's configuration for `n` connections.
pub fn config_a(n: u32) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        0,
        A_MAC,
        Prefix::new(A_IP.into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.max_connections = n + 1024;
    cfg.hash_key = 0x0a0a_5eed;
    cfg
}

/// B's configuration for `n` connections.
pub fn config_b(n: u32) -> EngineConfig {
    let mut cfg = EngineConfig::new(
        0,
        B_MAC,
        Prefix::new(B_IP.into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.max_connections = n + 1024;
    cfg.hash_key = 0x0b0b_5eed;
    cfg.isn_secret = [7, 11];
    cfg
}

/// Frames in flight one way, in reusable fixed-size slots.
#[derive(Debug, Default)]
pub struct Wire {
    slots: Vec<[u8; SLOT]>,
    lens: Vec<u16>,
}

impl Wire {
    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Takes every frame `e` has to send now; returns how many.
    pub fn fill_from(&mut self, e: &mut QueueEngine, now: Instant) -> usize {
        let mut n = 0;
        loop {
            let i = self.lens.len();
            if i == self.slots.len() {
                self.slots.push([0; SLOT]);
            }
            match e.poll_transmit(now, &mut self.slots[i]) {
                Some(len) => {
                    self.lens.push(len as u16);
                    n += 1;
                }
                None => return n,
            }
        }
    }

    /// Hands every waiting frame to `e`, in order, and empties the wire.
    pub fn deliver(&mut self, e: &mut QueueEngine, now: Instant) {
        for (slot, &len) in self.slots.iter().zip(&self.lens) {
            e.handle_rx(now, &slot[..usize::from(len)]);
        }
        self.lens.clear();
    }
}

/// Whether `frame` is an IPv4 TCP segment with RST set.
#[inline]
pub fn is_rst(frame: &[u8]) -> bool {
    frame.len() >= 54 && frame[12..14] == [0x08, 0x00] && frame[23] == 6 && frame[47] & 0x04 != 0
}

/// A TX ring: `poll_transmit` writes into the next of a fixed set of
/// buffers, as into a NIC's TX ring, and nothing is delivered anywhere.
#[derive(Debug)]
pub struct TxRing {
    slots: Vec<[u8; SLOT]>,
    next: usize,
}

impl Default for TxRing {
    fn default() -> Self {
        TxRing {
            slots: vec![[0; SLOT]; 512],
            next: 0,
        }
    }
}

impl TxRing {
    /// Drains `e`'s transmit queue; returns (frames, RST frames).
    #[inline]
    pub fn drain(&mut self, e: &mut QueueEngine, now: Instant) -> (usize, usize) {
        let (mut frames, mut rsts) = (0, 0);
        loop {
            let slot = &mut self.slots[self.next];
            let Some(len) = e.poll_transmit(now, slot) else {
                return (frames, rsts);
            };
            frames += 1;
            rsts += usize::from(is_rst(&slot[..len]));
            self.next = (self.next + 1) % self.slots.len();
        }
    }
}

/// Counts `e`'s pending completions, applying `f` to each.
#[inline]
fn drain_completions(e: &mut QueueEngine, mut f: impl FnMut(&Completion)) -> usize {
    let mut n = 0;
    while let Some(c) = e.poll_completion() {
        f(&c);
        n += 1;
    }
    n
}

/// The `i`-th connection's (A port, B port).
fn ports(i: u32) -> (u16, u16) {
    (
        BASE_PORT + (i / PORTS_PER_LISTENER) as u16,
        1024 + (i % PORTS_PER_LISTENER) as u16,
    )
}

/// How long one scenario took, and on which side.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Connections closed.
    pub closes: usize,
    /// Wall time from the first request to the last frame.
    pub total: Duration,
    /// The part of `total` spent in engine A (when the scenario splits it).
    pub engine_a: Duration,
    /// Loop iterations (`handle_timeout` + drains) the scenario took, when
    /// it counts them (linger expiry); 0 otherwise.
    pub rounds: usize,
    /// The median of those iterations.
    pub median_round: Duration,
    /// The longest of those iterations (on a shared machine, usually a
    /// preemption rather than the engine).
    pub longest_round: Duration,
}

impl Timing {
    /// Closes per second over the whole scenario.
    pub fn per_s(&self) -> f64 {
        crate::measure::per_second(self.total, self.closes)
    }

    /// Closes per second counting only engine A's time.
    pub fn per_s_engine_a(&self) -> f64 {
        crate::measure::per_second(self.engine_a, self.closes)
    }
}

/// Two engines with `n` established connections between them.
#[derive(Debug)]
pub struct Lab {
    /// The lingerd under test.
    pub a: QueueEngine,
    /// The load generator.
    pub b: QueueEngine,
    /// The virtual clock.
    pub now: Instant,
    /// A's handles of the established connections.
    pub handles: Vec<Handle>,
    /// Whether bursts of requests are announced with
    /// `QueueEngine::prefetch_request` first, as a shell reading a client
    /// ring burst does.
    pub prefetch: bool,
    ab: Wire,
    ba: Wire,
}

impl Lab {
    /// Opens `n` connections from B to A (three-way handshakes over the
    /// wire, ARP included) and returns once all are established.
    ///
    /// # Panics
    /// If fewer than `n` connections got established.
    pub fn establish(n: u32) -> Lab {
        assert!(
            n <= 64_000 * 5_000,
            "too many connections for the port plan"
        );
        let now = Instant::now();
        let mut lab = Lab {
            a: QueueEngine::new(config_a(n), now),
            b: QueueEngine::new(config_b(n), now),
            now,
            handles: Vec::with_capacity(n as usize),
            prefetch: true,
            ab: Wire::default(),
            ba: Wire::default(),
        };
        let listeners = n.div_ceil(PORTS_PER_LISTENER);
        for k in 0..listeners {
            lab.a.handle_request(
                now,
                CLIENT,
                0,
                Request::Listen {
                    port: BASE_PORT + k as u16,
                    backlog: 1 << 20,
                },
            );
        }
        let _ = drain_completions(&mut lab.a, |_| ());
        let mut i = 0;
        while i < n {
            let end = (i + OPEN_BATCH).min(n);
            for j in i..end {
                let (a_port, b_port) = ports(j);
                lab.b.handle_request(
                    now,
                    PEER_CLIENT,
                    u64::from(j),
                    Request::Connect {
                        remote: SocketAddrV4::new(A_IP, a_port),
                        local_port: Some(b_port),
                        local_addr: None,
                    },
                );
            }
            lab.pump(|_, _| ());
            i = end;
        }
        assert_eq!(
            lab.handles.len(),
            n as usize,
            "connections established: {} of {n} (A: {:?})",
            lab.handles.len(),
            lab.a.counters()
        );
        lab
    }

    /// Moves frames both ways until both engines are quiet, collecting A's
    /// accepted handles and handing B's completions to `on_b`.
    fn pump(&mut self, mut on_b: impl FnMut(&mut QueueEngine, &Completion)) {
        let now = self.now;
        loop {
            self.ba.fill_from(&mut self.b, now);
            self.ab.fill_from(&mut self.a, now);
            if self.ab.is_empty() && self.ba.is_empty() {
                break;
            }
            self.ba.deliver(&mut self.a, now);
            self.ab.deliver(&mut self.b, now);
            let handles = &mut self.handles;
            drain_completions(&mut self.a, |c| {
                if matches!(c.detail, Detail::Accepted { .. }) {
                    handles.push(c.handle);
                }
            });
            while let Some(c) = self.b.poll_completion() {
                on_b(&mut self.b, &c);
            }
        }
    }

    /// Aborts every connection on A (`Request::Abort`, a burst at a time,
    /// draining the RSTs into a TX ring after each burst) and times it from
    /// the first request to the last frame. B never sees the RSTs.
    ///
    /// # Panics
    /// If not every connection produced exactly one RST and one completion.
    pub fn abort_all(&mut self) -> Timing {
        let listeners = self.a.connection_count() - self.handles.len();
        let handles = std::mem::take(&mut self.handles);
        let mut ring = TxRing::default();
        let (now, a) = (self.now, &mut self.a);
        let (mut rsts, mut done) = (0, 0);
        let start = Instant::now();
        for burst in handles.chunks(BURST) {
            if self.prefetch {
                for &handle in burst {
                    a.prefetch_request(&Request::Abort { handle });
                }
            }
            for &handle in burst {
                a.handle_request(now, CLIENT, handle.raw(), Request::Abort { handle });
            }
            rsts += ring.drain(a, now).1;
            done += drain_completions(a, |_| ());
        }
        let total = start.elapsed();
        assert_eq!(
            (rsts, done),
            (handles.len(), handles.len()),
            "abort RSTs, completions"
        );
        assert_eq!(a.connection_count(), listeners, "records left after abort");
        Timing {
            closes: handles.len(),
            total,
            engine_a: total,
            ..Timing::default()
        }
    }

    /// Graceful close of every connection with linger off: A's `Close`
    /// sends FIN, B answers (ACK, and its own FIN once its client closes on
    /// the PeerClosed event), A ACKs and enters TIME-WAIT. Timed until every
    /// connection of A reached TIME-WAIT and all frames were exchanged; B's
    /// processing is inside `total`, and A's own share is `engine_a`.
    ///
    /// # Panics
    /// If not every connection of A entered TIME-WAIT.
    pub fn graceful_all(&mut self) -> Timing {
        let handles = std::mem::take(&mut self.handles);
        let now = self.now;
        let before = self.a.counters().time_wait_entered;
        let mut a_time = Duration::ZERO;
        let start = Instant::now();
        for burst in handles.chunks(BURST) {
            let t = Instant::now();
            for &handle in burst {
                self.a.handle_request(
                    now,
                    CLIENT,
                    handle.raw(),
                    Request::Close {
                        handle,
                        nonblocking: false,
                    },
                );
            }
            self.ab.fill_from(&mut self.a, now);
            drain_completions(&mut self.a, |_| ());
            a_time += t.elapsed();
            while !self.ab.is_empty() || !self.ba.is_empty() {
                // B: FINs (and final ACKs) in; its client closes on PeerClosed.
                self.ab.deliver(&mut self.b, now);
                while let Some(c) = self.b.poll_completion() {
                    if c.detail == Detail::PeerClosed {
                        self.b.handle_request(
                            now,
                            PEER_CLIENT,
                            0,
                            Request::Close {
                                handle: c.handle,
                                nonblocking: false,
                            },
                        );
                    }
                }
                self.ba.fill_from(&mut self.b, now);
                // A: B's ACK+FIN in, our ACK out.
                let t = Instant::now();
                self.ba.deliver(&mut self.a, now);
                self.ab.fill_from(&mut self.a, now);
                drain_completions(&mut self.a, |_| ());
                a_time += t.elapsed();
            }
        }
        let total = start.elapsed();
        let entered = self.a.counters().time_wait_entered - before;
        assert_eq!(
            entered,
            handles.len() as u64,
            "connections that reached TIME-WAIT"
        );
        Timing {
            closes: handles.len(),
            total,
            engine_a: a_time,
            ..Timing::default()
        }
    }

    /// Sets linger `{on, LINGER_MS}` and closes (blocking) every connection
    /// on A; the peer never sees the FINs so nothing is acknowledged. Then
    /// moves the virtual clock past the deadline and times the shell's loop
    /// at that instant: `handle_timeout` (bounded per call), draining the
    /// RSTs into a TX ring and the completions, again while `poll_timeout`
    /// is due. Only the expiry is timed; `rounds` and `longest_round` say
    /// how the work was sliced.
    ///
    /// # Panics
    /// If not every connection was reset by its linger deadline.
    pub fn linger_expire_all(&mut self) -> Timing {
        let handles = std::mem::take(&mut self.handles);
        let now = self.now;
        let mut ring = TxRing::default();
        for burst in handles.chunks(BURST) {
            for &handle in burst {
                self.a.handle_request(
                    now,
                    CLIENT,
                    0,
                    Request::SetLinger {
                        handle,
                        linger: Linger {
                            on: true,
                            ms: LINGER_MS,
                        },
                    },
                );
                self.a.handle_request(
                    now,
                    CLIENT,
                    handle.raw(),
                    Request::Close {
                        handle,
                        nonblocking: false,
                    },
                );
            }
            // The FINs go nowhere: the peer never acknowledges.
            let _ = ring.drain(&mut self.a, now);
            drain_completions(&mut self.a, |_| ());
        }
        let before = self.a.counters().rst_linger_expired;
        let later = now + Duration::from_millis(u64::from(LINGER_MS) + 1);
        let a = &mut self.a;
        let (mut rsts, mut done) = (0, 0);
        let mut rounds = Vec::with_capacity(handles.len() / 64 + 16);
        let start = Instant::now();
        // The shell's loop at one instant: `handle_timeout` works off at
        // most `MAX_EXPIRIES_PER_CALL` expiries per call and stays due.
        while a.poll_timeout().is_some_and(|t| t <= later) {
            let round = Instant::now();
            a.handle_timeout(later);
            rsts += ring.drain(a, later).1;
            done += drain_completions(a, |_| ());
            rounds.push(round.elapsed());
        }
        let total = start.elapsed();
        rounds.sort_unstable();
        self.now = later;
        let expired = a.counters().rst_linger_expired - before;
        assert_eq!(
            (expired, rsts, done),
            (handles.len() as u64, handles.len(), handles.len()),
            "linger expiries, RSTs, completions"
        );
        Timing {
            closes: handles.len(),
            total,
            engine_a: total,
            rounds: rounds.len(),
            median_round: rounds.get(rounds.len() / 2).copied().unwrap_or_default(),
            longest_round: rounds.last().copied().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lingerd_dataplane::tcp::State;

    #[test]
    fn establish_then_abort_all() {
        let mut lab = Lab::establish(3_000);
        assert!(
            lab.handles
                .iter()
                .all(|&h| lab.a.state(h) == Some(State::Established))
        );
        let t = lab.abort_all();
        assert_eq!(t.closes, 3_000);
    }

    #[test]
    fn graceful_all_reaches_time_wait() {
        let mut lab = Lab::establish(2_000);
        let handles = lab.handles.clone();
        let t = lab.graceful_all();
        assert_eq!(t.closes, 2_000);
        assert!(
            handles
                .iter()
                .all(|&h| lab.a.state(h) == Some(State::TimeWait))
        );
        assert!(t.engine_a <= t.total);
    }

    #[test]
    fn linger_deadlines_expire_into_rsts() {
        let mut lab = Lab::establish(1_500);
        assert_eq!(lab.linger_expire_all().closes, 1_500);
    }
}
