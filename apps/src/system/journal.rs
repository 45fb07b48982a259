//! What the server's log tells about its clients: each request when it is accepted and when
//! it is answered (answer, duration, rate), and how each connection ended.
//!
//! The scheduler answers one client's requests in the order they came, so a first-in,
//! first-out queue per client pairs every Result written to it with its request. The
//! journal holds no more than the scheduler does (the requests it has accepted and not yet
//! answered or dropped) and forgets a connection when it is gone.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use lsp_core::{ConnId, Timestamp};

/// A request accepted and not yet answered.
#[derive(Clone, Debug)]
struct Accepted {
    msg: String,
    lower: u64,
    upper: u64,
    at: Timestamp,
}

/// A client's requests, pending and answered.
#[derive(Clone, Debug, Default)]
struct ClientRecord {
    pending: VecDeque<Accepted>,
    answered: u64,
}

/// The requests of every connected client, for the log.
#[derive(Debug, Default)]
pub struct Journal {
    clients: BTreeMap<ConnId, ClientRecord>,
}

/// How a connection ended, as the log tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// A client with every request answered: the usual way to leave (the protocol has no
    /// goodbye, so the server learns of it as silence).
    ClientLeft {
        /// Requests it was answered.
        answered: u64,
    },
    /// A client with requests still unanswered; they are dropped.
    ClientLost {
        /// Requests dropped unanswered.
        unanswered: usize,
    },
    /// Neither a client nor (as far as the journal knows) anything else.
    Other,
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Journal {
        Journal::default()
    }

    /// `conn` asked for the minimum of `msg` over `lower ..= upper` at `now`, and the
    /// scheduler accepted it. Returns the log line.
    pub fn accepted(
        &mut self,
        conn: ConnId,
        now: Timestamp,
        msg: &str,
        lower: u64,
        upper: u64,
    ) -> String {
        self.clients
            .entry(conn)
            .or_default()
            .pending
            .push_back(Accepted {
                msg: msg.to_string(),
                lower,
                upper,
                at: now,
            });
        format!("conn {conn}: request {msg:?} {lower}..={upper} accepted")
    }

    /// A Result (`hash` at `nonce`) is written to `conn` at `now`: the answer to its oldest
    /// pending request. Returns the log line, or `None` if `conn` has no pending request.
    pub fn answered(
        &mut self,
        conn: ConnId,
        now: Timestamp,
        hash: u64,
        nonce: u64,
    ) -> Option<String> {
        let record = self.clients.get_mut(&conn)?;
        let request = record.pending.pop_front()?;
        record.answered += 1;
        let took = now.saturating_duration_since(request.at);
        let nonces = u128::from(request.upper - request.lower) + 1;
        let rate = nonces as f64 / took.max(Duration::from_micros(1)).as_secs_f64() / 1e6;
        Some(format!(
            "conn {conn}: request {:?} {}..={} answered: Result {hash} {nonce} in {took:.2?} \
             ({rate:.1} M nonces/s)",
            request.msg, request.lower, request.upper
        ))
    }

    /// `conn` is gone: forgets it and says how it left.
    pub fn gone(&mut self, conn: ConnId) -> Departure {
        match self.clients.remove(&conn) {
            Some(record) if !record.pending.is_empty() => Departure::ClientLost {
                unanswered: record.pending.len(),
            },
            Some(record) => Departure::ClientLeft {
                answered: record.answered,
            },
            None => Departure::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_micros(ms * 1000)
    }

    #[test]
    fn answers_pair_with_requests_in_order_per_client() {
        let mut journal = Journal::new();
        journal.accepted(ConnId(1), at(0), "a", 0, 9);
        journal.accepted(ConnId(2), at(5), "b", 0, 99);
        journal.accepted(ConnId(1), at(10), "c", 10, 19);
        let first = journal
            .answered(ConnId(1), at(1000), 7, 3)
            .expect("pending");
        assert!(
            first.contains("\"a\" 0..=9 answered: Result 7 3 in 1.00s"),
            "{first}"
        );
        let second = journal
            .answered(ConnId(1), at(2010), 8, 11)
            .expect("pending");
        assert!(second.contains("\"c\" 10..=19"), "{second}");
        assert_eq!(journal.answered(ConnId(1), at(3000), 0, 0), None);
        assert_eq!(
            journal.gone(ConnId(1)),
            Departure::ClientLeft { answered: 2 }
        );
        assert_eq!(
            journal.gone(ConnId(2)),
            Departure::ClientLost { unanswered: 1 }
        );
        assert_eq!(journal.gone(ConnId(2)), Departure::Other);
    }
}
