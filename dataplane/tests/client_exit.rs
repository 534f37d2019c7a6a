//! A client that goes away: every connection and listener it held gets the
//! configured policy (docs/close-semantics.md#client-exit), in bounded slices, with no
//! state left behind. Two lingerd engines in a Pair: B (host 2) opens the
//! connections, A (host 1) accepts them for the client that then exits.

mod support;

use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientExitPolicy, Detail, Request};
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::Linger;
use lingerd_testkit::mem::{Direction, LinkConfig, Pair};
use support::engine::{self, CLIENT, drain};
use support::{count_rst, summarize};

const N: usize = 300;

/// A accepts `N` connections from B; returns the pair and A's handles.
fn accepted_pair() -> (
    Pair<QueueEngine, QueueEngine>,
    Vec<lingerd_dataplane::table::Handle>,
) {
    let t0 = Instant::now();
    let mut a = engine::engine(1, t0);
    let mut b = engine::engine(2, t0);
    engine::listen(&mut a, t0, 80);
    for i in 0..N {
        b.handle_request(
            t0,
            CLIENT,
            1000 + i as u64,
            Request::Connect {
                remote: engine::addr(1, 80),
                local_port: None,
                local_addr: None,
            },
        );
    }
    let mut pair = Pair::symmetric(t0, a, b, LinkConfig::default());
    let mut handles = Vec::new();
    let mut connected = 0;
    for _ in 0..200 {
        let _ = pair.drive_for(Duration::from_millis(5));
        for c in drain(&mut pair.a) {
            if matches!(c.detail, Detail::Accepted { .. }) {
                handles.push(c.handle);
            }
        }
        connected += drain(&mut pair.b)
            .iter()
            .filter(|c| matches!(c.detail, Detail::Connected { .. }))
            .count();
        if handles.len() == N && connected == N {
            break;
        }
    }
    assert_eq!((handles.len(), connected), (N, N), "all connections up");
    (pair, handles)
}

#[test]
fn abort_policy_resets_every_connection_once_and_frees_everything() {
    let (mut pair, handles) = accepted_pair();
    pair.clear_trace();
    let now = pair.now();
    pair.a
        .handle_client_exit(now, CLIENT, ClientExitPolicy::Abort);
    let _ = pair.drive_for(Duration::from_millis(100));
    assert_eq!(
        count_rst(pair.trace(), Direction::AToB),
        N,
        "one RST per connection"
    );
    assert_eq!(
        pair.a.connection_count(),
        0,
        "connections and the listener are gone"
    );
    assert!(
        drain(&mut pair.a).is_empty(),
        "nothing is posted to a client that is gone"
    );
    // B sees every connection reset.
    let resets = drain(&mut pair.b)
        .iter()
        .filter(|c| c.result == Errno::ConnReset)
        .count();
    assert_eq!(resets, N);
    let _ = handles;
}

#[test]
fn linger_policy_uses_each_connections_own_setting() {
    let (mut pair, handles) = accepted_pair();
    let now = pair.now();
    // Half hard-close (linger {on, 0}), half keep the default (off: graceful).
    for h in handles.iter().step_by(2) {
        let c = engine::call(
            &mut pair.a,
            now,
            5,
            Request::SetLinger {
                handle: *h,
                linger: Linger { on: true, ms: 0 },
            },
        );
        assert_eq!(c.result, Errno::Ok);
    }
    pair.clear_trace();
    pair.a
        .handle_client_exit(now, CLIENT, ClientExitPolicy::Linger);
    let _ = pair.drive_for(Duration::from_millis(100));
    let segments: Vec<_> = pair
        .trace()
        .iter()
        .filter(|e| e.direction == Direction::AToB)
        .filter_map(|e| summarize(&e.bytes))
        .collect();
    let rsts = segments.iter().filter(|s| s.flags.rst).count();
    let fins = segments.iter().filter(|s| s.flags.fin).count();
    assert_eq!(rsts, N / 2, "the hard-close half reset");
    assert_eq!(fins, N / 2, "the default half closed gracefully");
    // B's client never closes, so the graceful half waits in FIN-WAIT-2:
    // orphans, bounded by the orphan timeout (60 s by default).
    let hist = pair.a.states_histogram();
    assert_eq!(hist[State::FinWait2 as usize], (N / 2) as u64, "{hist:?}");
    assert_eq!(hist[State::Listen as usize], 0, "the listener was closed");
    assert_eq!(pair.a.connection_count(), N / 2);
    pair.clear_trace();
    let _ = pair.drive_for(Duration::from_secs(61));
    assert_eq!(
        pair.a.connection_count(),
        0,
        "the orphan timeout freed them"
    );
    assert_eq!(pair.a.counters().orphan_timeouts, (N / 2) as u64);
    assert_eq!(
        count_rst(pair.trace(), Direction::AToB),
        N / 2,
        "each hard-closed with one RST"
    );
}
