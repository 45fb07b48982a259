//! The sans-IO scheduler: splits clients' requests into jobs for miners, and combines the
//! miners' answers into one answer per request.
//!
//! # Shape
//!
//! Like the LSP endpoints, the [`Scheduler`] is a state machine with no sockets, clocks or
//! randomness. The driver (the server's glue loop) reports what happened through the
//! `handle_*` methods, each taking the current time, and then drains
//! [`Scheduler::poll_effect`] (messages to send: [`Effect::SendJob`] to a miner,
//! [`Effect::SendResult`] to a client) and re-reads [`Scheduler::poll_timeout`] (when to call
//! [`Scheduler::handle_timeout`]). `K` is the driver's connection key (for LSP, the
//! connection id): a connection that sends Join is a miner, one that sends Request is a
//! client. Time going backwards is ignored. The same calls always produce the same effects.
//!
//! # Policy
//!
//! **Order: shortest remaining work first, with a deadline against starvation.** The mean
//! response time is smallest when the request with the least work left is served first
//! (SRPT). Whenever a miner can take a job, it goes to the request with the fewest
//! unanswered nonces among those with nonces left to hand out, ties by arrival
//! ([`Order::ShortestRemainingFirst`]). A request normally gets every free miner, and the
//! next one starts on the miners its tail leaves free. Equal requests finish in arrival
//! order: the first one started only gets shorter. A request that has been active for
//! more than [`Order::ShortestRemainingFirst::overdue_factor`] (10) times its *alone time*
//! (its nonces ÷ the miners' total measured rate), plus one target job duration, is
//! *overdue* and goes before all others, earliest deadline first; so nothing starves, and
//! the workloads of `bench -- schedule` never reach that point.
//!
//! **Job sizes from each miner's measured speed.** A job is sized to take about
//! [`Config::target_job_duration`] (50 ms) on the miner it goes to, whatever that miner's
//! speed: a lost miner costs at most that much work, and a new small request waits at most
//! about that long for a miner, because a job cannot be recalled. Each miner holds up to
//! [`Config::jobs_per_miner`] jobs (2: one running, one queued) so that it does not sit
//! idle for a round trip between jobs. Each answer measures the miner:
//! its *round trip* (send to answer, less computing, from jobs that did not wait behind
//! another; the least of the last eight) and its *rate* (nonces over the time from when it
//! could start the job, which is a round trip after sending and not before its previous
//! answer, to the answer). Until then, jobs have [`Config::initial_job_nonces`] (10 000),
//! and the rate estimate may grow 2.5× per answer. Jobs are never smaller than that initial
//! size (except a range's last piece), so a miner with a long round trip cannot be
//! shrunk into uselessness.
//!
//! **The tail.** Near the end of a request, jobs shrink: none takes more than
//! 1/[`Config::tail_split`] (½) of the time the whole pool needs for the request's nonces
//! not yet handed out (guided self-scheduling), down to [`Config::min_job_duration`], so all
//! miners finish the request at about the same time. When a miner has a free slot and a job
//! of a request more urgent than any with nonces left to hand out runs on another miner,
//! the free miner duplicates it (a *backup job*, as in MapReduce) if it would answer clearly
//! sooner: if the original's expected time left is more than 1.5× the backup's, counting a
//! job that is late (more than [`Config::min_job_duration`] past its expected answer) as
//! needing as long again as it has already run. Backups of jobs that are not late (they
//! run on a much slower miner) may spend at most [`Config::backup_budget_percent`] (5 %)
//! of their request's nonces, so miners that answer when expected do at most 5 % of the
//! work twice; backups of late jobs are not limited. The first answer
//! counts; the other is ignored. The most urgent request's jobs are backed up first, its
//! latest-finishing job first; a job has at most one backup. [`Scheduler::poll_timeout`]
//! names the moment a running job becomes late enough to deserve one, so a stalled miner is
//! worked around before the transport declares it lost. Expected answer times are
//! re-estimated at every answer, so they never drift by more than a job.
//!
//! **Trusting no miner.** The wire protocol has no job ids, and miners may answer their
//! jobs in any order, so an answer `(hash, nonce)` is matched by content: to the job of that
//! miner it *verifies* against, the nonce in the job's range and `hash(msg, nonce)` equal to
//! the claimed hash (the job whose range the miner echoed in `Lower`/`Upper` is tried
//! first, but an echo alone is never trusted). So that one answer cannot verify against two
//! jobs, a miner is never given a job overlapping one it holds for the same text. The
//! verified answer is then spot-checked against laziness: [`SPOT_CHECKS`] (32) nonces of the
//! job, chosen from the job's content, are hashed, and one hashing strictly lower proves the
//! answer is not the minimum (see [`SPOT_CHECKS`] for the cost and the detection
//! probability: about `k f / ((1 − f) N + k f)` for a miner skipping a fraction `f` of an
//! `N`-nonce job, 32/33 for one that does no work). An answer that verifies against no job
//! (nonce out of range, wrong hash) or fails the spot check is a lie: the miner is dropped at
//! once, its jobs go back to their requests, and [`Effect::Disconnect`] asks the driver to
//! close its connection. An answer from a connection holding no job is counted and ignored.
//! Nothing unverified ever reaches a client.
//!
//! **Leases.** Every job carries a deadline, its *lease*: `sent + lease_factor × (expected
//! answer − sent) + lease_slack` ([`Config::lease_factor`] 3, [`Config::lease_slack`] two
//! LSP epochs, 4 s by default), the expected answer coming from the miner's measured rate
//! and round trip and the jobs it already holds. A job not answered by then is re-issued at
//! once to the miner expected to answer it soonest, even one with no free slot (it is the
//! most urgent work there is), unless another miner runs it within its own lease; its miner
//! is *late* and gets no new job until it answers. The first valid answer counts, the late
//! one included, and a late answer is measured like any other: nothing punishes slowness.
//! [`Scheduler::poll_timeout`] names the next lease end, so a miner that stays connected but
//! never answers holds its work for at most a lease.
//!
//! **Failures.** A lost miner's unanswered jobs go back to the front of their requests
//! (unless a backup still runs them), to be handed out next. A lost client's requests are
//! dropped; answers to their jobs, and to jobs already answered by a backup, are verified
//! and ignored. Miners never idle while any request has nonces to hand out, except that a
//! miner holding a job of a request's text waits for its answer before it gets an
//! overlapping job of another request with the same text.
//!
//! **Edge cases.** A request with `lower > upper` is refused ([`RequestError::EmptyRange`]).
//! A client that sends a second request while one is in progress is answered in order:
//! the later request waits, and its age counts from when it becomes active, so queueing
//! early gains no priority. A second Join from a miner, or an answer from a connection that
//! holds no job, is ignored and counted in [`Stats`]. Ranges may reach `u64::MAX`;
//! all counts are `u128`.
//!
//! **Target mode and Cancel** (`scheduler/target.rs`): requests for the smallest nonce meeting a
//! difficulty go only to miners that announced the caps, in ascending order, are cut at
//! their first verified hit and answered once nothing below it is unanswered; jobs no
//! longer needed are withdrawn with [`Effect::Cancel`] from miners that announced `cancel`.
//!
//! **Accounting.** What each miner searched and how fast, how far each request is, and the
//! events that tell it, are kept as the scheduler goes ([`crate::accounting`]): read with
//! [`Scheduler::pool`], [`Scheduler::progress`] and [`Scheduler::poll_event`]. They never
//! change what the scheduler does.
//!
//! **Cost.** Each job handed out costs a scan of the miners and the requests, and of the
//! running jobs of requests more urgent than the most urgent one with work left (backup
//! candidates) against the free miners; there are no per-nonce data structures.

