//! `handle_timeout` is bounded: when more linger deadlines expire in one
//! tick than [`MAX_EXPIRIES_PER_CALL`], one call processes at most that many,
//! `poll_timeout` keeps saying "due now", and a shell loop that calls it
//! again (without the clock moving) sends exactly one RST per connection and
//! one completion per close, all within the expiry tick: nothing lost,
//! nothing doubled, nothing late by more than the loop iterations.
//!
//! Two engines exchange frames directly (no `Pair`, no trace) so that ten
//! thousand handshakes stay cheap; only A's output after the close is
//! inspected, with etherparse, never with lingerd's own `wire`.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use lingerd_dataplane::engine::MAX_EXPIRIES_PER_CALL;
use lingerd_dataplane::engine::api::{Detail, Outcome, Request};
use lingerd_dataplane::tcp::linger::Linger;
use support::engine::{CLIENT, connect_many, drain, engine, rst_port};

const PORT: u16 = 80;
const LINGER_MS: u32 = 2_000;

#[test]
fn linger_expiries_beyond_the_cap_are_spread_over_calls_none_lost_or_late() {
    let n = 5 * MAX_EXPIRIES_PER_CALL + 123;
    let t0 = Instant::now();
    let mut a = engine(1, t0);
    let mut b = engine(2, t0);
    let (accepted, _) = connect_many(&mut a, &mut b, PORT, n, 20_000, t0);

    // Linger on, blocking close: FINs go out and are never acknowledged.
    for &handle in &accepted {
        let linger = Linger {
            on: true,
            ms: LINGER_MS,
        };
        a.handle_request(t0, CLIENT, 0, Request::SetLinger { handle, linger });
        a.handle_request(
            t0,
            CLIENT,
            handle.raw(),
            Request::Close {
                handle,
                nonblocking: false,
            },
        );
    }
    let mut buf = [0u8; 2048];
    while a.poll_transmit(t0, &mut buf).is_some() {}
    drop(drain(&mut a));

    // Up to the tick before the deadline the loop runs every 10 ms (the
    // unacknowledged FINs are retransmitted into the void); nothing expires.
    let mut t = t0;
    while t < t0 + Duration::from_millis(u64::from(LINGER_MS) - 1) {
        t = (t + Duration::from_millis(10))
            .min(t0 + Duration::from_millis(u64::from(LINGER_MS) - 1));
        while a.poll_timeout().is_some_and(|d| d <= t) {
            a.handle_timeout(t);
            while a.poll_transmit(t, &mut buf).is_some() {}
        }
    }
    assert_eq!(a.counters().rst_linger_expired, 0);
    assert_eq!(a.tx_backlog(), 0);

    // The expiry tick: the clock stays here while the loop works it off.
    let now = t0 + Duration::from_millis(u64::from(LINGER_MS));
    let mut rst_ports = HashSet::new();
    let mut closed = HashSet::new();
    let mut calls = 0;
    while a.poll_timeout().is_some_and(|t| t <= now) {
        let before = a.counters().rst_linger_expired;
        a.handle_timeout(now);
        calls += 1;
        let expired = a.counters().rst_linger_expired - before;
        assert!(
            expired as usize <= MAX_EXPIRIES_PER_CALL,
            "{expired} expiries in one call"
        );
        assert!(
            a.tx_backlog() <= MAX_EXPIRIES_PER_CALL,
            "queued frames bounded: {} after {expired} expiries",
            a.tx_backlog()
        );
        let mut completions = 0;
        while let Some(c) = a.poll_completion() {
            assert_eq!(c.detail, Detail::Closed(Outcome::AbortedLinger));
            assert!(closed.insert(c.user_data), "two completions for one close");
            completions += 1;
        }
        assert_eq!(completions, expired, "one completion per expiry, at once");
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            let port = rst_port(&buf[..len]).expect("only RSTs after the expiry");
            assert!(rst_ports.insert(port), "second RST to port {port}");
        }
        assert!(calls <= n, "handle_timeout stays due without progress");
    }
    assert_eq!(rst_ports.len(), n, "one RST per connection");
    assert_eq!(closed.len(), n, "one completion per close");
    assert!(
        calls >= n.div_ceil(MAX_EXPIRIES_PER_CALL),
        "{calls} calls for {n} expiries"
    );
    assert_eq!(a.timers_armed(), 0);
    assert_eq!(a.counters().rst_linger_expired, n as u64);
}
