//! The pool's accounting: what each miner searched and how fast, how far each request is,
//! and the pool's totals; and the stream of [`PoolEvent`]s that tells the same story.
//!
//! Like the scheduler that feeds it, it is pure: it is driven by the scheduler's own
//! events (a miner joined, answered, lied, left; a job was re-issued; a request was
//! accepted, answered, dropped), every time is an argument, and the same calls always
//! give the same reports. Read it through [`crate::service::MinerService::pool`] (a
//! [`PoolReport`] snapshot) and [`crate::service::MinerService::poll_event`].
//!
//! # Measures
//!
//! - A miner's *nonces* are the sizes of the jobs it answered validly (verified and
//!   spot-checked), stale answers included (a job a backup answered first was searched
//!   all the same); a target job answered with a hit counts its nonces up to the hit, where
//!   the search stopped. Its *rate* is an exponentially weighted moving average of those
//!   credits over time ([`RATE_TAU`] 10 s, corrected for a miner younger than that), and
//!   its *history* the nonces credited in each of the last [`HISTORY_MINUTES`] minutes.
//! - A request's *covered* nonces are those of its jobs answered so far (in target mode,
//!   with those above its smallest hit); they never decrease. Its *searched* nonces are
//!   those its answers searched (as a miner's nonces, counting each job once): equal to
//!   covered in minimum mode. Its *rate* is searched nonces over the time since it became
//!   active, and its *ETA* the nonces not covered at that rate (none until a job is
//!   answered; in target mode an upper bound, as a hit ends the search).
//! - The pool's nonces, rate and history are those of every credit of every miner, the
//!   departed ones included.
//!
//! # Bounds
//!
//! One ledger per joined miner, removed when it leaves; the last [`RECENT_MINERS`]
//! departed miners are kept for monitors; at most [`EVENT_CAPACITY`] events wait to be
//! drained, later ones are dropped and counted ([`PoolTotals::events_dropped`]); every
//! history is a ring of [`HISTORY_MINUTES`].

mod event;
mod meter;

pub use event::{MinerTotals, PoolEvent, PoolEventKind};
pub use meter::{MinuteSample, HISTORY_MINUTES, RATE_TAU};

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use lsp_core::Timestamp;

use crate::message::Mode;
use crate::scheduler::RequestId;
use meter::Meter;

/// How many events may wait to be drained; more are dropped and counted.
pub const EVENT_CAPACITY: usize = 4096;

/// How many departed miners a report lists.
pub const RECENT_MINERS: usize = 32;

/// A snapshot of the pool at one time ([`crate::service::MinerService::pool`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PoolReport<K> {
    /// The time it describes.
    pub at: Timestamp,
    /// The pool's totals.
    pub totals: PoolTotals,
    /// The pool's per-minute history (see [`MinuteSample`]).
    pub history: Vec<MinuteSample>,
    /// Every joined miner, by connection key.
    pub miners: Vec<MinerReport<K>>,
    /// The latest departed miners, oldest first (at most [`RECENT_MINERS`]).
    pub departed: Vec<DepartedMiner<K>>,
    /// Every accepted, unanswered request: the active ones and those waiting behind their
    /// client's, by id (arrival order).
    pub requests: Vec<RequestReport<K>>,
}

/// The pool's totals. Serialized (field names as here) by the server's `/status`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PoolTotals {
    /// Miners joined now.
    pub miners: usize,
    /// The pool's moving-average rate, in nonces per second.
    pub hash_rate: f64,
    /// Nonces covered by valid answers, since the start.
    pub nonces: u128,
    /// Valid answers, since the start.
    pub valid_results: u64,
    /// Invalid answers (lies), since the start.
    pub invalid_results: u64,
    /// Requests accepted and not yet answered or dropped (waiting ones included).
    pub requests_active: usize,
    /// Requests accepted, since the start.
    pub requests_accepted: u64,
    /// Requests answered, since the start.
    pub requests_answered: u64,
    /// Requests dropped with their client, since the start.
    pub requests_dropped: u64,
    /// Requests refused, since the start.
    pub requests_refused: u64,
    /// Jobs sent, since the start (backups and re-issues included).
    pub jobs_sent: u64,
    /// Jobs re-issued because their lease ended, since the start.
    pub jobs_reissued: u64,
    /// Connections the service knows now (those that sent something, or were described
    /// by the driver, and are not gone).
    pub connections: usize,
    /// Connections the service has known, since the start.
    pub connections_total: u64,
    /// Events dropped because [`EVENT_CAPACITY`] were waiting to be drained.
    pub events_dropped: u64,
}

