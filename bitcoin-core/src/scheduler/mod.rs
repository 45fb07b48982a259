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
//! idle for a round trip between jobs. The wire protocol has no job ids: a miner's answers
//! are matched to its jobs in the order they were sent. Each answer measures the miner:
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
//! job that is late as needing as long again as it has already run. The first answer
//! counts; the other is ignored. The most urgent request's jobs are backed up first, its
//! latest-finishing job first; a job has at most one backup. [`Scheduler::poll_timeout`]
//! names the moment a running job becomes late enough to deserve one, so a stalled miner is
//! worked around before the transport declares it lost. Expected answer times are
//! re-estimated at every answer, so they never drift by more than a job.
//!
//! **Failures.** A lost miner's unanswered jobs go back to the front of their requests
//! (unless a backup still runs them), to be handed out next. A lost client's requests are
//! dropped; answers to their jobs, and to jobs already answered by a backup, are ignored.
//! An answer whose nonce lies outside its job is treated like a lost job. Miners never idle
//! while any request has nonces to hand out.
//!
//! **Edge cases.** A request with `lower > upper` is refused ([`RequestError::EmptyRange`]).
//! A client that sends a second request while one is in progress is answered in order:
//! the later request waits, and its age counts from when it becomes active, so queueing
//! early gains no priority. A second Join from a miner, or an answer from a connection that
//! holds no job, is ignored and counted in [`Stats`]. Ranges may reach `u64::MAX`;
//! all counts are `u128`.
//!
//! **Cost.** Each job handed out costs a scan of the miners and the requests, and of the
//! running jobs of requests more urgent than the most urgent one with work left (backup
//! candidates) against the free miners; there are no per-nonce data structures.

mod backup;
mod config;
mod effect;
#[cfg(test)]
mod properties;
mod range;
mod rate;
mod state;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError, Order, MAX_JOBS_PER_MINER, MAX_JOB_DURATION};
pub use effect::{Effect, RequestError, RequestId, Stats};

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use lsp_core::Timestamp;

use range::{NonceRange, RangeQueue};
use rate::Rate;
use state::{Assignment, Chunk, ChunkId, Client, Miner, Request, Waiting};

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
    timeout: Option<Timestamp>,
    stats: Stats,
}

