//! A hash-rate meter: nonces credited at given times, read as a moving average and as a
//! per-minute history of the last hour.

use std::collections::VecDeque;
use std::time::Duration;

use lsp_core::Timestamp;

/// The moving average's time constant: a credit's weight halves about every 7 s
/// (`TAU × ln 2`), so the average follows a changed speed within some 10 to 30 s.
pub const RATE_TAU: Duration = Duration::from_secs(10);

/// How many minutes of history a meter keeps: the last hour.
pub const HISTORY_MINUTES: usize = 60;

/// The length of a history entry.
const MINUTE_MICROS: u64 = 60_000_000;

/// One minute of a meter's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinuteSample {
    /// Which minute: `n` covers service time `n × 60 s .. (n + 1) × 60 s` (the driver's
    /// clock; the server's starts at zero when it starts).
    pub minute: u64,
    /// Nonces credited during that minute (the current minute: so far).
    pub nonces: u128,
    /// `nonces / 60`: the mean rate over the minute, in nonces per second (for the current
    /// minute too, so it reads low until the minute is over).
    pub rate: f64,
}

/// Nonces credited over time, as a total, an exponentially weighted moving average of the
/// rate ([`RATE_TAU`]) and a ring of per-minute totals ([`HISTORY_MINUTES`] entries; never
/// more). Pure: every time is an argument; time going backwards counts as no time.
#[derive(Clone, Debug)]
pub(crate) struct Meter {
    /// When the meter started (the average is corrected for the time before it).
    born: Timestamp,
    /// The latest credit's time.
    last: Timestamp,
    /// The uncorrected moving average at `last`, in nonces per second.
    average: f64,
    /// Nonces credited in all.
    total: u128,
    /// Per-minute totals, oldest first, consecutive minutes, the latest credit's last.
    minutes: VecDeque<(u64, u128)>,
}

fn minute_of(t: Timestamp) -> u64 {
    t.as_micros() / MINUTE_MICROS
}

/// `e^(−d/τ)`.
fn decay(d: Duration) -> f64 {
    (-d.as_secs_f64() / RATE_TAU.as_secs_f64()).exp()
}

impl Meter {
    /// A meter with nothing credited, started at `born`.
    pub(crate) fn new(born: Timestamp) -> Self {
        Meter {
            born,
            last: born,
            average: 0.0,
            total: 0,
            minutes: VecDeque::with_capacity(HISTORY_MINUTES),
        }
    }

    /// Credits `nonces` at `now`.
    ///
    /// The average is that of a rate made of one impulse per credit: over a gap `d` since
    /// the previous credit it decays by `e^(−d/τ)` and gains `nonces × (1 − e^(−d/τ)) / d`
    /// (`nonces / τ` for `d = 0`), the exact weighting of a steady flow of `nonces / d`.
    pub(crate) fn credit(&mut self, now: Timestamp, nonces: u128) {
        let now = now.max(self.last);
        let gap = now.saturating_duration_since(self.last);
        let factor = decay(gap);
        let gain = if gap.is_zero() {
            nonces as f64 / RATE_TAU.as_secs_f64()
        } else {
            nonces as f64 * (1.0 - factor) / gap.as_secs_f64()
        };
        self.average = self.average * factor + gain;
        self.last = now;
        self.total = self.total.saturating_add(nonces);
        let minute = minute_of(now);
        let next = self.minutes.back().map(|(m, _)| m + 1);
        // Fill the minutes without credit since the latest one (the last hour at most).
        if let Some(next) = next {
            let from = next.max(minute.saturating_sub(HISTORY_MINUTES as u64 - 1));
            for empty in from..=minute {
                self.push_minute(empty);
            }
        } else {
            self.push_minute(minute);
        }
        if let Some((_, n)) = self.minutes.back_mut() {
            *n = n.saturating_add(nonces);
        }
    }

    fn push_minute(&mut self, minute: u64) {
        if self.minutes.back().is_some_and(|(m, _)| *m >= minute) {
            return;
        }
        if self.minutes.len() == HISTORY_MINUTES {
            self.minutes.pop_front();
        }
        self.minutes.push_back((minute, 0));
    }

    /// Nonces credited in all.
    pub(crate) fn total(&self) -> u128 {
        self.total
    }

