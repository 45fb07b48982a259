//! Admission control (`lsp_core::Limits`): caps on connection slots and half-open
//! connections, oldest half-open evicted first, Connects beyond them dropped and counted.

use std::time::Duration;

use lsp_core::{Limits, Message, Params, ParamsError, ServerEndpoint, ServerEvent, Timestamp};

fn params() -> Params {
    Params {
        epoch_limit: 3,
        epoch_millis: 1000,
        ..Params::default()
    }
}

fn server(max_connections: u32, max_half_open: u32) -> ServerEndpoint<u32> {
    let limits = Limits {
        max_connections,
        max_half_open,
        ..Limits::default()
    };
    ServerEndpoint::with_limits(params(), limits, Timestamp::ZERO).unwrap()
}

fn connect(s: &mut ServerEndpoint<u32>, from: u32) {
    s.handle_datagram(Timestamp::ZERO, from, &Message::connect(0).encode());
}

/// A heartbeat from `from` for connection `id`: the connection is no longer half-open.
fn heartbeat(s: &mut ServerEndpoint<u32>, from: u32, id: i64) {
    s.handle_datagram(Timestamp::ZERO, from, &Message::ack(id, 0).encode());
}

fn events(s: &mut ServerEndpoint<u32>) -> Vec<ServerEvent<u32>> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Who the server answered, in order.
fn answered(s: &mut ServerEndpoint<u32>) -> Vec<u32> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| t.destination)
        .collect()
}

fn lost(id: i64) -> ServerEvent<u32> {
    ServerEvent::ConnectionLost {
        conn: lsp_core::ConnId(id),
    }
}

#[test]
fn the_oldest_half_open_connection_is_evicted_first() {
    let mut s = server(10, 2);
    for from in [1, 2] {
        connect(&mut s, from);
    }
    heartbeat(&mut s, 1, 1); // 1 is established, 2 half-open
    connect(&mut s, 3); // half-open: 2 and 3
    assert_eq!(s.half_open_count(), 2);
    let _ = events(&mut s);
    connect(&mut s, 4); // evicts 2, the oldest half-open, not 1
    assert_eq!(answered(&mut s), [1, 2, 3, 4]);
    let evs = events(&mut s);
    assert_eq!(evs[0], lost(2));
    assert!(matches!(evs[1], ServerEvent::Connected { addr: 4, .. }));
    assert_eq!(s.stats().half_open_evicted, 1);
    assert_eq!((s.connection_count(), s.half_open_count()), (3, 2));
    // The evicted address is forgotten: its Data is an unknown peer's, a new Connect a new id.
    s.handle_datagram(
        Timestamp::ZERO,
        2,
        &Message::data(2, 1, b"x".to_vec()).encode(),
    );
    assert_eq!(s.stats().dropped.unknown_peer, 1);
    assert!(
        s.peer_addr(lsp_core::ConnId(1)).is_some(),
        "established kept"
    );
}

#[test]
fn beyond_every_slot_connects_are_dropped_and_counted() {
    let mut s = server(2, 2);
    for (from, id) in [(1, 1), (2, 2)] {
        connect(&mut s, from);
        heartbeat(&mut s, from, id);
    }
    let _ = (answered(&mut s), events(&mut s));
    connect(&mut s, 3);
    assert_eq!(answered(&mut s), Vec::<u32>::new(), "not answered");
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.stats().dropped.connection_limit, 1);
    assert_eq!(s.connection_count(), 2);
}

#[test]
fn a_full_table_evicts_a_half_open_connection_before_dropping() {
    let mut s = server(2, 2);
    connect(&mut s, 1);
    heartbeat(&mut s, 1, 1);
    connect(&mut s, 2); // half-open
    let _ = (answered(&mut s), events(&mut s));
    connect(&mut s, 3);
    assert_eq!(answered(&mut s), [3]);
    assert_eq!(events(&mut s)[0], lost(2));
    assert_eq!(s.stats().dropped.connection_limit, 0);
    assert_eq!(s.stats().half_open_evicted, 1);
}

#[test]
fn unread_events_of_forgotten_connections_stop_admission() {
    // An application that takes no events: once as many lost connections still have queued
    // events as the table holds, Connects are dropped, so peers cannot grow the queue.
    let mut s = server(2, 2);
    for (from, id) in [(1, 1), (2, 2)] {
        connect(&mut s, from);
        heartbeat(&mut s, from, id);
    }
    for epoch in 1..=3 {
        s.handle_timeout(Timestamp::ZERO + Duration::from_secs(epoch));
    }
    assert_eq!(s.connection_count(), 0, "both lost");
    assert_eq!(s.forgotten_with_events(), 2);
    connect(&mut s, 3);
    assert_eq!(s.stats().dropped.connection_limit, 1);
    let evs = events(&mut s);
    assert_eq!(evs.len(), 4, "Connected and ConnectionLost of each");
    assert_eq!(s.forgotten_with_events(), 0);
    connect(&mut s, 3);
    assert_eq!(s.connection_count(), 1);
}

