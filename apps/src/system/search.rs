//! The miner's search: the kernel on worker threads, in chunks, abandonable at any time.
//!
//! A job's range is cut into chunks handed out from a shared counter to `threads` scoped
//! threads (so a thread slowed by other work does not hold the others up). Between chunks
//! each thread checks the job's cancel flag, so an abandoned job stops within one chunk
//! (at most ~4 M nonces, tens of milliseconds). The answer is delivered on an async
//! channel, so the miner's event loop can wait for it and for the server at once.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bitcoin_core::kernel::{MinHash, Prepared};
use smol::channel::{self, Receiver};

/// The smallest chunk: large enough to make the kernel's per-call setup negligible.
const MIN_CHUNK: u64 = 1 << 12;
/// The largest chunk: small enough to abandon a job quickly.
const MAX_CHUNK: u64 = 1 << 22;
/// How many chunks each thread should get at least, for balance.
const CHUNKS_PER_THREAD: u128 = 8;

/// How to search: thread count, an optional speed cap, an optional progress counter.
#[derive(Clone, Debug)]
pub struct Searcher {
    threads: NonZeroUsize,
    max_rate: Option<u64>,
    progress: Option<Arc<AtomicU64>>,
}

impl Searcher {
    /// A searcher on `threads` threads, at full speed.
    pub fn new(threads: NonZeroUsize) -> Searcher {
        Searcher {
            threads,
            max_rate: None,
            progress: None,
        }
    }

    /// Caps the speed at `nonces_per_second` (at least 1), to play a slow miner.
    pub fn with_max_rate(mut self, nonces_per_second: u64) -> Searcher {
        self.max_rate = Some(nonces_per_second.max(1));
        self
    }

    /// Adds the number of nonces searched to `counter` as the search goes.
    pub fn with_progress(mut self, counter: Arc<AtomicU64>) -> Searcher {
        self.progress = Some(counter);
        self
    }

    /// The number of search threads.
    pub fn threads(&self) -> NonZeroUsize {
        self.threads
    }

    /// Starts searching `lower ..= upper` of `prepared`'s message on new threads.
    pub fn start(&self, prepared: Arc<Prepared>, lower: u64, upper: u64) -> Running {
        let cancel = Arc::new(AtomicBool::new(false));
        let (done, answer) = channel::bounded(1);
        let plan = Plan {
            prepared,
            lower,
            upper,
            chunk: self.chunk_size(lower, upper),
            threads: self.threads.get(),
            max_rate: self.max_rate,
            progress: self.progress.clone(),
            cancel: Arc::clone(&cancel),
        };
        let spawned = thread::Builder::new().name("search".into()).spawn(move || {
            if let Some(best) = plan.run() {
                // The receiver may be gone (job abandoned); nothing to do then.
                let _ = done.send_blocking(best);
            }
        });
        Running {
            cancel,
            answer,
            spawn_failed: spawned.is_err(),
        }
    }

    fn chunk_size(&self, lower: u64, upper: u64) -> u64 {
        let count = u128::from(upper.saturating_sub(lower)) + 1;
        let per_thread = count / (self.threads.get() as u128 * CHUNKS_PER_THREAD);
        let mut chunk = per_thread.clamp(u128::from(MIN_CHUNK), u128::from(MAX_CHUNK)) as u64;
        if let Some(rate) = self.max_rate {
            // About 20 pauses a second keep a capped search smooth.
            chunk = chunk.min((rate / 20).max(1));
        }
        chunk
    }
}

/// A search in progress.
#[derive(Debug)]
pub struct Running {
    cancel: Arc<AtomicBool>,
    answer: Receiver<MinHash>,
    spawn_failed: bool,
}

impl Running {
    /// Waits for the answer; `None` if the search was cancelled or could not start.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn answer(&self) -> Option<MinHash> {
        if self.spawn_failed {
            return None;
        }
        self.answer.recv().await.ok()
    }

    /// Stops the search within one chunk; its answer will never come.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// One job's search, run on the thread [`Searcher::start`] spawns.
struct Plan {
    prepared: Arc<Prepared>,
    lower: u64,
    upper: u64,
    chunk: u64,
    threads: usize,
    max_rate: Option<u64>,
    progress: Option<Arc<AtomicU64>>,
    cancel: Arc<AtomicBool>,
}

impl Plan {
    /// The answer, or `None` if cancelled.
    fn run(&self) -> Option<MinHash> {
        let next = AtomicU64::new(0);
        let searched = AtomicU64::new(0);
        let started = Instant::now();
        let worker = || -> Option<MinHash> {
            let mut best = MinHash::MAX;
            loop {
                if self.cancel.load(Ordering::Relaxed) {
                    return None;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(start) = index
                    .checked_mul(self.chunk)
                    .and_then(|offset| self.lower.checked_add(offset))
                    .filter(|start| *start <= self.upper)
                else {
                    return Some(best);
                };
                let end = start.saturating_add(self.chunk - 1).min(self.upper);
                best = best.min(self.prepared.min_hash(start, end));
                let len = end - start + 1;
                if let Some(progress) = &self.progress {
                    progress.fetch_add(len, Ordering::Relaxed);
                }
                if let Some(rate) = self.max_rate {
                    let total = searched.fetch_add(len, Ordering::Relaxed) + len;
                    let due = Duration::from_secs_f64(total as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        thread::sleep(wait);
                    }
                }
            }
        };
        if self.threads == 1 {
            return worker();
        }
        thread::scope(|scope| {
            let others: Vec<_> = (1..self.threads).map(|_| scope.spawn(worker)).collect();
            let mine = worker();
            others
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .fold(mine, |a, b| Some(a?.min(b?)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin_core::kernel::{min_hash, Kernel};

    fn search(searcher: &Searcher, msg: &str, lower: u64, upper: u64) -> Option<MinHash> {
        let prepared = Arc::new(Kernel::best().prepare(msg));
        let running = searcher.start(prepared, lower, upper);
        smol::block_on(running.answer())
    }

    #[test]
    fn agrees_with_the_kernel_on_any_thread_count() {
        for threads in [1, 2, 3] {
            let searcher = Searcher::new(NonZeroUsize::new(threads).unwrap());
            for (lower, upper) in [
                (0, 2),
                (0, 100_000),
                (99_990, 100_010),
                (u64::MAX - 5, u64::MAX),
            ] {
                assert_eq!(
                    search(&searcher, "msg", lower, upper),
                    Some(min_hash("msg", lower, upper)),
                    "threads {threads}, {lower}..={upper}"
                );
            }
        }
    }

    #[test]
    fn counts_progress_and_can_be_cancelled() {
        let counter = Arc::new(AtomicU64::new(0));
        let searcher = Searcher::new(NonZeroUsize::MIN).with_progress(Arc::clone(&counter));
        assert!(search(&searcher, "x", 10, 50_009).is_some());
        assert_eq!(counter.load(Ordering::Relaxed), 50_000);

        let slow = Searcher::new(NonZeroUsize::MIN).with_max_rate(1_000);
        let running = slow.start(Arc::new(Kernel::best().prepare("x")), 0, 1_000_000);
        running.cancel();
        assert_eq!(smol::block_on(running.answer()), None);
    }
}
