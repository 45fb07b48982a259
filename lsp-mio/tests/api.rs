//! The blocking API over real UDP on loopback: docs/protocol.md §7's rules, one test each.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lsp_mio::{
    ApiError, Client, ClientReadError, CloseError, ConnId, Limits, Params, ParamsError, Server,
    ServerReadError, StartError, MAX_ISN,
};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn params(epoch_limit: u32, epoch_millis: u64, window: u32, max_unacked: u32) -> Params {
    Params {
        epoch_limit,
        epoch_millis,
        window_size: window,
        max_backoff_interval: 0,
        max_unacked_messages: max_unacked,
    }
}

/// Runs `f` on a thread and fails the test if it does not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

#[test]
fn echo_in_order_with_a_window() {
    let p = params(5, 2000, 8, 8);
    let server = Arc::new(Server::bind(loopback(), p).unwrap());
    let echo = {
        let server = Arc::clone(&server);
        thread::spawn(move || {
            while let Ok((conn, payload)) = server.read() {
                if server.write(conn, payload).is_err() {
                    break;
                }
            }
        })
    };
    let client = Client::connect(server.local_addr(), 17, p).unwrap();
    assert_eq!(client.conn_id(), ConnId(1));
    for i in 0..500u32 {
        client.write(i.to_string()).unwrap();
    }
    for i in 0..500u32 {
        assert_eq!(client.read().unwrap(), i.to_string().into_bytes());
    }
    client.close().unwrap();
    server.close().unwrap();
    echo.join().unwrap();
}

