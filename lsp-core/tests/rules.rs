//! One test per rule of docs/protocol.md, driving the endpoints directly with hand-made datagrams.
//! Each test names the section it checks.

mod common;

use std::time::Duration;

use common::{params, World};
use lsp_core::{
    ApiError, ClientEndpoint, ClientEvent, CloseError, ConnId, Message, MsgType, Params,
    ServerEndpoint, ServerEvent, Timestamp, MAX_GUARANTEED_PAYLOAD,
};

const EPOCH_MS: u64 = 1000;

fn at_epoch(n: u64) -> Timestamp {
    Timestamp::from_millis(n * EPOCH_MS)
}

fn drain_client(c: &mut ClientEndpoint) -> Vec<Message> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|d| Message::decode(&d).unwrap())
        .collect()
}

fn drain_server(s: &mut ServerEndpoint<u32>) -> Vec<(u32, Message)> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| (t.destination, Message::decode(&t.payload).unwrap()))
        .collect()
}

fn client_events(c: &mut ClientEndpoint) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn server_events(s: &mut ServerEndpoint<u32>) -> Vec<ServerEvent<u32>> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A client with `p` (epoch 1 s) that has received its connect-ack for id 1, transmits drained.
fn connected_client(p: Params, isn: i64) -> ClientEndpoint {
    let mut c = ClientEndpoint::new(p, isn, Timestamp::ZERO).unwrap();
    assert_eq!(drain_client(&mut c), vec![Message::connect(isn)]);
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, isn).encode());
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Connected(ConnId(1))]
    );
    c
}

/// A server (epoch 1 s) with one connection from address 7 (isn `isn`), transmits drained.
fn server_with_client(p: Params, isn: i64) -> ServerEndpoint<u32> {
    let mut s = ServerEndpoint::new(p, Timestamp::ZERO).unwrap();
    s.handle_datagram(Timestamp::ZERO, 7, &Message::connect(isn).encode());
    assert_eq!(drain_server(&mut s), vec![(7, Message::ack(1, isn))]);
    assert_eq!(
        server_events(&mut s),
        vec![ServerEvent::Connected {
            conn: ConnId(1),
            addr: 7
        }]
    );
    s
}

fn data_seqs(ms: &[Message]) -> Vec<i64> {
    ms.iter()
        .filter(|m| m.kind == MsgType::Data)
        .map(|m| m.seq_num)
        .collect()
}

/// §8.1: resends at ticks 1, 3, 6, 11, 20 after the first send with cap 8, then every 9.
#[test]
fn backoff_resends_at_exact_epochs() {
    let mut c = connected_client(params(100, EPOCH_MS, 1, 1, 8), 0);
    c.write(b"x".to_vec()).unwrap();
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![1]);
    let mut resent_at = vec![];
    for tick in 1..=40 {
        // Keep the server audible (a heartbeat) so the connection is not lost.
        c.handle_datagram(at_epoch(tick - 1), &Message::ack(1, 0).encode());
        c.handle_timeout(at_epoch(tick));
        if !data_seqs(&drain_client(&mut c)).is_empty() {
            resent_at.push(tick);
        }
    }
    assert_eq!(resent_at, vec![1, 3, 6, 11, 20, 29, 38]);
    assert_eq!(c.stats().retransmissions, 7);
}

/// §8.1: with the default cap 0 a message is resent at every tick.
#[test]
fn backoff_cap_zero_resends_every_epoch() {
    let mut c = connected_client(params(100, EPOCH_MS, 1, 1, 0), 0);
    c.write(b"x".to_vec()).unwrap();
    drain_client(&mut c);
    for tick in 1..=6 {
        c.handle_datagram(at_epoch(tick - 1), &Message::ack(1, 0).encode());
        c.handle_timeout(at_epoch(tick));
        assert_eq!(data_seqs(&drain_client(&mut c)), vec![1], "tick {tick}");
    }
}

