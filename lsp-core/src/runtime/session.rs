//! The contract between a driver and the session it runs, and the driver's status as the
//! session reports it to application calls.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::{Stats, Timestamp};

/// How many items a session moves ahead from its endpoint into its own inbox before the
/// application reads them. The rest stay queued in the endpoint, where they count as
/// unread for back-pressure ([`Limits::max_unread_messages`](crate::Limits)): a slow
/// reader slows its peers down instead of growing memory.
pub(super) const INBOX_AHEAD: usize = 64;

/// An endpoint plus its application-side state, as a driver sees it: the inputs it feeds,
/// the outputs it moves, and whether the driver still runs.
pub trait Session {
    /// The peer address type.
    type Addr;

    /// Feeds one datagram received from `from`.
    fn handle_datagram(&mut self, now: Timestamp, from: Self::Addr, datagram: &[u8]);

    /// Feeds the timer.
    fn handle_timeout(&mut self, now: Timestamp);

    /// The core's next deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;

    /// Moves the core's datagrams into `outbox` (in send order) and its events into the
    /// application-side state; returns whether a waiting application call may now make
    /// progress.
    fn drain(&mut self, outbox: &mut VecDeque<(Self::Addr, Vec<u8>)>) -> bool;

    /// Records that the driver stopped: every waiting and later application call fails.
    fn halt(&mut self, status: DriverStatus);

    /// Whether the driver runs.
    fn status(&self) -> &DriverStatus;

    /// The endpoint's counters.
    fn stats(&self) -> &Stats;

    /// The endpoint's epoch length.
    fn epoch(&self) -> Duration;
}

/// Whether a runtime's driver runs, and if not, why.
#[derive(Clone, Debug, Default)]
pub enum DriverStatus {
    /// The driver runs.
    #[default]
    Running,
    /// The endpoint was closed, aborted or dropped.
    Stopped,
    /// The driver stopped on this socket error.
    Failed(Arc<io::Error>),
}

impl DriverStatus {
    /// Whether the driver has stopped, for whatever reason.
    pub fn is_stopped(&self) -> bool {
        !matches!(self, DriverStatus::Running)
    }
}
