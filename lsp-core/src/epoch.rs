//! The epoch timer (§8): ticks on a fixed grid, like the reference's `time.Ticker`.

use std::time::Duration;

use crate::Timestamp;

/// Ticks every `epoch` starting one epoch after construction. A driver that is late (a
/// stalled process, a loaded machine) gets **one** tick and the grid moves on past `now`,
/// as Go's ticker drops ticks for slow receivers, instead of a burst of catch-up ticks that
/// would declare every peer lost at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EpochTimer {
    next_tick: Timestamp,
    epoch: Duration,
}

impl EpochTimer {
    /// A timer whose first tick is one `epoch` after `start`.
    pub(crate) fn new(start: Timestamp, epoch: Duration) -> EpochTimer {
        EpochTimer {
            next_tick: start + epoch,
            epoch,
        }
    }

    /// When the next tick is due.
    pub(crate) fn deadline(&self) -> Timestamp {
        self.next_tick
    }

    /// Whether a tick is due at `now`; if so the timer advances to its first grid point
    /// after `now`.
    pub(crate) fn poll_tick(&mut self, now: Timestamp) -> bool {
        if now < self.next_tick {
            return false;
        }
        let epoch = self.epoch.as_micros().max(1) as u64;
        let late = now.as_micros() - self.next_tick.as_micros();
        let missed = late / epoch + 1;
        self.next_tick = Timestamp::from_micros(
            self.next_tick
                .as_micros()
                .saturating_add(missed.saturating_mul(epoch)),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_on_the_grid_and_skips_missed_ticks() {
        let mut t = EpochTimer::new(Timestamp::from_millis(10), Duration::from_millis(100));
        assert_eq!(t.deadline(), Timestamp::from_millis(110));
        assert!(!t.poll_tick(Timestamp::from_millis(109)));
        assert!(t.poll_tick(Timestamp::from_millis(110)));
        assert!(!t.poll_tick(Timestamp::from_millis(110)));
        assert_eq!(t.deadline(), Timestamp::from_millis(210));
        assert!(t.poll_tick(Timestamp::from_millis(555)));
        assert_eq!(t.deadline(), Timestamp::from_millis(610));
    }
}