/// §8.1: each in-flight message has its own back-off.
#[test]
fn backoff_is_per_message() {
    let mut c = connected_client(params(100, EPOCH_MS, 2, 2, 8), 0);
    c.write(b"a".to_vec()).unwrap(); // seq 1 at t=0
    drain_client(&mut c);
    c.handle_timeout(at_epoch(1)); // seq 1 resent (tick 1)
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![1]);
    c.write(b"b".to_vec()).unwrap(); // seq 2 first sent after tick 1
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![2]);
    let mut log = vec![];
    for tick in 2..=7 {
        c.handle_datagram(at_epoch(tick - 1), &Message::ack(1, 0).encode());
        c.handle_timeout(at_epoch(tick));
        log.push((tick, data_seqs(&drain_client(&mut c))));
    }
    // seq 1: ticks 1, 3, 6; seq 2 (sent after tick 1): ticks 2, 4, 7.
    let expect: Vec<(u64, Vec<i64>)> = vec![
        (2, vec![2]),
        (3, vec![1]),
        (4, vec![2]),
        (5, vec![]),
        (6, vec![1]),
        (7, vec![2]),
    ];
    assert_eq!(log, expect);
}

/// §8.2: Connect is resent every tick; connecting fails at tick `epoch_limit`.
#[test]
fn connect_gives_up_after_epoch_limit() {
    let mut c = ClientEndpoint::new(params(4, EPOCH_MS, 1, 1, 0), 5, Timestamp::ZERO).unwrap();
    assert_eq!(drain_client(&mut c), vec![Message::connect(5)]);
    for tick in 1..4 {
        c.handle_timeout(at_epoch(tick));
        assert_eq!(
            drain_client(&mut c),
            vec![Message::connect(5)],
            "retry at tick {tick}"
        );
        assert!(client_events(&mut c).is_empty());
    }
    c.handle_timeout(at_epoch(4));
    assert!(drain_client(&mut c).is_empty());
    assert_eq!(client_events(&mut c), vec![ClientEvent::ConnectFailed]);
    assert!(c.is_finished());
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.write(b"x".to_vec()), Err(ApiError::ConnectFailed));
}

/// §8.2: before the connect-ack the client ignores everything but `Ack(isn)`, and acks no Data.
#[test]
fn connecting_client_ignores_all_but_its_connect_ack() {
    let mut c = ClientEndpoint::new(params(5, EPOCH_MS, 1, 1, 0), 9, Timestamp::ZERO).unwrap();
    c.write(b"early".to_vec()).unwrap();
    drain_client(&mut c);
    for m in [
        Message::data(1, 10, b"d".to_vec()),
        Message::ack(1, 0),
        Message::ack(1, 8),
        Message::cack(1, 9),
    ] {
        c.handle_datagram(Timestamp::ZERO, &m.encode());
    }
    assert!(
        drain_client(&mut c).is_empty(),
        "nothing acked or sent before connecting"
    );
    assert!(client_events(&mut c).is_empty());
    c.handle_datagram(Timestamp::ZERO, &Message::ack(3, 9).encode());
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Connected(ConnId(3))]
    );
    assert_eq!(
        drain_client(&mut c),
        vec![Message::data(3, 10, b"early".to_vec())],
        "queued write goes out at once"
    );
}

/// §8.2: `isn` 0 makes the connect-ack look like a heartbeat; it still connects.
#[test]
fn isn_zero_connect_ack() {
    let c = connected_client(Params::default(), 0);
    assert_eq!(c.conn_id(), Some(ConnId(1)));
}

/// §3 and `lsp_core::ISN_DOMAIN`: a client refuses an initial sequence number outside
/// `0 ..= MAX_ISN` at construction, with a typed error.
#[test]
fn a_client_refuses_an_isn_outside_the_domain() {
    use lsp_core::{ParamsError, MAX_ISN};
    for isn in [-1, i64::MIN, MAX_ISN + 1, i64::MAX] {
        assert_eq!(
            ClientEndpoint::new(Params::default(), isn, Timestamp::ZERO).err(),
            Some(ParamsError::IsnOutOfRange(isn)),
            "{isn}"
        );
    }
    for isn in [0, 1, MAX_ISN - 1, MAX_ISN] {
        assert!(ClientEndpoint::new(Params::default(), isn, Timestamp::ZERO).is_ok());
    }
}

