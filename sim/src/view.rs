//! What the applications of a simulated run have seen, as drivers read it: the server's
//! connections and the lives of each client, plus the [`Violation`] that ends a run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use lsp_core::{CloseError, ConnId, Timestamp};

use crate::net::Addr;

/// A broken invariant: when and what. The first one ends the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time of the step that broke it.
    pub time: Timestamp,
    /// What was broken.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.time, self.what)
    }
}

impl std::error::Error for Violation {}

/// How the server application answers messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// It only reads.
    Off,
    /// It writes every message back to its sender at once.
    Immediate,
    /// It sleeps a uniform `0..=max` before each echo; the sleeps add up, as in a
    /// single-threaded read–sleep–write loop.
    Sleep {
        /// The longest sleep.
        max: Duration,
    },
}

/// What the server application has seen of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnView {
    /// The client's address.
    pub addr: Addr,
    /// Which life of that client it belongs to (0 for the first).
    pub incarnation: u32,
    /// Messages read from it, in order.
    pub reads: Vec<Vec<u8>>,
    /// Messages the application wrote to it (accepted by `write`).
    pub written: Vec<Vec<u8>>,
    /// The server reported it lost.
    pub lost: bool,
    /// The application closed it with `close_conn`.
    pub closed: bool,
}

/// What the server application has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerView {
    /// Every connection ever accepted.
    pub conns: BTreeMap<ConnId, ConnView>,
    /// The result of `close`, once it completed.
    pub closed: Option<Result<(), CloseError>>,
    /// When `close` completed.
    pub closed_at: Option<Timestamp>,
}

impl ServerView {
    /// The latest connection accepted from `addr`.
    pub fn conn_of(&self, addr: Addr) -> Option<ConnId> {
        self.conns
            .iter()
            .rev()
            .find(|(_, c)| c.addr == addr)
            .map(|(id, _)| *id)
    }

    /// Messages read in total.
    pub fn total_reads(&self) -> usize {
        self.conns.values().map(|c| c.reads.len()).sum()
    }
}

/// What one life of a client application has seen (a restart begins a new one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLife {
    /// Its initial sequence number.
    pub isn: i64,
    /// When it started connecting.
    pub started: Timestamp,
    /// The id the server assigned, once connected.
    pub conn: Option<ConnId>,
    /// When it connected.
    pub connected_at: Option<Timestamp>,
    /// Messages read, in order.
    pub reads: Vec<Vec<u8>>,
    /// Messages the application wrote (accepted by `write`).
    pub written: Vec<Vec<u8>>,
    /// Connecting failed.
    pub connect_failed: bool,
    /// The connection was lost.
    pub lost: bool,
    /// The result of `close`, once it completed.
    pub closed: Option<Result<(), CloseError>>,
    /// The node crashed during this life.
    pub crashed: bool,
    /// When the endpoint finished (lost, failed, closed or crashed).
    pub ended_at: Option<Timestamp>,
    /// When the client last heard from the server (docs/protocol.md §6.1).
    pub(crate) last_heard: Timestamp,
}

impl ClientLife {
    /// Whether the endpoint of this life no longer runs.
    pub fn is_over(&self) -> bool {
        self.ended_at.is_some()
    }
}
