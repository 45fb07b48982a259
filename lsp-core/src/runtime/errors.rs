//! The errors of the application API: starting an endpoint, reading, and closing
//! (docs/protocol.md §7). `Io` variants carry the socket error that stopped a runtime's driver (its
//! I/O thread or driver task).

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::{ConnId, ParamsError};

/// Why a runtime's `Server::listen` or `Client::connect` failed.
#[derive(Debug)]
pub enum StartError {
    /// The parameters were invalid.
    Params(ParamsError),
    /// The socket could not be created, bound or connected, or the driver not started.
    Io(io::Error),
    /// No connect-ack arrived within `epoch_limit` epochs (client only).
    NoAnswer,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Params(e) => write!(f, "invalid parameters: {e}"),
            StartError::Io(e) => write!(f, "socket error: {e}"),
            StartError::NoAnswer => write!(f, "could not connect: no answer from the server"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Params(e) => Some(e),
            StartError::Io(e) => Some(e),
            StartError::NoAnswer => None,
        }
    }
}

impl From<ParamsError> for StartError {
    fn from(e: ParamsError) -> Self {
        StartError::Params(e)
    }
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// Why a runtime's `Server::read` returned no message.
#[derive(Clone, Debug)]
pub enum ServerReadError {
    /// This connection was lost, and every message received from it before has been read.
    /// Reported exactly once per lost connection.
    ConnectionLost(ConnId),
    /// This connection was closed with `Server::close_conn`.
    /// Reported exactly once per closed connection.
    ConnectionClosed(ConnId),
    /// The server was closed.
    Closed,
    /// The driver stopped on a socket error.
    Io(Arc<io::Error>),
}

impl ServerReadError {
    /// The connection the error is about; `ConnId(0)` (the reference's convention) when it
    /// is about the whole server.
    pub fn conn_id(&self) -> ConnId {
        match self {
            ServerReadError::ConnectionLost(c) | ServerReadError::ConnectionClosed(c) => *c,
            ServerReadError::Closed | ServerReadError::Io(_) => ConnId(0),
        }
    }
}

impl fmt::Display for ServerReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerReadError::ConnectionLost(c) => write!(f, "connection {c} lost"),
            ServerReadError::ConnectionClosed(c) => write!(f, "connection {c} closed"),
            ServerReadError::Closed => write!(f, "server closed"),
            ServerReadError::Io(e) => write!(f, "driver failed: {e}"),
        }
    }
}

impl std::error::Error for ServerReadError {}

/// Why a runtime's `Client::read` returned no message.
#[derive(Clone, Debug)]
pub enum ClientReadError {
    /// The connection was lost and every message received before the loss has been read.
    ConnectionLost,
    /// The client was closed.
    Closed,
    /// The driver stopped on a socket error.
    Io(Arc<io::Error>),
}

impl fmt::Display for ClientReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientReadError::ConnectionLost => write!(f, "connection lost"),
            ClientReadError::Closed => write!(f, "client closed"),
            ClientReadError::Io(e) => write!(f, "driver failed: {e}"),
        }
    }
}

impl std::error::Error for ClientReadError {}

/// Why a `close` did not end cleanly.
#[derive(Clone, Debug)]
pub enum CloseError {
    /// `close` was already called.
    AlreadyClosed,
    /// The endpoint was aborted (or dropped) before the close completed.
    Aborted,
    /// These connections were lost before everything written to them was acknowledged; what
    /// was pending for them was discarded. (A client reports its own connection, or an empty
    /// list if it never connected.)
    ConnectionsLost(Vec<ConnId>),
    /// The driver stopped on a socket error before the close completed.
    Io(Arc<io::Error>),
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::AlreadyClosed => write!(f, "already closed"),
            CloseError::Aborted => write!(f, "aborted before the close completed"),
            CloseError::ConnectionsLost(ids) => write!(
                f,
                "{} connection(s) lost before their messages were acknowledged",
                ids.len()
            ),
            CloseError::Io(e) => write!(f, "driver failed: {e}"),
        }
    }
}

impl std::error::Error for CloseError {}

impl From<crate::CloseError> for CloseError {
    fn from(e: crate::CloseError) -> Self {
        match e {
            crate::CloseError::ConnectionsLost(ids) => CloseError::ConnectionsLost(ids),
        }
    }
}
