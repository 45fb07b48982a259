//! The sessions and the driver state over an in-memory socket: the §9 semantics every
//! runtime inherits, checked without IO.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;

use super::session::INBOX_AHEAD;
use super::*;
use crate::{ApiError, ConnId, Params, Timestamp};

/// Peer addresses in these tests.
const SERVER: u32 = 1;
const CLIENT: u32 = 2;

/// A non-blocking socket in memory: what was sent, what waits to be received, and a switch
/// that makes sends fail with `WouldBlock`.
#[derive(Default)]
struct MemSocket {
    sent: RefCell<Vec<(u32, Vec<u8>)>>,
    ready: RefCell<VecDeque<(u32, Vec<u8>)>>,
    full: Cell<bool>,
}

impl DatagramSocket for MemSocket {
    type Addr = u32;

    fn send_to(&self, to: &u32, datagram: &[u8]) -> io::Result<()> {
        if self.full.get() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.sent.borrow_mut().push((*to, datagram.to_vec()));
        Ok(())
    }

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, u32)> {
        let (from, datagram) = self
            .ready
            .borrow_mut()
            .pop_front()
            .ok_or(io::ErrorKind::WouldBlock)?;
        buf[..datagram.len()].copy_from_slice(&datagram);
        Ok((datagram.len(), from))
    }
}

/// A server and a client driver state, each on its own in-memory socket.
struct Pair {
    server: DriverState<ServerSession<u32>>,
    server_socket: MemSocket,
    client: DriverState<ClientSession<u32>>,
    client_socket: MemSocket,
    now: Timestamp,
}

impl Pair {
    fn new() -> Pair {
        Pair::with_server_limits(crate::Limits::default())
    }

    fn with_server_limits(limits: crate::Limits) -> Pair {
        let now = Timestamp::ZERO;
        let mut pair = Pair {
            server: DriverState::new(
                ServerSession::with_limits(Params::default(), limits, now).unwrap(),
            ),
            server_socket: MemSocket::default(),
            client: DriverState::new(
                ClientSession::new(Params::default(), SERVER, 0, now).unwrap(),
            ),
            client_socket: MemSocket::default(),
            now,
        };
        let _ = pair.client.pump(&pair.client_socket);
        pair.settle();
        pair
    }

    /// Delivers datagrams both ways until both sockets are quiet.
    fn settle(&mut self) {
        loop {
            let to_server: Vec<_> = self.client_socket.sent.borrow_mut().drain(..).collect();
            let to_client: Vec<_> = self.server_socket.sent.borrow_mut().drain(..).collect();
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
            for (to, d) in to_server {
                assert_eq!(to, SERVER);
                self.server_socket.ready.borrow_mut().push_back((CLIENT, d));
            }
            for (to, d) in to_client {
                assert_eq!(to, CLIENT);
                self.client_socket.ready.borrow_mut().push_back((SERVER, d));
            }
            while self.server.receive_batch(self.now, &self.server_socket).0 == Received::More {}
            while self.client.receive_batch(self.now, &self.client_socket).0 == Received::More {}
        }
    }

    fn conn(&self) -> ConnId {
        self.client.session().poll_connected().unwrap().unwrap()
    }
}

#[test]
fn messages_reach_the_reader_in_order_both_ways() {
    let mut p = Pair::new();
    let conn = p.conn();
    for m in [&b"a"[..], b"b", b"c"] {
        p.client.session_mut().write(m.to_vec()).unwrap();
        let _ = p.client.after_call(&p.client_socket);
    }
    p.settle();
    for m in [&b"a"[..], b"b", b"c"] {
        assert_eq!(
            p.server.session_mut().poll_read().unwrap().unwrap(),
            (conn, m.to_vec())
        );
    }
    assert!(
        p.server.session_mut().poll_read().is_none(),
        "reader must wait"
    );
    p.server
        .session_mut()
        .write(conn, b"back".to_vec())
        .unwrap();
    let _ = p.server.after_call(&p.server_socket);
    p.settle();
    assert_eq!(
        p.client.session_mut().poll_read().unwrap().unwrap(),
        b"back"
    );
    assert!(p.client.session_mut().poll_read().is_none());
}

