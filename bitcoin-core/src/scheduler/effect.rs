//! What the scheduler asks its driver to do, and the small types that go with it.

use std::fmt;
use std::sync::Arc;

use super::verify::Misbehaviour;
use crate::message::Mode;

/// The scheduler's name for a request, unique for the scheduler's lifetime and increasing in
/// arrival order. It never goes on the wire; it is there for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The id as a number (the first request is 0).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// An output of the scheduler, drained with [`crate::scheduler::Scheduler::poll_effect`].
/// `K` is the driver's connection key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect<K> {
    /// Send `miner` a Request message for `msg` and `lower ..= upper`. The miner may answer
    /// its jobs in any order.
    SendJob {
        /// The miner's connection.
        miner: K,
        /// The request this job is part of (not sent; for logs and tests).
        request: RequestId,
        /// The request's text, shared by all its jobs.
        msg: Arc<str>,
        /// First nonce of the job.
        lower: u64,
        /// Last nonce of the job (inclusive).
        upper: u64,
        /// What the job asks for: [`Mode::Minimum`] (the reference's Request) or a target
        /// search (sent only to miners that announced its caps).
        mode: Mode,
        /// The assignment's id, unique for the scheduler's lifetime, for a miner that
        /// announced `cancel` (sent as the `"Job"` key, to be echoed in its answer); `None`
        /// for other miners, whose Request is the reference's bytes.
        job: Option<u64>,
    },
    /// Send `miner` a Cancel for its job `msg`, `lower ..= upper`: it is no longer
    /// needed (its request was answered or dropped, or it lies above a target request's
    /// hit). Only to miners that announced `cancel`; the scheduler no longer counts the
    /// job as held.
    Cancel {
        /// The miner's connection.
        miner: K,
        /// The request the job was part of (not sent; for logs and tests).
        request: RequestId,
        /// The job's text.
        msg: Arc<str>,
        /// First nonce of the job.
        lower: u64,
        /// Last nonce of the job (inclusive).
        upper: u64,
        /// The id its [`Effect::SendJob`] carried (sent as the `"Job"` key).
        job: Option<u64>,
    },
    /// Send `client` a Result with `"Found": false`: no nonce of its target request's
    /// range qualifies. The request is then forgotten.
    SendNotFound {
        /// The client's connection.
        client: K,
        /// The request answered (not sent; for logs and tests).
        request: RequestId,
    },
    /// Send `client` a Result message: the minimum `hash` over its whole range, found at
    /// `nonce` (the smallest such nonce on ties). The request is then forgotten.
    SendResult {
        /// The client's connection.
        client: K,
        /// The request answered (not sent; for logs and tests).
        request: RequestId,
        /// The minimum hash over the request's range.
        hash: u64,
        /// The smallest nonce giving that hash.
        nonce: u64,
    },
    /// Close `miner`'s connection: it lied. The scheduler has already forgotten it and
    /// given its jobs back; nothing more will be sent to it, and its later messages should
    /// be ignored.
    Disconnect {
        /// The miner's connection.
        miner: K,
        /// What it did.
        reason: Misbehaviour,
    },
}

/// Why [`crate::scheduler::Scheduler::handle_request`] refused a request. Nothing about the
/// request is kept; the driver may log it, count it, or close the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// `lower > upper`: the range holds no nonce, so it has no minimum to answer with.
    EmptyRange {
        /// The requested first nonce.
        lower: u64,
        /// The requested last nonce.
        upper: u64,
    },
    /// The client already has [`crate::scheduler::Config::max_requests_per_client`]
    /// requests unanswered.
    ClientFull {
        /// The limit.
        limit: usize,
    },
    /// All clients together have [`crate::scheduler::Config::max_requests`] requests
    /// unanswered.
    Full {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::EmptyRange { lower, upper } => {
                write!(f, "empty nonce range: lower {lower} > upper {upper}")
            }
            RequestError::ClientFull { limit } => {
                write!(f, "the client already has {limit} requests unanswered")
            }
            RequestError::Full { limit } => {
                write!(f, "the server already has {limit} requests unanswered")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Counters of what the scheduler has seen and done, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests accepted.
    pub requests: u64,
    /// Requests refused (see [`RequestError`]).
    pub rejected_requests: u64,
    /// Requests dropped unanswered because their client was lost.
    pub dropped_requests: u64,
    /// Results sent to clients.
    pub results_sent: u64,
    /// Jobs sent to miners, backups included.
    pub jobs_sent: u64,
    /// Backup jobs sent: copies of a job already running on another miner.
    pub backup_jobs: u64,
    /// Jobs put back in their request's queue because their miner was lost or lied.
    pub requeued_jobs: u64,
    /// Verified answers ignored because their job was already answered by a backup or its
    /// client was lost.
    pub stale_results: u64,
    /// Answers that were lies (the sum of the three kinds below); each got its miner
    /// disconnected.
    pub invalid_results: u64,
    /// Lies whose nonce lay in none of the miner's jobs.
    pub out_of_range_results: u64,
    /// Lies whose hash was not the nonce's.
    pub wrong_hash_results: u64,
    /// Lies caught by the spot check: a nonce of the job hashes lower than the answer.
    pub lazy_results: u64,
    /// Miners disconnected for lying ([`Effect::Disconnect`]).
    pub miners_disconnected: u64,
    /// Jobs whose lease ended before their miner answered.
    pub expired_leases: u64,
    /// Jobs re-issued to another miner because their lease ended (also in `jobs_sent`).
    pub reissued_jobs: u64,
    /// Answers from a connection that is not a miner or holds no job; ignored.
    pub unexpected_results: u64,
    /// Join events for a miner already joined; ignored.
    pub duplicate_joins: u64,
    /// Jobs withdrawn from miners with a Cancel ([`Effect::Cancel`]).
    pub cancelled_jobs: u64,
    /// Target requests answered with `"Found": false` (also in `results_sent`).
    pub not_found_sent: u64,
}
