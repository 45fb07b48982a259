//! Time as the cores see it: a monotonic timestamp that drivers pass in.
//!
//! The cores never read a clock. A runtime converts its own clock (e.g. `Instant` elapsed
//! since the endpoint started) into a [`Timestamp`]; the simulator makes them from virtual
//! time. Timestamps are microseconds since an arbitrary origin chosen by the driver.

use std::fmt;
use std::time::Duration;

/// A point in time: microseconds since an origin the driver chooses (often its start).
///
/// Totally ordered, cheap to copy, and constructible from a plain number so that simulators
/// and fuzzers can make any instant they like. Arithmetic saturates instead of overflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// This instant plus `d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(
            Timestamp::from_millis(5).saturating_duration_since(Timestamp::from_millis(7)),
            Duration::ZERO
        );
        assert_eq!(Timestamp::from_millis(2).as_micros(), 2000);
        assert_eq!(Timestamp::from_micros(1_500_000).to_string(), "1.500000s");
    }
}
