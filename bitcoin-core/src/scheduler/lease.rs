//! Leases: every job carries a deadline, and a job whose miner has not answered by then is
//! re-issued to another miner at once, slot or no slot, as MapReduce's coordinator re-issues
//! a task after a timeout.
//!
//! A job's lease ends at `sent + lease_factor × (expected answer − sent) + lease_slack`
//! ([`Config::lease_factor`] 3, [`Config::lease_slack`] two LSP epochs): the expected answer
//! time comes from the miner's measured rate and round trip and what it already holds, so
//! a miner answering at a third of its measured speed, plus two epochs of network trouble,
//! is still within its lease. At the lease's end the job is *expired*: its miner is *late*
//! and gets no new job (fresh, backup or re-issued) until it has answered every expired
//! job it holds, and, unless another miner still runs the job within its own lease, the job
//! is re-issued to the miner expected to answer it soonest among those that are not late,
//! do not run it and hold nothing of the same text overlapping it; even above
//! [`Config::jobs_per_miner`]: it is the most urgent work there is. If no miner qualifies,
//! it is re-issued as soon as one does. The first valid answer counts, the late one
//! included; a late answer is verified and measured like any other, and the miner is not
//! punished for it.

use std::collections::BTreeSet;
use std::sync::Arc;

use lsp_core::Timestamp;

use super::backup::backup_takes;
use super::state::{ChunkId, Miner};
use super::Scheduler;

impl<K: Ord + Copy> Scheduler<K> {
    /// Whether `miner` holds a job past its lease (and so gets no new job until it
    /// answers); false if it is not joined.
    pub fn is_late(&self, miner: K) -> bool {
        self.miners.get(&miner).is_some_and(Miner::is_late)
    }

    /// The end of the lease of each job `miner` holds, oldest job first, with whether it
    /// has expired (for introspection and tests); empty if it is not joined.
    pub fn leases(&self, miner: K) -> Vec<(Timestamp, bool)> {
        self.miners.get(&miner).map_or_else(Vec::new, |m| {
            m.jobs.iter().map(|a| (a.lease, a.expired)).collect()
        })
    }

    /// Marks every job whose lease has ended as expired.
    pub(super) fn expire_leases(&mut self) {
        let now = self.now;
        for m in self.miners.values_mut() {
            for a in m.jobs.iter_mut().filter(|a| !a.expired && a.lease <= now) {
                a.expired = true;
                self.stats.expired_leases += 1;
            }
        }
    }

    /// Re-issues every chunk held by a late miner that no miner runs within its lease, to
    /// the best miner for it; a chunk no miner can take waits for the next call. (Recomputed
    /// at every call, so a re-issued copy that is lost in turn is re-issued again.)
    pub(super) fn reissue_expired(&mut self) {
        let expired: BTreeSet<ChunkId> = self
            .miners
            .values()
            .flat_map(|m| m.jobs.iter().filter(|a| a.expired).map(|a| a.chunk))
            .collect();
        for chunk in expired {
            let Some(c) = self.chunks.get(&chunk) else {
                continue;
            };
            let covered = c.runners.iter().any(|r| {
                self.miners
                    .get(r)
                    .and_then(|m| m.jobs.iter().find(|a| a.chunk == chunk))
                    .is_some_and(|a| !a.expired)
            });
            if covered {
                continue;
            }
            let (request, range) = (c.request, c.range);
            let Some((msg, mode)) = self
                .requests
                .get(&request)
                .map(|r| (Arc::clone(&r.msg), r.mode))
            else {
                continue;
            };
            // The late miner it goes away from: the first runner whose lease ended.
            let from = c.runners.iter().copied().find(|r| {
                self.miners
                    .get(r)
                    .and_then(|m| m.jobs.iter().find(|a| a.chunk == chunk))
                    .is_some_and(|a| a.expired)
            });
            let now = self.now;
            let target = self
                .miners
                .iter()
                .filter(|(k, m)| {
                    !m.is_late()
                        && m.can_run(mode)
                        && !c.runners.contains(k)
                        && !m.conflicts(&msg, range)
                })
                .map(|(k, m)| (backup_takes(m, range.len(), now), *k))
                .min()
                .map(|(_, k)| k);
            let Some(target) = target else {
                continue;
            };
            if let Some(c) = self.chunks.get_mut(&chunk) {
                c.runners.push(target);
            }
            self.stats.reissued_jobs += 1;
            if let Some(from) = from {
                let bounds = (range.first(), range.last());
                self.accounting
                    .reissued(self.now, request, from, target, bounds);
            }
            self.send(target, chunk, request, msg, range);
        }
    }

