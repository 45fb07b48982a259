//! The miner's search: the kernel on worker threads, in chunks, abandonable at any time.
//!
//! A job's range is cut into chunks handed out from a shared counter to `threads` scoped
//! threads (so a thread slowed by other work does not hold the others up). Between chunks
//! each thread checks the job's cancel flag, so an abandoned job stops within one chunk
//! (at most [`FIRST_HIT_CHUNK`] = 2¹⁶ nonces: about 2 to 7 ms on one core, whatever the
//! kernel path). The answer is delivered on an async channel, so the miner's event loop can
//! wait for it and for the server at once.
//!
//! A *target* search ([`Searcher::start_target`]) hands out its chunks in ascending order
//! too; a thread that finds a qualifying nonce in chunk `i` records it, and no thread starts
//! a chunk after the lowest chunk with a hit. Every chunk below it was taken before it and
//! is finished before the answer is given, so the answer is the range's smallest
//! qualifying nonce, as [`Prepared::first_hit`] would give on one thread.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use bitcoin_core::hash::Zeros;
use bitcoin_core::kernel::{Hit, MinHash, Prepared, FIRST_HIT_CHUNK};
use smol::channel::{self, Receiver};

/// The smallest chunk: large enough to make the kernel's per-call setup negligible.
const MIN_CHUNK: u64 = 1 << 12;
/// The largest chunk: small enough to abandon a job within a few milliseconds.
const MAX_CHUNK: u64 = FIRST_HIT_CHUNK;
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

    /// Starts searching `lower ..= upper` of `prepared`'s message for its minimum hash on
    /// new threads; the answer is an [`Answer::Min`].
    pub fn start(&self, prepared: Arc<Prepared>, lower: u64, upper: u64) -> Running {
        self.spawn(prepared, lower, upper, None)
    }

    /// Starts searching `lower ..= upper` for the smallest nonce whose hash (under
    /// `prepared`'s algorithm) has `zeros` leading zero bits; the answer is an
    /// [`Answer::Target`].
    pub fn start_target(
        &self,
        prepared: Arc<Prepared>,
        lower: u64,
        upper: u64,
        zeros: Zeros,
    ) -> Running {
        self.spawn(prepared, lower, upper, Some(zeros))
    }

    fn spawn(
        &self,
        prepared: Arc<Prepared>,
        lower: u64,
        upper: u64,
        zeros: Option<Zeros>,
    ) -> Running {
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
            let answer = match zeros {
                None => plan.run().map(Answer::Min),
                Some(zeros) => plan.run_target(zeros).map(Answer::Target),
            };
            if let Some(best) = answer {
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

/// What a search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A minimum search's answer.
    Min(MinHash),
    /// A target search's answer: the smallest qualifying nonce, if any.
    Target(Option<Hit>),
}

/// A search in progress.
#[derive(Debug)]
pub struct Running {
    cancel: Arc<AtomicBool>,
    answer: Receiver<Answer>,
    spawn_failed: bool,
}

impl Running {
    /// Waits for the answer; `None` if the search was cancelled or could not start.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn answer(&self) -> Option<Answer> {
        if self.spawn_failed {
            return None;
        }
        self.answer.recv().await.ok()
    }

    /// Stops the search within one chunk (at most [`FIRST_HIT_CHUNK`] nonces per thread);
    /// its answer will never come.
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
    /// The first nonce and end of chunk `index`, or `None` past the range.
    fn chunk_at(&self, index: u64) -> Option<(u64, u64)> {
        let start = index
            .checked_mul(self.chunk)
            .and_then(|offset| self.lower.checked_add(offset))
            .filter(|start| *start <= self.upper)?;
        Some((start, start.saturating_add(self.chunk - 1).min(self.upper)))
    }

    /// Counts `len` nonces searched, and sleeps to keep under the speed cap.
    fn account(&self, len: u64, searched: &AtomicU64, started: Instant) {
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

    /// Runs `worker` on `self.threads` threads (this one included).
    fn on_threads<T: Send>(&self, worker: impl Fn() -> T + Sync) -> Vec<T> {
        if self.threads == 1 {
            return vec![worker()];
        }
        thread::scope(|scope| {
            let others: Vec<_> = (1..self.threads).map(|_| scope.spawn(&worker)).collect();
            let mut all = vec![worker()];
            all.extend(others.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }));
            all
        })
    }

    /// The smallest qualifying nonce, `Some(None)` if none, or `None` if cancelled.
    fn run_target(&self, zeros: Zeros) -> Option<Option<Hit>> {
        let next = AtomicU64::new(0);
        let searched = AtomicU64::new(0);
        let started = Instant::now();
        // The lowest chunk index with a hit, and its hit.
        let found: Mutex<Option<(u64, Hit)>> = Mutex::new(None);
        let lowest = AtomicU64::new(u64::MAX);
        let worker = || -> bool {
            loop {
                if self.cancel.load(Ordering::Relaxed) {
                    return false;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index > lowest.load(Ordering::Relaxed) {
                    return true;
                }
                let Some((start, end)) = self.chunk_at(index) else {
                    return true;
                };
                if let Some(hit) = self.prepared.first_hit(start, end, zeros) {
                    lowest.fetch_min(index, Ordering::Relaxed);
                    self.account(hit.nonce - start + 1, &searched, started);
                    let mut best = found.lock().unwrap_or_else(|e| e.into_inner());
                    if best.is_none_or(|(i, _)| index < i) {
                        *best = Some((index, hit));
                    }
                    return true;
                }
                self.account(end - start + 1, &searched, started);
            }
        };
        let finished = self.on_threads(worker);
        if finished.contains(&false) {
            return None;
        }
        let best = found.into_inner().unwrap_or_else(|e| e.into_inner());
        Some(best.map(|(_, hit)| hit))
    }

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
                let Some((start, end)) = self.chunk_at(index) else {
                    return Some(best);
                };
                best = best.min(self.prepared.min_hash(start, end));
                self.account(end - start + 1, &searched, started);
            }
        };
        self.on_threads(worker)
            .into_iter()
            .try_fold(MinHash::MAX, |a, b| Some(a.min(b?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin_core::kernel::{min_hash, Kernel};

    fn search(searcher: &Searcher, msg: &str, lower: u64, upper: u64) -> Option<MinHash> {
        let prepared = Arc::new(Kernel::best().prepare(msg));
        let running = searcher.start(prepared, lower, upper);
        match smol::block_on(running.answer()) {
            Some(Answer::Min(best)) => Some(best),
            Some(other) => panic!("{other:?}"),
            None => None,
        }
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

    #[test]
    fn a_target_search_finds_the_smallest_qualifying_nonce_on_any_thread_count() {
        use bitcoin_core::hash::{hash_sha256d, Algo};
        let zeros = Zeros::new(14).unwrap();
        // An independent scan: the smallest nonce whose sha256d has 14 leading zero bits.
        let scan = |lower: u64, upper: u64| {
            (lower..=upper)
                .find(|n| zeros.accepts(hash_sha256d("t", *n)))
                .map(|nonce| Hit {
                    hash: hash_sha256d("t", nonce),
                    nonce,
                })
        };
        let prepared = Arc::new(Kernel::best().prepare_algo("t", Algo::Sha256d));
        for threads in [1, 2, 3] {
            let searcher = Searcher::new(NonZeroUsize::new(threads).unwrap());
            for (lower, upper) in [(0, 300_000), (5, 40), (100_000, 400_000)] {
                let running = searcher.start_target(Arc::clone(&prepared), lower, upper, zeros);
                assert_eq!(
                    smol::block_on(running.answer()),
                    Some(Answer::Target(scan(lower, upper))),
                    "threads {threads}, {lower}..={upper}"
                );
            }
        }
    }

    #[test]
    fn a_cancelled_target_search_gives_no_answer() {
        let slow = Searcher::new(NonZeroUsize::MIN).with_max_rate(1_000);
        let prepared = Arc::new(Kernel::best().prepare("x"));
        let running = slow.start_target(prepared, 0, u64::MAX, Zeros::new(64).unwrap());
        running.cancel();
        assert_eq!(smol::block_on(running.answer()), None);
    }
}