    /// The moving average at `now`, in nonces per second: decayed since the latest credit,
    /// and divided by `1 − e^(−age/τ)` so that a meter younger than `τ` reads the mean
    /// since it started rather than a fraction of it. Zero at age zero.
    pub(crate) fn rate(&self, now: Timestamp) -> f64 {
        let now = now.max(self.last);
        let age = now.saturating_duration_since(self.born);
        let weight = 1.0 - decay(age);
        if weight <= 0.0 {
            return 0.0;
        }
        self.average * decay(now.saturating_duration_since(self.last)) / weight
    }

    /// The per-minute history up to `now`'s minute, oldest first: at most
    /// [`HISTORY_MINUTES`] consecutive minutes, from the first with a credit (or from the
    /// minute of `born` if none), minutes without credit reading zero.
    pub(crate) fn history(&self, now: Timestamp) -> Vec<MinuteSample> {
        let current = minute_of(now.max(self.last));
        let first = current.saturating_sub(HISTORY_MINUTES as u64 - 1);
        let start = self
            .minutes
            .front()
            .map_or(minute_of(self.born), |(m, _)| *m)
            .max(first);
        // The ring holds consecutive minutes: index by offset from its front.
        let front = self.minutes.front().map_or(0, |(m, _)| *m);
        let credited = |minute: u64| {
            usize::try_from(minute - front.min(minute))
                .ok()
                .and_then(|i| self.minutes.get(i))
                .filter(|(m, _)| *m == minute)
                .map_or(0, |(_, n)| *n)
        };
        (start..=current)
            .map(|minute| {
                let nonces = credited(minute);
                MinuteSample {
                    minute,
                    nonces,
                    rate: nonces as f64 / 60.0,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn a_steady_flow_reads_its_rate_from_the_start() {
        let mut m = Meter::new(secs(0));
        assert_eq!(m.rate(secs(0)), 0.0);
        // 1000 nonces every 100 ms: 10 000 nonces per second.
        for i in 1..=600u64 {
            m.credit(Timestamp::from_millis(i * 100), 1000);
            if i % 50 == 0 {
                let r = m.rate(Timestamp::from_millis(i * 100));
                assert!((r - 10_000.0).abs() < 600.0, "at {i}: {r}");
            }
        }
        assert_eq!(m.total(), 600_000);
    }

    #[test]
    fn the_average_decays_when_credits_stop_and_follows_a_new_speed() {
        let mut m = Meter::new(secs(0));
        for i in 1..=100u64 {
            m.credit(Timestamp::from_millis(i * 100), 1000);
        }
        let steady = m.rate(secs(10));
        assert!(m.rate(secs(20)) < steady * 0.4);
        assert!(m.rate(secs(100)) < 1.0);
        for i in 1..=300u64 {
            m.credit(Timestamp::from_millis(100_000 + i * 100), 5000);
        }
        let r = m.rate(secs(130));
        assert!((r - 50_000.0).abs() < 3_000.0, "{r}");
    }

    #[test]
    fn history_is_a_bounded_ring_of_consecutive_minutes() {
        let mut m = Meter::new(secs(0));
        m.credit(secs(30), 60);
        m.credit(secs(90), 120);
        m.credit(secs(200), 6);
        let h = m.history(secs(200));
        let got: Vec<(u64, u128)> = h.iter().map(|s| (s.minute, s.nonces)).collect();
        assert_eq!(got, [(0, 60), (1, 120), (2, 0), (3, 6)]);
        assert_eq!(h[1].rate, 2.0);
        // Two hours later: an hour of history, all but the last empty.
        m.credit(secs(7200), 1);
        assert!(m.minutes.len() <= HISTORY_MINUTES);
        let h = m.history(secs(7260));
        assert_eq!(h.len(), HISTORY_MINUTES);
        assert_eq!(h.last().map(|s| s.minute), Some(121));
        assert_eq!(h.iter().map(|s| s.nonces).sum::<u128>(), 1);
        // Many credits never grow it.
        for i in 0..10_000u64 {
            m.credit(secs(7300 + i * 7), 1);
        }
        assert_eq!(m.minutes.len(), HISTORY_MINUTES);
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let mut m = Meter::new(secs(10));
        m.credit(secs(20), 100);
        m.credit(secs(5), 100);
        assert_eq!(m.total(), 200);
        assert!(m.rate(secs(1)).is_finite());
        assert_eq!(m.history(secs(0)).last().map(|s| s.nonces), Some(200));
    }
}