mod answer;
mod backup;
mod config;
mod dispatch;
mod effect;
mod job_id;
#[cfg(test)]
mod job_id_tests;
mod lease;
#[cfg(test)]
mod properties;
mod range;
mod rate;
mod report;
mod restore;
mod state;
mod target;
#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust;
mod verify;

pub use config::{
    Config, ConfigError, Order, MAX_JOBS_PER_MINER, MAX_JOB_DURATION, MAX_LEASE_FACTOR,
};
pub use effect::{Effect, RequestError, RequestId, Stats};
pub use restore::{Covered, Covers};
pub use verify::{HashFn, Misbehaviour, SPOT_CHECKS};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use lsp_core::Timestamp;

use crate::accounting::{Accounting, PoolEventKind};
use crate::message::{Caps, Mode};
use range::{NonceRange, RangeQueue};
use rate::Rate;
use state::{Chunk, ChunkId, Client, Miner, Request, Waiting};

/// A request's place in the serving order, smallest first: overdue requests (class 0, by
/// deadline) before the others (class 1, by remaining nonces, or by arrival time for
/// [`Order::Arrival`]), ties by arrival.
type Priority = (u8, u128, RequestId);

/// The scheduler. See the [module documentation](self) for its policy.
#[derive(Debug)]
pub struct Scheduler<K> {
    config: Config,
    /// The latest time seen.
    now: Timestamp,
    miners: BTreeMap<K, Miner>,
    clients: BTreeMap<K, Client>,
    /// Active requests (one per client).
    requests: BTreeMap<RequestId, Request<K>>,
    /// Unanswered jobs of active requests.
    chunks: BTreeMap<ChunkId, Chunk<K>>,
    effects: VecDeque<Effect<K>>,
    next_request: u64,
    next_chunk: u64,
    /// The id of the next assignment ([`Effect::SendJob`]'s `job`).
    next_job: u64,
    timeout: Option<Timestamp>,
    stats: Stats,
    /// The hash answers are verified with.
    hash: HashFn,
    /// What each miner and request did, and the events telling it.
    accounting: Accounting<K>,
    /// Answered chunks, for a replicated coordinator ([`restore`]); `None` when not asked.
    covered: Option<VecDeque<Covered<K>>>,
}

