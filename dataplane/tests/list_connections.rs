//! `list_connections`: `ctl conns` pages through every connection in
//! bounded slices, sees each exactly once, and applies the same filter as
//! `close_matching`. Two lingerd engines in a Pair: B opens, A accepts.

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lingerd_dataplane::engine::api::{Detail, Filter, Prefix, Request};
use lingerd_dataplane::tcp::State;
use lingerd_testkit::mem::{LinkConfig, Pair};
use support::engine::{self, CLIENT, drain};

#[test]
fn pages_through_every_connection_once_with_the_filter() {
    const N: usize = 300;
    let t0 = Instant::now();
    let mut a = engine::engine(1, t0);
    let mut b = engine::engine(2, t0);
    engine::listen(&mut a, t0, 80);
    for i in 0..N {
        b.handle_request(
            t0,
            CLIENT,
            i as u64,
            Request::Connect {
                remote: engine::addr(1, 80),
                local_port: None,
                local_addr: None,
            },
        );
    }
    let mut pair = Pair::symmetric(t0, a, b, LinkConfig::default());
    let mut accepted = 0;
    for _ in 0..200 {
        let _ = pair.drive_for(Duration::from_millis(5));
        accepted += drain(&mut pair.a)
            .iter()
            .filter(|c| matches!(c.detail, Detail::Accepted { .. }))
            .count();
        let _ = drain(&mut pair.b);
        if accepted == N {
            break;
        }
    }
    assert_eq!(accepted, N);
    let now = pair.now();

    // Everything, 7 per page and at most 11 slots examined per call.
    let mut seen = HashSet::new();
    let mut cursor = Some(0);
    let mut calls = 0;
    while let Some(c) = cursor {
        let mut page = Vec::new();
        cursor = pair
            .a
            .list_connections(now, &Filter::default(), c, 7, 11, &mut page);
        assert!(page.len() <= 7);
        for info in page {
            assert!(seen.insert(info.handle), "listed twice: {info:?}");
        }
        calls += 1;
        assert!(calls < 10_000, "bounded");
    }
    assert_eq!(seen.len(), N + 1, "every connection and the listener");

    // The filter: established connections from B's ephemeral ports only.
    let filter = Filter {
        remote: Some(Prefix::host(Ipv4Addr::new(198, 18, 0, 2).into())),
        local_port: Some(80),
        states: State::Established.bit(),
        ..Filter::default()
    };
    let mut page = Vec::new();
    let next = pair
        .a
        .list_connections(now, &filter, 0, usize::MAX, u32::MAX, &mut page);
    assert_eq!(next, None);
    assert_eq!(page.len(), N, "the listener does not match");
    assert!(
        page.iter()
            .all(|i| i.state == State::Established && i.owner == CLIENT && !i.orphan)
    );
}

#[test]
fn a_bound_connect_opens_from_the_address_asked_for() {
    let t0 = Instant::now();
    let mut cfg = engine::config(2);
    let second = Ipv4Addr::new(198, 18, 0, 42);
    cfg.addrs
        .push(Prefix::new(second.into(), 24).expect("an IPv4 prefix length"));
    let mut b = lingerd_dataplane::engine::QueueEngine::new(cfg, t0);
    let mut a = engine::engine(1, t0);
    engine::listen(&mut a, t0, 80);
    for (i, bind) in [Some(second), None, Some(second)].into_iter().enumerate() {
        b.handle_request(
            t0,
            CLIENT,
            i as u64,
            Request::Connect {
                remote: engine::addr(1, 80),
                local_port: Some(4000),
                local_addr: bind.map(Into::into),
            },
        );
    }
    // The third repeats the first's 4-tuple: EADDRINUSE, nothing opened.
    let refused = drain(&mut b);
    assert!(
        refused
            .iter()
            .any(|c| c.user_data == 2 && c.result == lingerd_abi::Errno::AddrInUse),
        "{refused:?}"
    );
    // Not one of ours: EINVAL.
    b.handle_request(
        t0,
        CLIENT,
        9,
        Request::Connect {
            remote: engine::addr(1, 80),
            local_port: None,
            local_addr: Some(Ipv4Addr::new(198, 18, 0, 43).into()),
        },
    );
    let c = drain(&mut b);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].user_data, c[0].result),
        (9, lingerd_abi::Errno::Inval)
    );

    let mut pair = Pair::symmetric(t0, a, b, LinkConfig::default());
    let _ = pair.drive_for(Duration::from_millis(50));
    let mut page = Vec::new();
    let now = pair.now();
    let _ = pair
        .b
        .list_connections(now, &Filter::default(), 0, usize::MAX, u32::MAX, &mut page);
    let mut froms: Vec<(std::net::IpAddr, State)> =
        page.iter().map(|i| (i.tuple.local_addr, i.state)).collect();
    froms.sort_by_key(|f| f.0);
    assert_eq!(
        froms,
        [
            (Ipv4Addr::new(198, 18, 0, 2).into(), State::Established),
            (second.into(), State::Established)
        ]
    );
}
