//! `bench hash [--seconds S]`: the mining kernel's speed, per core and on all cores, for each
//! available path and three message lengths, next to the naive loop (`format!` +
//! `Sha256::digest` per nonce) measured in the same run.
//!
//! One-core figures count this thread's on-CPU time (Linux's schedstat; wall-clock time
//! elsewhere) and keep the best of five runs, so other load on the shared machine does not
//! lower them; all-core figures are wall-clock throughput of `min_hash_parallel` (and of one
//! naive loop per core).
//!
//! Every range starts at nonce 0, as a client's request does: for a 120-byte message the
//! digit count decides whether a nonce costs one compression or two, so the figure depends
//! on the range size (about 1.3 compressions per nonce over `0 ..= 5·10^7`).
//!
//! Each path has a `sha256` row and a `sha256d` row (SHA-256 of the SHA-256 digest, the
//! target-mode extension's hash), measured one after the other; the `sha256d` row's last
//! column is its rate over the `sha256` rate of the same path and message (two compressions
//! per nonce against one or two: at most about 0.5 for short messages).
//!
//! The last line is `hash: <kernel> Mh/s/core, naive <naive> Mh/s/core`, for the automatic
//! path and the shortest message, under `sha256`.

use bitcoin_core::hash::{hash_naive, Algo};
use bitcoin_core::kernel::{cores, Kernel, MinHash, Path};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// Message lengths measured, in bytes.
const LENGTHS: [usize; 3] = [6, 40, 120];
/// Default time per measurement.
const DEFAULT_SECONDS: f64 = 0.4;
/// Nonces hashed to estimate a rate before the timed run.
const CALIBRATION_NONCES: u64 = 1 << 18;

/// The options of `bench hash`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Seconds per figure, in (0, 60].
    #[arg(long, default_value_t = DEFAULT_SECONDS, value_parser = parse_seconds)]
    seconds: f64,
}

/// A time per figure in (0, 60] seconds.
fn parse_seconds(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds <= 60.0)
        .ok_or_else(|| format!("wants a number of seconds in (0, 60], not `{value}`"))
}

/// Runs the `hash` benchmark.
pub fn run(options: &Options) -> Result<(), String> {
    let seconds = options.seconds;
    let target = Duration::from_secs_f64(seconds);
    let threads = cores();
    let best = Path::best();
    let paths = Path::available();
    let names: Vec<&str> = paths.iter().map(|path| path.name()).collect();
    println!(
        "hash: {} threads; automatic path: {best}; available: {}; ~{seconds} s per figure",
        threads,
        names.join(", ")
    );
    println!(
        "{:>4}  {:<8} {:<8} {:>14} {:>14} {:>9} {:>10}",
        "len", "path", "algo", "Mh/s per core", "Mh/s all cores", "vs naive", "d / sha256"
    );
    let mut headline = None;
    for len in LENGTHS {
        let msg = message(len);
        let naive_one = naive_rate(&msg, target, NonZeroUsize::MIN);
        let naive_all = naive_rate(&msg, target, threads);
        println!(
            "{len:>4}  {:<8} {:<8} {:>14.1} {:>14.1} {:>9}",
            "naive", "sha256", naive_one, naive_all, "1.0x"
        );
        for &path in &paths {
            let kernel = Kernel::new(path).map_err(|error| error.to_string())?;
            let mut base = f64::NAN;
            for algo in Algo::ALL {
                let one = kernel_rate(kernel, algo, &msg, target, NonZeroUsize::MIN);
                let all = kernel_rate(kernel, algo, &msg, target, threads);
                let ratio = match algo {
                    Algo::Sha256 => {
                        base = one;
                        String::new()
                    }
                    Algo::Sha256d => format!("{:.2}x", one / base),
                };
                println!(
                    "{len:>4}  {:<8} {:<8} {:>14.1} {:>14.1} {:>8.1}x {:>10}",
                    path.name(),
                    algo.name(),
                    one,
                    all,
                    one / naive_one,
                    ratio
                );
            }
            if path == best && headline.is_none() {
                headline = Some((base, naive_one));
            }
        }
    }
    let (kernel, naive) = headline.ok_or("no kernel path measured")?;
    println!(
        "(last line: automatic path `{best}`, {}-byte message, one core)",
        LENGTHS[0]
    );
    println!("hash: {kernel:.1} Mh/s/core, naive {naive:.1} Mh/s/core");
    Ok(())
}

