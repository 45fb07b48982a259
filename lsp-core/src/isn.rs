//! The valid domain of initial sequence numbers.
//!
//! LSP numbers a connection's Data messages `isn + 1, isn + 2, …` in both directions, and a
//! heartbeat is `(Ack, id, 0)` (docs/protocol.md §3, §6.4). Two things follow:
//!
//! - If a Data message could carry sequence number 0, an `Ack(id, 0)` would be ambiguous: a
//!   heartbeat and the acknowledgement of that message look the same on the wire, and a
//!   lost message would be taken as delivered (a client with isn −1 whose Data 0 is dropped
//!   never resends it once the server's next heartbeat arrives).
//! - If sequence numbers could wrap past `i64::MAX`, every comparison ("is this in the
//!   window", "which in-flight message is the oldest") would need modular arithmetic, on
//!   both sides, and the reference (which never wraps) would disagree with it anyway.
//!
//! So this crate does **not** do wrap-around arithmetic. It fixes one domain instead:
//! `isn` must lie in [`ISN_DOMAIN`] = `0 ..= MAX_ISN` with `MAX_ISN = i64::MAX − 2³²`.
//! Then every Data sequence number is ≥ 1 (never mistaken for a heartbeat) and at least
//! 2³² messages fit in each direction before `i64::MAX`; a `write` that would need a number
//! beyond `i64::MAX` is refused with [`ApiError::SequenceExhausted`](crate::ApiError)
//! (at a million messages a second that takes more than an hour even from `MAX_ISN`; from
//! the small isns clients actually use, never). Everything the reference's tests use (0 and
//! small random values) is inside the domain; a Connect outside it is dropped by the server
//! and counted in [`DropCounts::invalid_isn`](crate::DropCounts), and
//! [`ClientEndpoint::new`](crate::ClientEndpoint::new) refuses it with
//! [`ParamsError::IsnOutOfRange`](crate::ParamsError).

use std::ops::RangeInclusive;

/// The largest valid initial sequence number: `i64::MAX − 2³²`.
pub const MAX_ISN: i64 = i64::MAX - (1 << 32);

/// The valid initial sequence numbers, `0 ..= MAX_ISN` (see the module documentation).
pub const ISN_DOMAIN: RangeInclusive<i64> = 0..=MAX_ISN;

/// Whether `isn` is a valid initial sequence number.
pub fn is_valid_isn(isn: i64) -> bool {
    ISN_DOMAIN.contains(&isn)
}
