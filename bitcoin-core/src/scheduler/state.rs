//! The scheduler's records of miners, requests and the jobs between them.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use lsp_core::Timestamp;

use super::effect::RequestId;
use super::range::{NonceRange, RangeQueue};
use super::rate::{Rate, RoundTrip};
use crate::message::{Caps, Mode};

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

/// A job a miner holds, in the order sent (it may answer them in any order).
#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    /// The chunk; it may have been answered by a backup or dropped since.
    pub(crate) chunk: ChunkId,
    /// The request's text (kept here to verify the answer even if the chunk is gone).
    pub(crate) msg: Arc<str>,
    /// The job's nonces (kept here to measure the rate even if the chunk is gone).
    pub(crate) range: NonceRange,
    /// When it was sent.
    pub(crate) sent: Timestamp,
    /// When the miner is expected to start it: after its earlier jobs.
    pub(crate) expected_start: Timestamp,
    /// When its answer is expected.
    pub(crate) expected_finish: Timestamp,
    /// When its lease ends (see [`super::lease`]): fixed when sent.
    pub(crate) lease: Timestamp,
    /// Its lease has ended without an answer.
    pub(crate) expired: bool,
    /// What its request asks for.
    pub(crate) mode: Mode,
    /// Its id, unique for the scheduler's lifetime; sent to (and echoed by) miners that
    /// announced `cancel`.
    pub(crate) job: u64,
}

/// A joined miner.
#[derive(Debug)]
pub(crate) struct Miner {
    /// Its jobs, oldest first.
    pub(crate) jobs: VecDeque<Assignment>,
    /// Its measured rate.
    pub(crate) rate: Rate,
    /// Its measured round trip.
    pub(crate) round_trip: RoundTrip,
    /// When its last answer arrived.
    pub(crate) last_result: Option<Timestamp>,
    /// The extensions its Join announced.
    pub(crate) caps: Caps,
    /// Its latest jobs withdrawn with a Cancel (at most [`CANCELLED_KEPT`], oldest first):
    /// an answer that crossed the Cancel is recognised as stale, not taken for a lie.
    pub(crate) cancelled: VecDeque<Assignment>,
}

/// How many cancelled jobs a miner's record remembers.
pub(crate) const CANCELLED_KEPT: usize = 16;

impl Miner {
    /// A miner that has not answered yet, with the starting rate estimate.
    pub(crate) fn new(rate: Rate, caps: Caps) -> Self {
        Miner {
            jobs: VecDeque::new(),
            rate,
            round_trip: RoundTrip::default(),
            last_result: None,
            caps,
            cancelled: VecDeque::new(),
        }
    }

    /// Whether it announced what jobs of `mode` need.
    pub(crate) fn can_run(&self, mode: Mode) -> bool {
        self.caps.covers(mode.needs())
    }

    /// Whether it holds a job past its lease: then it gets no new job until it answers.
    pub(crate) fn is_late(&self) -> bool {
        self.jobs.iter().any(|a| a.expired)
    }

    /// Whether it holds a job of `msg` whose range overlaps `range`: a second such job would
    /// make its answers ambiguous (one answer could verify against both).
    pub(crate) fn conflicts(&self, msg: &str, range: NonceRange) -> bool {
        self.jobs
            .iter()
            .any(|a| a.range.overlaps(range) && *a.msg == *msg)
    }

    /// When the miner is expected to have answered all it holds (never before `now`).
    pub(crate) fn free_at(&self, now: Timestamp) -> Timestamp {
        self.jobs.back().map_or(now, |a| a.expected_finish.max(now))
    }

    /// When a job sent at `now` is expected to start, on the clock of its answers: after a
    /// round trip, and after the answers to everything the miner holds.
    pub(crate) fn expected_start(&self, now: Timestamp) -> Timestamp {
        self.free_at(now).max(now + self.round_trip.get())
    }

    /// Learns from `job`, answered at `now` after searching `nonces` of it (its whole
    /// range, or for a target job with a hit, up to the hit).
    ///
    /// The computing time is measured from when the miner could start the job, on the clock
    /// of its answers: a round trip after it was sent, and not before the previous answer.
    /// If the job then appears to have started clearly after the previous answer, it did
    /// not wait behind another job, and `start - sent` is a sample of the round trip.
    /// Nothing is learnt about the round trip from the first answer, while the rate is
    /// still a guess.
    pub(crate) fn observe(&mut self, job: &Assignment, nonces: u128, now: Timestamp) {
        let reached = job.sent + self.round_trip.get();
        let could_start = self.last_result.map_or(reached, |t| t.max(reached));
        self.rate
            .observe(nonces, now.saturating_duration_since(could_start));
        if let Some(previous) = self.last_result {
            let computing = self.rate.time_for(nonces);
            let started = Timestamp::from_micros(
                now.as_micros()
                    .saturating_sub(u64::try_from(computing.as_micros()).unwrap_or(u64::MAX)),
            );
            if started > previous + computing / 8 {
                self.round_trip
                    .observe(started.saturating_duration_since(job.sent));
            }
        }
        self.last_result = Some(now);
        self.replan(now);
    }

    /// Re-estimates when the jobs still held will be answered, from the answer that just
    /// came at `now` and the updated rate, so that estimates never drift from reality by more
    /// than one job.
    fn replan(&mut self, now: Timestamp) {
        let (rate, round_trip) = (self.rate, self.round_trip.get());
        let mut free = now;
        for job in &mut self.jobs {
            job.expected_start = free.max(job.sent + round_trip);
            job.expected_finish = job.expected_start + rate.time_for(job.range.len());
            free = job.expected_finish;
        }
    }
}

/// A request being served: the one active request of its client.
#[derive(Debug)]
pub(crate) struct Request<K> {
    /// Who asked.
    pub(crate) client: K,
    /// The text to hash.
    pub(crate) msg: Arc<str>,
    /// When it became active (its deadline counts from then).
    pub(crate) active_since: Timestamp,
    /// When it was accepted.
    pub(crate) accepted: Timestamp,
    /// Its nonces.
    pub(crate) range: NonceRange,
    /// Its number of nonces.
    pub(crate) size: u128,
    /// Nonces handed out again: backups of jobs that were not late.
    pub(crate) speculative: u128,
    /// Nonces no miner holds.
    pub(crate) unassigned: RangeQueue,
    /// Nonces not yet answered (held by miners or unassigned).
    pub(crate) remaining: u128,
    /// Its chunks running on miners.
    pub(crate) chunks: BTreeSet<ChunkId>,
    /// The best `(hash, nonce)` answered so far (in target mode: the qualifying hash with
    /// the smallest nonce).
    pub(crate) best: Option<(u64, u64)>,
    /// Nonces its answers (the first answer of each job) say were searched: a job's
    /// range, or for a target job with a hit, up to the hit.
    pub(crate) searched: u128,
    /// What it asks for.
    pub(crate) mode: Mode,
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
    /// When it was accepted.
    pub(crate) accepted: Timestamp,
    /// What it asks for.
    pub(crate) mode: Mode,
}

/// A client with a request in progress.
#[derive(Debug)]
pub(crate) struct Client {
    /// The request being served.
    pub(crate) active: RequestId,
    /// Later requests, served one at a time in arrival order.
    pub(crate) waiting: VecDeque<Waiting>,
}
