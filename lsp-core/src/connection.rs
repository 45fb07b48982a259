//! The per-connection state machine shared by the client and the server endpoint:
//! sender window with per-message back-off (§6, §8.1), receive window (§7), heartbeats
//! (§8.3) and loss detection (§8.4).
//!
//! A [`Connection`] knows nothing about addresses or events: the endpoints feed it decoded,
//! integrity-checked messages and epoch ticks, and it writes datagrams and in-order payloads
//! into the [`Output`] they pass in.

use std::collections::{BTreeMap, VecDeque};

use crate::message::{data_encoded_len, Message, MAX_DATAGRAM_LEN};
use crate::{ApiError, Params, Stats};

/// Where a connection puts what it produces during one call.
pub(crate) struct Output<'a> {
    /// Datagrams for the peer, in send order.
    pub(crate) datagrams: &'a mut Vec<Vec<u8>>,
    /// Payloads to hand to the application, in sequence order.
    pub(crate) delivered: &'a mut Vec<Vec<u8>>,
    /// The endpoint's counters.
    pub(crate) stats: &'a mut Stats,
}

/// A transmitted, not yet acknowledged Data message.
struct InFlight {
    /// The encoded datagram, kept for resending.
    datagram: Vec<u8>,
    /// Current back-off `b` in epochs.
    backoff: u32,
    /// Ticks since the latest transmission.
    ticks_since_sent: u32,
}

/// What an epoch tick did to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TickOutcome {
    /// The connection lives on.
    Alive,
    /// `epoch_limit` silent epochs: the connection is lost and must be dropped.
    Lost,
}

/// One established connection's protocol state.
pub(crate) struct Connection {
    params: Params,
    /// The id the server assigned; written into every datagram.
    id: i64,
    /// Sequence number of the next message `write` accepts; beyond `i64::MAX` once every
    /// number is used (no wrap-around: see `crate::isn`).
    next_seq: i128,
    /// Written, not yet transmitted, in sequence order: `(seq, payload)`.
    queued: VecDeque<(i64, Vec<u8>)>,
    /// Transmitted, not yet acknowledged, keyed by sequence number.
    in_flight: BTreeMap<i64, InFlight>,
    /// The next sequence number not yet received in order (`i64::MAX + 1` once the peer's
    /// last possible message arrived; no wrap-around).
    expected: i128,
    /// Received out of order, all in `expected+1 .. expected+ω`.
    out_of_order: BTreeMap<i64, Vec<u8>>,
    /// Epochs since the peer was last heard from.
    silent_epochs: u32,
    /// Whether Data was sent or resent since the previous tick (no heartbeat needed).
    sent_data_since_tick: bool,
    /// The application is done with this connection: incoming Data is acked but not
    /// delivered, and the connection ends once everything outgoing is acknowledged.
    closing: bool,
}

impl Connection {
    /// A connection with id `id` whose streams both start after `isn`. The endpoints only
    /// pass an `isn` in [`ISN_DOMAIN`](crate::ISN_DOMAIN), so no Data is ever numbered 0.
    pub(crate) fn new(params: Params, id: i64, isn: i64) -> Connection {
        Connection {
            params,
            id,
            next_seq: i128::from(isn) + 1,
            queued: VecDeque::new(),
            in_flight: BTreeMap::new(),
            expected: i128::from(isn) + 1,
            out_of_order: BTreeMap::new(),
            silent_epochs: 0,
            sent_data_since_tick: false,
            closing: false,
        }
    }

    /// The connection id written into outgoing datagrams.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Sets the id once the connect-ack reveals it (client side).
    pub(crate) fn set_id(&mut self, id: i64) {
        self.id = id;
    }

    /// Whether the application has asked to close this connection.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// Stops delivering to the application; the connection now only flushes.
    pub(crate) fn start_closing(&mut self) {
        self.closing = true;
    }

