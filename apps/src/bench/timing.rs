//! Small timing helpers shared by the benchmark modes.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Nanoseconds per call of `f`: the median of `rounds` rounds, each running `f` for about
/// `round` of wall time (the iteration count is calibrated once).
pub fn ns_per_call(rounds: usize, round: Duration, mut f: impl FnMut()) -> f64 {
    // Calibrate: double the count until one batch takes at least a millisecond.
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        if start.elapsed() >= Duration::from_millis(1) || batch >= 1 << 30 {
            break;
        }
        batch *= 2;
    }
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed() < round {
                for _ in 0..batch {
                    f();
                }
                calls += batch;
            }
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    black_box(samples[samples.len() / 2])
}
