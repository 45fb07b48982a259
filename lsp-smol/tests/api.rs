//! The async API over real UDP on loopback: docs/protocol.md §7's rules, one test each.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use lsp_smol::{
    ApiError, Client, ClientReadError, CloseError, ConnId, Limits, Params, ParamsError, Server,
    ServerReadError, StartError, MAX_ISN,
};
use smol::future::FutureExt;

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

/// Awaits `f`, failing the test if it takes longer than `limit`.
async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> T {
    async { Some(f.await) }
        .or(async {
            Timer::after(limit).await;
            None
        })
        .await
        .unwrap_or_else(|| panic!("did not finish within {limit:?}"))
}

fn free_port() -> SocketAddr {
    let port = UdpSocket::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn echo_in_order_with_a_window() {
    smol::block_on(async {
        let p = params(5, 2000, 8, 8);
        let server = Arc::new(Server::bind(loopback(), p).unwrap());
        let echo = {
            let server = Arc::clone(&server);
            smol::spawn(async move {
                while let Ok((conn, payload)) = server.read().await {
                    if server.write(conn, payload).is_err() {
                        break;
                    }
                }
            })
        };
        let client = Client::connect(server.local_addr(), 17, p).await.unwrap();
        assert_eq!(client.conn_id(), ConnId(1));
        for i in 0..500u32 {
            client.write(i.to_string()).unwrap();
        }
        for i in 0..500u32 {
            assert_eq!(client.read().await.unwrap(), i.to_string().into_bytes());
        }
        client.close().await.unwrap();
        server.close().await.unwrap();
        within(Duration::from_secs(5), echo).await;
    });
}

#[test]
fn connect_fails_after_epoch_limit_when_nobody_listens() {
    smol::block_on(async {
        let started = Instant::now();
        let result = Client::connect(free_port(), 0, params(3, 50, 1, 1)).await;
        assert!(matches!(result, Err(StartError::NoAnswer)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(100));
    });
}

#[test]
fn connect_succeeds_when_the_server_starts_late() {
    smol::block_on(async {
        let addr = free_port();
        let p = params(10, 100, 1, 1);
        let client = smol::spawn(Client::connect(addr, 3, p));
        Timer::after(Duration::from_millis(250)).await;
        let server = Server::bind(addr, p).unwrap();
        let client = within(Duration::from_secs(5), client).await.unwrap();
        client.write(&b"late"[..]).unwrap();
        assert_eq!(
            server.read().await.unwrap(),
            (client.conn_id(), b"late".to_vec())
        );
    });
}

#[test]
fn close_conn_discards_unread_messages_and_reports_once() {
    smol::block_on(async {
        let p = params(3, 100, 4, 4);
        let server = Server::bind(loopback(), p).unwrap();
        let a = Client::connect(server.local_addr(), 0, p).await.unwrap();
        let b = Client::connect(server.local_addr(), 0, p).await.unwrap();
        for i in 0..3 {
            a.write(format!("a{i}")).unwrap();
        }
        b.write(&b"b0"[..]).unwrap();
        loop {
            let (conn, _) = server.read().await.unwrap();
            if conn == b.conn_id() {
                break;
            }
        }
        // Wait until all four messages were delivered to the server's queue (a's unread
        // ones included), so the close below has unread data to discard.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.stats().messages_delivered < 4 {
            assert!(Instant::now() < deadline, "a's messages never arrived");
            smol::future::yield_now().await;
        }
        server.close_conn(a.conn_id()).unwrap();
        assert!(matches!(
            server.close_conn(a.conn_id()),
            Err(ApiError::UnknownConnection(_))
        ));
        assert!(server.write(a.conn_id(), &b"x"[..]).is_err());
        b.write(&b"b1"[..]).unwrap();
        let first = server.read().await;
        assert!(
            matches!(first, Err(ServerReadError::ConnectionClosed(c)) if c == a.conn_id()),
            "{first:?}"
        );
        assert_eq!(server.read().await.unwrap(), (b.conn_id(), b"b1".to_vec()));
        let a_read = within(Duration::from_secs(5), a.read()).await;
        assert!(matches!(a_read, Err(ClientReadError::ConnectionLost)));
    });
}

#[test]
fn lost_server_is_reported_to_client_after_queued_messages() {
    smol::block_on(async {
        let p = params(3, 50, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        client.write(&b"hi"[..]).unwrap();
        let (conn, _) = server.read().await.unwrap();
        server.write(conn, &b"one"[..]).unwrap();
        server.write(conn, &b"two"[..]).unwrap();
        // Wait until both are acknowledged (the server's close completes exactly then; it
        // sends nothing afterwards, no goodbye), then stop the server.
        server.close().await.unwrap();
        drop(server);
        within(Duration::from_secs(5), async {
            assert_eq!(client.read().await.unwrap(), b"one");
            assert_eq!(client.read().await.unwrap(), b"two");
            assert!(matches!(
                client.read().await,
                Err(ClientReadError::ConnectionLost)
            ));
            assert!(matches!(
                client.read().await,
                Err(ClientReadError::ConnectionLost)
            ));
        })
        .await;
        assert_eq!(client.write(&b"late"[..]), Err(ApiError::ConnectionLost));
    });
}

#[test]
fn server_reports_a_lost_client_once() {
    smol::block_on(async {
        let p = params(3, 50, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        let id = client.conn_id();
        client.write(&b"bye"[..]).unwrap();
        assert_eq!(server.read().await.unwrap(), (id, b"bye".to_vec()));
        drop(client);
        let r = within(Duration::from_secs(5), server.read()).await;
        assert!(matches!(r, Err(ServerReadError::ConnectionLost(c)) if c == id));
        assert!(server.write(id, &b"x"[..]).is_err());
    });
}

#[test]
fn client_close_waits_for_acknowledgement_and_later_calls_fail() {
    smol::block_on(async {
        let p = params(5, 100, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        for i in 0..5 {
            client.write(format!("{i}")).unwrap();
        }
        client.close().await.unwrap();
        for i in 0..5 {
            assert_eq!(server.read().await.unwrap().1, format!("{i}").into_bytes());
        }
        assert!(matches!(client.read().await, Err(ClientReadError::Closed)));
        assert_eq!(client.write(&b"x"[..]), Err(ApiError::Closed));
        assert!(matches!(
            client.close().await,
            Err(CloseError::AlreadyClosed)
        ));
    });
}

#[test]
fn client_close_reports_loss_when_the_server_is_gone() {
    smol::block_on(async {
        let p = params(3, 50, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        drop(server);
        client.write(&b"never acked"[..]).unwrap();
        let result = within(Duration::from_secs(5), client.close()).await;
        assert!(
            matches!(result, Err(CloseError::ConnectionsLost(_))),
            "{result:?}"
        );
    });
}

#[test]
fn server_close_flushes_then_reads_and_writes_fail() {
    smol::block_on(async {
        let p = params(5, 100, 2, 2);
        let server = Arc::new(Server::bind(loopback(), p).unwrap());
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        client.write(&b"hello"[..]).unwrap();
        let (conn, _) = server.read().await.unwrap();
        let blocked_reader = {
            let server = Arc::clone(&server);
            smol::spawn(async move { server.read().await })
        };
        for i in 0..10 {
            server.write(conn, format!("{i}")).unwrap();
        }
        server.close().await.unwrap();
        for i in 0..10 {
            assert_eq!(client.read().await.unwrap(), format!("{i}").into_bytes());
        }
        let r = within(Duration::from_secs(5), blocked_reader).await;
        assert!(matches!(r, Err(ServerReadError::Closed)));
        assert!(matches!(server.read().await, Err(ServerReadError::Closed)));
        assert_eq!(server.write(conn, &b"x"[..]), Err(ApiError::Closed));
        assert!(matches!(
            server.close().await,
            Err(CloseError::AlreadyClosed)
        ));
        let r = within(Duration::from_secs(5), client.read()).await;
        assert!(matches!(r, Err(ClientReadError::ConnectionLost)));
    });
}

#[test]
fn oversized_and_garbage_datagrams_are_dropped() {
    smol::block_on(async {
        let p = params(5, 2000, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let raw = UdpSocket::bind(loopback()).unwrap();
        raw.send_to(&vec![b'{'; 3000], server.local_addr()).unwrap();
        raw.send_to(b"not json", server.local_addr()).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        client.write(&b"ok"[..]).unwrap();
        assert_eq!(server.read().await.unwrap().1, b"ok");
        let stats = server.stats();
        assert_eq!(stats.dropped.oversized, 1);
        assert_eq!(stats.dropped.malformed, 1);
    });
}

#[test]
fn payload_too_large_is_refused_and_bad_params_rejected() {
    smol::block_on(async {
        let p = params(5, 2000, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        assert!(matches!(
            client.write(vec![7u8; 1200]),
            Err(ApiError::PayloadTooLarge { .. })
        ));
        client.write(vec![7u8; 1000]).unwrap();
        assert_eq!(server.read().await.unwrap().1.len(), 1000);
        let bad = params(5, 2000, 0, 1);
        assert!(matches!(
            Server::bind(loopback(), bad),
            Err(StartError::Params(_))
        ));
        assert!(matches!(
            Client::connect(loopback(), 0, bad).await,
            Err(StartError::Params(_))
        ));
        for isn in [-1, i64::MIN, MAX_ISN + 1] {
            assert!(matches!(
                Client::connect(server.local_addr(), isn, p).await,
                Err(StartError::Params(ParamsError::IsnOutOfRange(i))) if i == isn
            ));
        }
        let edge = Client::connect(server.local_addr(), MAX_ISN, p)
            .await
            .unwrap();
        edge.write(&b"edge"[..]).unwrap();
        assert_eq!(server.read().await.unwrap().1, b"edge");
    });
}

#[test]
fn a_read_can_be_cancelled_without_losing_messages() {
    smol::block_on(async {
        let p = params(5, 2000, 1, 1);
        let server = Server::bind(loopback(), p).unwrap();
        let client = Client::connect(server.local_addr(), 0, p).await.unwrap();
        // A read that times out (nothing sent yet) is dropped mid-wait.
        let timed_out = async { Some(client.read().await) }
            .or(async {
                Timer::after(Duration::from_millis(30)).await;
                None
            })
            .await;
        assert!(timed_out.is_none());
        client.write(&b"x"[..]).unwrap();
        let (conn, _) = server.read().await.unwrap();
        server.write(conn, &b"y"[..]).unwrap();
        assert_eq!(
            within(Duration::from_secs(5), client.read()).await.unwrap(),
            b"y"
        );
    });
}

#[test]
fn a_full_server_refuses_connects_and_invalid_limits_are_rejected() {
    smol::block_on(async {
        let p = params(3, 50, 1, 1);
        let limits = Limits {
            max_connections: 1,
            max_half_open: 1,
            ..Limits::default()
        };
        let server = Server::bind_with_limits(loopback(), p, limits).unwrap();
        let first = Client::connect(server.local_addr(), 0, p).await.unwrap();
        first.write(&b"here"[..]).unwrap();
        assert_eq!(server.read().await.unwrap().1, b"here"); // established: not evictable
        assert!(matches!(
            Client::connect(server.local_addr(), 0, p).await,
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
            Client::connect_with_limits(server.local_addr(), 0, p, no_unread).await,
            Err(StartError::Params(ParamsError::ZeroMaxUnread))
        ));
    });
}
