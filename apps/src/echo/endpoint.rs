//! One blocking API over both runtimes: which runtime runs an endpoint is chosen at start,
//! and every call below is one `match` between the two.
//!
//! lsp-mio's calls block; lsp-smol's `async` calls are awaited with [`smol::block_on`] on
//! the calling thread, while the endpoint's driver task runs on smol's executor as usual.
//! Both runtimes report the same error types ([`lsp_core::runtime`]), so nothing else
//! differs.

use std::fmt;
use std::net::SocketAddr;

use clap::ValueEnum;
use lsp_core::runtime::{ClientReadError, CloseError, ServerReadError, StartError};
use lsp_core::{ApiError, ConnId, Params, Stats};
use smol::block_on;

/// The LSP runtime an endpoint runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// lsp-mio: an I/O thread per endpoint, blocking calls.
    #[default]
    Mio,
    /// lsp-smol: a driver task per endpoint on smol's executor, `async` calls.
    Smol,
}

impl fmt::Display for Runtime {
    /// The name the command line uses: `mio` or `smol`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Mio => "mio",
            Runtime::Smol => "smol",
        })
    }
}

/// An LSP server on either runtime (docs/protocol.md §7 "Server").
#[derive(Debug)]
pub enum Server {
    /// On lsp-mio.
    Mio(lsp_mio::Server),
    /// On lsp-smol.
    Smol(lsp_smol::Server),
}

impl Server {
    /// Starts a server on UDP port `port` of every interface, IPv6 and IPv4 where the host
    /// allows it (0 picks a free port).
    pub fn listen(runtime: Runtime, port: u16, params: Params) -> Result<Server, StartError> {
        match runtime {
            Runtime::Mio => lsp_mio::Server::listen(port, params).map(Server::Mio),
            Runtime::Smol => lsp_smol::Server::listen(port, params).map(Server::Smol),
        }
    }

    /// Starts a server on one local address (e.g. `127.0.0.1:0`).
    pub fn bind(runtime: Runtime, addr: SocketAddr, params: Params) -> Result<Server, StartError> {
        match runtime {
            Runtime::Mio => lsp_mio::Server::bind(addr, params).map(Server::Mio),
            Runtime::Smol => lsp_smol::Server::bind(addr, params).map(Server::Smol),
        }
    }

    /// The runtime the server runs on.
    pub fn runtime(&self) -> Runtime {
        match self {
            Server::Mio(_) => Runtime::Mio,
            Server::Smol(_) => Runtime::Smol,
        }
    }

    /// The address the server's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Server::Mio(s) => s.local_addr(),
            Server::Smol(s) => s.local_addr(),
        }
    }

    /// Waits for the next in-order message from any client, or the end of a connection.
    pub fn read(&self) -> Result<(ConnId, Vec<u8>), ServerReadError> {
        block_on(self.read_async())
    }

    /// [`read`](Self::read) as a future, for a loop that runs inside one executor call
    /// (`block_on` per call costs smol a hand-over of its reactor each time). On mio the
    /// future blocks the thread that polls it.
    pub async fn read_async(&self) -> Result<(ConnId, Vec<u8>), ServerReadError> {
        match self {
            Server::Mio(s) => s.read(),
            Server::Smol(s) => s.read().await,
        }
    }

    /// Queues `payload` for `conn`; never blocks.
    pub fn write(&self, conn: ConnId, payload: Vec<u8>) -> Result<(), ApiError> {
        match self {
            Server::Mio(s) => s.write(conn, payload),
            Server::Smol(s) => s.write(conn, payload),
        }
    }

    /// Closes one connection without blocking (its unread messages are discarded).
    pub fn close_conn(&self, conn: ConnId) -> Result<(), ApiError> {
        match self {
            Server::Mio(s) => s.close_conn(conn),
            Server::Smol(s) => s.close_conn(conn),
        }
    }

    /// Waits until everything written to every client was acknowledged, then stops the
    /// server.
    pub fn close(&self) -> Result<(), CloseError> {
        match self {
            Server::Mio(s) => s.close(),
            Server::Smol(s) => block_on(s.close()),
        }
    }

    /// Stops the server at once, without flushing; waiting and later calls fail.
    pub fn abort(&self) {
        match self {
            Server::Mio(s) => s.abort(),
            Server::Smol(s) => block_on(s.abort()),
        }
    }
}

/// An LSP client on either runtime (docs/protocol.md §7 "Client"). Shareable between threads: one
/// may wait in [`read`](Self::read) while another writes or closes.
#[derive(Debug)]
pub enum Client {
    /// On lsp-mio.
    Mio(lsp_mio::Client),
    /// On lsp-smol.
    Smol(lsp_smol::Client),
}

impl Client {
    /// Connects to `server` with initial sequence number `isn`; fails after `epoch_limit`
    /// epochs without an answer.
    pub fn connect(
        runtime: Runtime,
        server: SocketAddr,
        isn: i64,
        params: Params,
    ) -> Result<Client, StartError> {
        block_on(Client::connect_async(runtime, server, isn, params))
    }

    /// [`connect`](Self::connect) as a future (see [`Server::read_async`]).
    pub async fn connect_async(
        runtime: Runtime,
        server: SocketAddr,
        isn: i64,
        params: Params,
    ) -> Result<Client, StartError> {
        match runtime {
            Runtime::Mio => lsp_mio::Client::connect(server, isn, params).map(Client::Mio),
            Runtime::Smol => lsp_smol::Client::connect(server, isn, params)
                .await
                .map(Client::Smol),
        }
    }

    /// The runtime the client runs on.
    pub fn runtime(&self) -> Runtime {
        match self {
            Client::Mio(_) => Runtime::Mio,
            Client::Smol(_) => Runtime::Smol,
        }
    }

    /// The connection id the server assigned.
    pub fn conn_id(&self) -> ConnId {
        match self {
            Client::Mio(c) => c.conn_id(),
            Client::Smol(c) => c.conn_id(),
        }
    }

    /// Waits for the next in-order message from the server; fails once the client is
    /// closed or aborted, or the connection lost and every message before the loss read.
    pub fn read(&self) -> Result<Vec<u8>, ClientReadError> {
        block_on(self.read_async())
    }

    /// [`read`](Self::read) as a future (see [`Server::read_async`]).
    pub async fn read_async(&self) -> Result<Vec<u8>, ClientReadError> {
        match self {
            Client::Mio(c) => c.read(),
            Client::Smol(c) => c.read().await,
        }
    }

    /// Queues `payload` for the server; never blocks.
    pub fn write(&self, payload: Vec<u8>) -> Result<(), ApiError> {
        match self {
            Client::Mio(c) => c.write(payload),
            Client::Smol(c) => c.write(payload),
        }
    }

    /// Waits until everything written was acknowledged, then stops the client.
    pub fn close(&self) -> Result<(), CloseError> {
        match self {
            Client::Mio(c) => c.close(),
            Client::Smol(c) => block_on(c.close()),
        }
    }

    /// Stops the client at once, discarding what was not yet acknowledged.
    pub fn abort(&self) {
        match self {
            Client::Mio(c) => c.abort(),
            Client::Smol(c) => block_on(c.abort()),
        }
    }

    /// A snapshot of the client's counters.
    pub fn stats(&self) -> Stats {
        match self {
            Client::Mio(c) => c.stats(),
            Client::Smol(c) => c.stats(),
        }
    }
}