/// §3 and `lsp_core::ISN_DOMAIN`: the server drops (and counts) a Connect whose isn is
/// outside the domain, answers nothing and makes no connection; inside it, it connects.
#[test]
fn the_server_drops_a_connect_outside_the_isn_domain() {
    use lsp_core::MAX_ISN;
    let mut s = ServerEndpoint::<u32>::new(Params::default(), Timestamp::ZERO).unwrap();
    for (from, isn) in [(1, -1), (2, i64::MIN), (3, MAX_ISN + 1), (4, i64::MAX)] {
        s.handle_datagram(Timestamp::ZERO, from, &Message::connect(isn).encode());
    }
    assert_eq!(drain_server(&mut s), vec![]);
    assert_eq!(server_events(&mut s), vec![]);
    assert_eq!(s.connection_count(), 0);
    assert_eq!(s.stats().dropped.invalid_isn, 4);
    s.handle_datagram(Timestamp::ZERO, 5, &Message::connect(MAX_ISN).encode());
    assert_eq!(drain_server(&mut s), vec![(5, Message::ack(1, MAX_ISN))]);
}

/// A heartbeat `(Ack, id, 0)` from the server never releases a message, whatever the isn:
/// the smallest valid isn numbers the first Data 1, and it is resent until really acked.
#[test]
fn a_heartbeat_is_never_taken_for_an_ack() {
    let mut c = connected_client(params(5, EPOCH_MS, 1, 1, 0), 0);
    c.write(b"x".to_vec()).unwrap();
    assert_eq!(data_seqs(&drain_client(&mut c)), [1]);
    c.handle_datagram(at_epoch(0), &Message::ack(1, 0).encode());
    assert_eq!(c.in_flight(), 1);
    c.handle_timeout(at_epoch(1));
    assert_eq!(data_seqs(&drain_client(&mut c)), [1], "resent");
    c.handle_datagram(at_epoch(1), &Message::ack(1, 1).encode());
    assert_eq!(c.in_flight(), 0);
}

/// §8.4: the peer is lost at exactly the `epoch_limit`-th silent tick; hearing anything
/// decodable resets the count.
#[test]
fn loss_declared_after_exactly_epoch_limit_silent_epochs() {
    let mut c = connected_client(params(3, EPOCH_MS, 1, 1, 0), 0);
    c.handle_timeout(at_epoch(1));
    c.handle_timeout(at_epoch(2));
    // A corrupt Data message still counts as hearing from the server.
    let mut corrupt = Message::data(1, 1, b"zz".to_vec());
    corrupt.checksum ^= 1;
    c.handle_datagram(at_epoch(2), &corrupt.encode());
    c.handle_timeout(at_epoch(3));
    c.handle_timeout(at_epoch(4));
    assert!(client_events(&mut c).is_empty());
    c.handle_timeout(at_epoch(5));
    assert_eq!(client_events(&mut c), vec![ClientEvent::ConnectionLost]);
    assert!(
        drain_client(&mut c).iter().all(|m| m.seq_num == 0),
        "only heartbeats before the loss"
    );
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.write(b"x".to_vec()), Err(ApiError::ConnectionLost));
}

/// §8.4: undecodable datagrams and Data shorter than its Size do not count as hearing.
#[test]
fn garbage_and_short_data_do_not_count_as_hearing() {
    let mut c = connected_client(params(2, EPOCH_MS, 1, 1, 0), 0);
    c.handle_timeout(at_epoch(1));
    c.handle_datagram(at_epoch(1), b"not json");
    let mut short = Message::data(1, 1, b"1234".to_vec());
    short.payload.truncate(2);
    c.handle_datagram(at_epoch(1), &short.encode());
    c.handle_timeout(at_epoch(2));
    assert_eq!(client_events(&mut c), vec![ClientEvent::ConnectionLost]);
    assert_eq!(c.stats().dropped.malformed, 1);
    assert_eq!(c.stats().dropped.short_payload, 1);
}

