//! One blocking interface over both runtimes, for scenarios that mix them.
//!
//! Each endpoint gets a reader thread that calls `read` in a loop and forwards the results
//! to a channel, so a scenario waits for "the next message" with a timeout instead of
//! blocking forever or sleeping. The smol runtime is driven with `smol::block_on` from
//! those plain threads; its driver tasks run on smol's global executor.

use std::fmt;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use lsp_core::{ApiError, ConnId, Params};

/// Which runtime an endpoint runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `lsp-mio`: an I/O thread per endpoint.
    Mio,
    /// `lsp-smol`: a driver task per endpoint.
    Smol,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Mio => "mio",
            Runtime::Smol => "smol",
        })
    }
}

/// What the server's reader thread saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerRead {
    /// A message from a connection.
    Message(ConnId, Vec<u8>),
    /// `read` failed for this connection (lost, or closed with `close_conn`).
    Gone(ConnId),
    /// `read` failed for the whole server (closed); the reader thread stopped.
    Closed,
}

/// What a client's reader thread saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientRead {
    /// A message from the server.
    Message(Vec<u8>),
    /// `read` failed (lost or closed); the reader thread stopped.
    Failed,
}

enum ServerImpl {
    Mio(lsp_mio::Server),
    Smol(lsp_smol::Server),
}

impl ServerImpl {
    fn close(&self) -> Result<(), String> {
        match self {
            ServerImpl::Mio(s) => s.close().map_err(|e| e.to_string()),
            ServerImpl::Smol(s) => smol::block_on(s.close()).map_err(|e| e.to_string()),
        }
    }
}

