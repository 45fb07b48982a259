//! Errors of the application-facing calls.

use std::fmt;

use crate::ConnId;

/// Why an application call (`write`, `close_conn`, `close`) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// No such connection (never existed, or already closed or lost and forgotten).
    UnknownConnection(ConnId),
    /// The connection was lost.
    ConnectionLost,
    /// Connecting failed: no connect-ack within `epoch_limit` epochs.
    ConnectFailed,
    /// The connection or endpoint is closing or closed.
    Closed,
    /// The encoded message would exceed the 1500-byte datagram limit.
    PayloadTooLarge {
        /// The payload length that was refused.
        len: usize,
        /// The largest payload that fits with this connection's id and sequence number.
        max: usize,
    },
    /// The connection has used every sequence number up to `i64::MAX` (at least 2³²
    /// messages after a valid initial sequence number; see [`MAX_ISN`](crate::MAX_ISN)).
    SequenceExhausted,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::UnknownConnection(id) => write!(f, "unknown connection {id}"),
            ApiError::ConnectionLost => write!(f, "connection lost"),
            ApiError::ConnectFailed => write!(f, "could not connect: no answer from the server"),
            ApiError::Closed => write!(f, "closed"),
            ApiError::SequenceExhausted => write!(f, "sequence numbers exhausted"),
            ApiError::PayloadTooLarge { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes is too large (at most {max} fit in a datagram)"
                )
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// Why a graceful close did not complete cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseError {
    /// These connections were lost before everything sent to them was acknowledged; what was
    /// pending for them was discarded.
    ConnectionsLost(Vec<ConnId>),
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::ConnectionsLost(ids) => {
                write!(
                    f,
                    "{} connection(s) lost before their messages were acknowledged",
                    ids.len()
                )
            }
        }
    }
}

impl std::error::Error for CloseError {}
