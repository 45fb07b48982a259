//! Checking a miner's answer: is it an answer to this job at all, and did the miner search?
//!
//! An answer `(hash, nonce)` *verifies* against a job `(msg, lower ..= upper)` when `nonce`
//! lies in the range and `hash(msg, nonce) == hash`: one hash, negligible next to the job.
//! That proves the pair is genuine, not that it is the minimum; a *lazy* miner could report
//! the first nonce of its range without searching the rest. Against that, each verified
//! answer is **spot-checked**: [`SPOT_CHECKS`] nonces of the job, chosen from the job's own
//! content (its message and range, so the same job is always checked at the same nonces and
//! no randomness is drawn), are hashed, and any whose hash is strictly below the reported
//! one proves the answer is not the minimum. A job of at most [`SPOT_CHECKS`] nonces is
//! checked in full.
//!
//! # Cost and detection
//!
//! `k = 32` hashes per answer: about 10–30 µs of server time, against jobs sized to take
//! 50 ms on their miner (under 0.1 %), and 0.3 % of the smallest job sent (10 000 nonces).
//!
//! A lazy miner that searches only `S = (1 − f) N` of its job's `N` nonces (skips a fraction
//! `f`) and reports the minimum of what it searched is caught when one of the `k'` samples
//! that fall in the skipped part (`k' ~ Binomial(k, f)`) beats that minimum. The hashes are
//! independent and uniform, so among the `S + k'` values the minimum is a sample with
//! probability `k' / (S + k')`; the detection probability per job is
//! `E[k' / (S + k')] ≈ k f / ((1 − f) N + k f)`. For a miner that does no work (reports one
//! hashed nonce, `S = 1`) that is `k / (k + 1)` ≈ 97 % per job, so it is disconnected on its
//! first or second answer; for one that skips half of a 10⁶-nonce job, it is about 0.003 %:
//! a spot check catches miners that do (almost) nothing, not miners that do most of the
//! work. Such a miner's answer is wrong only when the job's minimum lay in the skipped part
//! (probability `f`), and matters only if that was also the request's minimum.

use std::fmt;

use super::range::NonceRange;

/// How many nonces of each answered job are hashed again to catch a lazy miner (`k`).
///
/// Cost: 32 hashes per answer, some 10–30 µs of server time against jobs sized to take
/// 50 ms (under 0.1 %). Detection: a miner that searches only `S = (1 − f) N` of a job's `N`
/// nonces is caught with probability `E[k' / (S + k')] ≈ k f / ((1 − f) N + k f)`, `k'` the
/// samples falling in the part it skipped: `k / (k + 1)` ≈ 97 % per job for one that does no
/// work, about 0.003 % for one that skips half of a 10⁶-nonce job. Jobs of at most `k`
/// nonces are checked in full. See the module source for the derivation.
pub const SPOT_CHECKS: u64 = 32;

/// The hash the scheduler verifies answers with: [`crate::hash::hash`] except in tests and
/// benchmarks that model miners with a stand-in.
pub type HashFn = fn(&str, u64) -> u64;

/// Why a miner's answer was rejected; the miner is then disconnected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// The nonce lies in none of the jobs the miner holds.
    OutOfRange {
        /// The reported nonce.
        nonce: u64,
    },
    /// The nonce lies in a job the miner holds, but the reported hash is not its hash.
    WrongHash {
        /// The reported nonce.
        nonce: u64,
        /// The reported hash.
        claimed: u64,
        /// The nonce's true hash (for the first job holding it).
        actual: u64,
    },
    /// The answer verifies, but a spot-checked nonce of the job hashes strictly lower: the
    /// miner did not search the whole job.
    Lazy {
        /// The reported hash.
        claimed: u64,
        /// The spot-checked nonce that beats it.
        nonce: u64,
        /// Its hash.
        hash: u64,
    },
    /// Target mode: the reported nonce's hash is genuine but has fewer leading zero bits
    /// than the request asks for. Counted with the wrong hashes.
    NotAHit {
        /// The reported nonce.
        nonce: u64,
        /// Its hash.
        hash: u64,
        /// The leading zero bits asked for.
        zeros: u32,
    },
    /// Target mode: a spot-checked nonce of the job below the reported one (or anywhere in
    /// a job reported `"Found": false`) qualifies, so the miner skipped it. Counted with
    /// the lazy answers.
    MissedHit {
        /// The nonce reported (`None` for `"Found": false`).
        reported: Option<u64>,
        /// The qualifying nonce it skipped.
        nonce: u64,
        /// Its hash.
        hash: u64,
    },
}

impl fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misbehaviour::OutOfRange { nonce } => {
                write!(f, "nonce {nonce} lies in none of the miner's jobs")
            }
            Misbehaviour::WrongHash {
                nonce,
                claimed,
                actual,
            } => write!(
                f,
                "hash {claimed} claimed for nonce {nonce}, whose hash is {actual}"
            ),
            Misbehaviour::Lazy {
                claimed,
                nonce,
                hash,
            } => write!(
                f,
                "minimum {claimed} claimed, but nonce {nonce} of the job hashes to {hash}"
            ),
            Misbehaviour::NotAHit { nonce, hash, zeros } => write!(
                f,
                "nonce {nonce} reported as a hit, but its hash {hash} has fewer than {zeros} leading zero bits"
            ),
            Misbehaviour::MissedHit {
                reported: Some(reported),
                nonce,
                hash,
            } => write!(
                f,
                "first hit {reported} claimed, but nonce {nonce} of the job qualifies (hash {hash})"
            ),
            Misbehaviour::MissedHit {
                reported: None,
                nonce,
                hash,
            } => write!(
                f,
                "no hit claimed, but nonce {nonce} of the job qualifies (hash {hash})"
            ),
        }
    }
}

