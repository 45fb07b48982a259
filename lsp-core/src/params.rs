//! Protocol parameters (docs/protocol.md §8) and their validation.

use std::fmt;
use std::time::Duration;

/// The tunable parameters of an endpoint. Both ends may use different values: acceptance uses
/// the receiver's `window_size`, sending uses the sender's `window_size` and
/// `max_unacked_messages`.
///
/// [`Params::default`] gives the reference defaults `(5, 2000 ms, 1, 0, 1)`. Endpoints call
/// [`Params::validate`] at construction, so an invalid value is an error up front, never a
/// panic or a stall later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// `K`: epochs of silence after which the peer is declared lost (≥ 1).
    pub epoch_limit: u32,
    /// `δ`: epoch length in milliseconds (≥ 1).
    pub epoch_millis: u64,
    /// `ω`: sliding window, sender and receiver (≥ 1).
    pub window_size: u32,
    /// Cap on a message's back-off, in epochs (≥ 0).
    pub max_backoff_interval: u32,
    /// `M`: cap on messages in flight (≥ 1).
    pub max_unacked_messages: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            epoch_limit: 5,
            epoch_millis: 2000,
            window_size: 1,
            max_backoff_interval: 0,
            max_unacked_messages: 1,
        }
    }
}

/// Why a [`Params`] value (or another construction argument) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamsError {
    /// `epoch_limit` was 0.
    ZeroEpochLimit,
    /// `epoch_millis` was 0.
    ZeroEpochMillis,
    /// `window_size` was 0.
    ZeroWindowSize,
    /// `max_unacked_messages` was 0.
    ZeroMaxUnacked,
    /// A client's initial sequence number is outside [`ISN_DOMAIN`](crate::ISN_DOMAIN)
    /// (`0 ..= MAX_ISN`).
    IsnOutOfRange(i64),
    /// [`Limits::max_connections`](crate::Limits) was 0.
    ZeroMaxConnections,
    /// [`Limits::max_half_open`](crate::Limits) was 0.
    ZeroMaxHalfOpen,
    /// [`Limits::max_half_open`](crate::Limits) was above `max_connections`.
    HalfOpenAboveConnections,
    /// [`Limits::max_unread_messages`](crate::Limits) was 0.
    ZeroMaxUnread,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ParamsError::IsnOutOfRange(isn) => {
                return write!(
                    f,
                    "initial sequence number {isn} is outside 0..={}",
                    crate::MAX_ISN
                );
            }
            ParamsError::ZeroEpochLimit => "epoch_limit",
            ParamsError::ZeroEpochMillis => "epoch_millis",
            ParamsError::ZeroWindowSize => "window_size",
            ParamsError::ZeroMaxUnacked => "max_unacked_messages",
            ParamsError::ZeroMaxConnections => "max_connections",
            ParamsError::ZeroMaxHalfOpen => "max_half_open",
            ParamsError::ZeroMaxUnread => "max_unread_messages",
            ParamsError::HalfOpenAboveConnections => {
                return write!(f, "invalid limits: max_half_open exceeds max_connections");
            }
        };
        write!(f, "invalid LSP parameters: {name} must be at least 1")
    }
}

impl std::error::Error for ParamsError {}

impl Params {
    /// Checks every field against docs/protocol.md §8.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.epoch_limit == 0 {
            return Err(ParamsError::ZeroEpochLimit);
        }
        if self.epoch_millis == 0 {
            return Err(ParamsError::ZeroEpochMillis);
        }
        if self.window_size == 0 {
            return Err(ParamsError::ZeroWindowSize);
        }
        if self.max_unacked_messages == 0 {
            return Err(ParamsError::ZeroMaxUnacked);
        }
        Ok(())
    }

    /// The epoch length as a [`Duration`].
    pub fn epoch(&self) -> Duration {
        Duration::from_millis(self.epoch_millis)
    }

    /// The back-off that follows `backoff` after a resend: 1 after 0, then doubling, never
    /// above `max_backoff_interval` (docs/protocol.md §6.2).
    pub fn next_backoff(&self, backoff: u32) -> u32 {
        let grown = if backoff == 0 {
            1
        } else {
            backoff.saturating_mul(2)
        };
        grown.min(self.max_backoff_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_references() {
        let p = Params::default();
        assert_eq!(
            (
                p.epoch_limit,
                p.epoch_millis,
                p.window_size,
                p.max_backoff_interval,
                p.max_unacked_messages
            ),
            (5, 2000, 1, 0, 1)
        );
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn zero_values_are_rejected() {
        let ok = Params::default();
        assert_eq!(
            Params {
                epoch_limit: 0,
                ..ok
            }
            .validate(),
            Err(ParamsError::ZeroEpochLimit)
        );
        assert_eq!(
            Params {
                epoch_millis: 0,
                ..ok
            }
            .validate(),
            Err(ParamsError::ZeroEpochMillis)
        );
        assert_eq!(
            Params {
                window_size: 0,
                ..ok
            }
            .validate(),
            Err(ParamsError::ZeroWindowSize)
        );
        assert_eq!(
            Params {
                max_unacked_messages: 0,
                ..ok
            }
            .validate(),
            Err(ParamsError::ZeroMaxUnacked)
        );
        assert_eq!(
            Params {
                max_backoff_interval: 0,
                ..ok
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = Params {
            max_backoff_interval: 8,
            ..Params::default()
        };
        let mut b = 0;
        let mut seen = vec![];
        for _ in 0..6 {
            b = p.next_backoff(b);
            seen.push(b);
        }
        assert_eq!(seen, [1, 2, 4, 8, 8, 8]);
        assert_eq!(
            Params::default().next_backoff(0),
            0,
            "cap 0 resends every epoch"
        );
    }
}