#[test]
fn a_reader_that_stops_slows_its_peer_down_and_loses_nothing() {
    let limits = crate::Limits {
        max_unread_messages: 4,
        ..crate::Limits::default()
    };
    let mut p = Pair::with_server_limits(limits);
    let conn = p.conn();
    let n = 300;
    for k in 0..n {
        p.client
            .session_mut()
            .write(format!("{k}").into_bytes())
            .unwrap();
    }
    let _ = p.client.after_call(&p.client_socket);
    p.settle();
    // The session moved INBOX_AHEAD messages ahead; the endpoint holds max_unread more and
    // refused the next one, unacknowledged.
    let endpoint = p.server.session().endpoint();
    assert_eq!(endpoint.unread(conn), 4);
    assert_eq!(endpoint.stats().dropped.unread_full, 1);
    assert_eq!(
        endpoint.stats().messages_delivered,
        (INBOX_AHEAD + 4) as u64
    );
    let mut read = Vec::new();
    let epoch = Params::default().epoch();
    while read.len() < n {
        while let Some(item) = p.server.session_mut().poll_read() {
            let (c, payload) = item.unwrap();
            assert_eq!(c, conn);
            read.push(String::from_utf8(payload).unwrap());
        }
        // The refused message comes again at the client's next tick.
        p.now = p.now + epoch;
        p.client.handle_timeout_if_due(p.now);
        p.server.handle_timeout_if_due(p.now);
        let _ = p.client.pump(&p.client_socket);
        let _ = p.server.pump(&p.server_socket);
        p.settle();
        let endpoint = p.server.session().endpoint();
        assert!(endpoint.unread(conn) <= 4);
        assert!(endpoint.connection_count() == 1, "still connected");
    }
    let want: Vec<String> = (0..n).map(|k| k.to_string()).collect();
    assert_eq!(read, want);
}

#[test]
fn close_conn_discards_unread_messages_and_reports_the_closure_once() {
    let mut p = Pair::new();
    let conn = p.conn();
    p.client.session_mut().write(b"unread".to_vec()).unwrap();
    let _ = p.client.after_call(&p.client_socket);
    p.settle();
    p.server.session_mut().close_conn(conn).unwrap();
    let _ = p.server.after_call(&p.server_socket);
    assert!(matches!(
        p.server.session_mut().poll_read(),
        Some(Err(ServerReadError::ConnectionClosed(c))) if c == conn
    ));
    assert!(p.server.session_mut().poll_read().is_none());
    assert_eq!(
        p.server.session_mut().close_conn(conn),
        Err(ApiError::UnknownConnection(conn))
    );
}

#[test]
fn close_fails_reads_and_writes_then_completes_once_acknowledged() {
    let mut p = Pair::new();
    let conn = p.conn();
    p.server
        .session_mut()
        .write(conn, b"last".to_vec())
        .unwrap();
    p.server.session_mut().begin_close().unwrap();
    let _ = p.server.after_call(&p.server_socket);
    assert!(matches!(
        p.server.session_mut().poll_read(),
        Some(Err(ServerReadError::Closed))
    ));
    assert_eq!(
        p.server.session_mut().write(conn, b"x".to_vec()),
        Err(ApiError::Closed)
    );
    assert!(matches!(
        p.server.session_mut().begin_close(),
        Err(CloseError::AlreadyClosed)
    ));
    assert!(
        p.server.session_mut().poll_closed().is_none(),
        "not acknowledged yet"
    );
    p.settle();
    assert!(matches!(p.server.session_mut().poll_closed(), Some(Ok(()))));
    assert_eq!(
        p.client.session_mut().poll_read().unwrap().unwrap(),
        b"last"
    );
}