#[test]
fn a_retried_connect_leaves_a_connection_half_open() {
    let mut s = server(10, 1);
    connect(&mut s, 1);
    connect(&mut s, 1); // the connect-ack was lost: same isn, re-acked
    assert_eq!(s.half_open_count(), 1);
    connect(&mut s, 2);
    assert_eq!(s.stats().half_open_evicted, 1);
}

#[test]
fn invalid_limits_are_rejected_at_construction() {
    for (limits, err) in [
        ((0, 0), ParamsError::ZeroMaxConnections),
        ((5, 0), ParamsError::ZeroMaxHalfOpen),
        ((5, 6), ParamsError::HalfOpenAboveConnections),
    ] {
        let limits = Limits {
            max_connections: limits.0,
            max_half_open: limits.1,
            ..Limits::default()
        };
        assert_eq!(
            ServerEndpoint::<u32>::with_limits(params(), limits, Timestamp::ZERO).err(),
            Some(err)
        );
    }
}

#[test]
fn a_flood_of_connects_stays_within_the_limits() {
    let mut s = server(1000, 100);
    for from in 0..20_000 {
        connect(&mut s, from);
        while s.poll_transmit().is_some() {}
        if from % 7 == 0 {
            let _ = events(&mut s); // an application that reads now and then
        }
        assert!(s.connection_count() <= 1000 && s.half_open_count() <= 100);
        assert!(s.forgotten_with_events() <= 1000 + 1);
    }
    assert!(s.stats().half_open_evicted >= 19_000);
}

/// The fuzz target `flood` in miniature: thousands of addresses connect, send Data and
/// fall silent while the application never reads; every queue stays within its bound.
#[test]
fn a_server_whose_application_never_reads_stays_bounded() {
    let p = Params {
        window_size: 4,
        ..params()
    };
    let limits = Limits {
        max_connections: 50,
        max_half_open: 10,
        max_unread_messages: 3,
    };
    let mut s = ServerEndpoint::<u32>::with_limits(p, limits, Timestamp::ZERO).unwrap();
    let mut now = Timestamp::ZERO;
    for round in 0..40u32 {
        for k in 0..100 {
            let from = round * 100 + k;
            s.handle_datagram(now, from, &Message::connect(0).encode());
            for seq in [3, 1, 2, 4, 5, 6, 7, 8] {
                let m = Message::data(0, seq, vec![9; 100]);
                s.handle_datagram(now, from, &m.encode());
            }
        }
        now = now + Duration::from_millis(700);
        s.handle_timeout(now);
        while s.poll_transmit().is_some() {}
        let (live, lingering) = (s.connection_count(), s.forgotten_with_events());
        assert!(live <= 50 && s.half_open_count() <= 10);
        assert!(live + lingering <= 2 * 50 + 1, "{live} + {lingering}");
        assert!(s.pending_events() <= (live + lingering) * (3 + 4 + 1) + 1);
        for id in 0..5_000 {
            assert!(s.unread(lsp_core::ConnId(id)) < 3 + 4);
        }
    }
    assert!(s.stats().dropped.connection_limit > 0);
    assert!(s.stats().dropped.unread_full > 0);
}

#[test]
fn an_evicted_connection_the_application_closed_is_reported_once() {
    let mut s = server(10, 1);
    connect(&mut s, 1);
    // The application writes to the half-open connection and closes it: its close is
    // reported at once, and the write is still owed an acknowledgement.
    s.write(lsp_core::ConnId(1), b"owed".to_vec())
        .expect("a live connection");
    s.close_conn(lsp_core::ConnId(1))
        .expect("a live connection");
    let closed: Vec<_> = events(&mut s)
        .into_iter()
        .filter(|e| !matches!(e, ServerEvent::Connected { .. }))
        .collect();
    assert_eq!(
        closed,
        [ServerEvent::ConnectionClosed {
            conn: lsp_core::ConnId(1)
        }]
    );
    // A second half-open connection evicts it: no second end for the same connection.
    connect(&mut s, 2);
    let evs = events(&mut s);
    assert!(
        evs.iter().all(|e| !matches!(
            e,
            ServerEvent::ConnectionLost { conn } | ServerEvent::ConnectionClosed { conn }
                if *conn == lsp_core::ConnId(1)
        )),
        "{evs:?}"
    );
    assert_eq!(s.stats().half_open_evicted, 1);
}
