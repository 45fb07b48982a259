//! Hooks for a replicated coordinator (`crate::replica`): report each answered chunk so it
//! can go to the log, and restore a request with nonces already covered and its best
//! answer so far, as a new leader rebuilds its scheduler from the replicated state.
//! Both modes: a target chunk is reported with its first hit or none, and a restored
//! target request searches nothing above its known hit.

use std::collections::VecDeque;
use std::sync::Arc;

use lsp_core::Timestamp;

use super::range::{NonceRange, RangeQueue};
use super::{RequestError, RequestId, Scheduler};
use crate::message::Mode;

/// A chunk of a request answered by a verified result: its client, its nonces and what
/// they hold ([`Covers`]). Read with [`Scheduler::poll_covered`] once
/// [`Scheduler::report_coverage`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Covered<K> {
    /// The request's client.
    pub client: K,
    /// First nonce of the chunk.
    pub lower: u64,
    /// Last nonce of the chunk (inclusive).
    pub upper: u64,
    /// The least hash over the chunk; in target mode, the first hit's hash (0 for none).
    pub hash: u64,
    /// Its nonce (0 for a target chunk without a hit).
    pub nonce: u64,
    /// What `hash` and `nonce` say about the chunk.
    pub covers: Covers,
}

/// What a [`Covered`] chunk's `hash` and `nonce` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Covers {
    /// Minimum mode: the least `(hash, nonce)` of the whole chunk.
    Least,
    /// Target mode: `nonce` is the chunk's smallest qualifying nonce. The nonces above it
    /// were not searched.
    FirstHit,
    /// Target mode: no nonce of the chunk qualifies.
    NoHit,
}

impl<K> Covered<K> {
    pub(super) fn new(client: K, range: NonceRange, hash: u64, nonce: u64) -> Self {
        Covered {
            client,
            lower: range.first(),
            upper: range.last(),
            hash,
            nonce,
            covers: Covers::Least,
        }
    }

