//! The kernel on several threads: chunks of the range handed out from a shared counter.

use super::{MinHash, Prepared};
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
