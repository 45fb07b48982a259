//! The blocking LSP server.

use std::net::SocketAddr;

use lsp_core::runtime::{CloseError, ServerReadError, ServerSession, StartError};
use lsp_core::{ApiError, ConnId, Limits, Params, Stats};

use crate::clock::Clock;
use crate::driver::Driver;
use crate::socket;

/// An LSP server on its own I/O thread (docs/protocol.md §7 "Server").
///
/// All methods take `&self`: one thread may block in [`read`](Self::read) while others
/// write. Dropping the server stops its I/O thread at once, without the flushing that
/// [`close`](Self::close) does.
pub struct Server {
    driver: Driver<ServerSession<SocketAddr>>,
    local_addr: SocketAddr,
}

impl Server {
    /// Starts a server on UDP port `port` of every interface (0 picks a free port; see
    /// [`local_addr`](Self::local_addr)): IPv6 and IPv4 on one dual-stack socket (`[::]`)
    /// where the host allows it, IPv4 alone (`0.0.0.0`) on a host without IPv6. Does not
    /// wait for anything; fails if the parameters are invalid or the port cannot be bound.
    pub fn listen(port: u16, params: Params) -> Result<Server, StartError> {
        Server::listen_with_limits(port, params, Limits::default())
    }

    /// Like [`listen`](Self::listen), on one local address (e.g. `127.0.0.1:0`).
    pub fn bind(addr: SocketAddr, params: Params) -> Result<Server, StartError> {
        Server::bind_with_limits(addr, params, Limits::default())
    }

    /// Like [`listen`](Self::listen), with these resource limits (admission control: caps
    /// on connections and half-open connections; see [`Limits`]).
    pub fn listen_with_limits(
        port: u16,
        params: Params,
        limits: Limits,
    ) -> Result<Server, StartError> {
        match Server::bind_with_limits(socket::all_interfaces(port), params, limits) {
            Err(StartError::Io(e)) if socket::lacks_ipv6(&e) => {
                Server::bind_with_limits(SocketAddr::from(([0, 0, 0, 0], port)), params, limits)
            }
            result => result,
        }
    }

    /// Like [`bind`](Self::bind), with these resource limits; fails if they are invalid.
    pub fn bind_with_limits(
        addr: SocketAddr,
        params: Params,
        limits: Limits,
    ) -> Result<Server, StartError> {
        params.validate()?;
        limits.validate()?;
        let socket = socket::bind(addr)?;
        let clock = Clock::start();
        let session = ServerSession::with_limits(params, limits, clock.now())?;
        let driver = Driver::start("lsp-mio-server", session, socket, false, clock)?;
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
        self.driver.wait_until(ServerSession::poll_read)
    }

    /// Queues `payload` for `conn`; never blocks. Fails if `conn` is unknown, lost or
    /// closed, if the server is closed, or if the payload does not fit in one datagram.
    pub fn write(&self, conn: ConnId, payload: impl Into<Vec<u8>>) -> Result<(), ApiError> {
        let payload = payload.into();
        self.driver.call(|session| session.write(conn, payload))
    }

    /// Closes one connection without blocking: its messages not yet read are discarded (a
    /// later [`read`](Self::read) reports the closure once instead), what was written to it
    /// is still delivered, and then the server forgets it. Fails if `conn` is unknown or
    /// already closed.
    pub fn close_conn(&self, conn: ConnId) -> Result<(), ApiError> {
        self.driver.call(|session| session.close_conn(conn))
    }

    /// Stops accepting connections and waits until everything written to every client was
    /// acknowledged (a client lost meanwhile has its pending messages discarded and is named
    /// in the error); then stops the I/O thread. Every later call fails.
    pub fn close(&self) -> Result<(), CloseError> {
        self.driver.call_then_wake_all(ServerSession::begin_close)?;
        let result = self.driver.wait_until(ServerSession::poll_closed);
        self.driver.stop();
        result
    }

    /// Stops the endpoint at once, without the flushing of `close`: the I/O thread exits and
    /// nothing more is sent; calls waiting at that moment and every later call fail. Dropping
    /// the handle does the same.
    pub fn abort(&self) {
        self.driver.stop();
    }

    /// The UDP address (`ip:port`) a connection's datagrams come from, as of its Connect
    /// (an IPv4 peer of a dual-stack server shows as an IPv4-mapped IPv6 address),
    /// while the server keeps the connection (from its acceptance until it is forgotten
    /// after being closed or lost); `None` for an unknown or forgotten connection. Takes the
    /// core's lock briefly, like [`write`](Self::write): call it once per connection, not
    /// per message.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.driver
            .inspect(|session| session.endpoint().peer_addr(conn).copied())
    }

    /// A snapshot of the core's counters.
    pub fn stats(&self) -> Stats {
        self.driver.inspect(|session| *session.endpoint().stats())
    }

    /// Connections the server currently keeps (closing ones included).
    pub fn connection_count(&self) -> usize {
        self.driver
            .inspect(|session| session.endpoint().connection_count())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
