//! Backup jobs: a miner with a free slot duplicates a job that would otherwise finish late
//! (it runs on a slow or stalled miner) when the job's request is more urgent than any
//! request with nonces left to hand out. The first answer counts.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use lsp_core::Timestamp;

use super::state::{Assignment, ChunkId, Miner};
use super::{Priority, Scheduler};

/// A job that could be backed up: its chunk, the only miner running it, the priority of
/// its request, and how many nonces its request may still spend on backups of jobs that
/// are not late.
struct Candidate<K> {
    chunk: ChunkId,
    runner: K,
    original: Assignment,
    priority: Priority,
    budget: u128,
}

/// When `a` counts as late: `grace` after its expected answer, so that the error of the
/// estimates (an unmeasured round trip, say) does not make a tiny job late at once.
fn late_from(a: &Assignment, grace: Duration) -> Timestamp {
    a.expected_finish + grace
}

/// How long the original is expected to still take at `now`. A job not yet late has its
/// expected time left (none in its grace period); a late job is expected to need as long
/// again as it has already run, so the longer it is late the more a backup is worth.
fn original_left(a: &Assignment, now: Timestamp, grace: Duration) -> Duration {
    if now < late_from(a, grace) {
        a.expected_finish.saturating_duration_since(now)
    } else {
        now.saturating_duration_since(a.expected_start)
    }
}

/// How long `m` would take to answer a backup of `nonces` sent at `now`: a round trip or
/// what it holds, whichever is longer, and the computing.
pub(super) fn backup_takes(m: &Miner, nonces: u128, now: Timestamp) -> Duration {
    m.expected_start(now).saturating_duration_since(now) + m.rate.time_for(nonces)
}

/// Whether a backup taking `backup` is worth it against an original with `original` left:
/// it must be expected to answer clearly sooner (the original takes more than 1.5× longer).
fn worth_it(original: Duration, backup: Duration) -> bool {
    2 * original.as_micros() > 3 * backup.as_micros()
}

impl<K: Ord + Copy> Scheduler<K> {
    /// Jobs running on exactly one miner, for requests more urgent than `limit` (all
    /// requests if `None`).
    fn candidates(&self, limit: Option<Priority>) -> Vec<Candidate<K>> {
        let total = self.total_rate();
        self.chunks
            .iter()
            .filter_map(|(id, c)| {
                let [runner] = c.runners[..] else {
                    return None;
                };
                let request = self.requests.get(&c.request)?;
                let priority = self.priority(c.request, request, total);
                if limit.is_some_and(|limit| priority >= limit) {
                    return None;
                }
                let original = self
                    .miners
                    .get(&runner)?
                    .jobs
                    .iter()
                    .find(|a| a.chunk == *id)?
                    .clone();
                let allowed = request.size * u128::from(self.config.backup_budget_percent) / 100;
                Some(Candidate {
                    chunk: *id,
                    runner,
                    original,
                    priority,
                    budget: allowed.saturating_sub(request.speculative),
                })
            })
            .collect()
    }

    /// Sends a backup of `chunk` to `miner`; false (and nothing done) if either is unknown.
    pub(super) fn assign_backup(&mut self, miner: K, chunk: ChunkId) -> bool {
        let Some(c) = self.chunks.get(&chunk) else {
            return false;
        };
        let (request, range) = (c.request, c.range);
        let Some(msg) = self.requests.get(&request).map(|r| Arc::clone(&r.msg)) else {
            return false;
        };
        if !self.miners.contains_key(&miner) {
            return false;
        }
        if let Some(c) = self.chunks.get_mut(&chunk) {
            c.runners.push(miner);
        }
        let late = self
            .chunks
            .get(&chunk)
            .and_then(|c| c.runners.first())
            .and_then(|runner| self.miners.get(runner))
            .and_then(|m| m.jobs.iter().find(|a| a.chunk == chunk))
            .is_some_and(|a| self.now >= late_from(a, self.config.min_job_duration));
        if !late {
            if let Some(r) = self.requests.get_mut(&request) {
                r.speculative += range.len();
            }
        }
        self.stats.backup_jobs += 1;
        self.send(miner, chunk, request, msg, range);
        true
    }

    /// The most useful backup for a request more urgent than `limit`: the most urgent
    /// request's job expected to finish last, on the free miner that would answer it
    /// soonest; `None` if none is worth it.
    pub(super) fn best_backup(&self, limit: Option<Priority>) -> Option<(K, ChunkId)> {
        let now = self.now;
        let free: Vec<(&K, &Miner)> = self.free_miners().collect();
        if free.is_empty() {
            return None;
        }
        self.candidates(limit)
            .into_iter()
            .filter_map(|c| {
                let grace = self.config.min_job_duration;
                let late = now >= late_from(&c.original, grace);
                if !late && c.original.range.len() > c.budget {
                    return None;
                }
                let left = original_left(&c.original, now, grace);
                let (takes, miner) = free
                    .iter()
                    .filter(|(k, m)| {
                        **k != c.runner
                            && m.can_run(c.original.mode)
                            && !m.conflicts(&c.original.msg, c.original.range)
                    })
                    .map(|(k, m)| (backup_takes(m, c.original.range.len(), now), **k))
                    .min()?;
                worth_it(left, takes).then_some((
                    (c.priority, Reverse(left), takes),
                    miner,
                    c.chunk,
                ))
            })
            .min_by_key(|(key, _, _)| *key)
            .map(|(_, miner, chunk)| (miner, chunk))
    }

    /// The earliest time at which some backup becomes worth it if nothing else happens,
    /// or `None` if none can (backups disabled, no free miner, or no job to back up).
    pub(super) fn next_backup_check(&self) -> Option<Timestamp> {
        if !self.config.backup_jobs {
            return None;
        }
        let now = self.now;
        let grace = self.config.min_job_duration;
        let free: Vec<(&K, &Miner)> = self.free_miners().collect();
        if free.is_empty() {
            return None;
        }
        let limit = self
            .top_request(self.total_rate(), |_| true)
            .map(|(_, p)| p);
        let due = self
            .candidates(limit)
            .into_iter()
            .flat_map(|c| {
                let Candidate {
                    runner, original, ..
                } = c;
                let (msg, range) = (Arc::clone(&original.msg), original.range);
                free.iter()
                    .filter(move |(k, m)| **k != runner && !m.conflicts(&msg, range))
                    .map(move |(_, m)| {
                        // From `t = free_at - round trip` on, a backup sent at `t` takes
                        // `d = round trip + computing`; once `t` is also past the original's
                        // expected finish, the original has `t - start` left. The backup
                        // becomes worth it when `2 (t - start) > 3 d`.
                        let round_trip = m.round_trip.get();
                        let d = round_trip + m.rate.time_for(original.range.len());
                        let d_micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                        let late_enough =
                            original
                                .expected_start
                                .saturating_add(Duration::from_micros(
                                    d_micros.saturating_mul(3) / 2 + 1,
                                ));
                        let steady =
                            Timestamp::from_micros(m.free_at(now).as_micros().saturating_sub(
                                u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX),
                            ));
                        late_enough.max(late_from(&original, grace)).max(steady)
                    })
            })
            .min()?;
        Some(due.max(now + Duration::from_micros(1)))
    }
}