/// One joined miner.
#[derive(Clone, Debug, PartialEq)]
pub struct MinerReport<K> {
    /// Its connection.
    pub miner: K,
    /// Its address, if the driver gave it ([`crate::service::MinerService::describe`]).
    pub address: Option<String>,
    /// Its counts so far.
    pub totals: MinerTotals,
    /// Its moving-average rate, in nonces per second.
    pub hash_rate: f64,
    /// Its per-minute history.
    pub history: Vec<MinuteSample>,
    /// Jobs it holds now.
    pub jobs_held: usize,
    /// Whether it holds a job past its lease.
    pub late: bool,
}

/// A miner that left, as it stood when it did.
#[derive(Clone, Debug, PartialEq)]
pub struct DepartedMiner<K> {
    /// Its connection.
    pub miner: K,
    /// When it left.
    pub left: Timestamp,
    /// Whether it was rejected for a lie (otherwise its connection ended).
    pub rejected: bool,
    /// Its counts.
    pub totals: MinerTotals,
}

/// One accepted, unanswered request.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestReport<K> {
    /// The request.
    pub request: RequestId,
    /// The client's connection.
    pub client: K,
    /// Its text.
    pub msg: Arc<str>,
    /// Its first nonce.
    pub lower: u64,
    /// Its last nonce (inclusive).
    pub upper: u64,
    /// Its number of nonces.
    pub total: u128,
    /// What it asks for.
    pub mode: Mode,
    /// Nonces of its jobs answered so far: never decreasing, at most `total`. In target
    /// mode, the nonces above its smallest hit count as covered once the hit is in (they
    /// need no search).
    pub covered: u128,
    /// Nonces its answers say were searched (see
    /// [`PoolEventKind::RequestAnswered::nonces`]): `covered` in minimum mode, at most
    /// `covered` in target mode.
    pub searched: u128,
    /// When it was accepted.
    pub accepted: Timestamp,
    /// When it became active (`None` while it waits behind its client's earlier ones).
    pub active_since: Option<Timestamp>,
    /// Searched nonces per second since it became active (zero before).
    pub rate: f64,
    /// How long the nonces left take at that rate (saturating at [`Duration::MAX`]); `None`
    /// until the rate is known (a job answered, and time gone by since activation).
    pub eta: Option<Duration>,
}

impl<K> RequestReport<K> {
    /// Fills in the rate and ETA from the counts, at `now`.
    pub(crate) fn measured(mut self, now: Timestamp) -> Self {
        let elapsed = self
            .active_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if !elapsed.is_zero() && self.searched > 0 {
            self.rate = self.searched as f64 / elapsed.as_secs_f64();
            let left = (self.total - self.covered.min(self.total)) as f64;
            // Saturates (a whole-u64 range at one nonce per hour outlasts `Duration`).
            self.eta = Some(Duration::try_from_secs_f64(left / self.rate).unwrap_or(Duration::MAX));
        }
        self
    }
}

/// One joined miner's ledger.
#[derive(Clone, Debug)]
struct Ledger {
    totals: MinerTotals,
    meter: Meter,
}

/// The accounting kept by the scheduler: ledgers, pool counters, and the event queue.
#[derive(Debug)]
pub(crate) struct Accounting<K> {
    miners: BTreeMap<K, Ledger>,
    departed: VecDeque<DepartedMiner<K>>,
    pool: Meter,
    valid: u64,
    invalid: u64,
    events: VecDeque<PoolEvent<K>>,
    events_dropped: u64,
}

impl<K: Ord + Copy> Accounting<K> {
    /// Nothing counted yet; the pool's meter starts at `born`.
    pub(crate) fn new(born: Timestamp) -> Self {
        Accounting {
            miners: BTreeMap::new(),
            departed: VecDeque::new(),
            pool: Meter::new(born),
            valid: 0,
            invalid: 0,
            events: VecDeque::new(),
            events_dropped: 0,
        }
    }