#[test]
fn connect_fails_after_epoch_limit_when_nobody_listens() {
    // Find a port where nothing listens: bind, note it, close.
    let port = UdpSocket::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let result = Client::connect(addr, 0, params(3, 50, 1, 1));
    assert!(matches!(result, Err(StartError::NoAnswer)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn connect_succeeds_when_the_server_starts_late() {
    let port = UdpSocket::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let p = params(10, 100, 1, 1);
    let client = thread::spawn(move || Client::connect(addr, 3, p));
    thread::sleep(Duration::from_millis(250));
    let server = Server::bind(addr, p).unwrap();
    let client = client.join().unwrap().unwrap();
    client.write(&b"late"[..]).unwrap();
    assert_eq!(server.read().unwrap(), (client.conn_id(), b"late".to_vec()));
}

#[test]
fn close_conn_discards_unread_messages_and_reports_once() {
    let p = params(3, 100, 4, 4);
    let server = Arc::new(Server::bind(loopback(), p).unwrap());
    let a = Client::connect(server.local_addr(), 0, p).unwrap();
    let b = Client::connect(server.local_addr(), 0, p).unwrap();
    for i in 0..3 {
        a.write(format!("a{i}")).unwrap();
    }
    b.write(&b"b0"[..]).unwrap();
    // Wait until b's message is readable: then a's three arrived too (a wrote first, but
    // different connections are unordered, so read until b's shows up).
    let mut seen_a = Vec::new();
    loop {
        let (conn, payload) = server.read().unwrap();
        if conn == b.conn_id() {
            break;
        }
        seen_a.push(payload);
    }
    // Wait until all four messages were delivered to the server's queue (a's unread ones
    // included), so the close below has unread data to discard; then close a.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().messages_delivered < 4 {
        assert!(Instant::now() < deadline, "a's messages never arrived");
        thread::yield_now();
    }
    server.close_conn(a.conn_id()).unwrap();
    assert!(matches!(
        server.close_conn(a.conn_id()),
        Err(ApiError::UnknownConnection(_))
    ));
    assert!(server.write(a.conn_id(), &b"x"[..]).is_err());
    b.write(&b"b1"[..]).unwrap();
    // The next reads: a's closure once, then b1; never more of a's data.
    let first = server.read();
    assert!(
        matches!(first, Err(ServerReadError::ConnectionClosed(c)) if c == a.conn_id()),
        "{first:?}"
    );
    assert_eq!(server.read().unwrap(), (b.conn_id(), b"b1".to_vec()));
    // a sees its connection lost within K epochs.
    let a_read = within(Duration::from_secs(5), move || a.read());
    assert!(matches!(a_read, Err(ClientReadError::ConnectionLost)));
}

#[test]
fn lost_server_is_reported_to_client_after_queued_messages() {
    let p = params(3, 50, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    client.write(&b"hi"[..]).unwrap();
    let (conn, _) = server.read().unwrap();
    server.write(conn, &b"one"[..]).unwrap();
    server.write(conn, &b"two"[..]).unwrap();
    // Wait until both are acknowledged (the server's close completes exactly then; it sends
    // nothing afterwards, no goodbye), then stop the server.
    server.close().unwrap();
    drop(server);
    let reads = within(Duration::from_secs(5), move || {
        let r = (client.read(), client.read(), client.read(), client.read());
        (r, client.write(&b"late"[..]))
    });
    let ((one, two, lost, again), write) = reads;
    assert_eq!(one.unwrap(), b"one");
    assert_eq!(two.unwrap(), b"two");
    assert!(matches!(lost, Err(ClientReadError::ConnectionLost)));
    assert!(matches!(again, Err(ClientReadError::ConnectionLost)));
    assert_eq!(write, Err(ApiError::ConnectionLost));
}

#[test]
fn server_reports_a_lost_client_once() {
    let p = params(3, 50, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    let id = client.conn_id();
    client.write(&b"bye"[..]).unwrap();
    assert_eq!(server.read().unwrap(), (id, b"bye".to_vec()));
    drop(client);
    let server = Arc::new(server);
    let s = Arc::clone(&server);
    let r = within(Duration::from_secs(5), move || s.read());
    assert!(matches!(r, Err(ServerReadError::ConnectionLost(c)) if c == id));
    assert!(server.write(id, &b"x"[..]).is_err());
}

#[test]
fn client_close_waits_for_acknowledgement_and_later_calls_fail() {
    let p = params(5, 100, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    for i in 0..5 {
        client.write(format!("{i}")).unwrap();
    }
    client.close().unwrap();
    // Everything was acknowledged, so the server has all of it.
    for i in 0..5 {
        assert_eq!(server.read().unwrap().1, format!("{i}").into_bytes());
    }
    assert!(matches!(client.read(), Err(ClientReadError::Closed)));
    assert_eq!(client.write(&b"x"[..]), Err(ApiError::Closed));
    assert!(matches!(client.close(), Err(CloseError::AlreadyClosed)));
}

#[test]
fn client_close_reports_loss_when_the_server_is_gone() {
    let p = params(3, 50, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    drop(server);
    client.write(&b"never acked"[..]).unwrap();
    let result = within(Duration::from_secs(5), move || client.close());
    assert!(
        matches!(result, Err(CloseError::ConnectionsLost(_))),
        "{result:?}"
    );
}

#[test]
fn server_close_flushes_then_reads_and_writes_fail() {
    let p = params(5, 100, 2, 2);
    let server = Arc::new(Server::bind(loopback(), p).unwrap());
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    client.write(&b"hello"[..]).unwrap();
    let (conn, _) = server.read().unwrap();
    let blocked_reader = {
        let server = Arc::clone(&server);
        thread::spawn(move || server.read())
    };
    for i in 0..10 {
        server.write(conn, format!("{i}")).unwrap();
    }
    server.close().unwrap();
    for i in 0..10 {
        assert_eq!(client.read().unwrap(), format!("{i}").into_bytes());
    }
    assert!(matches!(
        blocked_reader.join().unwrap(),
        Err(ServerReadError::Closed)
    ));
    assert!(matches!(server.read(), Err(ServerReadError::Closed)));
    assert_eq!(server.write(conn, &b"x"[..]), Err(ApiError::Closed));
    assert!(matches!(server.close(), Err(CloseError::AlreadyClosed)));
    // The client now hears nothing and loses the connection.
    let r = within(Duration::from_secs(5), move || client.read());
    assert!(matches!(r, Err(ClientReadError::ConnectionLost)));
}

#[test]
fn oversized_and_garbage_datagrams_are_dropped() {
    let p = params(5, 2000, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    let raw = UdpSocket::bind(loopback()).unwrap();
    raw.send_to(&vec![b'{'; 3000], server.local_addr()).unwrap();
    raw.send_to(b"not json", server.local_addr()).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    client.write(&b"ok"[..]).unwrap();
    assert_eq!(server.read().unwrap().1, b"ok");
    let stats = server.stats();
    assert_eq!(stats.dropped.oversized, 1);
    assert_eq!(stats.dropped.malformed, 1);
}

#[test]
fn payload_too_large_is_refused() {
    let p = params(5, 2000, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    assert!(matches!(
        client.write(vec![7u8; 1200]),
        Err(ApiError::PayloadTooLarge { .. })
    ));
    client.write(vec![7u8; 1000]).unwrap();
    assert_eq!(server.read().unwrap().1.len(), 1000);
}

#[test]
fn invalid_params_are_rejected() {
    let bad = params(0, 2000, 1, 1);
    assert!(matches!(
        Server::bind(loopback(), bad),
        Err(StartError::Params(_))
    ));
    assert!(matches!(
        Client::connect(loopback(), 0, bad),
        Err(StartError::Params(_))
    ));
}

#[test]
fn an_isn_outside_the_domain_is_refused_and_its_edge_works() {
    let p = params(5, 2000, 1, 1);
    let server = Server::bind(loopback(), p).unwrap();
    for isn in [-1, i64::MIN, MAX_ISN + 1] {
        assert!(matches!(
            Client::connect(server.local_addr(), isn, p),
            Err(StartError::Params(ParamsError::IsnOutOfRange(i))) if i == isn
        ));
    }
    let edge = Client::connect(server.local_addr(), MAX_ISN, p).unwrap();
    edge.write(&b"edge"[..]).unwrap();
    assert_eq!(server.read().unwrap().1, b"edge");
}

#[test]
fn a_full_server_refuses_connects_and_invalid_limits_are_rejected() {
    let p = params(3, 50, 1, 1);
    let limits = Limits {
        max_connections: 1,
        max_half_open: 1,
        ..Limits::default()
    };
    let server = Server::bind_with_limits(loopback(), p, limits).unwrap();
    let first = Client::connect(server.local_addr(), 0, p).unwrap();
    first.write(&b"here"[..]).unwrap();
    assert_eq!(server.read().unwrap().1, b"here"); // established: not evictable
    assert!(matches!(
        Client::connect(server.local_addr(), 0, p),
        Err(StartError::NoAnswer)
    ));
    assert!(server.stats().dropped.connection_limit >= 1);
    let bad = Limits {
        max_connections: 1,
        max_half_open: 2,
        ..Limits::default()
    };
    assert!(matches!(
        Server::bind_with_limits(loopback(), p, bad),
        Err(StartError::Params(ParamsError::HalfOpenAboveConnections))
    ));
    let no_unread = Limits {
        max_unread_messages: 0,
        ..Limits::default()
    };
    assert!(matches!(
        Client::connect_with_limits(server.local_addr(), 0, p, no_unread),
        Err(StartError::Params(ParamsError::ZeroMaxUnread))
    ));
}

#[test]
fn peer_addr_names_a_kept_connection_and_nothing_once_it_is_forgotten() {
    let p = params(3, 100, 4, 4);
    let server = Server::bind(loopback(), p).unwrap();
    let client = Client::connect(server.local_addr(), 0, p).unwrap();
    client.write(&b"hi"[..]).unwrap();
    let (conn, _) = server.read().unwrap();
    let addr = server
        .peer_addr(conn)
        .expect("a kept connection has an address");
    assert!(addr.ip().is_loopback(), "{addr}");
    assert_eq!(addr.port(), client.local_addr().port());
    assert_eq!(server.peer_addr(ConnId(conn.0 + 1)), None);
    // Nothing written to it is pending: closing forgets it at once.
    server.close_conn(conn).unwrap();
    assert_eq!(server.peer_addr(conn), None);
}
