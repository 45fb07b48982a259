//! The keep-alive invariant (docs/protocol.md §6.4): at every epoch tick, every live connection
//! hears from its endpoint — a Data message sent or resent since the previous tick, or a
//! heartbeat `(Ack, id, 0)` — and a client still connecting resends its Connect.
//!
//! [`KeepAlive`] records, per direction `(sender, receiver)`, the last time such a datagram
//! was written, on a half-tick scale: `2k` during the sender's `k`-th tick, `2k + 1` between
//! its `k`-th and `(k+1)`-th ticks. At the end of tick `k` something must have been written at
//! `2k − 1` or later, i.e. after the previous tick finished. (A resend *during* the previous
//! tick does not count, as the endpoint's own rule resets at the end of each tick.)

use std::collections::BTreeMap;

use crate::net::Addr;

/// Whether a datagram keeps a connection alive: Connect, Data or a heartbeat `Ack(_, 0)`.
pub(crate) fn keeps_alive(bytes: &[u8]) -> bool {
    bytes.starts_with(b"{\"Type\":0,")
        || bytes.starts_with(b"{\"Type\":1,")
        || (bytes.starts_with(b"{\"Type\":2,") && heartbeat_seq(bytes))
}

fn heartbeat_seq(bytes: &[u8]) -> bool {
    // `{"Type":2,"ConnID":<id>,"SeqNum":0,`
    let Some(at) = bytes.windows(10).position(|w| w == b",\"SeqNum\":") else {
        return false;
    };
    bytes[at + 10..].starts_with(b"0,")
}

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub(crate) struct KeepAlive {
    last: BTreeMap<(Addr, Addr), u64>,
}

impl KeepAlive {
    /// Notes a keep-alive datagram from `from` to `to`, `from` having ticked `ticks` times
    /// and writing it during a tick or not.
    pub(crate) fn on_send(&mut self, from: Addr, to: Addr, ticks: u64, at_tick: bool) {
        let stamp = 2 * ticks + u64::from(!at_tick);
        self.last.insert((from, to), stamp);
    }

    /// Whether `from` kept its connection to `to` alive during its `ticks`-th tick.
    pub(crate) fn kept_alive(&self, from: Addr, to: Addr, ticks: u64) -> bool {
        self.last
            .get(&(from, to))
            .is_some_and(|&stamp| stamp + 1 >= 2 * ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_core::Message;

    #[test]
    fn classifies_datagrams() {
        assert!(keeps_alive(&Message::connect(5).encode()));
        assert!(keeps_alive(&Message::data(1, 2, b"x".to_vec()).encode()));
        assert!(keeps_alive(&Message::ack(1, 0).encode()));
        assert!(!keeps_alive(&Message::ack(1, 10).encode()));
        assert!(!keeps_alive(&Message::cack(1, 0).encode()));
    }

    #[test]
    fn a_send_counts_for_the_next_tick_only() {
        let (a, b) = (Addr(1), Addr::SERVER);
        let mut k = KeepAlive::default();
        assert!(!k.kept_alive(a, b, 1));
        k.on_send(a, b, 0, false); // between tick 0 and tick 1
        assert!(k.kept_alive(a, b, 1));
        k.on_send(a, b, 1, true); // during tick 1
        assert!(k.kept_alive(a, b, 1));
        assert!(
            !k.kept_alive(a, b, 2),
            "a resend during tick 1 does not cover tick 2"
        );
    }
}
