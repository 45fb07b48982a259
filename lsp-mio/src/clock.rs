//! The driver's clock: a monotonic `Instant` origin turned into [`Timestamp`]s for the core.

use std::time::{Duration, Instant};

use lsp_core::Timestamp;

/// Converts between wall-clock instants and the core's [`Timestamp`]s, whose origin is the
/// moment the endpoint was created.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub(crate) fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The current time as the core sees it.
    pub(crate) fn now(&self) -> Timestamp {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        Timestamp::from_micros(micros)
    }

    /// How long from now until `deadline` (zero if it has passed).
    pub(crate) fn until(&self, deadline: Timestamp) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}
