//! The blocking LSP server.

use std::collections::VecDeque;
use std::net::SocketAddr;

use lsp_core::{ApiError, ConnId, Params, ServerEndpoint, ServerEvent, Stats, Timestamp};

use crate::clock::Clock;
use crate::driver::{Driver, Machine, Outbox};
use crate::socket;
use lsp_core::runtime::{CloseError, ServerReadError, StartError};

/// What [`Server::read`] hands out, in order.
type ReadItem = Result<(ConnId, Vec<u8>), ServerReadError>;

/// The server core plus the application-side state.
struct ServerMachine {
    endpoint: ServerEndpoint<SocketAddr>,
    /// Messages and per-connection errors not yet returned by `read`.
    inbox: VecDeque<ReadItem>,
    /// `close` was called.
    closing: bool,
    /// The core's close result, once it completed.
    closed: Option<Result<(), lsp_core::CloseError>>,
}

impl Machine for ServerMachine {
    fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, datagram: &[u8]) {
        self.endpoint.handle_datagram(now, from, datagram);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.endpoint.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.endpoint.poll_timeout()
    }

    fn drain(&mut self, outbox: &mut Outbox) -> bool {
        while let Some(t) = self.endpoint.poll_transmit() {
            outbox.push(t.destination, t.payload);
        }
        let mut progress = false;
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                ServerEvent::Connected { .. } => continue,
                ServerEvent::Message { conn, payload } => self.inbox.push_back(Ok((conn, payload))),
                ServerEvent::ConnectionLost { conn } => self
                    .inbox
                    .push_back(Err(ServerReadError::ConnectionLost(conn))),
                ServerEvent::ConnectionClosed { conn } => self
                    .inbox
                    .push_back(Err(ServerReadError::ConnectionClosed(conn))),
                ServerEvent::Closed(result) => self.closed = Some(result),
            }
            progress = true;
        }
        progress
    }
}

/// An LSP server on its own I/O thread (lsp.md §9 "Server").
///
/// All methods take `&self`: one thread may block in [`read`](Self::read) while others
/// write. Dropping the server stops its I/O thread at once, without the flushing that
/// [`close`](Self::close) does.
pub struct Server {
    driver: Driver<ServerMachine>,
    local_addr: SocketAddr,
}

impl Server {
    /// Starts a server on UDP port `port` of every IPv4 interface (0 picks a free port; see
    /// [`local_addr`](Self::local_addr)). Does not wait for anything; fails if the
    /// parameters are invalid or the port cannot be bound.
    pub fn listen(port: u16, params: Params) -> Result<Server, StartError> {
        Server::bind(SocketAddr::from(([0, 0, 0, 0], port)), params)
    }

    /// Like [`listen`](Self::listen), on one local address (e.g. `127.0.0.1:0`).
    pub fn bind(addr: SocketAddr, params: Params) -> Result<Server, StartError> {
        params.validate()?;
        let socket = socket::bind(addr)?;
        let clock = Clock::start();
        let machine = ServerMachine {
            endpoint: ServerEndpoint::new(params, clock.now())?,
            inbox: VecDeque::new(),
            closing: false,
            closed: None,
        };
        let driver = Driver::start("lsp-mio-server", machine, socket, false, clock)?;
        let local_addr = driver.local_addr()?;
        Ok(Server { driver, local_addr })
    }

    /// The address the server's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next in-order message from any client.
    ///
    /// Fails with that connection's id exactly once per connection that was closed with
    /// [`close_conn`](Self::close_conn) or lost (a lost one only after all of its received
    /// messages were read). Fails with [`ServerReadError::Closed`] once
    /// [`close`](Self::close) was called, waking readers blocked at that moment.
    pub fn read(&self) -> Result<(ConnId, Vec<u8>), ServerReadError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        loop {
            if let Some(e) = &locked.failure {
                return Err(ServerReadError::Io(e.clone()));
            }
            if locked.machine.closing || locked.is_stopped() {
                return Err(ServerReadError::Closed);
            }
            if let Some(item) = locked.machine.inbox.pop_front() {
                return item;
            }
            locked = shared.wait(locked);
        }
    }

    /// Queues `payload` for `conn`; never blocks. Fails if `conn` is unknown, lost or
    /// closed, if the server is closed, or if the payload does not fit in one datagram.
    pub fn write(&self, conn: ConnId, payload: impl Into<Vec<u8>>) -> Result<(), ApiError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        if locked.machine.closing || locked.is_stopped() {
            return Err(ApiError::Closed);
        }
        locked.machine.endpoint.write(conn, payload.into())?;
        shared.after_call(&mut locked);
        Ok(())
    }

    /// Closes one connection without blocking: its messages not yet read are discarded (a
    /// later [`read`](Self::read) reports the closure once instead), what was written to it
    /// is still delivered, and then the server forgets it. Fails if `conn` is unknown or
    /// already closed.
    pub fn close_conn(&self, conn: ConnId) -> Result<(), ApiError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        if locked.machine.closing || locked.is_stopped() {
            return Err(ApiError::Closed);
        }
        locked.machine.endpoint.close_conn(conn)?;
        locked
            .machine
            .inbox
            .retain(|item| !matches!(item, Ok((c, _)) if *c == conn));
        shared.after_call(&mut locked);
        Ok(())
    }

    /// Stops accepting connections and waits until everything written to every client was
    /// acknowledged (a client lost meanwhile has its pending messages discarded and is named
    /// in the error); then stops the I/O thread. Every later call fails.
    pub fn close(&self) -> Result<(), CloseError> {
        let shared = self.driver.shared();
        let mut locked = shared.lock();
        if locked.machine.closing || locked.is_stopped() {
            return Err(CloseError::AlreadyClosed);
        }
        locked.machine.closing = true;
        if let Err(e) = locked.machine.endpoint.close() {
            debug_assert!(false, "core refused close: {e}");
        }
        shared.after_call(&mut locked);
        // Readers blocked in `read` fail now.
        shared.notify(&locked);
        let result = loop {
            if let Some(result) = locked.machine.closed.take() {
                break result.map_err(CloseError::from);
            }
            if let Some(e) = &locked.failure {
                break Err(CloseError::Io(e.clone()));
            }
            if locked.is_stopped() {
                break Err(CloseError::Aborted);
            }
            locked = shared.wait(locked);
        };
        drop(locked);
        self.driver.stop();
        result
    }

    /// Stops the endpoint at once, without the flushing of `close`: the I/O thread exits and
    /// nothing more is sent; calls waiting at that moment and every later call fail. Dropping
    /// the handle does the same.
    pub fn abort(&self) {
        self.driver.stop();
    }

    /// A snapshot of the core's counters.
    pub fn stats(&self) -> Stats {
        *self.driver.shared().lock().machine.endpoint.stats()
    }

    /// Connections the server currently keeps (closing ones included).
    pub fn connection_count(&self) -> usize {
        self.driver
            .shared()
            .lock()
            .machine
            .endpoint
            .connection_count()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