#[test]
fn a_stopped_driver_fails_every_waiting_call() {
    let mut p = Pair::new();
    p.client.session_mut().begin_close().unwrap();
    p.client.halt(DriverStatus::Stopped);
    assert!(matches!(
        p.client.session_mut().poll_closed(),
        Some(Err(CloseError::Aborted))
    ));
    assert!(matches!(
        p.client.session_mut().poll_read(),
        Some(Err(ClientReadError::Closed))
    ));

    let failure = std::sync::Arc::new(io::Error::other("socket gone"));
    p.server.halt(DriverStatus::Failed(failure));
    // A later halt does not overwrite the first reason.
    p.server.halt(DriverStatus::Stopped);
    assert!(p.server.is_stopped());
    assert!(matches!(
        p.server.session_mut().poll_read(),
        Some(Err(ServerReadError::Io(_)))
    ));
    assert_eq!(
        p.server.session_mut().write(ConnId(1), b"x".to_vec()),
        Err(ApiError::Closed)
    );
}

#[test]
fn a_lost_connection_is_reported_after_the_messages_received_before_it() {
    let mut p = Pair::new();
    let conn = p.conn();
    p.server
        .session_mut()
        .write(conn, b"before".to_vec())
        .unwrap();
    let _ = p.server.after_call(&p.server_socket);
    p.settle();
    // The server falls silent: the client declares it lost after epoch_limit epochs.
    let params = Params::default();
    for _ in 0..=params.epoch_limit {
        p.now = p.now + params.epoch();
        p.client.handle_timeout_if_due(p.now);
        let _ = p.client.pump(&p.client_socket);
    }
    assert_eq!(
        p.client.session_mut().poll_read().unwrap().unwrap(),
        b"before"
    );
    for _ in 0..2 {
        assert!(matches!(
            p.client.session_mut().poll_read(),
            Some(Err(ClientReadError::ConnectionLost))
        ));
    }
}

#[test]
fn refused_sends_wait_and_wake_the_driver() {
    let mut p = Pair::new();
    let _ = p.client.arm();
    p.client_socket.full.set(true);
    p.client.session_mut().write(b"m".to_vec()).unwrap();
    let after = p.client.after_call(&p.client_socket);
    assert!(after.wake_driver && p.client.has_blocked_sends());
    p.client_socket.full.set(false);
    let _ = p.client.pump(&p.client_socket);
    assert!(!p.client.has_blocked_sends());
    assert_eq!(p.client_socket.sent.borrow().len(), 1);
}

#[test]
fn a_burst_is_fed_in_batches() {
    let mut p = Pair::new();
    for _ in 0..100 {
        p.server_socket
            .ready
            .borrow_mut()
            .push_back((CLIENT, b"garbage".to_vec()));
    }
    assert_eq!(
        p.server.receive_batch(p.now, &p.server_socket).0,
        Received::More
    );
    assert_eq!(
        p.server.receive_batch(p.now, &p.server_socket).0,
        Received::Drained
    );
    assert_eq!(p.server.session().endpoint().stats().dropped.malformed, 100);
}

#[test]
fn a_batch_of_only_heartbeats_asks_for_a_pause_and_anything_else_does_not() {
    let mut p = Pair::new();
    let conn = p.conn();
    let heartbeat = crate::Message::ack(conn.0, 0).encode();
    for _ in 0..3 {
        p.server_socket
            .ready
            .borrow_mut()
            .push_back((CLIENT, heartbeat.clone()));
    }
    let _ = p.server.receive_batch(p.now, &p.server_socket);
    // Default epoch 2000 ms: a twentieth is 100 ms, so the 1 ms cap applies.
    assert_eq!(
        p.server.quiet_pause(),
        Some(std::time::Duration::from_millis(1))
    );
    assert_eq!(p.server.session().endpoint().stats().heartbeats_received, 3);

    // A heartbeat and then a message in one batch: no pause.
    p.client.session_mut().write(b"m".to_vec()).unwrap();
    let _ = p.client.after_call(&p.client_socket);
    p.server_socket
        .ready
        .borrow_mut()
        .push_back((CLIENT, heartbeat));
    for (_, d) in p.client_socket.sent.borrow_mut().drain(..) {
        p.server_socket.ready.borrow_mut().push_back((CLIENT, d));
    }
    let _ = p.server.receive_batch(p.now, &p.server_socket);
    assert_eq!(p.server.quiet_pause(), None);

    // An empty wake-up (nothing was ready): no pause either.
    let _ = p.server.receive_batch(p.now, &p.server_socket);
    assert_eq!(p.server.quiet_pause(), None);
}