/// §8.3: a heartbeat goes out at a tick only if no Data was sent or resent since the last one.
#[test]
fn heartbeat_only_when_no_data_was_sent() {
    let mut c = connected_client(params(100, EPOCH_MS, 1, 1, 4), 0);
    c.handle_timeout(at_epoch(1));
    assert_eq!(drain_client(&mut c), vec![Message::ack(1, 0)]);
    c.write(b"x".to_vec()).unwrap();
    drain_client(&mut c);
    c.handle_timeout(at_epoch(2)); // sent Data since tick 1 (and resends now): no heartbeat
    assert_eq!(
        drain_client(&mut c),
        vec![Message::data(1, 1, b"x".to_vec())]
    );
    c.handle_timeout(at_epoch(3)); // back-off 1: no resend at this tick, nothing since: heartbeat
    assert_eq!(drain_client(&mut c), vec![Message::ack(1, 0)]);
}

/// §6: only `n ..= n+ω-1` may be in flight, never more than M; queued messages leave as
/// soon as an ack admits them.
#[test]
fn window_and_max_unacked_limit_sending() {
    // M binds: ω 3, M 2.
    let mut c = connected_client(params(5, EPOCH_MS, 3, 2, 0), 0);
    for i in 0..5 {
        c.write(vec![b'a' + i]).unwrap();
    }
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![1, 2]);
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, 2).encode());
    assert_eq!(
        data_seqs(&drain_client(&mut c)),
        vec![3],
        "an ack admits the next at once"
    );
    // ω binds: oldest unacked is 1, so 4 (= 1 + 3) may not go even though only 2 are in flight.
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, 3).encode());
    assert!(data_seqs(&drain_client(&mut c)).is_empty());
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, 1).encode());
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![4, 5]);
    assert_eq!(c.in_flight(), 2);
}

/// §6: with M > ω the window binds.
#[test]
fn window_binds_when_max_unacked_is_larger() {
    let mut c = connected_client(params(5, EPOCH_MS, 2, 10, 0), 0);
    for _ in 0..6 {
        c.write(b"m".to_vec()).unwrap();
    }
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![1, 2]);
}

/// §6: a CAck releases every transmitted message ≤ sn, never a queued one; stray acks ignored.
#[test]
fn cack_releases_transmitted_messages_up_to_sn() {
    let mut c = connected_client(params(5, EPOCH_MS, 3, 3, 0), 0);
    for _ in 0..5 {
        c.write(b"m".to_vec()).unwrap();
    }
    assert_eq!(data_seqs(&drain_client(&mut c)), vec![1, 2, 3]);
    c.handle_datagram(Timestamp::ZERO, &Message::cack(1, 4).encode());
    assert_eq!(
        data_seqs(&drain_client(&mut c)),
        vec![4, 5],
        "1..=3 released; 4 was still queued"
    );
    assert_eq!(c.in_flight(), 2);
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, 99).encode());
    assert_eq!(c.in_flight(), 2, "an ack of nothing in flight is ignored");
    c.handle_datagram(Timestamp::ZERO, &Message::cack(1, 5).encode());
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.unacknowledged(), 0);
}

/// §7: in-window Data is acked at once and buffered; out-of-window Data is dropped unacked;
/// duplicates are re-acked but not delivered again.
#[test]
fn receive_window_acks_buffers_and_drops() {
    let mut c = connected_client(params(5, EPOCH_MS, 3, 1, 0), 0);
    let data = |sn: i64| Message::data(1, sn, vec![sn as u8]).encode();
    c.handle_datagram(Timestamp::ZERO, &data(4)); // expected 1, window 1..=3: out
    assert_eq!(drain_client(&mut c), vec![]);
    assert_eq!(c.stats().dropped.out_of_window, 1);
    c.handle_datagram(Timestamp::ZERO, &data(3));
    c.handle_datagram(Timestamp::ZERO, &data(2));
    assert_eq!(
        drain_client(&mut c),
        vec![Message::ack(1, 3), Message::ack(1, 2)]
    );
    assert_eq!(c.buffered_out_of_order(), 2);
    assert!(client_events(&mut c).is_empty(), "nothing in order yet");
    c.handle_datagram(Timestamp::ZERO, &data(1));
    assert_eq!(drain_client(&mut c), vec![Message::ack(1, 1)]);
    let got: Vec<ClientEvent> = client_events(&mut c);
    assert_eq!(
        got,
        vec![
            ClientEvent::Message(vec![1]),
            ClientEvent::Message(vec![2]),
            ClientEvent::Message(vec![3])
        ]
    );
    c.handle_datagram(Timestamp::ZERO, &data(2));
    assert_eq!(
        drain_client(&mut c),
        vec![Message::ack(1, 2)],
        "duplicate re-acked"
    );
    assert!(client_events(&mut c).is_empty(), "and not delivered twice");
    c.handle_datagram(Timestamp::ZERO, &data(6)); // window is now 4..=6
    assert_eq!(drain_client(&mut c), vec![Message::ack(1, 6)]);
}