impl<K: Ord + Copy> Scheduler<K> {
    /// A scheduler with no miners and no requests, or the reason `config` is invalid.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
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
            timeout: None,
            stats: Stats::default(),
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
        self.clients.values().map(|c| 1 + c.waiting.len()).sum()
    }

    /// How many jobs `miner` holds (sent and not answered), or `None` if it is not joined.
    /// Never more than [`Config::jobs_per_miner`].
    pub fn jobs_held(&self, miner: K) -> Option<usize> {
        self.miners.get(&miner).map(|m| m.jobs.len())
    }

    /// `miner` sent Join. A second Join from a joined miner is ignored.
    pub fn handle_miner_joined(&mut self, now: Timestamp, miner: K) {
        self.advance(now);
        self.join(miner);
        self.dispatch();
    }

    /// The connection of `miner` was lost: its unanswered jobs go back to the front of their
    /// requests. Does nothing if `miner` is not joined.
    pub fn handle_miner_lost(&mut self, now: Timestamp, miner: K) {
        self.advance(now);
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
        let id = self.request(client, msg.into(), lower, upper);
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

    /// `miner` answered its oldest job: `hash` is the minimum, at `nonce`.
    ///
    /// Ignored (and counted) if the miner holds no job. If `nonce` lies outside the job, the
    /// job is given back to its request.
    pub fn handle_result(&mut self, now: Timestamp, miner: K, hash: u64, nonce: u64) {
        self.advance(now);
        self.result(miner, hash, nonce);
        self.dispatch();
    }

    /// The time named by [`Scheduler::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
        self.dispatch();
    }

    /// When [`Scheduler::handle_timeout`] should next be called, if ever: always later than
    /// the time given to the latest `handle_*` call. Re-read after every such call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timeout
    }

    /// The next message to send, oldest first.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect<K>> {
        self.effects.pop_front()
    }

    fn join(&mut self, miner: K) {
        if self.miners.contains_key(&miner) {
            self.stats.duplicate_joins += 1;
            return;
        }
        let rate = Rate::from_job(
            self.config.initial_job_nonces,
            self.config.target_job_duration,
        );
        self.miners.insert(miner, Miner::new(rate));
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
    ) -> Result<RequestId, RequestError> {
        let Some(range) = NonceRange::new(lower, upper) else {
            self.stats.rejected_requests += 1;
            return Err(RequestError::EmptyRange { lower, upper });
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.stats.requests += 1;
        let waiting = Waiting { id, msg, range };
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
        self.stats.dropped_requests += 1 + c.waiting.len() as u64;
        if let Some(request) = self.requests.remove(&c.active) {
            for chunk in request.chunks {
                self.chunks.remove(&chunk);
            }
        }
    }

    fn result(&mut self, miner: K, hash: u64, nonce: u64) {
        let Some(m) = self.miners.get_mut(&miner) else {
            self.stats.unexpected_results += 1;
            return;
        };
        let Some(job) = m.jobs.pop_front() else {
            self.stats.unexpected_results += 1;
            return;
        };
        m.observe(&job, self.now);
        if !self.chunks.contains_key(&job.chunk) {
            self.stats.stale_results += 1;
        } else if !job.range.contains(nonce) {
            self.stats.invalid_results += 1;
            self.give_back(miner, job.chunk);
        } else {
            self.complete(job.chunk, hash, nonce);
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
                size: w.range.len(),
                unassigned: RangeQueue::new(w.range),
                remaining: w.range.len(),
                chunks: BTreeSet::new(),
                best: None,
            },
        );
    }

    /// Fills every free miner slot, then re-arms the timer. Each slot gets a backup job if
    /// one is worth it for a request more urgent than every request with nonces to hand
    /// out, and otherwise new work from the most urgent such request.
    fn dispatch(&mut self) {
        while let Some(miner) = self.free_miner() {
            let total = self.total_rate();
            let top = self.top_request(total);
            if self.config.backup_jobs {
                if let Some((backup_miner, chunk)) = self.best_backup(top.map(|(_, p)| p)) {
                    if self.assign_backup(backup_miner, chunk) {
                        continue;
                    }
                }
            }
            let Some((request, _)) = top else {
                break;
            };
            if !self.assign_fresh(miner, request, total) {
                break;
            }
        }
        self.timeout = self.next_backup_check();
    }

    /// The sum of the miners' rates, at least 1.
    fn total_rate(&self) -> u128 {
        self.miners
            .values()
            .map(|m| u128::from(m.rate.get()))
            .sum::<u128>()
            .max(1)
    }

    /// Miners that may take another job, in the order they should get one: the least
    /// loaded first, then the fastest, then by key.
    fn free_miners(&self) -> impl Iterator<Item = (&K, &Miner)> {
        let depth = self.config.jobs_per_miner;
        self.miners
            .iter()
            .filter(move |(_, m)| m.jobs.len() < depth)
    }

    fn free_miner(&self) -> Option<K> {
        self.free_miners()
            .min_by_key(|(_, m)| (m.jobs.len(), Reverse(m.rate)))
            .map(|(k, _)| *k)
    }

    /// Where request `id` stands in the serving order (see [`Order`]).
    fn priority(&self, id: RequestId, r: &Request<K>, total_rate: u128) -> Priority {
        let since = u128::from(r.active_since.as_micros());
        match self.config.order {
            Order::Arrival => (1, since, id),
            Order::ShortestRemainingFirst { overdue_factor } => {
                if overdue_factor > 0 {
                    let alone = r.size * 1_000_000 / total_rate;
                    let deadline = since
                        + alone * u128::from(overdue_factor)
                        + self.config.target_job_duration.as_micros();
                    if u128::from(self.now.as_micros()) > deadline {
                        return (0, deadline, id);
                    }
                }
                (1, r.remaining, id)
            }
        }
    }

    /// The most urgent request with nonces to hand out, and its priority.
    fn top_request(&self, total_rate: u128) -> Option<(RequestId, Priority)> {
        self.requests
            .iter()
            .filter(|(_, r)| !r.unassigned.is_empty())
            .map(|(id, r)| (*id, self.priority(*id, r, total_rate)))
            .min_by_key(|(_, p)| *p)
    }

    /// Cuts a job from the front of `request`, sized for `miner`, and sends it.
    /// False (and nothing done) if the miner or the request is unknown or has nothing left.
    fn assign_fresh(&mut self, miner: K, request: RequestId, total_rate: u128) -> bool {
        let (Some(m), Some(r)) = (self.miners.get(&miner), self.requests.get_mut(&request)) else {
            return false;
        };
        let rate = m.rate;
        let target = rate.nonces_in(self.config.target_job_duration);
        let floor = rate
            .nonces_in(self.config.min_job_duration)
            .max(u128::from(self.config.initial_job_nonces));
        let tail = r.unassigned.len().saturating_mul(u128::from(rate.get()))
            / total_rate.saturating_mul(u128::from(self.config.tail_split));
        let Some(range) = r.unassigned.take_front(target.min(tail).max(floor)) else {
            return false;
        };
        let chunk = ChunkId(self.next_chunk);
        self.next_chunk += 1;
        r.chunks.insert(chunk);
        let msg = Arc::clone(&r.msg);
        self.chunks.insert(
            chunk,
            Chunk {
                request,
                range,
                runners: vec![miner],
            },
        );
        self.send(miner, chunk, request, msg, range);
        true
    }

    /// Records that `miner` now holds `chunk` and emits the job.
    fn send(
        &mut self,
        miner: K,
        chunk: ChunkId,
        request: RequestId,
        msg: Arc<str>,
        range: NonceRange,
    ) {
        let now = self.now;
        let Some(m) = self.miners.get_mut(&miner) else {
            return;
        };
        let expected_start = m.expected_start(now);
        m.jobs.push_back(Assignment {
            chunk,
            range,
            sent: now,
            expected_start,
            expected_finish: expected_start + m.rate.time_for(range.len()),
        });
        self.stats.jobs_sent += 1;
        self.effects.push_back(Effect::SendJob {
            miner,
            request,
            msg,
            lower: range.first(),
            upper: range.last(),
        });
    }

    /// `miner` will not answer `chunk`: if no backup runs it, its nonces go back to the
    /// front of their request.
    fn give_back(&mut self, miner: K, chunk: ChunkId) {
        let Some(c) = self.chunks.get_mut(&chunk) else {
            return;
        };
        if let Some(i) = c.runners.iter().position(|r| *r == miner) {
            c.runners.remove(i);
        }
        if !c.runners.is_empty() {
            return;
        }
        let (request, range) = (c.request, c.range);
        self.chunks.remove(&chunk);
        if let Some(r) = self.requests.get_mut(&request) {
            r.chunks.remove(&chunk);
            r.unassigned.push_front(range);
            self.stats.requeued_jobs += 1;
        }
    }

    /// `chunk` was answered with `(hash, nonce)`; answers the request if it was the last.
    fn complete(&mut self, chunk: ChunkId, hash: u64, nonce: u64) {
        let Some(c) = self.chunks.remove(&chunk) else {
            return;
        };
        let Some(r) = self.requests.get_mut(&c.request) else {
            return;
        };
        r.chunks.remove(&chunk);
        r.remaining -= c.range.len();
        r.best = Some(r.best.map_or((hash, nonce), |best| best.min((hash, nonce))));
        if r.remaining > 0 {
            return;
        }
        let Some(done) = self.requests.remove(&c.request) else {
            return;
        };
        if let Some((hash, nonce)) = done.best {
            self.stats.results_sent += 1;
            self.effects.push_back(Effect::SendResult {
                client: done.client,
                request: c.request,
                hash,
                nonce,
            });
        }
        let next = self
            .clients
            .get_mut(&done.client)
            .and_then(|cl| cl.waiting.pop_front().inspect(|w| cl.active = w.id));
        match next {
            Some(w) => self.activate(done.client, w),
            None => {
                self.clients.remove(&done.client);
            }
        }
    }
}