#[test]
fn acks_the_socket_refuses_while_receiving_wait_to_be_sent() {
    let mut p = Pair::new();
    p.client.session_mut().write(b"m".to_vec()).unwrap();
    let _ = p.client.after_call(&p.client_socket);
    for (_, d) in p.client_socket.sent.borrow_mut().drain(..) {
        p.server_socket.ready.borrow_mut().push_back((CLIENT, d));
    }
    p.server_socket.full.set(true);
    let _ = p.server.receive_batch(p.now, &p.server_socket);
    assert!(
        p.server.has_blocked_sends(),
        "the ack must wait in the outbox"
    );
    p.server_socket.full.set(false);
    let _ = p.server.pump(&p.server_socket);
    assert!(!p.server.has_blocked_sends());
    assert_eq!(p.server_socket.sent.borrow().len(), 1);
}

/// One step of [`sessions_keep_section_9_under_any_interleaving`].
#[derive(Clone, Debug)]
enum Step {
    ClientWrite,
    ServerWrite,
    /// Moves the oldest datagram in one direction: delivered, dropped, duplicated or sent to
    /// the back of the queue (reordered), by `fate % 4`.
    Network {
        to_server: bool,
        fate: u8,
    },
    /// One epoch passes on both ends.
    Tick,
    ServerRead,
    ClientRead,
    CloseConn,
    ServerClose,
    ClientClose,
    ClientDriverStops,
}

impl quickcheck::Arbitrary for Step {
    fn arbitrary(g: &mut quickcheck::Gen) -> Step {
        match u8::arbitrary(g) % 20 {
            0..=2 => Step::ClientWrite,
            3..=5 => Step::ServerWrite,
            6..=11 => Step::Network {
                to_server: bool::arbitrary(g),
                fate: u8::arbitrary(g),
            },
            12 => Step::Tick,
            13 | 14 => Step::ServerRead,
            15 | 16 => Step::ClientRead,
            17 => Step::CloseConn,
            18 => match u8::arbitrary(g) % 3 {
                0 => Step::ServerClose,
                1 => Step::ClientClose,
                _ => Step::ClientDriverStops,
            },
            _ => Step::Tick,
        }
    }
}

/// What the application on each end has seen, checked against docs/protocol.md §7 after every step.
#[derive(Default)]
struct Seen {
    up_written: Vec<Vec<u8>>,
    up_read: usize,
    down_written: Vec<Vec<u8>>,
    down_read: usize,
    conn_closed: bool,
    closure_reported: bool,
    server_closing: bool,
    client_closing: bool,
    client_stopped: bool,
    client_lost: bool,
}