/// Whether `(hash, nonce)` is a genuine answer to the job `(msg, range)`.
pub(crate) fn verifies(h: HashFn, msg: &str, range: NonceRange, hash: u64, nonce: u64) -> bool {
    range.contains(nonce) && h(msg, nonce) == hash
}

/// The first spot-checked nonce of `(msg, range)` whose hash is strictly below `claimed`,
/// with its hash; `None` if the answer survives the check.
pub(crate) fn spot_check(
    h: HashFn,
    msg: &str,
    range: NonceRange,
    claimed: u64,
) -> Option<(u64, u64)> {
    samples(msg, range)
        .map(|n| (n, h(msg, n)))
        .find(|&(_, hash)| hash < claimed)
}

/// Target mode: the first spot-checked nonce of `(msg, range)` that qualifies for `zeros`
/// under `h`, with its hash; `None` if none does. `range` is the part of the job the miner
/// says holds no hit: below its reported nonce, or the whole job for `"Found": false`.
/// The same sampling as [`spot_check`], so the same cost and the same detection odds for a
/// miner that skips a fraction of that part.
pub(crate) fn target_spot_check(
    h: HashFn,
    msg: &str,
    range: NonceRange,
    zeros: crate::hash::Zeros,
) -> Option<(u64, u64)> {
    samples(msg, range)
        .map(|n| (n, h(msg, n)))
        .find(|&(_, hash)| zeros.accepts(hash))
}

/// The nonces spot-checked for a job: all of them if it has at most [`SPOT_CHECKS`],
/// otherwise [`SPOT_CHECKS`] drawn from a generator seeded by the job's message and range.
pub(crate) fn samples(msg: &str, range: NonceRange) -> impl Iterator<Item = u64> {
    let len = range.len();
    let first = range.first();
    let all = len <= u128::from(SPOT_CHECKS);
    let mut state = seed(msg, range);
    (0..SPOT_CHECKS).map_while(move |i| {
        if all {
            // `i < len <= 32`, so `first + i` stays in the range.
            return (u128::from(i) < len).then(|| first + i);
        }
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        // `offset < len <= 2^64`, so it fits in a u64 and `first + offset <= last`.
        let offset = (u128::from(mix(state)) % len) as u64;
        Some(first + offset)
    })
}

/// A 64-bit seed from the job's content (FNV-1a over the message, then the range).
fn seed(msg: &str, range: NonceRange) -> u64 {
    let fnv = msg.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    mix(fnv ^ mix(range.first() ^ mix(range.last())))
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(msg: &str, nonce: u64) -> u64 {
        crate::hash::hash(msg, nonce)
    }

    fn range(a: u64, b: u64) -> NonceRange {
        NonceRange::new(a, b).unwrap()
    }

    fn true_min(msg: &str, r: NonceRange) -> (u64, u64) {
        (r.first()..=r.last())
            .map(|n| (hash(msg, n), n))
            .min()
            .unwrap()
    }

    #[test]
    fn samples_lie_in_the_job_depend_only_on_it_and_cover_small_jobs() {
        let r = range(u64::MAX - 1_000_000, u64::MAX);
        let a: Vec<u64> = samples("m", r).collect();
        assert_eq!(a.len() as u64, SPOT_CHECKS);
        assert!(a.iter().all(|n| r.contains(*n)));
        assert_eq!(a, samples("m", r).collect::<Vec<_>>());
        assert_ne!(a, samples("n", r).collect::<Vec<_>>());
        let small = range(5, 20);
        assert_eq!(
            samples("m", small).collect::<Vec<_>>(),
            (5..=20).collect::<Vec<_>>()
        );
        let whole = range(0, u64::MAX);
        assert!(samples("m", whole).count() as u64 == SPOT_CHECKS);
    }

    #[test]
    fn an_honest_answer_passes_and_a_do_nothing_answer_is_caught() {
        let r = range(1_000, 50_999);
        let (h, n) = true_min("spot", r);
        assert!(verifies(hash, "spot", r, h, n));
        assert!(!verifies(hash, "spot", r, h.wrapping_add(1), n));
        assert!(!verifies(hash, "spot", r, h, 999));
        assert_eq!(spot_check(hash, "spot", r, h), None);
        // A miner that reports its first nonce without searching: the check catches it
        // with probability 32/33 per job; over 200 jobs it must catch most of them.
        let caught = (0..200u64)
            .filter(|i| {
                let r = range(i * 10_000, i * 10_000 + 9_999);
                spot_check(hash, "lazy", r, hash("lazy", r.first())).is_some()
            })
            .count();
        assert!(caught >= 180, "caught {caught} of 200");
    }

    #[test]
    fn a_small_job_is_checked_in_full() {
        let r = range(70, 90);
        let (h, _) = true_min("full", r);
        for n in 70..=90 {
            let mine = hash("full", n);
            assert_eq!(
                spot_check(hash, "full", r, mine).is_none(),
                mine == h,
                "{n}"
            );
        }
    }
}
