//! A miner's measured speed: its hash rate, from which its job sizes are derived, and its
//! round trip, which tells computing time apart from time on the wire.

use std::time::Duration;

/// The highest rate the estimator will believe, in nonces per second (10¹⁵, some ten million
/// times a fast core). Bounding it keeps every product of a rate and a nonce count or a
/// number of microseconds below 2¹²⁸.
pub(crate) const MAX_RATE: u64 = 1_000_000_000_000_000;

/// How much one sample may raise the estimate: a sample above `GROWTH × estimate` is taken
/// as `GROWTH × estimate`. Two results arriving together (delayed, then delivered in one
/// burst) look like an absurdly fast job; the cap keeps one such sample from producing a
/// job that takes seconds instead of the target.
const GROWTH: u64 = 4;

/// A miner's hash rate in nonces per second, at least 1.
///
/// Each answered job gives a sample `nonces / elapsed` (see [`crate::scheduler`] for how
/// `elapsed` is measured). The estimate moves half-way towards each sample (after capping
/// its growth), so it settles in a few jobs and forgets a changed speed as quickly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rate {
    per_sec: u64,
}

impl Rate {
    /// A rate of `per_sec` nonces per second, clamped to `1 ..= MAX_RATE`.
    pub(crate) fn per_sec(per_sec: u64) -> Self {
        Rate {
            per_sec: per_sec.clamp(1, MAX_RATE),
        }
    }

    /// The rate at which `nonces` take `d`: the starting estimate for a new miner.
    pub(crate) fn from_job(nonces: u64, d: Duration) -> Self {
        let micros = d.as_micros().max(1);
        let per_sec = u128::from(nonces) * 1_000_000 / micros;
        Rate::per_sec(u64::try_from(per_sec).unwrap_or(u64::MAX))
    }

    /// Nonces per second.
    pub(crate) fn get(self) -> u64 {
        self.per_sec
    }

    /// Updates the estimate with a job of `nonces` answered `elapsed` after it could start.
    pub(crate) fn observe(&mut self, nonces: u128, elapsed: Duration) {
        let micros = elapsed.as_micros().max(1);
        let sample = nonces.saturating_mul(1_000_000) / micros;
        let cap = u128::from(self.per_sec) * u128::from(GROWTH);
        let sample = sample.min(cap);
        let blended = (u128::from(self.per_sec) + sample) / 2;
        *self = Rate::per_sec(u64::try_from(blended).unwrap_or(MAX_RATE));
    }

    /// How many nonces this rate covers in `d` (may be zero).
    pub(crate) fn nonces_in(self, d: Duration) -> u128 {
        u128::from(self.per_sec).saturating_mul(d.as_micros()) / 1_000_000
    }

    /// How long `nonces` take at this rate, rounded up to the microsecond.
    pub(crate) fn time_for(self, nonces: u128) -> Duration {
        let micros = nonces
            .saturating_mul(1_000_000)
            .div_ceil(u128::from(self.per_sec));
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// How many recent samples [`RoundTrip`] keeps.
const ROUND_TRIP_WINDOW: usize = 8;

/// A miner's round trip: the time from sending it a job to its answer, less the time spent
/// computing. Samples come from jobs that did not wait behind another one; the estimate is
/// the smallest of the last eight, so a delayed answer does not inflate it and a changed
/// network is followed within eight such jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RoundTrip {
    samples: [Duration; ROUND_TRIP_WINDOW],
    /// How many slots hold a sample.
    len: usize,
    /// The slot the next sample goes to.
    next: usize,
}

impl RoundTrip {
    /// The estimate; zero before any sample.
    pub(crate) fn get(&self) -> Duration {
        self.samples[..self.len]
            .iter()
            .copied()
            .min()
            .unwrap_or(Duration::ZERO)
    }

    /// Adds a sample, forgetting the oldest of a full window.
    pub(crate) fn observe(&mut self, sample: Duration) {
        self.samples[self.next] = sample;
        self.next = (self.next + 1) % ROUND_TRIP_WINDOW;
        self.len = (self.len + 1).min(ROUND_TRIP_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_on_a_steady_rate_with_bounded_growth() {
        let mut r = Rate::from_job(10_000, Duration::from_millis(100));
        assert_eq!(r.get(), 100_000);
        let mut previous = r.get();
        for _ in 0..40 {
            // 50 M nonces per second, measured over 1 ms.
            r.observe(50_000, Duration::from_millis(1));
            assert!(r.get() <= previous * 5 / 2, "grew more than 2.5x");
            previous = r.get();
        }
        assert!(r.get().abs_diff(50_000_000) < 1000, "{}", r.get());
    }

    #[test]
    fn round_trip_is_the_least_of_the_last_eight_samples() {
        let mut rt = RoundTrip::default();
        assert_eq!(rt.get(), Duration::ZERO);
        rt.observe(Duration::from_millis(5));
        rt.observe(Duration::from_millis(9));
        assert_eq!(rt.get(), Duration::from_millis(5));
        for _ in 0..7 {
            rt.observe(Duration::from_millis(7));
        }
        assert_eq!(
            rt.get(),
            Duration::from_millis(7),
            "the 5 ms sample was forgotten"
        );
        for i in 0..100 {
            rt.observe(Duration::from_millis(20 + i % 3));
        }
        assert_eq!(rt.get(), Duration::from_millis(20));
    }

    #[test]
    fn a_slow_sample_halves_at_most() {
        let mut r = Rate::per_sec(1_000_000);
        r.observe(1, Duration::from_secs(1000));
        assert_eq!(r.get(), 500_000);
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        let mut r = Rate::per_sec(u64::MAX);
        assert_eq!(r.get(), MAX_RATE);
        r.observe(1u128 << 64, Duration::ZERO);
        assert_eq!(r.get(), MAX_RATE);
        assert_eq!(Rate::per_sec(0).get(), 1);
        assert_eq!(
            Rate::per_sec(1).time_for(1u128 << 64),
            Duration::from_micros(u64::MAX)
        );
        assert_eq!(
            Rate::per_sec(1_000_000).time_for(3),
            Duration::from_micros(3)
        );
        assert_eq!(Rate::per_sec(3).time_for(1), Duration::from_micros(333_334));
        assert!(Rate::per_sec(MAX_RATE).nonces_in(Duration::MAX) > 1u128 << 64);
        assert_eq!(
            Rate::per_sec(2_000_000).nonces_in(Duration::from_millis(3)),
            6000
        );
    }
}