/// A printable message of `len` bytes.
fn message(len: usize) -> String {
    b"bitcoin-lsp-kernel-"
        .iter()
        .cycle()
        .take(len)
        .map(|&byte| char::from(byte))
        .collect()
}

/// How many times a one-core figure is measured; the best run is kept (the machine is shared).
const ONE_CORE_RUNS: u32 = 5;

/// Seconds this thread has spent on a CPU, from Linux's `/proc/thread-self/schedstat`; `None`
/// elsewhere. One-core figures use it, so that time lost to other processes does not count.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos as f64 / 1e9)
}

/// Times `work` in seconds: on-CPU time of this thread when `one_core` and available, else
/// wall-clock time.
fn timed(one_core: bool, work: impl FnOnce()) -> f64 {
    let cpu = if one_core { thread_cpu_seconds() } else { None };
    let wall = Instant::now();
    work();
    let seconds = match (cpu, thread_cpu_seconds()) {
        (Some(before), Some(after)) if one_core => after - before,
        _ => wall.elapsed().as_secs_f64(),
    };
    seconds.max(1e-9)
}

/// Millions of nonces per second of `kernel` under `algo` (in total over `threads` threads)
/// over ranges from 0 sized to last about `target`. With one thread, the best of
/// [`ONE_CORE_RUNS`] runs of on-CPU time.
fn kernel_rate(
    kernel: Kernel,
    algo: Algo,
    msg: &str,
    target: Duration,
    threads: NonZeroUsize,
) -> f64 {
    let one_core = threads.get() == 1;
    let prepared = kernel.prepare_algo(msg, algo);
    let search = |upper: u64| {
        timed(one_core, || {
            let answer: MinHash = if one_core {
                prepared.min_hash(0, upper)
            } else {
                prepared.min_hash_parallel(0, upper, threads)
            };
            black_box(answer);
        })
    };
    let calibration_nonces = CALIBRATION_NONCES * threads.get() as u64;
    let rate = calibration_nonces as f64 / search(calibration_nonces - 1);
    let runs = if one_core { ONE_CORE_RUNS } else { 1 };
    let seconds = target.as_secs_f64() / f64::from(runs);
    let nonces = ((rate * seconds) as u64).max(CALIBRATION_NONCES);
    (0..runs)
        .map(|_| nonces as f64 / search(nonces - 1) / 1e6)
        .fold(0.0, f64::max)
}

/// Millions of nonces per second hashed by the naive loop (in total over `threads` threads),
/// timed like [`kernel_rate`].
fn naive_rate(msg: &str, target: Duration, threads: NonZeroUsize) -> f64 {
    let one_core = threads.get() == 1;
    let runs = if one_core { ONE_CORE_RUNS } else { 1 };
    let target = target / runs;
    let worker = move |first: u64| {
        let mut rate = 0.0f64;
        for _ in 0..runs {
            let start = Instant::now();
            let mut nonce = first;
            let seconds = timed(one_core, || {
                let mut best = u64::MAX;
                while start.elapsed() < target {
                    for _ in 0..4096 {
                        best = best.min(hash_naive(msg, nonce));
                        nonce += 1;
                    }
                }
                black_box(best);
            });
            rate = rate.max((nonce - first) as f64 / seconds);
        }
        rate
    };
    let total: f64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.get() as u64)
            .map(|i| scope.spawn(move || worker(i << 40)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .sum()
    });
    total / 1e6
}
