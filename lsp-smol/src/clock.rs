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

    /// The instant a core timestamp stands for (`None` if unrepresentable: never).
    pub(crate) fn instant(&self, t: Timestamp) -> Option<Instant> {
        self.origin
            .checked_add(Duration::from_micros(t.as_micros()))
    }
}
