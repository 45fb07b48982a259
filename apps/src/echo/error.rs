//! Why an echo session ended badly.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use lsp_core::runtime::{ClientReadError, CloseError, ServerReadError, StartError};
use lsp_core::ApiError;

/// Why [`run_server`](super::run_server) or [`run_client`](super::run_client) failed.
#[derive(Debug)]
pub enum EchoError {
    /// The server could not start on this port.
    Listen {
        /// The port asked for.
        port: u16,
        /// Why it failed.
        source: StartError,
    },
    /// The client could not connect to this server.
    Connect {
        /// The server's address.
        server: SocketAddr,
        /// Why it failed.
        source: StartError,
    },
    /// The server stopped reading (its driver failed).
    ServerRead(ServerReadError),
    /// The client's connection ended before every echo arrived.
    ClientRead(ClientReadError),
    /// A token could not be sent (connection lost, or too large for one datagram).
    Write(ApiError),
    /// Closing the client failed: not every token was acknowledged.
    Close(CloseError),
    /// Reading the tokens failed.
    Input(io::Error),
    /// Printing an echo failed.
    Output(io::Error),
    /// The thread that sends the tokens panicked.
    SenderPanicked,
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EchoError::Listen { port, source } => write!(f, "listening on port {port}: {source}"),
            EchoError::Connect { server, source } => write!(f, "connecting to {server}: {source}"),
            EchoError::ServerRead(e) => write!(f, "server stopped: {e}"),
            EchoError::ClientRead(e) => write!(f, "reading echoes: {e}"),
            EchoError::Write(e) => write!(f, "sending a token: {e}"),
            EchoError::Close(e) => write!(f, "closing: {e}"),
            EchoError::Input(e) => write!(f, "reading input: {e}"),
            EchoError::Output(e) => write!(f, "writing output: {e}"),
            EchoError::SenderPanicked => write!(f, "the sending thread panicked"),
        }
    }
}

impl std::error::Error for EchoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EchoError::Listen { source, .. } | EchoError::Connect { source, .. } => Some(source),
            EchoError::ServerRead(e) => Some(e),
            EchoError::ClientRead(e) => Some(e),
            EchoError::Write(e) => Some(e),
            EchoError::Close(e) => Some(e),
            EchoError::Input(e) | EchoError::Output(e) => Some(e),
            EchoError::SenderPanicked => None,
        }
    }
}
