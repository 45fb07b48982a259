//! Backup jobs: when nothing is left to hand out, idle miners duplicate jobs that would
//! otherwise finish late, and the first answer counts.

use std::cmp::Reverse;
use std::time::Duration;

use lsp_core::Timestamp;

use super::state::{Assignment, ChunkId, Miner};
use super::Scheduler;

/// A job that could be backed up: its chunk, and the only miner running it.
struct Candidate<K> {
    chunk: ChunkId,
    runner: K,
    original: Assignment,
}

/// How long the original is expected to still take at `now`. A job not yet due has its
/// expected time left; a late job is expected to need as long again as it has already run,
/// so the longer it is late the more a backup is worth.
fn original_left(a: &Assignment, now: Timestamp) -> Duration {
    if now < a.expected_finish {
        a.expected_finish.saturating_duration_since(now)
    } else {
        now.saturating_duration_since(a.expected_start)
    }
}

/// How long `m` would take to answer a backup of `nonces` sent at `now`, after what it holds.
fn backup_takes(m: &Miner, nonces: u128, now: Timestamp) -> Duration {
    m.free_at(now).saturating_duration_since(now) + m.rate.time_for(nonces)
}

/// Whether a backup taking `backup` is worth it against an original with `original` left:
/// it must be expected to answer clearly sooner (the original takes more than 1.5× longer).
fn worth_it(original: Duration, backup: Duration) -> bool {
    2 * original.as_micros() > 3 * backup.as_micros()
}

impl<K: Ord + Copy> Scheduler<K> {
    /// Jobs running on exactly one miner, with that miner's assignment.
    fn candidates(&self) -> impl Iterator<Item = Candidate<K>> + '_ {
        self.chunks.iter().filter_map(|(id, c)| {
            let [runner] = c.runners[..] else {
                return None;
            };
            let original = *self
                .miners
                .get(&runner)?
                .jobs
                .iter()
                .find(|a| a.chunk == *id)?;
            Some(Candidate {
                chunk: *id,
                runner,
                original,
            })
        })
    }

    /// Sends backups while one is worth it. Only called when no request has nonces to
    /// hand out, or no miner is free.
    pub(super) fn dispatch_backups(&mut self) {
        while let Some((miner, chunk)) = self.best_backup() {
            let Some(c) = self.chunks.get_mut(&chunk) else {
                return;
            };
            c.runners.push(miner);
            let (request, range) = (c.request, c.range);
            let Some(msg) = self.requests.get(&request).map(|r| r.msg.clone()) else {
                return;
            };
            self.stats.backup_jobs += 1;
            self.send(miner, chunk, request, msg, range);
        }
    }

    /// The most useful backup: the most urgent request's job expected to finish last,
    /// on the free miner that would answer it soonest; `None` if none is worth it.
    fn best_backup(&self) -> Option<(K, ChunkId)> {
        let now = self.now;
        let total = self.total_rate();
        let free: Vec<(&K, &Miner)> = self.free_miners().collect();
        if free.is_empty() {
            return None;
        }
        self.candidates()
            .filter_map(|c| {
                let chunk = self.chunks.get(&c.chunk)?;
                let request = self.requests.get(&chunk.request)?;
                let left = original_left(&c.original, now);
                let (takes, miner) = free
                    .iter()
                    .filter(|(k, _)| **k != c.runner)
                    .map(|(k, m)| (backup_takes(m, chunk.range.len(), now), **k))
                    .min()?;
                worth_it(left, takes).then(|| {
                    let key = (self.priority(request, total), Reverse(left), takes, c.chunk);
                    (key, miner, c.chunk)
                })
            })
            .min_by_key(|(key, _, _)| *key)
            .map(|(_, miner, chunk)| (miner, chunk))
    }

    /// The earliest time at which some backup becomes worth it if nothing else happens,
    /// or `None` if none ever can (backups disabled, no free miner, or nothing running).
    pub(super) fn next_backup_check(&self) -> Option<Timestamp> {
        if !self.config.backup_jobs {
            return None;
        }
        let now = self.now;
        let free: Vec<(&K, &Miner)> = self.free_miners().collect();
        if free.is_empty() || self.requests.values().any(|r| !r.unassigned.is_empty()) {
            return None;
        }
        let due = self
            .candidates()
            .flat_map(|c| {
                free.iter()
                    .filter(move |(k, _)| **k != c.runner)
                    .map(move |(_, m)| {
                        // Once `t` is past both the original's expected finish and the moment
                        // `m` is free, the original has `t - start` left and the backup takes
                        // `d`; it becomes worth it when `2 (t - start) > 3 d`.
                        let d = m.rate.time_for(c.original.range.len());
                        let d_micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                        let late_enough =
                            c.original
                                .expected_start
                                .saturating_add(Duration::from_micros(
                                    d_micros.saturating_mul(3) / 2 + 1,
                                ));
                        late_enough
                            .max(c.original.expected_finish)
                            .max(m.free_at(now))
                    })
            })
            .min()?;
        Some(due.max(now + Duration::from_micros(1)))
    }
}
