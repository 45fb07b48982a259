//! The scheduler's records of miners, requests and the jobs between them.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use lsp_core::Timestamp;

use super::effect::RequestId;
use super::range::{NonceRange, RangeQueue};
use super::rate::Rate;

/// The scheduler's name for a piece of a request handed to one miner, or to two when
/// backed up. Unique for the scheduler's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChunkId(pub(crate) u64);

/// A piece of a request that is running on at least one miner and not yet answered.
/// Removed when answered or when its request is dropped.
#[derive(Debug)]
pub(crate) struct Chunk<K> {
    /// The request it belongs to.
    pub(crate) request: RequestId,
    /// Its nonces.
    pub(crate) range: NonceRange,
    /// The miners holding it: one, or two once backed up. Never empty.
    pub(crate) runners: Vec<K>,
}

/// A job a miner holds, in the order sent (which is the order it will answer).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Assignment {
    /// The chunk; it may have been answered by a backup or dropped since.
    pub(crate) chunk: ChunkId,
    /// The job's nonces (kept here to measure the rate even if the chunk is gone).
    pub(crate) range: NonceRange,
    /// When it was sent.
    pub(crate) sent: Timestamp,
    /// When the miner is expected to start it: after its earlier jobs.
    pub(crate) expected_start: Timestamp,
    /// When its answer is expected.
    pub(crate) expected_finish: Timestamp,
}

/// A joined miner.
#[derive(Debug)]
pub(crate) struct Miner {
    /// Its jobs, oldest (running) first.
    pub(crate) jobs: VecDeque<Assignment>,
    /// Its measured rate.
    pub(crate) rate: Rate,
    /// When its last answer arrived.
    pub(crate) last_result: Option<Timestamp>,
}

impl Miner {
    /// When the miner is expected to have answered all it holds (never before `now`).
    pub(crate) fn free_at(&self, now: Timestamp) -> Timestamp {
        self.jobs.back().map_or(now, |a| a.expected_finish.max(now))
    }
}

/// A request being served: the one active request of its client.
#[derive(Debug)]
pub(crate) struct Request<K> {
    /// Who asked.
    pub(crate) client: K,
    /// The text to hash.
    pub(crate) msg: Arc<str>,
    /// When it became active (the age that aging counts from).
    pub(crate) active_since: Timestamp,
    /// Nonces no miner holds.
    pub(crate) unassigned: RangeQueue,
    /// Nonces not yet answered (held by miners or unassigned).
    pub(crate) remaining: u128,
    /// Its chunks running on miners.
    pub(crate) chunks: BTreeSet<ChunkId>,
    /// The best `(hash, nonce)` answered so far.
    pub(crate) best: Option<(u64, u64)>,
}

/// A request waiting behind its client's active request.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// Its id, given on arrival.
    pub(crate) id: RequestId,
    /// The text to hash.
    pub(crate) msg: Arc<str>,
    /// Its nonces.
    pub(crate) range: NonceRange,
}

/// A client with a request in progress.
#[derive(Debug)]
pub(crate) struct Client {
    /// The request being served.
    pub(crate) active: RequestId,
    /// Later requests, served one at a time in arrival order.
    pub(crate) waiting: VecDeque<Waiting>,
}
