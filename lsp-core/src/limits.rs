//! Bounds on what remote peers can make an endpoint hold (issue 11): admission control for
//! the server's connection table, and back-pressure on delivery.
//!
//! [`Params`](crate::Params) are the protocol's parameters (docs/protocol.md §8, shared with the
//! reference); [`Limits`] are local resource bounds that never change what goes on the wire
//! for a well-behaved peer within them.

/// Resource bounds of an endpoint. [`Limits::default`] suits 100,000 real clients on one
/// server; endpoints call [`Limits::validate`] at construction.
///
/// Admission control (server): a connection is *half-open* from its Connect until the
/// server receives any other decodable datagram from its address (Data, Ack, CAck; a
/// retried Connect does not count). When a Connect from a new address (with a valid isn)
/// arrives:
///
/// 1. if `max_connections` connections are forgotten (lost, closed, evicted) but still have
///    events the application has not taken with `poll_event`, the Connect is dropped
///    unanswered (an application that does not read must not let peers grow its event
///    queue);
/// 2. if `max_half_open` connections are half-open, the oldest half-open one is evicted:
///    forgotten, its outgoing messages discarded, its application told `ConnectionLost`
///    (counted in [`Stats::half_open_evicted`](crate::Stats));
/// 3. if the server keeps `max_connections` connections, the oldest half-open one (if any)
///    is evicted the same way;
/// 4. if it still keeps `max_connections`, the Connect is dropped unanswered.
///
/// Dropped Connects are counted in [`DropCounts::connection_limit`](crate::DropCounts).
///
/// Back-pressure (server and client): a connection's *unread* messages are those received
/// in order and queued as events that the application has not taken with `poll_event`
/// yet. While a connection has `max_unread_messages` or more, Data that would be new to it
/// (not a duplicate, inside the window) is dropped **without** an Ack and not buffered,
/// counted in [`DropCounts::unread_full`](crate::DropCounts): the peer resends it with
/// back-off as if it were lost (TCP's zero window). Taking events makes room; the next
/// retransmission is then acked and delivered. Heartbeats, acks and duplicates are handled
/// as usual meanwhile, so the connection stays alive and nothing is lost. A gap that
/// closes can deliver up to `window_size − 1` buffered messages at once, so unread
/// messages stay below `max_unread_messages + window_size`.
/// The connections the server keeps are therefore at most `max_connections`, half-open
/// ones at most `max_half_open`, and kept plus forgotten-with-queued-events ones at most
/// `2 × max_connections + 1` (however many are lost while the application does not read);
/// each of those has at most `max_unread_messages + window_size + 1` queued events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Server: connections kept at once (≥ 1). Default 131,072.
    pub max_connections: u32,
    /// Server: connections that have sent nothing since their Connect (≥ 1, at most
    /// `max_connections`). Default 32,768.
    pub max_half_open: u32,
    /// Server and client, per connection: received messages not yet taken by the
    /// application beyond which new Data is not acknowledged (≥ 1). Default 1,024.
    pub max_unread_messages: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1 << 17,
            max_half_open: 1 << 15,
            max_unread_messages: 1 << 10,
        }
    }
}

impl Limits {
    /// Checks every field; the error is a [`ParamsError`](crate::ParamsError) so that the
    /// endpoints' constructors keep one error type.
    pub fn validate(&self) -> Result<(), crate::ParamsError> {
        use crate::ParamsError;
        if self.max_connections == 0 {
            return Err(ParamsError::ZeroMaxConnections);
        }
        if self.max_half_open == 0 {
            return Err(ParamsError::ZeroMaxHalfOpen);
        }
        if self.max_half_open > self.max_connections {
            return Err(ParamsError::HalfOpenAboveConnections);
        }
        if self.max_unread_messages == 0 {
            return Err(ParamsError::ZeroMaxUnread);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamsError;

    #[test]
    fn defaults_are_valid_and_invalid_values_rejected() {
        let ok = Limits::default();
        assert_eq!(ok.validate(), Ok(()));
        assert!(ok.max_connections >= 100_000);
        assert!(ok.max_half_open < ok.max_connections);
        for (bad, err) in [
            (
                Limits {
                    max_connections: 0,
                    ..ok
                },
                ParamsError::ZeroMaxConnections,
            ),
            (
                Limits {
                    max_half_open: 0,
                    ..ok
                },
                ParamsError::ZeroMaxHalfOpen,
            ),
            (
                Limits {
                    max_connections: 10,
                    max_half_open: 11,
                    ..ok
                },
                ParamsError::HalfOpenAboveConnections,
            ),
            (
                Limits {
                    max_unread_messages: 0,
                    ..ok
                },
                ParamsError::ZeroMaxUnread,
            ),
        ] {
            assert_eq!(bad.validate(), Err(err));
        }
        let tight = Limits {
            max_connections: 1,
            max_half_open: 1,
            max_unread_messages: 1,
        };
        assert_eq!(tight.validate(), Ok(()));
    }
}