/// A server on either runtime, with its reads arriving on a channel.
pub struct TestServer {
    inner: Arc<ServerImpl>,
    reads: Mutex<Receiver<ServerRead>>,
    addr: SocketAddr,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0`.
    pub fn start(runtime: Runtime, params: Params) -> Result<TestServer, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let inner = match runtime {
            Runtime::Mio => {
                ServerImpl::Mio(lsp_mio::Server::bind(addr, params).map_err(|e| e.to_string())?)
            }
            Runtime::Smol => {
                ServerImpl::Smol(lsp_smol::Server::bind(addr, params).map_err(|e| e.to_string())?)
            }
        };
        let addr = match &inner {
            ServerImpl::Mio(s) => s.local_addr(),
            ServerImpl::Smol(s) => s.local_addr(),
        };
        let inner = Arc::new(inner);
        let (tx, reads) = mpsc::channel();
        let reader = Arc::clone(&inner);
        thread::spawn(move || loop {
            let read = match &*reader {
                ServerImpl::Mio(s) => s.read().map_err(|e| {
                    (
                        e.conn_id(),
                        matches!(
                            e,
                            lsp_mio::ServerReadError::Closed | lsp_mio::ServerReadError::Io(_)
                        ),
                    )
                }),
                ServerImpl::Smol(s) => smol::block_on(s.read()).map_err(|e| {
                    (
                        e.conn_id(),
                        matches!(
                            e,
                            lsp_smol::ServerReadError::Closed | lsp_smol::ServerReadError::Io(_)
                        ),
                    )
                }),
            };
            let (item, last) = match read {
                Ok((conn, payload)) => (ServerRead::Message(conn, payload), false),
                Err((_, true)) => (ServerRead::Closed, true),
                Err((conn, false)) => (ServerRead::Gone(conn), false),
            };
            if tx.send(item).is_err() || last {
                return;
            }
        });
        Ok(TestServer {
            inner,
            reads: Mutex::new(reads),
            addr,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `write`.
    pub fn write(&self, conn: ConnId, payload: Vec<u8>) -> Result<(), ApiError> {
        match &*self.inner {
            ServerImpl::Mio(s) => s.write(conn, payload),
            ServerImpl::Smol(s) => s.write(conn, payload),
        }
    }

    /// `close_conn`.
    pub fn close_conn(&self, conn: ConnId) -> Result<(), ApiError> {
        match &*self.inner {
            ServerImpl::Mio(s) => s.close_conn(conn),
            ServerImpl::Smol(s) => s.close_conn(conn),
        }
    }

    /// `close`, blocking until it returns; the error as text.
    pub fn close(&self) -> Result<(), String> {
        self.inner.close()
    }

    /// `close` on a helper thread: the result arrives on the returned channel.
    pub fn close_in_background(&self) -> Receiver<Result<(), String>> {
        let (tx, rx) = mpsc::channel();
        let inner = Arc::clone(&self.inner);
        thread::spawn(move || {
            let _ = tx.send(inner.close());
        });
        rx
    }

    /// Stops the server at once (teardown).
    pub fn abort(&self) {
        match &*self.inner {
            ServerImpl::Mio(s) => s.abort(),
            ServerImpl::Smol(s) => smol::block_on(s.abort()),
        }
    }

    /// The next read, or `None` if none came within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<ServerRead> {
        // Timed out, or the reader thread ended after its last item.
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(timeout)
            .ok()
    }

    /// The next read before `deadline`.
    pub fn next_by(&self, deadline: Instant) -> Option<ServerRead> {
        self.next(deadline.saturating_duration_since(Instant::now()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.abort();
    }
}

enum ClientImpl {
    Mio(lsp_mio::Client),
    Smol(lsp_smol::Client),
}

impl ClientImpl {
    fn close(&self) -> Result<(), String> {
        match self {
            ClientImpl::Mio(c) => c.close().map_err(|e| e.to_string()),
            ClientImpl::Smol(c) => smol::block_on(c.close()).map_err(|e| e.to_string()),
        }
    }
}

/// A client on either runtime, with its reads arriving on a channel.
pub struct TestClient {
    inner: Arc<ClientImpl>,
    reads: Mutex<Receiver<ClientRead>>,
    conn_id: ConnId,
}

impl TestClient {
    /// Connects to `server` (blocking until connected or failed).
    pub fn connect(
        runtime: Runtime,
        server: SocketAddr,
        isn: i64,
        params: Params,
    ) -> Result<TestClient, String> {
        let inner = match runtime {
            Runtime::Mio => ClientImpl::Mio(
                lsp_mio::Client::connect(server, isn, params).map_err(|e| e.to_string())?,
            ),
            Runtime::Smol => ClientImpl::Smol(
                smol::block_on(lsp_smol::Client::connect(server, isn, params))
                    .map_err(|e| e.to_string())?,
            ),
        };
        let conn_id = match &inner {
            ClientImpl::Mio(c) => c.conn_id(),
            ClientImpl::Smol(c) => c.conn_id(),
        };
        let inner = Arc::new(inner);
        let (tx, reads) = mpsc::channel();
        let reader = Arc::clone(&inner);
        thread::spawn(move || loop {
            let read = match &*reader {
                ClientImpl::Mio(c) => c.read().ok(),
                ClientImpl::Smol(c) => smol::block_on(c.read()).ok(),
            };
            let last = read.is_none();
            let item = read.map_or(ClientRead::Failed, ClientRead::Message);
            if tx.send(item).is_err() || last {
                return;
            }
        });
        Ok(TestClient {
            inner,
            reads: Mutex::new(reads),
            conn_id,
        })
    }

    /// Connects `count` clients concurrently (one thread each), in order of the returned
    /// vector; `isn(i)` gives client `i`'s initial sequence number.
    pub fn connect_many(
        runtime: impl Fn(usize) -> Runtime,
        server: SocketAddr,
        count: usize,
        isn: impl Fn(usize) -> i64,
        params: Params,
    ) -> Result<Vec<TestClient>, String> {
        let handles: Vec<_> = (0..count)
            .map(|i| {
                let (rt, isn) = (runtime(i), isn(i));
                thread::spawn(move || TestClient::connect(rt, server, isn, params))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "connect panicked".to_string())?)
            .collect()
    }

    /// The id the server assigned.
    pub fn conn_id(&self) -> ConnId {
        self.conn_id
    }

    /// `write`.
    pub fn write(&self, payload: Vec<u8>) -> Result<(), ApiError> {
        match &*self.inner {
            ClientImpl::Mio(c) => c.write(payload),
            ClientImpl::Smol(c) => c.write(payload),
        }
    }

    /// `close`, blocking until it returns; the error as text.
    pub fn close(&self) -> Result<(), String> {
        self.inner.close()
    }

    /// `close` on a helper thread: the result arrives on the returned channel.
    pub fn close_in_background(&self) -> Receiver<Result<(), String>> {
        let (tx, rx) = mpsc::channel();
        let inner = Arc::clone(&self.inner);
        thread::spawn(move || {
            let _ = tx.send(inner.close());
        });
        rx
    }

    /// Stops the client at once (teardown).
    pub fn abort(&self) {
        match &*self.inner {
            ClientImpl::Mio(c) => c.abort(),
            ClientImpl::Smol(c) => smol::block_on(c.abort()),
        }
    }

    /// The next read, or `None` if none came within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<ClientRead> {
        // Timed out, or the reader thread ended after its last item.
        self.reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(timeout)
            .ok()
    }

    /// The next read before `deadline`.
    pub fn next_by(&self, deadline: Instant) -> Option<ClientRead> {
        self.next(deadline.saturating_duration_since(Instant::now()))
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.abort();
    }
}