/// §4: long payloads are truncated to Size; short ones and bad checksums are dropped unacked.
#[test]
fn integrity_rules_on_receive() {
    let mut c = connected_client(params(5, EPOCH_MS, 5, 1, 0), 0);
    let mut long = Message::data(1, 1, b"123".to_vec());
    long.payload.extend_from_slice(&[2, 3, 4]);
    c.handle_datagram(Timestamp::ZERO, &long.encode());
    assert_eq!(drain_client(&mut c), vec![Message::ack(1, 1)]);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Message(b"123".to_vec())]
    );
    let mut short = Message::data(1, 2, b"123".to_vec());
    short.payload.truncate(1);
    let mut corrupt = Message::data(1, 2, b"123".to_vec());
    corrupt.payload[0] ^= 0xff;
    c.handle_datagram(Timestamp::ZERO, &short.encode());
    c.handle_datagram(Timestamp::ZERO, &corrupt.encode());
    assert_eq!(drain_client(&mut c), vec![], "neither is acked");
    assert!(client_events(&mut c).is_empty());
    assert_eq!(
        (
            c.stats().dropped.short_payload,
            c.stats().dropped.bad_checksum
        ),
        (1, 1)
    );
}

/// §3: ids 1, 2, 3 by address; duplicate Connect creates nothing; unknown addresses ignored;
/// Data with a wrong ConnID is acked with the right id.
#[test]
fn server_assigns_ids_by_source_address() {
    let mut s = ServerEndpoint::<u32>::new(params(5, EPOCH_MS, 1, 1, 0), Timestamp::ZERO).unwrap();
    for addr in [10, 20, 30] {
        s.handle_datagram(Timestamp::ZERO, addr, &Message::connect(100).encode());
    }
    let acks = drain_server(&mut s);
    assert_eq!(
        acks,
        vec![
            (10, Message::ack(1, 100)),
            (20, Message::ack(2, 100)),
            (30, Message::ack(3, 100))
        ]
    );
    s.handle_datagram(Timestamp::ZERO, 20, &Message::connect(100).encode());
    assert_eq!(
        drain_server(&mut s),
        vec![(20, Message::ack(2, 100))],
        "a retried Connect is re-acked with the same id (its ack may have been lost)"
    );
    s.handle_datagram(Timestamp::ZERO, 20, &Message::connect(5).encode());
    assert_eq!(
        drain_server(&mut s),
        vec![],
        "a Connect with another isn gets nothing"
    );
    assert_eq!(s.connection_count(), 3);
    s.handle_datagram(
        Timestamp::ZERO,
        99,
        &Message::data(1, 101, b"x".to_vec()).encode(),
    );
    assert_eq!(drain_server(&mut s), vec![], "unknown address ignored");
    s.handle_datagram(
        Timestamp::ZERO,
        30,
        &Message::data(1, 101, b"y".to_vec()).encode(),
    );
    assert_eq!(drain_server(&mut s), vec![(30, Message::ack(3, 101))]);
    let events = server_events(&mut s);
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Message {
            conn: ConnId(3),
            payload: b"y".to_vec()
        })
    );
    // The server's own stream to that client starts at isn + 1.
    s.write(ConnId(3), b"z".to_vec()).unwrap();
    assert_eq!(
        drain_server(&mut s),
        vec![(30, Message::data(3, 101, b"z".to_vec()))]
    );
}