/// [`crate::hash::hash`] as a [`HashFn`].
fn real_hash(msg: &str, nonce: u64) -> u64 {
    crate::hash::hash(msg, nonce)
}

impl<K: Ord + Copy> Scheduler<K> {
    /// A scheduler with no miners and no requests, or the reason `config` is invalid.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Self::with_hash(config, real_hash)
    }

    /// A scheduler that verifies answers with `hash` instead of [`crate::hash::hash`]: for
    /// tests and benchmarks whose miners compute a cheap stand-in. Errors as
    /// [`Scheduler::new`].
    pub fn with_hash(config: Config, hash: HashFn) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Scheduler {
            config,
            now: Timestamp::ZERO,
            miners: BTreeMap::new(),
            clients: BTreeMap::new(),
            requests: BTreeMap::new(),
            chunks: BTreeMap::new(),
            effects: VecDeque::new(),
            next_request: 0,
            next_chunk: 0,
            next_job: 0,
            timeout: None,
            stats: Stats::default(),
            hash,
            accounting: Accounting::new(Timestamp::ZERO),
            covered: None,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters of what it has seen and done.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How many miners are joined.
    pub fn miner_count(&self) -> usize {
        self.miners.len()
    }

    /// How many requests are accepted and not yet answered or dropped (waiting ones
    /// included).
    pub fn request_count(&self) -> usize {
        let s = &self.stats;
        let unanswered = s.requests - s.results_sent - s.dropped_requests;
        usize::try_from(unanswered).unwrap_or(usize::MAX)
    }

    /// How many requests `client` has accepted and not yet answered (its active one and
    /// those waiting behind it); at most [`Config::max_requests_per_client`].
    pub fn requests_of(&self, client: K) -> usize {
        self.clients.get(&client).map_or(0, |c| 1 + c.waiting.len())
    }

    /// How many jobs `miner` holds (sent and not answered), or `None` if it is not joined.
    /// Never more than [`Config::jobs_per_miner`], except through jobs re-issued to it when
    /// another miner's lease ended.
    pub fn jobs_held(&self, miner: K) -> Option<usize> {
        self.miners.get(&miner).map(|m| m.jobs.len())
    }

    /// `miner` sent Join. A second Join from a joined miner is ignored.
    pub fn handle_miner_joined(&mut self, now: Timestamp, miner: K) {
        self.advance(now);
        self.join(miner, Caps::NONE);
        self.dispatch();
    }

    /// The connection of `miner` was lost: its unanswered jobs go back to the front of their
    /// requests. Does nothing if `miner` is not joined.
    pub fn handle_miner_lost(&mut self, now: Timestamp, miner: K) {
        self.advance(now);
        if let Some(jobs) = self.jobs_held(miner) {
            self.accounting.lost(self.now, miner, jobs);
        }
        self.lose_miner(miner);
        self.dispatch();
    }

    /// `client` asks for the minimum hash of `msg` over `lower ..= upper`.
    ///
    /// Returns the request's id, or an error (and keeps nothing) if the range is empty. If
    /// the client already has a request in progress, this one is answered after it.
    pub fn handle_request(
        &mut self,
        now: Timestamp,
        client: K,
        msg: impl Into<Arc<str>>,
        lower: u64,
        upper: u64,
    ) -> Result<RequestId, RequestError> {
        self.advance(now);
        let id = self.request(client, msg.into(), lower, upper, Mode::Minimum);
        self.dispatch();
        id
    }

    /// The connection of `client` was lost: its requests are dropped, and answers to their
    /// jobs will be ignored. Does nothing if it has no request.
    pub fn handle_client_lost(&mut self, now: Timestamp, client: K) {
        self.advance(now);
        self.lose_client(client);
        self.dispatch();
    }

    /// `miner` answered one of its jobs: `hash` is the minimum, at `nonce`. `hint` is the
    /// range the miner echoed, if any: the job with exactly that range is tried first, but
    /// the answer is matched to whichever job it verifies against (see the module
    /// documentation).
    ///
    /// Ignored (and counted) if the miner holds no job. An answer that fails verification
    /// or the spot check is a lie: the miner is dropped at once (its jobs go back to their
    /// requests) and [`Effect::Disconnect`] asks the driver to close its connection.
    pub fn handle_result(
        &mut self,
        now: Timestamp,
        miner: K,
        hash: u64,
        nonce: u64,
        hint: Option<(u64, u64)>,
    ) {
        self.advance(now);
        self.result(miner, hash, nonce, hint);
        self.dispatch();
    }

    /// The time named by [`Scheduler::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
        self.dispatch();
    }

    /// When [`Scheduler::handle_timeout`] should next be called, if ever: the earliest end of
    /// a lease, or of the wait before a backup job is worth it. Always later than the time
    /// given to the latest `handle_*` call. Re-read after every such call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timeout
    }

    /// The next message to send, oldest first.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect<K>> {
        self.effects.pop_front()
    }

    fn join(&mut self, miner: K, caps: Caps) {
        if self.miners.contains_key(&miner) {
            self.stats.duplicate_joins += 1;
            return;
        }
        self.accounting.joined(self.now, miner);
        let rate = Rate::from_job(
            self.config.initial_job_nonces,
            self.config.target_job_duration,
        );
        self.miners.insert(miner, Miner::new(rate, caps));
    }

    fn lose_miner(&mut self, miner: K) {
        let Some(lost) = self.miners.remove(&miner) else {
            return;
        };
        // Give back the latest first, so that the earliest ends up at the very front.
        for job in lost.jobs.iter().rev() {
            self.give_back(miner, job.chunk);
        }
    }

    fn request(
        &mut self,
        client: K,
        msg: Arc<str>,
        lower: u64,
        upper: u64,
        mode: Mode,
    ) -> Result<RequestId, RequestError> {
        let Some(range) = NonceRange::new(lower, upper) else {
            self.stats.rejected_requests += 1;
            return Err(RequestError::EmptyRange { lower, upper });
        };
        let (per_client, total) = (
            self.config.max_requests_per_client,
            self.config.max_requests,
        );
        if self.requests_of(client) >= per_client {
            self.stats.rejected_requests += 1;
            return Err(RequestError::ClientFull { limit: per_client });
        }
        if self.request_count() >= total {
            self.stats.rejected_requests += 1;
            return Err(RequestError::Full { limit: total });
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.stats.requests += 1;
        let accepted = PoolEventKind::RequestAccepted {
            client,
            request: id,
            msg: Arc::clone(&msg),
            lower,
            upper,
            mode,
        };
        self.accounting.record(self.now, accepted);
        let waiting = Waiting {
            id,
            msg,
            range,
            accepted: self.now,
            mode,
        };
        if let Some(c) = self.clients.get_mut(&client) {
            c.waiting.push_back(waiting);
        } else {
            let waiting_behind = VecDeque::new();
            self.clients.insert(
                client,
                Client {
                    active: id,
                    waiting: waiting_behind,
                },
            );
            self.activate(client, waiting);
        }
        Ok(id)
    }

    fn lose_client(&mut self, client: K) {
        let Some(c) = self.clients.remove(&client) else {
            return;
        };
        let dropped = 1 + c.waiting.len() as u64;
        self.stats.dropped_requests += dropped;
        let lost = PoolEventKind::ClientLost { client, dropped };
        self.accounting.record(self.now, lost);
        // Its running jobs are withdrawn from the miners that can be told to stop.
        let chunks = self.requests.remove(&c.active).map(|r| r.chunks);
        for chunk in chunks.into_iter().flatten() {
            self.drop_chunk(chunk, None);
        }
    }

    fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    /// Makes a waiting request of `client` its active one.
    fn activate(&mut self, client: K, w: Waiting) {
        self.requests.insert(
            w.id,
            Request {
                client,
                msg: w.msg,
                active_since: self.now,
                accepted: w.accepted,
                range: w.range,
                size: w.range.len(),
                speculative: 0,
                unassigned: RangeQueue::new(w.range),
                remaining: w.range.len(),
                chunks: BTreeSet::new(),
                best: None,
                searched: 0,
                mode: w.mode,
            },
        );
    }
}
