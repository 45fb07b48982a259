//! The scheduler's parameters, checked once when the scheduler is built.

use std::fmt;
use std::time::Duration;

/// The most jobs a miner may be given at once that [`Config::validate`] accepts.
pub const MAX_JOBS_PER_MINER: usize = 8;

/// The largest [`Config::lease_factor`] that [`Config::validate`] accepts.
pub const MAX_LEASE_FACTOR: u32 = 100;

/// The longest job duration [`Config::validate`] accepts (one hour): beyond that, a lost
/// miner would cost more than anyone would wait for.
pub const MAX_JOB_DURATION: Duration = Duration::from_secs(3600);

/// In what order requests are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Shortest remaining work first, with a deadline against starvation.
    ///
    /// Requests are served by increasing remaining work (nonces not yet answered), ties by
    /// arrival: optimal for the mean response time (SRPT), and equal requests keep their
    /// arrival order because the first one started only gets shorter. Alone, SRPT can starve
    /// a large request under a stream of smaller ones, so a request that has been active for
    /// longer than `overdue_factor ×` its *alone time* (its nonces ÷ the miners' total rate)
    /// plus one [`Config::target_job_duration`] is *overdue*: overdue requests go before all
    /// others, earliest deadline first. Every request therefore comes first eventually, and
    /// a request is only ever overtaken by one that is shorter or overdue.
    ShortestRemainingFirst {
        /// The slowdown after which a request is overdue; 0 means never (pure SRPT).
        overdue_factor: u32,
    },
    /// First come, first served: the baseline the benchmark compares against.
    Arrival,
}

/// The scheduler's parameters. [`Config::default`] gives the documented policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a job should take on the miner it is sized for (default 50 ms). Short
    /// enough that a lost miner costs little and that a new request soon finds a free
    /// miner (a job cannot be recalled, so a new small request waits behind up to
    /// `jobs_per_miner` of them); long enough that the per-job cost (two messages, some
    /// tens of microseconds of server time) stays below 0.1%.
    pub target_job_duration: Duration,
    /// The shortest job worth sending, as time on the miner it is sized for (default 2 ms):
    /// the floor of the shrinking jobs at the end of a request.
    pub min_job_duration: Duration,
    /// The size of a new miner's jobs until its rate has been measured (default 10 000
    /// nonces, as the reference graders suggest); its starting rate estimate is this many
    /// nonces per `target_job_duration`. Also the smallest job ever sent, whatever the
    /// rate, except the last piece of a range: a miner whose jobs are dominated by the
    /// round trip looks slow, and would otherwise get ever smaller jobs.
    pub initial_job_nonces: u64,
    /// How many jobs a miner may hold at once, between 1 and [`MAX_JOBS_PER_MINER`]
    /// (default 2: one running and one queued behind it, so that the round trip between
    /// an answer and the next job does not leave the miner idle). Answers are matched to
    /// jobs by content, so a miner may answer them in any order.
    pub jobs_per_miner: usize,
    /// How a request's last nonces are spread (default 2): a job never takes more than
    /// `1 / tail_split` of the time the whole pool would need for the request's nonces not
    /// yet handed out, so jobs shrink near the end and all miners finish together.
    pub tail_split: u32,
    /// The order in which requests are served (default shortest remaining work first,
    /// overdue after 10× the alone time).
    pub order: Order,
    /// Whether idle miners duplicate jobs that are late or running on much slower miners
    /// (default true). See the module documentation.
    pub backup_jobs: bool,
    /// How much a request may spend on backups of jobs that are not late (they run on a
    /// much slower miner than the free one), as a percentage of its nonces (default 5):
    /// with honest miners that answer when expected, at most 5 % of the work is done
    /// twice. Backups of late jobs are not limited.
    pub backup_budget_percent: u32,
    /// A job's lease lasts this many times its expected time (from sending to the expected
    /// answer, from the miner's measured rate and round trip and what it already holds),
    /// plus [`Config::lease_slack`]; between 1 and [`MAX_LEASE_FACTOR`] (default 3). At its
    /// end the job is re-issued to another miner.
    pub lease_factor: u32,
    /// What a lease adds to `lease_factor ×` the expected time, for network trouble: at
    /// most [`MAX_JOB_DURATION`] (default 4 s: two epochs of the reference's LSP
    /// parameters; a driver with other parameters should use two of its epochs).
    pub lease_slack: Duration,
    /// Requests one client may have accepted and unanswered at once, the active one
    /// included (default 16); one more is refused with
    /// [`crate::scheduler::RequestError::ClientFull`]. At least 1.
    pub max_requests_per_client: usize,
    /// Requests all clients together may have accepted and unanswered (default 65,536); one
    /// more is refused with [`crate::scheduler::RequestError::Full`]. At least
    /// `max_requests_per_client`.
    pub max_requests: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target_job_duration: Duration::from_millis(50),
            min_job_duration: Duration::from_millis(2),
            initial_job_nonces: 10_000,
            jobs_per_miner: 2,
            tail_split: 2,
            order: Order::ShortestRemainingFirst { overdue_factor: 10 },
            backup_jobs: true,
            backup_budget_percent: 5,
            lease_factor: 3,
            lease_slack: Duration::from_secs(4),
            max_requests_per_client: 16,
            max_requests: 65_536,
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
        if !(1..=MAX_LEASE_FACTOR).contains(&self.lease_factor) {
            return Err(ConfigError::LeaseFactor(self.lease_factor));
        }
        if self.lease_slack > MAX_JOB_DURATION {
            return Err(ConfigError::LeaseSlack(self.lease_slack));
        }
        if self.max_requests_per_client == 0 || self.max_requests < self.max_requests_per_client {
            return Err(ConfigError::RequestLimits {
                per_client: self.max_requests_per_client,
                total: self.max_requests,
            });
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
    /// `lease_factor` is outside `1 ..= MAX_LEASE_FACTOR`.
    LeaseFactor(u32),
    /// `lease_slack` exceeds [`MAX_JOB_DURATION`].
    LeaseSlack(Duration),
    /// `max_requests_per_client` is zero or above `max_requests`.
    RequestLimits {
        /// The configured `max_requests_per_client`.
        per_client: usize,
        /// The configured `max_requests`.
        total: usize,
    },
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
            ConfigError::LeaseFactor(n) => write!(
                f,
                "the lease factor must be between 1 and {MAX_LEASE_FACTOR}, not {n}"
            ),
            ConfigError::LeaseSlack(d) => {
                write!(f, "lease slack {d:?} exceeds {MAX_JOB_DURATION:?}")
            }
            ConfigError::RequestLimits { per_client, total } => write!(
                f,
                "request limits must satisfy 1 <= per client ({per_client}) <= total ({total})"
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
        assert_eq!(bad(|c| c.lease_factor = 0), ConfigError::LeaseFactor(0));
        assert_eq!(
            bad(|c| c.lease_slack = Duration::MAX),
            ConfigError::LeaseSlack(Duration::MAX)
        );
        assert!(!ConfigError::ZeroTailSplit.to_string().is_empty());
    }
}