    /// Queues `kind` at `at`, or counts it dropped if the queue is full.
    pub(crate) fn record(&mut self, at: Timestamp, kind: PoolEventKind<K>) {
        if self.events.len() >= EVENT_CAPACITY {
            self.events_dropped += 1;
        } else {
            self.events.push_back(PoolEvent { at, kind });
        }
    }

    /// The oldest event not yet drained.
    pub(crate) fn poll_event(&mut self) -> Option<PoolEvent<K>> {
        self.events.pop_front()
    }

    /// `miner` joined at `now`.
    pub(crate) fn joined(&mut self, now: Timestamp, miner: K) {
        let totals = MinerTotals {
            joined: now,
            ..MinerTotals::default()
        };
        let meter = Meter::new(now);
        self.miners.insert(miner, Ledger { totals, meter });
        self.record(now, PoolEventKind::MinerJoined { miner });
    }

    /// `miner` answered a job of `nonces` validly at `now`; `stale` if the job was already
    /// answered or dropped.
    pub(crate) fn credited(&mut self, now: Timestamp, miner: K, nonces: u128, stale: bool) {
        self.valid += 1;
        self.pool.credit(now, nonces);
        if let Some(l) = self.miners.get_mut(&miner) {
            l.totals.valid += 1;
            l.totals.stale += u64::from(stale);
            l.totals.nonces = l.totals.nonces.saturating_add(nonces);
            l.meter.credit(now, nonces);
        }
    }

    /// A job of `from` was re-issued to `to` at `now`.
    pub(crate) fn reissued(
        &mut self,
        now: Timestamp,
        request: RequestId,
        from: K,
        to: K,
        (lower, upper): (u64, u64),
    ) {
        if let Some(l) = self.miners.get_mut(&from) {
            l.totals.reissued_away += 1;
        }
        let kind = PoolEventKind::JobReissued {
            request,
            from,
            to,
            lower,
            upper,
        };
        self.record(now, kind);
    }

    /// `miner` lied at `now` and is dropped.
    pub(crate) fn lied(
        &mut self,
        now: Timestamp,
        miner: K,
        reason: crate::scheduler::Misbehaviour,
    ) {
        self.invalid += 1;
        let totals = self.depart(now, miner, true, |t| t.invalid += 1);
        self.record(
            now,
            PoolEventKind::MinerRejected {
                miner,
                reason,
                totals,
            },
        );
    }

    /// `miner`'s connection ended at `now`, with `jobs_returned` jobs unanswered.
    pub(crate) fn lost(&mut self, now: Timestamp, miner: K, jobs_returned: usize) {
        let totals = self.depart(now, miner, false, |_| {});
        let kind = PoolEventKind::MinerLost {
            miner,
            jobs_returned,
            totals,
        };
        self.record(now, kind);
    }

    /// Removes `miner`'s ledger, keeping it among the recent departed.
    fn depart(
        &mut self,
        now: Timestamp,
        miner: K,
        rejected: bool,
        last: impl FnOnce(&mut MinerTotals),
    ) -> MinerTotals {
        let mut totals = self
            .miners
            .remove(&miner)
            .map_or_else(MinerTotals::default, |l| l.totals);
        last(&mut totals);
        if self.departed.len() >= RECENT_MINERS {
            self.departed.pop_front();
        }
        self.departed.push_back(DepartedMiner {
            miner,
            left: now,
            rejected,
            totals,
        });
        totals
    }

    /// A miner's counts, rate and history at `now` (`None` if it is not joined).
    pub(crate) fn miner(
        &self,
        miner: K,
        now: Timestamp,
    ) -> Option<(MinerTotals, f64, Vec<MinuteSample>)> {
        self.miners
            .get(&miner)
            .map(|l| (l.totals, l.meter.rate(now), l.meter.history(now)))
    }

    /// The departed miners, oldest first.
    pub(crate) fn departed(&self) -> Vec<DepartedMiner<K>> {
        self.departed.iter().cloned().collect()
    }

    /// Fills the pool-wide measures of `totals` at `now`; returns the pool's history.
    pub(crate) fn pool(&self, now: Timestamp, totals: &mut PoolTotals) -> Vec<MinuteSample> {
        totals.hash_rate = self.pool.rate(now);
        totals.nonces = self.pool.total();
        totals.valid_results = self.valid;
        totals.invalid_results = self.invalid;
        totals.events_dropped = self.events_dropped;
        self.pool.history(now)
    }
}