/// §3, §8.4: a duplicate Connect counts as hearing from the peer.
#[test]
fn duplicate_connect_resets_silence() {
    let mut s = server_with_client(params(2, EPOCH_MS, 1, 1, 0), 0);
    s.handle_timeout(at_epoch(1));
    s.handle_datagram(at_epoch(1), 7, &Message::connect(0).encode());
    s.handle_timeout(at_epoch(2));
    assert!(server_events(&mut s).is_empty());
    s.handle_timeout(at_epoch(3));
    assert_eq!(
        server_events(&mut s),
        vec![ServerEvent::ConnectionLost { conn: ConnId(1) }]
    );
    // The address is forgotten: its Data is ignored and a new Connect gets a new id.
    s.handle_datagram(at_epoch(3), 7, &Message::data(1, 1, b"x".to_vec()).encode());
    assert_eq!(
        drain_server(&mut s)
            .iter()
            .filter(|(_, m)| m.seq_num == 1)
            .count(),
        0
    );
    s.handle_datagram(at_epoch(3), 7, &Message::connect(0).encode());
    assert_eq!(drain_server(&mut s), vec![(7, Message::ack(2, 0))]);
}

/// §9: the loss event comes after every message received before the loss.
#[test]
fn server_reports_loss_after_received_messages() {
    let mut s = server_with_client(params(1, EPOCH_MS, 1, 1, 0), 0);
    s.handle_datagram(
        Timestamp::ZERO,
        7,
        &Message::data(1, 1, b"a".to_vec()).encode(),
    );
    s.handle_timeout(at_epoch(1));
    assert_eq!(
        server_events(&mut s),
        vec![
            ServerEvent::Message {
                conn: ConnId(1),
                payload: b"a".to_vec()
            },
            ServerEvent::ConnectionLost { conn: ConnId(1) }
        ]
    );
    assert_eq!(
        s.write(ConnId(1), b"x".to_vec()),
        Err(ApiError::UnknownConnection(ConnId(1)))
    );
}

/// §9: a closing endpoint keeps its receive window moving: out-of-order Data is still
/// buffered, so later Data is acked rather than stalled beyond the window.
#[test]
fn closing_keeps_the_receive_window_moving() {
    let mut c = connected_client(params(5, EPOCH_MS, 2, 1, 0), 0);
    c.write(b"a".to_vec()).unwrap();
    drain_client(&mut c);
    c.close().unwrap();
    let data = |sn: i64| Message::data(1, sn, vec![sn as u8]).encode();
    c.handle_datagram(Timestamp::ZERO, &data(2));
    c.handle_datagram(Timestamp::ZERO, &data(1));
    c.handle_datagram(Timestamp::ZERO, &data(4));
    assert_eq!(
        drain_client(&mut c),
        vec![Message::ack(1, 2), Message::ack(1, 1), Message::ack(1, 4)],
        "4 is inside the window once 1 and 2 are in"
    );
    assert!(
        client_events(&mut c).is_empty(),
        "nothing delivered after close"
    );
}

/// §9: client close waits for every pending message to be acknowledged, keeps acking meanwhile.
#[test]
fn client_close_waits_for_acks() {
    let mut c = connected_client(params(5, EPOCH_MS, 1, 1, 0), 0);
    c.write(b"a".to_vec()).unwrap();
    c.write(b"b".to_vec()).unwrap();
    drain_client(&mut c);
    c.close().unwrap();
    assert_eq!(c.write(b"c".to_vec()), Err(ApiError::Closed));
    assert_eq!(c.close(), Err(ApiError::Closed));
    c.handle_datagram(
        Timestamp::ZERO,
        &Message::data(1, 1, b"in".to_vec()).encode(),
    );
    assert_eq!(
        drain_client(&mut c),
        vec![Message::ack(1, 1)],
        "still acknowledging"
    );
    assert!(
        client_events(&mut c).is_empty(),
        "but not delivering after close"
    );
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, 1).encode());
    assert!(!c.is_finished());
    c.handle_datagram(Timestamp::ZERO, &Message::ack(1, 2).encode());
    assert_eq!(client_events(&mut c), vec![ClientEvent::Closed(Ok(()))]);
    assert!(c.is_finished());
    assert_eq!(c.poll_timeout(), None);
}

