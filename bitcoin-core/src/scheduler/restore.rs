//! Hooks for a replicated coordinator (`crate::replica`): report each answered chunk so it
//! can go to the log, and restore a request with nonces already covered and its best
//! answer so far, as a new leader rebuilds its scheduler from the replicated state.

use std::collections::VecDeque;
use std::sync::Arc;

use lsp_core::Timestamp;

use super::range::{NonceRange, RangeQueue};
use super::{RequestError, RequestId, Scheduler};
use crate::message::Mode;

/// A chunk of a request answered by a verified result: its client, its nonces and their
/// least `(hash, nonce)`. Read with [`Scheduler::poll_covered`] once
/// [`Scheduler::report_coverage`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Covered<K> {
    /// The request's client.
    pub client: K,
    /// First nonce of the chunk.
    pub lower: u64,
    /// Last nonce of the chunk (inclusive).
    pub upper: u64,
    /// The least hash over the chunk.
    pub hash: u64,
    /// Its nonce.
    pub nonce: u64,
}

impl<K> Covered<K> {
    pub(super) fn new(client: K, range: NonceRange, hash: u64, nonce: u64) -> Self {
        Covered {
            client,
            lower: range.first(),
            upper: range.last(),
            hash,
            nonce,
        }
    }
}

impl<K: Ord + Copy> Scheduler<K> {
    /// From now on, every chunk answered for a request still pending is queued for
    /// [`Scheduler::poll_covered`]. The driver must drain that queue after every call.
    pub fn report_coverage(&mut self) {
        self.covered.get_or_insert_with(VecDeque::new);
    }

    /// The next answered chunk, oldest first (see [`Scheduler::report_coverage`]).
    #[must_use]
    pub fn poll_covered(&mut self) -> Option<Covered<K>> {
        self.covered.as_mut()?.pop_front()
    }

    /// Like [`Scheduler::handle_request`], for a request some of whose nonces were already
    /// searched: only `gaps` (ascending, disjoint, inside `lower..=upper`, at least one) are
    /// handed out, and `best` is the least answer over the rest. `client` must have no
    /// request ([`RequestError::ClientFull`] with limit 1 otherwise). Gaps that break those
    /// rules are ignored and the whole range is searched again, which is slower but never
    /// wrong.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_request(
        &mut self,
        now: Timestamp,
        client: K,
        msg: impl Into<Arc<str>>,
        lower: u64,
        upper: u64,
        gaps: &[(u64, u64)],
        best: Option<(u64, u64)>,
    ) -> Result<RequestId, RequestError> {
        if self.requests_of(client) > 0 {
            return Err(RequestError::ClientFull { limit: 1 });
        }
        self.advance(now);
        let id = self.request(client, msg.into(), lower, upper, Mode::Minimum)?;
        if let (Some(r), Some(ranges)) = (self.requests.get_mut(&id), valid(gaps, lower, upper)) {
            r.unassigned = RangeQueue::from_ranges(ranges);
            r.remaining = r.unassigned.len();
            r.best = best;
        }
        self.dispatch();
        Ok(id)
    }
}

/// `gaps` as ranges if they are non-empty, ascending, disjoint and inside the request.
fn valid(gaps: &[(u64, u64)], lower: u64, upper: u64) -> Option<Vec<NonceRange>> {
    let mut ranges = Vec::with_capacity(gaps.len());
    let mut floor = Some(lower);
    for &(first, last) in gaps {
        if floor.is_none_or(|f| first < f) || last > upper {
            return None;
        }
        ranges.push(NonceRange::new(first, last)?);
        floor = last.checked_add(1);
    }
    (!ranges.is_empty()).then_some(ranges)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Effect};
    use super::*;
    use crate::hash::hash;

    fn scan(msg: &str, lower: u64, upper: u64) -> (u64, u64) {
        (lower..=upper).map(|n| (hash(msg, n), n)).min().unwrap()
    }

    #[test]
    fn a_restored_request_searches_only_its_gaps_and_answers_the_true_minimum() {
        let mut s = Scheduler::<u32>::new(Config::default()).unwrap();
        s.report_coverage();
        s.handle_miner_joined(Timestamp::ZERO, 1);
        let covered = scan("r", 100, 4_999);
        let gaps = [(0, 99), (5_000, 9_999)];
        s.restore_request(Timestamp::ZERO, 7, "r", 0, 9_999, &gaps, Some(covered))
            .unwrap();
        let mut searched = Vec::new();
        let mut answer = None;
        let mut t = 0;
        while answer.is_none() && t < 1_000 {
            t += 1;
            while let Some(effect) = s.poll_effect() {
                match effect {
                    Effect::SendJob {
                        msg, lower, upper, ..
                    } => {
                        searched.push((lower, upper));
                        let (h, n) = scan(&msg, lower, upper);
                        s.handle_result(Timestamp::from_millis(t), 1, h, n, None);
                    }
                    Effect::SendResult { hash, nonce, .. } => answer = Some((hash, nonce)),
                    Effect::Disconnect { .. } => panic!("an honest miner was dropped"),
                    other => panic!("unexpected in minimum mode: {other:?}"),
                }
            }
        }
        assert_eq!(answer, Some(scan("r", 0, 9_999)));
        assert!(
            searched.iter().all(|&(a, b)| b < 100 || a >= 5_000),
            "{searched:?}"
        );
        let reported: u64 = std::iter::from_fn(|| s.poll_covered())
            .map(|c| c.upper - c.lower + 1)
            .sum();
        assert_eq!(reported, 100 + 5_000, "every answered chunk is reported");
        // A client with a request cannot restore another; bad gaps mean the whole range.
        s.handle_request(Timestamp::from_millis(t), 8, "x", 0, 10)
            .unwrap();
        assert!(s
            .restore_request(Timestamp::from_millis(t), 8, "y", 0, 10, &gaps, None)
            .is_err());
        assert_eq!(valid(&[(5, 9), (0, 3)], 0, 10), None);
        assert_eq!(valid(&[(0, 11)], 0, 10), None);
        assert_eq!(valid(&[], 0, 10), None);
        assert!(valid(&[(0, 3), (5, 10)], 0, 10).is_some());
    }
}