    /// A target chunk's report: its first hit, or none.
    pub(super) fn target(client: K, range: NonceRange, hit: Option<(u64, u64)>) -> Self {
        let (hash, nonce) = hit.unwrap_or((0, 0));
        Covered {
            client,
            lower: range.first(),
            upper: range.last(),
            hash,
            nonce,
            covers: if hit.is_some() {
                Covers::FirstHit
            } else {
                Covers::NoHit
            },
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

    /// Like [`Scheduler::handle_request_in`], for a request some of whose nonces were
    /// already searched: only `gaps` (ascending, disjoint, inside `lower..=upper`, at least
    /// one) are handed out, and `best` is the best answer over the rest (in target mode, the
    /// verified hit with the smallest nonce). `client` must have no request
    /// ([`RequestError::ClientFull`] with limit 1 otherwise). Gaps that break those rules
    /// are ignored and the whole range is searched again, which is slower but never wrong.
    ///
    /// In target mode nothing above `best`'s nonce is handed out, and the request is
    /// answered at once with `best` if no gap lies below it.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_request(
        &mut self,
        now: Timestamp,
        client: K,
        msg: impl Into<Arc<str>>,
        lower: u64,
        upper: u64,
        mode: Mode,
        gaps: &[(u64, u64)],
        best: Option<(u64, u64)>,
    ) -> Result<RequestId, RequestError> {
        if self.requests_of(client) > 0 {
            return Err(RequestError::ClientFull { limit: 1 });
        }
        self.advance(now);
        let id = self.request(client, msg.into(), lower, upper, mode)?;
        if let Some(r) = self.requests.get_mut(&id) {
            if let Some(ranges) = valid(gaps, lower, upper) {
                r.unassigned = RangeQueue::from_ranges(ranges);
                r.best = best;
            }
            // The hit itself is searched: only what lies below it may hold a smaller one.
            match r
                .best
                .filter(|_| mode.is_target())
                .map(|(_, n)| n.checked_sub(1))
            {
                Some(Some(below)) => r.unassigned.truncate_above(below),
                Some(None) => r.unassigned = RangeQueue::default(),
                None => {}
            }
            r.remaining = r.unassigned.len();
            if r.remaining == 0 {
                self.answer(id);
            }
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
        s.restore_request(
            Timestamp::ZERO,
            7,
            "r",
            0,
            9_999,
            Mode::Minimum,
            &gaps,
            Some(covered),
        )
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
            .restore_request(
                Timestamp::from_millis(t),
                8,
                "y",
                0,
                10,
                Mode::Minimum,
                &gaps,
                None
            )
            .is_err());
        assert_eq!(valid(&[(5, 9), (0, 3)], 0, 10), None);
        assert_eq!(valid(&[(0, 11)], 0, 10), None);
        assert_eq!(valid(&[], 0, 10), None);
        assert!(valid(&[(0, 3), (5, 10)], 0, 10).is_some());
    }

    /// The ranges handed out, the chunks reported, and the answer (`None`: not found).
    type Run = (
        Vec<(u64, u64)>,
        Vec<Covered<u32>>,
        Option<Option<(u64, u64)>>,
    );

    /// Answers every job truly with a target-capable miner until the request is answered:
    /// the ranges handed out, the chunks reported, and the answer (`None`: not found).
    fn run_target(s: &mut Scheduler<u32>, zeros: crate::hash::Zeros) -> Run {
        let mut searched = Vec::new();
        let mut answer = None;
        let mut t = 0;
        while answer.is_none() && t < 1_000 {
            t += 1;
            let now = Timestamp::from_millis(t);
            while let Some(effect) = s.poll_effect() {
                match effect {
                    Effect::SendJob {
                        msg, lower, upper, ..
                    } => {
                        searched.push((lower, upper));
                        let hit = (lower..=upper)
                            .map(|n| (hash(&*msg, n), n))
                            .find(|&(h, _)| zeros.accepts(h));
                        match hit {
                            Some((h, n)) => s.handle_result(now, 1, h, n, Some((lower, upper))),
                            None => s.handle_not_found(now, 1, Some((lower, upper))),
                        }
                    }
                    Effect::SendResult { hash, nonce, .. } => answer = Some(Some((hash, nonce))),
                    Effect::SendNotFound { .. } => answer = Some(None),
                    other => panic!("unexpected: {other:?}"),
                }
            }
        }
        (
            searched,
            std::iter::from_fn(|| s.poll_covered()).collect(),
            answer,
        )
    }

    #[test]
    fn a_restored_target_request_searches_nothing_above_its_known_hit() {
        use crate::hash::Zeros;
        use crate::message::{Cap, Caps};
        let zeros = Zeros::new(8).unwrap();
        let target = Mode::Target {
            zeros,
            algo: crate::hash::Algo::Sha256,
        };
        let hits: Vec<u64> = (0..=99_999)
            .filter(|&n| zeros.accepts(hash("t", n)))
            .take(3)
            .collect();
        assert_eq!(hits.len(), 3, "8 zero bits are common enough");
        // The log knows a later hit (the third) and that nothing from there up to it
        // needs searching; everything below it is a gap.
        let known = (hash("t", hits[2]), hits[2]);
        let mut s = Scheduler::<u32>::new(Config::default()).unwrap();
        s.report_coverage();
        s.handle_miner_joined_with(Timestamp::ZERO, 1, Caps::NONE.with(Cap::Target));
        let gaps = [(0, hits[2] - 1), (hits[2] + 1, 99_999)];
        s.restore_request(
            Timestamp::ZERO,
            7,
            "t",
            0,
            99_999,
            target,
            &gaps,
            Some(known),
        )
        .unwrap();
        let (searched, covered, answer) = run_target(&mut s, zeros);
        assert_eq!(answer, Some(Some((hash("t", hits[0]), hits[0]))));
        assert!(
            searched.iter().all(|&(_, upper)| upper < hits[2]),
            "{searched:?}"
        );
        // Target chunks are reported with their first hit or none.
        assert!(!covered.is_empty());
        for c in &covered {
            match c.covers {
                Covers::FirstHit => {
                    assert!(zeros.accepts(c.hash) && c.lower <= c.nonce && c.nonce <= c.upper)
                }
                Covers::NoHit => assert!((c.lower..=c.upper).all(|n| !zeros.accepts(hash("t", n)))),
                Covers::Least => panic!("a target chunk reported as a minimum: {c:?}"),
            }
        }
        assert!(covered
            .iter()
            .any(|c| c.covers == Covers::FirstHit && c.nonce == hits[0]));

        // No gap below the known hit: answered at once, nothing searched.
        let mut s = Scheduler::<u32>::new(Config::default()).unwrap();
        s.handle_miner_joined_with(Timestamp::ZERO, 1, Caps::NONE.with(Cap::Target));
        let above = [(hits[0] + 1, 99_999)];
        let first = (hash("t", hits[0]), hits[0]);
        s.restore_request(
            Timestamp::ZERO,
            7,
            "t",
            0,
            99_999,
            target,
            &above,
            Some(first),
        )
        .unwrap();
        let (searched, _, answer) = run_target(&mut s, zeros);
        assert_eq!((searched, answer), (vec![], Some(Some(first))));

        // No hit known, none in the gaps: "Found": false after searching only the gaps.
        let rare = Zeros::new(60).unwrap();
        let target = Mode::Target {
            zeros: rare,
            algo: crate::hash::Algo::Sha256,
        };
        let mut s = Scheduler::<u32>::new(Config::default()).unwrap();
        s.report_coverage();
        s.handle_miner_joined_with(Timestamp::ZERO, 1, Caps::NONE.with(Cap::Target));
        s.restore_request(
            Timestamp::ZERO,
            7,
            "t",
            0,
            9_999,
            target,
            &[(0, 4_999)],
            None,
        )
        .unwrap();
        let (searched, covered, answer) = run_target(&mut s, rare);
        assert_eq!(answer, Some(None));
        assert!(searched.iter().all(|&(_, upper)| upper < 5_000));
        let nonces: u64 = covered.iter().map(|c| c.upper - c.lower + 1).sum();
        assert_eq!(nonces, 5_000);
        assert!(covered.iter().all(|c| c.covers == Covers::NoHit));
    }
}