    /// Everything written has been transmitted and acknowledged.
    pub(crate) fn is_flushed(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }

    /// Messages written but not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// Messages held out of order (never more than `window_size - 1`).
    pub(crate) fn buffered_out_of_order(&self) -> usize {
        self.out_of_order.len()
    }

    /// Messages transmitted and not yet acknowledged (never more than `max_unacked_messages`).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The largest payload a `write` could accept now. Before the connect-ack
    /// (`id_known == false`) the id is unknown, so the widest possible id is assumed.
    fn max_payload(&self, id_known: bool) -> usize {
        let id = if id_known { self.id } else { i64::MIN };
        let seq = i64::try_from(self.next_seq).unwrap_or(i64::MAX);
        // The encoded length grows with the payload: find the largest that fits.
        let (mut lo, mut hi) = (0usize, MAX_DATAGRAM_LEN);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if data_encoded_len(id, seq, mid) <= MAX_DATAGRAM_LEN {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// Queues `payload` and sends what the window admits (nothing before the connect-ack).
    pub(crate) fn write(
        &mut self,
        payload: Vec<u8>,
        id_known: bool,
        out: &mut Output<'_>,
    ) -> Result<(), ApiError> {
        let id = if id_known { self.id } else { i64::MIN };
        let seq = i64::try_from(self.next_seq).map_err(|_| ApiError::SequenceExhausted)?;
        if data_encoded_len(id, seq, payload.len()) > MAX_DATAGRAM_LEN {
            let max = self.max_payload(id_known);
            return Err(ApiError::PayloadTooLarge {
                len: payload.len(),
                max,
            });
        }
        self.next_seq += 1;
        self.queued.push_back((seq, payload));
        if id_known {
            self.send_admitted(out);
        }
        Ok(())
    }

    /// Transmits queued messages, in order, while the window and `max_unacked_messages` allow.
    pub(crate) fn send_admitted(&mut self, out: &mut Output<'_>) {
        while let Some(&(seq, _)) = self.queued.front() {
            let oldest_unacked = self.in_flight.keys().next().copied().unwrap_or(seq);
            let window_end = i128::from(oldest_unacked) + i128::from(self.params.window_size);
            let fits_window = i128::from(seq) < window_end;
            let fits_unacked = self.in_flight.len() < self.params.max_unacked_messages as usize;
            if !(fits_window && fits_unacked) {
                break;
            }
            let Some((seq, payload)) = self.queued.pop_front() else {
                break;
            };
            let datagram = Message::data(self.id, seq, payload).encode();
            out.datagrams.push(datagram.clone());
            out.stats.datagrams_sent += 1;
            out.stats.data_sent += 1;
            self.sent_data_since_tick = true;
            self.in_flight.insert(
                seq,
                InFlight {
                    datagram,
                    backoff: 0,
                    ticks_since_sent: 0,
                },
            );
        }
    }

    /// Notes that a decodable datagram arrived from the peer (§8.4).
    pub(crate) fn heard_from_peer(&mut self) {
        self.silent_epochs = 0;
    }

    /// Handles an integrity-checked Data message (§7). `room` says whether the application
    /// has room for more unread messages; without it, Data new to this connection is
    /// dropped unacknowledged, so that the peer resends it later (back-pressure, see
    /// [`Limits`](crate::Limits)).
    pub(crate) fn handle_data(
        &mut self,
        seq: i64,
        payload: Vec<u8>,
        room: bool,
        out: &mut Output<'_>,
    ) {
        let window = i128::from(self.params.window_size);
        let offset = i128::from(seq) - self.expected;
        if offset >= window {
            out.stats.dropped.out_of_window += 1;
            return;
        }
        let new = offset >= 0 && !self.out_of_order.contains_key(&seq);
        if new && !room && !self.closing {
            out.stats.dropped.unread_full += 1;
            return;
        }
        self.send_ack(seq, out);
        if offset < 0 || self.out_of_order.contains_key(&seq) {
            out.stats.dropped.duplicate_data += 1;
            return;
        }
        if offset > 0 {
            // Buffered even while closing (then discarded when in order): the receive window
            // must keep moving, or acked messages beyond a gap would stall it.
            self.out_of_order.insert(seq, payload);
            return;
        }
        self.accept_in_order(payload, out);
        while let Some(next) = i64::try_from(self.expected)
            .ok()
            .and_then(|expected| self.out_of_order.remove(&expected))
        {
            self.accept_in_order(next, out);
        }
    }

    fn accept_in_order(&mut self, payload: Vec<u8>, out: &mut Output<'_>) {
        self.expected += 1;
        if !self.closing {
            out.delivered.push(payload);
            out.stats.messages_delivered += 1;
        }
    }

    fn send_ack(&mut self, seq: i64, out: &mut Output<'_>) {
        out.datagrams.push(Message::ack(self.id, seq).encode());
        out.stats.datagrams_sent += 1;
        out.stats.acks_sent += 1;
    }

    /// Handles `Ack(seq)`: releases that message if it is in flight, then sends what the
    /// window now admits. `Ack(0)` is always a heartbeat and never acknowledges anything
    /// (no Data is numbered 0: see `crate::isn`).
    pub(crate) fn handle_ack(&mut self, seq: i64, out: &mut Output<'_>) {
        if seq == 0 {
            out.stats.heartbeats_received += 1;
            return;
        }
        if self.in_flight.remove(&seq).is_none() {
            out.stats.dropped.stray_ack += 1;
            return;
        }
        self.send_admitted(out);
    }

    /// Handles `CAck(seq)`: releases every transmitted message `≤ seq` (never a queued one).
    pub(crate) fn handle_cack(&mut self, seq: i64, out: &mut Output<'_>) {
        let kept = match seq.checked_add(1) {
            Some(above) => self.in_flight.split_off(&above),
            None => BTreeMap::new(),
        };
        let released = std::mem::replace(&mut self.in_flight, kept).len();
        if released == 0 {
            out.stats.dropped.stray_ack += 1;
            return;
        }
        self.send_admitted(out);
    }

    /// One epoch tick (§8): loss detection, back-off resends, heartbeat.
    pub(crate) fn tick(&mut self, out: &mut Output<'_>) -> TickOutcome {
        self.silent_epochs = self.silent_epochs.saturating_add(1);
        if self.silent_epochs >= self.params.epoch_limit {
            self.queued.clear();
            self.in_flight.clear();
            self.out_of_order.clear();
            return TickOutcome::Lost;
        }
        let mut sent_data = self.sent_data_since_tick;
        for message in self.in_flight.values_mut() {
            message.ticks_since_sent += 1;
            if message.ticks_since_sent > message.backoff {
                out.datagrams.push(message.datagram.clone());
                out.stats.datagrams_sent += 1;
                out.stats.retransmissions += 1;
                message.ticks_since_sent = 0;
                message.backoff = self.params.next_backoff(message.backoff);
                sent_data = true;
            }
        }
        if !sent_data {
            out.datagrams.push(Message::ack(self.id, 0).encode());
            out.stats.datagrams_sent += 1;
            out.stats.heartbeats_sent += 1;
        }
        self.sent_data_since_tick = false;
        TickOutcome::Alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_ISN;

    /// A connection plus the buffers its calls write into.
    struct Harness {
        conn: Connection,
        datagrams: Vec<Vec<u8>>,
        delivered: Vec<Vec<u8>>,
        stats: Stats,
    }

    impl Harness {
        fn new(window: u32, isn: i64) -> Harness {
            let params = Params {
                window_size: window,
                max_unacked_messages: window,
                ..Params::default()
            };
            Harness {
                conn: Connection::new(params, 1, isn),
                datagrams: Vec::new(),
                delivered: Vec::new(),
                stats: Stats::default(),
            }
        }

        fn call<R>(&mut self, f: impl FnOnce(&mut Connection, &mut Output<'_>) -> R) -> R {
            let mut out = Output {
                datagrams: &mut self.datagrams,
                delivered: &mut self.delivered,
                stats: &mut self.stats,
            };
            f(&mut self.conn, &mut out)
        }

        fn sent(&mut self) -> Vec<Message> {
            self.datagrams
                .drain(..)
                .map(|d| Message::decode(&d).unwrap())
                .collect()
        }
    }

    #[test]
    fn a_heartbeat_never_acknowledges_data() {
        // Issue 11: with isn -1 the first Data is numbered 0, and the peer's heartbeat
        // Ack(id, 0) used to release it although it was lost. Endpoints no longer accept such
        // an isn; and even then Ack 0 is a heartbeat, never an acknowledgement.
        let mut h = Harness::new(1, -1);
        h.call(|c, out| c.write(b"x".to_vec(), true, out)).unwrap();
        assert_eq!(h.sent(), vec![Message::data(1, 0, b"x".to_vec())]);
        h.call(|c, out| c.handle_ack(0, out));
        assert_eq!(h.conn.in_flight(), 1, "Ack 0 is a heartbeat");
        assert_eq!(h.stats.heartbeats_received, 1);
        h.call(|c, out| c.tick(out));
        assert_eq!(h.sent(), vec![Message::data(1, 0, b"x".to_vec())], "resent");
    }

    #[test]
    fn sequence_numbers_end_at_i64_max_without_wrapping() {
        // Issue 11: near i64::MAX the numbers wrapped and the receiver took the message after
        // the wrap for a duplicate. Now the sender stops at i64::MAX.
        let mut h = Harness::new(2, i64::MAX - 2);
        for _ in 0..2 {
            h.call(|c, out| c.write(b"m".to_vec(), true, out)).unwrap();
        }
        let sent: Vec<i64> = h.sent().iter().map(|m| m.seq_num).collect();
        assert_eq!(sent, [i64::MAX - 1, i64::MAX]);
        assert_eq!(
            h.call(|c, out| c.write(b"m".to_vec(), true, out)),
            Err(ApiError::SequenceExhausted)
        );
        assert_eq!(
            h.conn.unacknowledged(),
            2,
            "the refused write queued nothing"
        );
    }

    #[test]
    fn the_receiver_delivers_up_to_i64_max_exactly_once() {
        let mut h = Harness::new(2, i64::MAX - 2);
        h.call(|c, out| c.handle_data(i64::MAX, b"b".to_vec(), true, out));
        h.call(|c, out| c.handle_data(i64::MAX - 1, b"a".to_vec(), true, out));
        assert_eq!(h.delivered, [b"a".to_vec(), b"b".to_vec()]);
        for seq in [i64::MAX, i64::MAX - 1, i64::MIN, 0] {
            h.call(|c, out| c.handle_data(seq, b"z".to_vec(), true, out));
        }
        assert_eq!(
            h.delivered.len(),
            2,
            "duplicates and stray numbers not delivered"
        );
        assert_eq!(h.stats.dropped.duplicate_data, 4);
    }

    #[test]
    fn from_the_largest_valid_isn_at_least_a_window_of_messages_flows() {
        let mut h = Harness::new(4, MAX_ISN);
        for _ in 0..4 {
            h.call(|c, out| c.write(vec![7; 10], true, out)).unwrap();
        }
        let sent: Vec<i64> = h.sent().iter().map(|m| m.seq_num).collect();
        assert_eq!(sent, [MAX_ISN + 1, MAX_ISN + 2, MAX_ISN + 3, MAX_ISN + 4]);
        h.call(|c, out| c.handle_cack(MAX_ISN + 4, out));
        assert!(h.conn.is_flushed());
    }
}