/// §9: a loss during close discards what is pending and makes close report an error.
#[test]
fn client_close_is_cut_short_by_loss() {
    let mut c = connected_client(params(2, EPOCH_MS, 1, 1, 0), 0);
    c.write(b"a".to_vec()).unwrap();
    c.close().unwrap();
    c.handle_timeout(at_epoch(1));
    c.handle_timeout(at_epoch(2));
    assert_eq!(
        client_events(&mut c),
        vec![
            ClientEvent::ConnectionLost,
            ClientEvent::Closed(Err(CloseError::ConnectionsLost(vec![ConnId(1)])))
        ]
    );
}

/// §9: close_conn delivers nothing more, flushes pending writes, then the server goes silent
/// towards that address (no acks, no heartbeats).
#[test]
fn close_conn_flushes_then_server_is_silent() {
    let mut s = server_with_client(params(5, EPOCH_MS, 1, 1, 0), 0);
    s.handle_datagram(
        Timestamp::ZERO,
        7,
        &Message::data(1, 1, b"unread".to_vec()).encode(),
    );
    drain_server(&mut s);
    s.write(ConnId(1), b"bye".to_vec()).unwrap();
    assert_eq!(
        data_seqs(
            &drain_server(&mut s)
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
        ),
        vec![1]
    );
    s.close_conn(ConnId(1)).unwrap();
    let events = server_events(&mut s);
    assert_eq!(
        events,
        vec![
            ServerEvent::Connected {
                conn: ConnId(1),
                addr: 7
            },
            ServerEvent::ConnectionClosed { conn: ConnId(1) }
        ][1..]
            .to_vec(),
        "the unread message was discarded"
    );
    assert_eq!(
        s.close_conn(ConnId(1)),
        Err(ApiError::UnknownConnection(ConnId(1)))
    );
    assert_eq!(
        s.write(ConnId(1), b"x".to_vec()),
        Err(ApiError::UnknownConnection(ConnId(1)))
    );
    // Still flushing: incoming Data acked and discarded, resends per back-off.
    s.handle_datagram(
        Timestamp::ZERO,
        7,
        &Message::data(1, 2, b"late".to_vec()).encode(),
    );
    assert_eq!(drain_server(&mut s), vec![(7, Message::ack(1, 2))]);
    s.handle_timeout(at_epoch(1));
    assert_eq!(
        drain_server(&mut s),
        vec![(7, Message::data(1, 1, b"bye".to_vec()))]
    );
    // The ack ends it: the address is forgotten and nothing more is sent to it.
    s.handle_datagram(at_epoch(1), 7, &Message::ack(1, 1).encode());
    assert_eq!(s.connection_count(), 0);
    s.handle_datagram(
        at_epoch(1),
        7,
        &Message::data(1, 3, b"more".to_vec()).encode(),
    );
    for tick in 2..10 {
        s.handle_timeout(at_epoch(tick));
    }
    assert_eq!(drain_server(&mut s), vec![], "no acks, no heartbeats");
    assert!(server_events(&mut s).is_empty());
}

/// §9: server close stops accepting, waits for every client's acks, and reports lost clients.
#[test]
fn server_close_waits_and_reports_losses() {
    let mut s = ServerEndpoint::<u32>::new(params(2, EPOCH_MS, 1, 1, 0), Timestamp::ZERO).unwrap();
    s.handle_datagram(Timestamp::ZERO, 7, &Message::connect(0).encode());
    s.handle_datagram(Timestamp::ZERO, 8, &Message::connect(0).encode());
    s.write(ConnId(1), b"a".to_vec()).unwrap();
    s.write(ConnId(2), b"b".to_vec()).unwrap();
    drain_server(&mut s);
    server_events(&mut s);
    s.close().unwrap();
    assert_eq!(s.close(), Err(ApiError::Closed));
    assert_eq!(s.write(ConnId(1), b"x".to_vec()), Err(ApiError::Closed));
    s.handle_datagram(Timestamp::ZERO, 9, &Message::connect(0).encode());
    assert_eq!(
        drain_server(&mut s),
        vec![],
        "no new connections while closing"
    );
    s.handle_datagram(Timestamp::ZERO, 7, &Message::ack(1, 1).encode());
    assert!(!s.is_closed());
    s.handle_timeout(at_epoch(1));
    s.handle_timeout(at_epoch(2)); // client 2 never answered: lost
    assert!(s.is_closed());
    let events = server_events(&mut s);
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Closed(Err(CloseError::ConnectionsLost(
            vec![ConnId(2)]
        ))))
    );
    assert_eq!(s.poll_timeout(), None);
}