    /// The end of the earliest lease not yet expired, if any.
    pub(super) fn next_lease_end(&self) -> Option<Timestamp> {
        self.miners
            .values()
            .flat_map(|m| m.jobs.iter())
            .filter(|a| !a.expired)
            .map(|a| a.lease)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lsp_core::Timestamp;

    use super::super::{Config, Effect, Scheduler};
    use crate::accounting::PoolEventKind;
    use crate::hash::hash;

    fn ms(t: u64) -> Timestamp {
        Timestamp::from_millis(t)
    }

    fn jobs(s: &mut Scheduler<u32>) -> Vec<(u32, u64, u64)> {
        std::iter::from_fn(|| s.poll_effect())
            .filter_map(|e| match e {
                Effect::SendJob {
                    miner,
                    lower,
                    upper,
                    ..
                } => Some((miner, lower, upper)),
                Effect::Disconnect { miner, reason } => panic!("{miner} disconnected: {reason}"),
                _ => None,
            })
            .collect()
    }

    fn truth(lower: u64, upper: u64) -> (u64, u64) {
        (lower..=upper)
            .map(|n| (hash("lease", n), n))
            .min()
            .unwrap()
    }

    /// Two miners of one slot and a large request; miner 1 stays silent, miner 2 answers
    /// every 40 ms until 200 ms. Returns the silent job and the one miner 2 then holds.
    fn setup() -> (Scheduler<u32>, (u64, u64), (u64, u64)) {
        let config = Config {
            jobs_per_miner: 1,
            backup_jobs: false,
            lease_slack: Duration::from_millis(100),
            ..Config::default()
        };
        let mut s = Scheduler::new(config).unwrap();
        s.handle_miner_joined(ms(0), 1);
        s.handle_miner_joined(ms(0), 2);
        s.handle_request(ms(0), 10, "lease", 0, 199_999).unwrap();
        let sent = jobs(&mut s);
        assert_eq!(sent.len(), 2);
        // 3 x the expected 50 ms (the starting estimate), plus the slack.
        assert_eq!(s.leases(1), [(ms(250), false)]);
        let mut busy = (sent[1].1, sent[1].2);
        for now in [40, 80, 120, 160, 200] {
            let (h, n) = truth(busy.0, busy.1);
            s.handle_result(ms(now), 2, h, n, None);
            let [(2, lower, upper)] = jobs(&mut s)[..] else {
                panic!("one job for miner 2");
            };
            busy = (lower, upper);
        }
        (s, (sent[0].1, sent[0].2), busy)
    }

    #[test]
    fn a_silent_miner_s_job_is_re_issued_at_its_lease_even_without_a_free_slot() {
        let (mut s, silent, busy) = setup();
        let lease = ms(250);
        let mut now = 200;
        assert_eq!(s.poll_timeout(), Some(lease));
        s.handle_timeout(lease);
        assert_eq!(
            jobs(&mut s),
            [(2, silent.0, silent.1)],
            "re-issued above the slot limit"
        );
        assert_eq!(s.jobs_held(2), Some(2));
        assert!(s.is_late(1));
        assert_eq!((s.stats().expired_leases, s.stats().reissued_jobs), (1, 1));
        let reissued: Vec<_> = std::iter::from_fn(|| s.poll_event())
            .filter_map(|e| match e.kind {
                PoolEventKind::JobReissued {
                    from, to, lower, ..
                } => Some((e.at, from, to, lower)),
                _ => None,
            })
            .collect();
        assert_eq!(reissued, [(lease, 1, 2, silent.0)]);
        let pool = s.pool(lease);
        let late = pool.miners.iter().find(|m| m.miner == 1).expect("joined");
        assert_eq!((late.totals.reissued_away, late.late), (1, true));
        assert_eq!(pool.totals.jobs_reissued, 1);
        // Miner 2 finishes everything; the late miner gets nothing more.
        let mut held = vec![busy, silent];
        let mut answer = None;
        while let Some((lower, upper)) = held.pop() {
            now += 40;
            let (h, n) = truth(lower, upper);
            s.handle_result(ms(now), 2, h, n, None);
            for e in std::iter::from_fn(|| s.poll_effect()) {
                match e {
                    Effect::SendJob {
                        miner: 2,
                        lower,
                        upper,
                        ..
                    } => held.push((lower, upper)),
                    Effect::SendResult { hash, nonce, .. } => answer = Some((hash, nonce)),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(answer, Some(truth(0, 199_999)));
        assert_eq!(s.jobs_held(1), Some(1), "the late miner got nothing more");
    }

    #[test]
    fn a_late_answer_that_comes_first_counts_and_is_not_punished() {
        let (mut s, silent, busy) = setup();
        s.handle_timeout(ms(250));
        assert_eq!(jobs(&mut s), [(2, silent.0, silent.1)]);
        // The late miner answers before the copy: it counts, the miner is free again.
        let (h, n) = truth(silent.0, silent.1);
        s.handle_result(ms(260), 1, h, n, None);
        assert!(!s.is_late(1));
        let next = jobs(&mut s);
        assert!(matches!(next[..], [(1, _, _)]), "{next:?}");
        // The copy's answer is stale.
        for range in [busy, silent] {
            let (h, n) = truth(range.0, range.1);
            s.handle_result(ms(270), 2, h, n, None);
        }
        assert_eq!(s.stats().stale_results, 1);
        assert_eq!(s.stats().miners_disconnected, 0);
    }
}
