//! The retransmission-schedule invariant (docs/protocol.md §6.2).
//!
//! A message never acknowledged is resent at the `(b+1)`-th tick of its sender after its
//! latest transmission, `b` going `0, 1, 2, 4, …` up to `max_backoff_interval`. An
//! acknowledged message is never resent, so *every* observed retransmission must come exactly
//! `b+1` ticks after the previous transmission — earlier or later is a bug — and only at a
//! tick of its sender. [`Schedule`] watches every Data datagram a node writes.

use std::collections::BTreeMap;

use lsp_core::Params;

use crate::net::Addr;

/// What the schedule remembers of one message.
#[derive(Clone, Copy, Debug)]
struct Sent {
    /// The sender's tick count at its latest transmission.
    tick: u64,
    /// Its current back-off `b`.
    backoff: u32,
    /// Transmissions so far.
    count: u32,
}

/// Per message `(sender, receiver, ConnID, SeqNum)`: when it was last sent and its back-off.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    sent: BTreeMap<(Addr, Addr, i64, i64), Sent>,
}

/// `(ConnID, SeqNum)` of a Data datagram in the canonical encoding, without a full decode.
pub(crate) fn data_ids(bytes: &[u8]) -> Option<(i64, i64)> {
    ids(bytes, b"{\"Type\":1,\"ConnID\":")
}

/// `(ConnID, SeqNum)` of an Ack datagram in the canonical encoding.
pub(crate) fn ack_ids(bytes: &[u8]) -> Option<(i64, i64)> {
    ids(bytes, b"{\"Type\":2,\"ConnID\":")
}

fn ids(bytes: &[u8], prefix: &[u8]) -> Option<(i64, i64)> {
    let rest = bytes.strip_prefix(prefix)?;
    let (conn, rest) = int_prefix(rest)?;
    let rest = rest.strip_prefix(b",\"SeqNum\":")?;
    let (seq, _) = int_prefix(rest)?;
    Some((conn, seq))
}

fn int_prefix(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut value: i64 = 0;
    for &d in &digits[..len] {
        value = value.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some((if negative { -value } else { value }, &digits[len..]))
}

impl Schedule {
    /// Notes a Data datagram `(conn, seq)` written by `from` to `to` when `from` has ticked
    /// `ticks` times; `at_tick` says whether it is being written by one of `from`'s ticks.
    /// Returns a description of a broken schedule.
    pub(crate) fn on_data(
        &mut self,
        from: Addr,
        to: Addr,
        (conn, seq): (i64, i64),
        ticks: u64,
        at_tick: bool,
        params: &Params,
    ) -> Option<String> {
        let key = (from, to, conn, seq);
        let Some(sent) = self.sent.get_mut(&key) else {
            self.sent.insert(
                key,
                Sent {
                    tick: ticks,
                    backoff: 0,
                    count: 1,
                },
            );
            return None;
        };
        let gap = ticks.saturating_sub(sent.tick);
        let due = u64::from(sent.backoff) + 1;
        let problem = if !at_tick {
            Some(format!(
                "{from}: Data {seq} of connection {conn} resent outside an epoch tick"
            ))
        } else if gap != due {
            Some(format!(
                "{from}: Data {seq} of connection {conn} resent {gap} ticks after its transmission #{}, due after {due} (back-off {}, cap {})",
                sent.count, sent.backoff, params.max_backoff_interval
            ))
        } else {
            None
        };
        sent.tick = ticks;
        sent.backoff = params.next_backoff(sent.backoff);
        sent.count += 1;
        problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_core::Message;

    #[test]
    fn reads_the_ids_of_canonical_data_only() {
        let d = Message::data(-7, 123, b"x".to_vec()).encode();
        assert_eq!(data_ids(&d), Some((-7, 123)));
        assert_eq!(data_ids(&Message::ack(1, 2).encode()), None);
        assert_eq!(ack_ids(&Message::ack(1, 2).encode()), Some((1, 2)));
    }

    #[test]
    fn accepts_the_schedule_and_rejects_early_or_late_resends() {
        let p = Params {
            max_backoff_interval: 4,
            ..Params::default()
        };
        let (a, b) = (Addr(1), Addr::SERVER);
        let mut s = Schedule::default();
        // First send between ticks 0 and 1, resends at ticks 1, 3, 6, 11, 16.
        assert_eq!(s.on_data(a, b, (1, 1), 0, false, &p), None);
        for t in [1, 3, 6, 11, 16] {
            assert_eq!(s.on_data(a, b, (1, 1), t, true, &p), None, "tick {t}");
        }
        assert!(s.on_data(a, b, (1, 1), 20, true, &p).is_some(), "early");
        assert_eq!(s.on_data(a, b, (1, 2), 0, false, &p), None);
        assert!(s.on_data(a, b, (1, 2), 2, true, &p).is_some(), "late");
        assert!(s.on_data(a, b, (1, 2), 3, false, &p).is_some(), "off tick");
    }
}