/// §9: server close with everything acknowledged reports success.
#[test]
fn server_close_clean() {
    let mut s = server_with_client(params(5, EPOCH_MS, 1, 1, 0), 0);
    s.close().unwrap();
    assert_eq!(server_events(&mut s), vec![ServerEvent::Closed(Ok(()))]);
}

/// §1: writes that cannot fit in 1500 bytes are refused; 1000 bytes always fit.
#[test]
fn oversized_writes_are_refused() {
    let mut c = connected_client(Params::default(), lsp_core::MAX_ISN);
    c.write(vec![0xab; MAX_GUARANTEED_PAYLOAD]).unwrap();
    let sent = drain_client(&mut c);
    assert!(sent[0].encode().len() <= 1500);
    match c.write(vec![0; 1200]) {
        Err(ApiError::PayloadTooLarge { len: 1200, max }) => assert!((1000..1200).contains(&max)),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let mut s = server_with_client(Params::default(), 0);
    assert!(matches!(
        s.write(ConnId(1), vec![0; 1100]),
        Err(ApiError::PayloadTooLarge { .. })
    ));
}

/// §1: received datagrams over 1500 bytes are dropped and counted.
#[test]
fn oversized_datagrams_are_dropped() {
    let mut s = server_with_client(Params::default(), 0);
    let mut big = Message::data(1, 1, vec![1; 1200]).encode();
    assert!(big.len() > 1500);
    s.handle_datagram(Timestamp::ZERO, 7, &big);
    big.truncate(1500);
    s.handle_datagram(Timestamp::ZERO, 7, &big);
    assert_eq!(drain_server(&mut s), vec![]);
    assert_eq!(s.stats().dropped.oversized, 1);
    assert_eq!(s.stats().dropped.malformed, 1);
}

/// §5: invalid parameters are rejected at construction.
#[test]
fn invalid_params_rejected_at_construction() {
    let bad = params(5, EPOCH_MS, 0, 1, 0);
    assert!(ClientEndpoint::new(bad, 0, Timestamp::ZERO).is_err());
    assert!(ServerEndpoint::<u32>::new(bad, Timestamp::ZERO).is_err());
}

/// Time going backwards is ignored; timeouts called early do nothing.
#[test]
fn time_never_goes_backwards() {
    let mut c = connected_client(params(2, EPOCH_MS, 1, 1, 0), 0);
    c.handle_timeout(at_epoch(1));
    c.handle_timeout(Timestamp::from_millis(10)); // backwards: no tick
    c.handle_timeout(Timestamp::from_millis(1500)); // early
    assert!(client_events(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(at_epoch(2)));
}

/// Both directions of an echo exchange over the harness's perfect network.
#[test]
fn echo_over_a_perfect_network() {
    let mut w = World::new(params(5, 2000, 2, 2, 0), params(5, 2000, 2, 2, 0), 3, |i| {
        i as i64 * 10
    });
    assert!(w.run_until_cond(Duration::from_secs(1), |w| w.all_connected()));
    for i in 0..3 {
        for n in 0..20u8 {
            w.clients[i].write(vec![i as u8, n]).unwrap();
        }
    }
    w.collect();
    let ok = w.run_until_cond(Duration::from_secs(1), |w| {
        (0..3).all(|i| w.server_messages(w.conn_of(i).unwrap()).len() == 20)
    });
    assert!(ok);
    for i in 0..3 {
        let expect: Vec<Vec<u8>> = (0..20u8).map(|n| vec![i as u8, n]).collect();
        assert_eq!(w.server_messages(w.conn_of(i).unwrap()), expect);
    }
}
