//! What a [`Coordinator`](super::Coordinator) exchanges with its driver: the connection
//! keys of its service ([`Port`]), the effects the driver carries out
//! ([`CoordinatorEffect`]) and its counters ([`CoordinatorStats`]).

use super::disk::DiskOp;
use super::RaftMessage;

/// The service's connection key under a coordinator: a real connection (a miner's), or
/// the slot of one replicated request (its Result is proposed instead of written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Port<K> {
    /// A connection of the driver.
    Conn(K),
    /// One replicated request.
    Slot(u64),
}

/// What the driver must do, in order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CoordinatorEffect<K> {
    /// Make these durable before acting on any later effect.
    Persist(Vec<DiskOp>),
    /// Send this raft message to replica `to`.
    SendRaft(RaftMessage),
    /// Write this payload (a job, to a miner) to connection `K`. It depends on nothing
    /// durable: the driver may write it before the `Persist` effects queued ahead of it.
    Write(K, Vec<u8>),
    /// Write this Result to client connection `K`. It depends on the log: only once every
    /// `Persist` queued ahead of it is durable.
    Answer(K, Vec<u8>),
    /// Close connection `K` (a follower's client or miner, or a refused request).
    Close(K),
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Payloads received while this replica does not lead. Their connections are closed,
    /// except one kept after a step-down until a leader is known (its payloads dropped).
    pub not_leader: u64,
    /// Connections told which replica leads before being closed, by a follower or by a
    /// leader stepping down (a NotLeader message, see
    /// [`redirect`](super::redirect)).
    pub redirected: u64,
    /// Requests restored by this replica on becoming leader.
    pub restored: u64,
    /// Proposals refused by raft-rs (leadership lost meanwhile).
    pub proposals_dropped: u64,
    /// Requests refused because the log already holds `Config::max_requests` unanswered
    /// ones (their connections are closed).
    pub refused: u64,
    /// Requests refused because their `Zeros` or `Algo` ask for no valid mode, as the
    /// plain server refuses them (their connections are closed).
    pub unsupported_mode: u64,
    /// Requests refused because their `"Id"` already names a request asking for something
    /// else (another text, range or mode); their connections are closed.
    pub id_conflicts: u64,
}
