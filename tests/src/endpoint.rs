//! One blocking interface over both runtimes, for scenarios that mix them.
//!
//! The runtime-neutral endpoints are `apps::echo`'s [`Server`] and [`Client`]. Each endpoint
//! here gets a reader thread that calls `read` in a loop and forwards the results to a
//! channel, so a scenario waits for "the next message" with a timeout instead of blocking
//! forever or sleeping.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use apps::echo::Runtime;
use apps::echo::{Client, Server};
use lsp_core::runtime::{CloseError, ServerReadError};
use lsp_core::{ApiError, ConnId, Params};

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

/// What a reader thread forwards, and how a test waits for it.
struct Reads<T> {
    rx: Mutex<Receiver<T>>,
}

impl<T: Send + 'static> Reads<T> {
    /// Starts a thread that forwards `read()`'s results until `read` says it was the last.
    fn spawn(mut read: impl FnMut() -> (T, bool) + Send + 'static) -> Reads<T> {
        // Unbounded on purpose: it holds what this test's own endpoint read, no more than the
        // scenario sent; a bound would stall the reader and add a back-pressure of its own
        // that the scenarios' timing does not expect.
        let (tx, rx): (Sender<T>, _) = mpsc::channel();
        thread::spawn(move || loop {
            let (item, last) = read();
            if tx.send(item).is_err() || last {
                return;
            }
        });
        Reads { rx: Mutex::new(rx) }
    }

    /// The next read, or `None` if none came within `timeout` (or the reader thread ended
    /// after its last item).
    fn next(&self, timeout: Duration) -> Option<T> {
        self.rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(timeout)
            .ok()
    }
}

/// Runs `call` on a helper thread; its result arrives on the returned channel.
fn in_background<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    // One result, sent once.
    let (tx, rx) = mpsc::sync_channel(1);
    thread::spawn(move || {
        let _ = tx.send(call());
    });
    rx
}

/// What the harness needs of an endpoint of either runtime.
pub trait Endpoint: Send + Sync + 'static {
    /// `close`, blocking until it returns.
    fn close(&self) -> Result<(), CloseError>;
    /// Stops the endpoint at once.
    fn abort(&self);
}

impl Endpoint for Server {
    fn close(&self) -> Result<(), CloseError> {
        Server::close(self)
    }

    fn abort(&self) {
        Server::abort(self);
    }
}

impl Endpoint for Client {
    fn close(&self) -> Result<(), CloseError> {
        Client::close(self)
    }

    fn abort(&self) {
        Client::abort(self);
    }
}

/// An endpoint with a reader thread forwarding its reads (of type `T`) to a channel;
/// dropping it aborts the endpoint.
pub struct Harnessed<E: Endpoint, T> {
    inner: Arc<E>,
    reads: Reads<T>,
}

/// A server on either runtime, with its reads arriving on a channel.
pub type TestServer = Harnessed<Server, ServerRead>;

/// A client on either runtime, with its reads arriving on a channel.
pub type TestClient = Harnessed<Client, ClientRead>;

impl<E: Endpoint, T: Send + 'static> Harnessed<E, T> {
    /// `close`, blocking until it returns; the error as text.
    pub fn close(&self) -> Result<(), String> {
        self.inner.close().map_err(|e| e.to_string())
    }

    /// `close` on a helper thread: the result arrives on the returned channel.
    pub fn close_in_background(&self) -> Receiver<Result<(), String>> {
        let inner = Arc::clone(&self.inner);
        in_background(move || inner.close().map_err(|e| e.to_string()))
    }

    /// Stops the endpoint at once (teardown).
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// The next read, or `None` if none came within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<T> {
        self.reads.next(timeout)
    }

    /// The next read before `deadline`.
    pub fn next_by(&self, deadline: Instant) -> Option<T> {
        self.next(deadline.saturating_duration_since(Instant::now()))
    }
}

impl<E: Endpoint, T> Drop for Harnessed<E, T> {
    fn drop(&mut self) {
        self.inner.abort();
    }
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0`.
    pub fn start(runtime: Runtime, params: Params) -> Result<TestServer, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let inner = Arc::new(Server::bind(runtime, addr, params).map_err(|e| e.to_string())?);
        let reader = Arc::clone(&inner);
        let reads = Reads::spawn(move || match reader.read() {
            Ok((conn, payload)) => (ServerRead::Message(conn, payload), false),
            Err(ServerReadError::Closed | ServerReadError::Io(_)) => (ServerRead::Closed, true),
            Err(e) => (ServerRead::Gone(e.conn_id()), false),
        });
        Ok(Harnessed { inner, reads })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// `write`.
    pub fn write(&self, conn: ConnId, payload: Vec<u8>) -> Result<(), ApiError> {
        self.inner.write(conn, payload)
    }

    /// `close_conn`.
    pub fn close_conn(&self, conn: ConnId) -> Result<(), ApiError> {
        self.inner.close_conn(conn)
    }
}

impl TestClient {
    /// Connects to `server` (blocking until connected or failed).
    pub fn connect(
        runtime: Runtime,
        server: SocketAddr,
        isn: i64,
        params: Params,
    ) -> Result<TestClient, String> {
        let inner =
            Arc::new(Client::connect(runtime, server, isn, params).map_err(|e| e.to_string())?);
        let reader = Arc::clone(&inner);
        let reads = Reads::spawn(move || match reader.read() {
            Ok(payload) => (ClientRead::Message(payload), false),
            Err(_) => (ClientRead::Failed, true),
        });
        Ok(Harnessed { inner, reads })
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
        self.inner.conn_id()
    }

    /// `write`.
    pub fn write(&self, payload: Vec<u8>) -> Result<(), ApiError> {
        self.inner.write(payload)
    }
}
