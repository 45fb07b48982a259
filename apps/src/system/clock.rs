//! The glue loops' clock: [`Timestamp`]s counted from when the clock started.

use std::time::{Duration, Instant};

use lsp_core::Timestamp;

/// A monotonic clock giving [`Timestamp`]s since its creation.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock reading zero now.
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        let micros = self.origin.elapsed().as_micros();
        Timestamp::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// How long from now until `deadline` (zero if it has passed).
    pub fn until(&self, deadline: Timestamp) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}
