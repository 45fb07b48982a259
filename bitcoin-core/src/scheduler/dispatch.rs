//! Handing out work: filling every free miner slot with a backup or a fresh job of the most
//! urgent request, in the serving order of the [module documentation](super), cutting and
//! sending jobs, and giving a job's nonces back when its miner will not answer it.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use super::range::NonceRange;
use super::state::{Assignment, Chunk, ChunkId, Miner, Request};
use super::{Effect, Order, Priority, RequestId, Scheduler};
use crate::message::{Cap, Mode};

/// What became of an attempt to hand out new work.
enum Fresh {
    /// A job was sent.
    Sent,
    /// The miner holds a job its new one would be ambiguous with; try another miner.
    Conflict,
    /// Nothing to hand out.
    Nothing,
}

impl<K: Ord + Copy> Scheduler<K> {
    /// Fills every free miner slot, then re-arms the timer. Each slot gets a backup job if
    /// one is worth it for a request more urgent than every request with nonces to hand
    /// out, and otherwise new work from the most urgent such request.
    pub(super) fn dispatch(&mut self) {
        // Miners that can take no fresh work now, and (miner, request) pairs where the cut
        // would be ambiguous with a job the miner holds.
        self.expire_leases();
        self.reissue_expired();
        let mut blocked = Vec::new();
        let mut conflicts = Vec::new();
        while let Some(miner) = self.free_miner(&blocked) {
            let total = self.total_rate();
            let top = self.top_request(total, |_| true);
            if self.config.backup_jobs {
                if let Some((backup_miner, chunk)) = self.best_backup(top.map(|(_, p)| p)) {
                    if self.assign_backup(backup_miner, chunk) {
                        continue;
                    }
                }
            }
            if top.is_none() {
                break;
            }
            let Some((request, _)) = self.top_request(total, |id| {
                !conflicts.contains(&(miner, id)) && self.capable(miner, id)
            }) else {
                blocked.push(miner);
                continue;
            };
            match self.assign_fresh(miner, request, total) {
                Fresh::Sent => {}
                Fresh::Conflict => conflicts.push((miner, request)),
                Fresh::Nothing => break,
            }
        }
        self.timeout = match (self.next_backup_check(), self.next_lease_end()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The sum of the miners' rates, at least 1.
    pub(super) fn total_rate(&self) -> u128 {
        self.miners
            .values()
            .map(|m| u128::from(m.rate.get()))
            .sum::<u128>()
            .max(1)
    }

    /// Miners that may take another job, in the order they should get one: the least
    /// loaded first, then the fastest, then by key.
    pub(super) fn free_miners(&self) -> impl Iterator<Item = (&K, &Miner)> {
        let depth = self.config.jobs_per_miner;
        self.miners
            .iter()
            .filter(move |(_, m)| m.jobs.len() < depth && !m.is_late())
    }

    /// The miner that should get the next job, leaving out `blocked`.
    fn free_miner(&self, blocked: &[K]) -> Option<K> {
        self.free_miners()
            .filter(|(k, _)| !blocked.contains(k))
            .min_by_key(|(_, m)| (m.jobs.len(), Reverse(m.rate)))
            .map(|(k, _)| *k)
    }

    /// Where request `id` stands in the serving order (see [`Order`]).
    pub(super) fn priority(&self, id: RequestId, r: &Request<K>, total_rate: u128) -> Priority {
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

    /// The most urgent request with nonces to hand out among those `eligible`, and its
    /// priority.
    pub(crate) fn top_request(
        &self,
        total_rate: u128,
        eligible: impl Fn(RequestId) -> bool,
    ) -> Option<(RequestId, Priority)> {
        self.requests
            .iter()
            .filter(|(id, r)| !r.unassigned.is_empty() && eligible(**id))
            .map(|(id, r)| (*id, self.priority(*id, r, total_rate)))
            .min_by_key(|(_, p)| *p)
    }

    /// Cuts a job from the front of `request`, sized for `miner`, and sends it.
    /// [`Fresh::Nothing`] (and nothing done) if the miner or the request is unknown or has
    /// nothing left; [`Fresh::Conflict`] (and nothing done) if the miner holds a job of the
    /// same text overlapping the cut.
    fn assign_fresh(&mut self, miner: K, request: RequestId, total_rate: u128) -> Fresh {
        let (Some(m), Some(r)) = (self.miners.get(&miner), self.requests.get_mut(&request)) else {
            return Fresh::Nothing;
        };
        let rate = m.rate;
        let target = rate.nonces_in(self.config.target_job_duration);
        let floor = rate
            .nonces_in(self.config.min_job_duration)
            .max(u128::from(self.config.initial_job_nonces));
        let tail = r.unassigned.len().saturating_mul(u128::from(rate.get()))
            / total_rate.saturating_mul(u128::from(self.config.tail_split));
        let Some(range) = r.unassigned.take_front(target.min(tail).max(floor)) else {
            return Fresh::Nothing;
        };
        if m.conflicts(&r.msg, range) {
            r.unassigned.push_front(range);
            return Fresh::Conflict;
        }
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
        Fresh::Sent
    }

    /// Records that `miner` now holds `chunk` and emits the job.
    pub(super) fn send(
        &mut self,
        miner: K,
        chunk: ChunkId,
        request: RequestId,
        msg: Arc<str>,
        range: NonceRange,
    ) {
        let now = self.now;
        let mode = self
            .requests
            .get(&request)
            .map_or(Mode::Minimum, |r| r.mode);
        let job = self.next_job;
        let Some(m) = self.miners.get_mut(&miner) else {
            return;
        };
        self.next_job += 1;
        let expected_start = m.expected_start(now);
        let expected_finish = expected_start + m.rate.time_for(range.len());
        let lease = now.saturating_add(
            expected_finish
                .saturating_duration_since(now)
                .checked_mul(self.config.lease_factor)
                .unwrap_or(Duration::MAX)
                .saturating_add(self.config.lease_slack),
        );
        m.jobs.push_back(Assignment {
            chunk,
            msg: Arc::clone(&msg),
            range,
            sent: now,
            expected_start,
            expected_finish,
            lease,
            expired: false,
            mode,
            job,
        });
        self.stats.jobs_sent += 1;
        self.effects.push_back(Effect::SendJob {
            miner,
            request,
            msg,
            lower: range.first(),
            upper: range.last(),
            mode,
            job: m.caps.has(Cap::Cancel).then_some(job),
        });
    }

    /// `miner` will not answer `chunk`: if no backup runs it, its nonces go back to the
    /// front of their request.
    pub(super) fn give_back(&mut self, miner: K, chunk: ChunkId) {
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
}