/// Any interleaving of application calls, epochs and a network that drops, duplicates and
/// reorders: reads return each side's writes in order, each at most once; nothing of a
/// connection closed with `close_conn` is read after it, and its closure is reported at
/// most once; after `close` (or a stopped driver) reads fail; after a loss, no message.
#[test]
fn sessions_keep_section_9_under_any_interleaving() {
    fn run(steps: Vec<Step>) -> bool {
        let mut p = Pair::new();
        let conn = p.conn();
        let mut seen = Seen::default();
        let mut to_server: VecDeque<Vec<u8>> = VecDeque::new();
        let mut to_client: VecDeque<Vec<u8>> = VecDeque::new();
        for step in steps {
            match step {
                Step::ClientWrite => {
                    let m = format!("up{}", seen.up_written.len()).into_bytes();
                    if p.client.session_mut().write(m.clone()).is_ok() {
                        seen.up_written.push(m);
                    }
                    let _ = p.client.after_call(&p.client_socket);
                }
                Step::ServerWrite => {
                    let m = format!("down{}", seen.down_written.len()).into_bytes();
                    if p.server.session_mut().write(conn, m.clone()).is_ok() {
                        seen.down_written.push(m);
                    }
                    let _ = p.server.after_call(&p.server_socket);
                }
                Step::Network {
                    to_server: up,
                    fate,
                } => {
                    let (queue, socket, from) = if up {
                        (&mut to_server, &p.server_socket, CLIENT)
                    } else {
                        (&mut to_client, &p.client_socket, SERVER)
                    };
                    if let Some(d) = queue.pop_front() {
                        match fate % 4 {
                            0 => socket.ready.borrow_mut().push_back((from, d)),
                            1 => {}
                            2 => {
                                socket.ready.borrow_mut().push_back((from, d.clone()));
                                socket.ready.borrow_mut().push_back((from, d));
                            }
                            _ => queue.push_back(d),
                        }
                    }
                    let _ = p.server.receive_batch(p.now, &p.server_socket);
                    let _ = p.client.receive_batch(p.now, &p.client_socket);
                }
                Step::Tick => {
                    p.now = p.now + Params::default().epoch();
                    p.server.handle_timeout_if_due(p.now);
                    p.client.handle_timeout_if_due(p.now);
                    let _ = p.server.pump(&p.server_socket);
                    let _ = p.client.pump(&p.client_socket);
                }
                Step::ServerRead => match p.server.session_mut().poll_read() {
                    Some(Ok((c, m))) => {
                        if seen.server_closing || c != conn || seen.conn_closed {
                            return false;
                        }
                        if seen.up_written.get(seen.up_read) != Some(&m) {
                            return false;
                        }
                        seen.up_read += 1;
                    }
                    Some(Err(ServerReadError::ConnectionClosed(c))) => {
                        if c != conn || !seen.conn_closed || seen.closure_reported {
                            return false;
                        }
                        seen.closure_reported = true;
                    }
                    Some(Err(ServerReadError::Closed)) => {
                        if !seen.server_closing {
                            return false;
                        }
                    }
                    Some(Err(ServerReadError::ConnectionLost(c))) => {
                        if c != conn || seen.conn_closed {
                            return false;
                        }
                    }
                    Some(Err(ServerReadError::Io(_))) => return false,
                    None => {
                        if seen.server_closing {
                            return false;
                        }
                    }
                },
                Step::ClientRead => match p.client.session_mut().poll_read() {
                    Some(Ok(m)) => {
                        if seen.client_closing || seen.client_stopped || seen.client_lost {
                            return false;
                        }
                        if seen.down_written.get(seen.down_read) != Some(&m) {
                            return false;
                        }
                        seen.down_read += 1;
                    }
                    Some(Err(ClientReadError::Closed)) => {
                        if !(seen.client_closing || seen.client_stopped) {
                            return false;
                        }
                    }
                    Some(Err(ClientReadError::ConnectionLost)) => seen.client_lost = true,
                    Some(Err(ClientReadError::Io(_))) => return false,
                    None => {
                        if seen.client_closing || seen.client_stopped || seen.client_lost {
                            return false;
                        }
                    }
                },
                Step::CloseConn => {
                    if p.server.session_mut().close_conn(conn).is_ok() {
                        seen.conn_closed = true;
                    }
                    let _ = p.server.after_call(&p.server_socket);
                }
                Step::ServerClose => {
                    let first = !seen.server_closing;
                    if p.server.session_mut().begin_close().is_ok() != first {
                        return false;
                    }
                    seen.server_closing = true;
                    let _ = p.server.after_call(&p.server_socket);
                }
                Step::ClientClose => {
                    let first = !(seen.client_closing || seen.client_stopped);
                    if p.client.session_mut().begin_close().is_ok() != first {
                        return false;
                    }
                    seen.client_closing |= first;
                    let _ = p.client.after_call(&p.client_socket);
                }
                Step::ClientDriverStops => {
                    p.client.halt(DriverStatus::Stopped);
                    seen.client_stopped = true;
                    if seen.client_closing
                        && !matches!(
                            p.client.session_mut().poll_closed(),
                            Some(Err(_)) | Some(Ok(()))
                        )
                    {
                        return false;
                    }
                }
            }
            to_server.extend(p.client_socket.sent.borrow_mut().drain(..).map(|(_, d)| d));
            to_client.extend(p.server_socket.sent.borrow_mut().drain(..).map(|(_, d)| d));
        }
        true
    }
    quickcheck::QuickCheck::new()
        .tests(500)
        .quickcheck(run as fn(Vec<Step>) -> bool);
}
