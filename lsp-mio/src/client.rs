//! The blocking LSP client.

use std::net::SocketAddr;

use lsp_core::runtime::{ClientReadError, ClientSession, CloseError, StartError};
use lsp_core::{ApiError, ConnId, Limits, Params, Stats};

use crate::clock::Clock;
use crate::driver::Driver;
use crate::socket;

/// An LSP client on its own I/O thread (docs/protocol.md §7 "Client").
///
/// All methods take `&self`: one thread may block in [`read`](Self::read) while others
/// write. Dropping the client stops its I/O thread at once, without the flushing that
/// [`close`](Self::close) does.
pub struct Client {
    driver: Driver<ClientSession<SocketAddr>>,
    conn_id: ConnId,
    local_addr: SocketAddr,
}

impl Client {
    /// Connects to the server at `server` with initial sequence number `isn`, waiting until
    /// the server acknowledges. Fails if the parameters are invalid, the socket cannot be
    /// set up, or no connect-ack arrives within `epoch_limit` epochs ("connection refused"
    /// notices are ignored: the server may start later). An `isn` outside
    /// [`ISN_DOMAIN`](lsp_core::ISN_DOMAIN) (`0 ..= MAX_ISN`) is refused up front with
    /// `StartError::Params(ParamsError::IsnOutOfRange(isn))`, before any socket is made.
    pub fn connect(server: SocketAddr, isn: i64, params: Params) -> Result<Client, StartError> {
        Client::connect_with_limits(server, isn, params, Limits::default())
    }

    /// Like [`connect`](Self::connect), with these resource limits (a client uses
    /// [`Limits::max_unread_messages`]); fails if they are invalid.
    pub fn connect_with_limits(
        server: SocketAddr,
        isn: i64,
        params: Params,
        limits: Limits,
    ) -> Result<Client, StartError> {
        params.validate()?;
        limits.validate()?;
        if !lsp_core::is_valid_isn(isn) {
            return Err(lsp_core::ParamsError::IsnOutOfRange(isn).into());
        }
        let socket = socket::bind(socket::any_local_for(server))?;
        socket.connect(server)?;
        let clock = Clock::start();
        let session = ClientSession::with_limits(params, limits, server, isn, clock.now())?;
        let driver = Driver::start("lsp-mio-client", session, socket, true, clock)?;
        let local_addr = driver.local_addr()?;
        let conn_id = driver.wait_until(|session| session.poll_connected())?;
        Ok(Client {
            driver,
            conn_id,
            local_addr,
        })
    }

    /// The connection id the server assigned.
    pub fn conn_id(&self) -> ConnId {
        self.conn_id
    }

    /// The local address of the client's socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next in-order message from the server. Fails once the client was
    /// closed, or once the connection was lost and every message received before the loss
    /// has been read (and from then on).
    pub fn read(&self) -> Result<Vec<u8>, ClientReadError> {
        self.driver.wait_until(ClientSession::poll_read)
    }

    /// Queues `payload` for the server; never blocks. Fails if the connection was lost, the
    /// client closed, or the payload does not fit in one datagram.
    pub fn write(&self, payload: impl Into<Vec<u8>>) -> Result<(), ApiError> {
        let payload = payload.into();
        self.driver.call(|session| session.write(payload))
    }

    /// Waits until everything written was sent and acknowledged, meanwhile still
    /// acknowledging, heartbeating and detecting loss; then stops the I/O thread, after which
    /// the client sends nothing. A loss first discards what was pending and is reported as
    /// an error. Every later call fails.
    pub fn close(&self) -> Result<(), CloseError> {
        self.driver.call_then_wake_all(ClientSession::begin_close)?;
        let result = self.driver.wait_until(ClientSession::poll_closed);
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
        self.driver.inspect(|session| *session.endpoint().stats())
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conn_id", &self.conn_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
