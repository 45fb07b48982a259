//! The kernel on several threads: chunks of the range handed out from a shared counter.

use super::{Hit, MinHash, Prepared, FIRST_HIT_CHUNK};
use crate::hash::Zeros;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicU64, Ordering};

/// The smallest chunk a thread takes: large enough to make the per-call setup negligible.
const MIN_CHUNK: u64 = 1 << 16;
/// The largest chunk a thread takes: small enough (~0.2 s) to keep the threads balanced.
const MAX_CHUNK: u64 = 1 << 24;
/// How many chunks each thread should get at least, for balance.
const CHUNKS_PER_THREAD: u64 = 16;

/// How many threads the machine runs at once (at least one).
pub fn cores() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// `prepared.min_hash(lower, upper)` on `threads` scoped threads.
pub(super) fn min_hash(
    prepared: &Prepared,
    lower: u64,
    upper: u64,
    threads: NonZeroUsize,
) -> MinHash {
    if lower > upper {
        return MinHash::MAX;
    }
    let threads = threads.get();
    if threads == 1 {
        return prepared.min_hash(lower, upper);
    }
    // `upper - lower` is below 2^64; the count may be 2^64 itself, so compute in u128.
    let count = u128::from(upper - lower) + 1;
    let wanted = count / (threads as u128 * u128::from(CHUNKS_PER_THREAD));
    // Clamped to `MAX_CHUNK`, the value fits a u64.
    let chunk = wanted.clamp(u128::from(MIN_CHUNK), u128::from(MAX_CHUNK)) as u64;
    let next = AtomicU64::new(0);
    let worker = || {
        let mut best = MinHash::MAX;
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(start) = index
                .checked_mul(chunk)
                .and_then(|offset| lower.checked_add(offset))
                .filter(|start| *start <= upper)
            else {
                return best;
            };
            let end = start.saturating_add(chunk - 1).min(upper);
            best = best.min(prepared.min_hash(start, end));
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .fold(MinHash::MAX, MinHash::min)
    })
}

/// `prepared.first_hit(lower, upper, zeros)` on `threads` scoped threads.
///
/// Chunks of [`FIRST_HIT_CHUNK`] nonces are handed out in ascending order. A thread that finds
/// a hit in its chunk records the chunk's index and stops (its later chunks are all greater);
/// no thread takes a chunk past the smallest index recorded. Every chunk below the answer's
/// was therefore handed out, and searched whole, so the smallest hit found is the range's.
pub(super) fn first_hit(
    prepared: &Prepared,
    lower: u64,
    upper: u64,
    zeros: Zeros,
    threads: NonZeroUsize,
) -> Option<Hit> {
    if lower > upper {
        return None;
    }
    let threads = threads.get();
    if threads == 1 {
        return prepared.first_hit(lower, upper, zeros);
    }
    let next = AtomicU64::new(0);
    // The smallest index of a chunk holding a hit; no chunk has index `u64::MAX` (there are
    // at most 2^48 of them).
    let found = AtomicU64::new(u64::MAX);
    let worker = || loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index > found.load(Ordering::Relaxed) {
            return None;
        }
        let start = index
            .checked_mul(FIRST_HIT_CHUNK)
            .and_then(|offset| lower.checked_add(offset))
            .filter(|start| *start <= upper)?;
        let end = start.saturating_add(FIRST_HIT_CHUNK - 1).min(upper);
        if let Some(hit) = prepared.first_hit(start, end, zeros) {
            found.fetch_min(index, Ordering::Relaxed);
            return Some(hit);
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(worker)).collect();
        handles
            .into_iter()
            .filter_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .min_by_key(|hit| hit.nonce)
    })
}
