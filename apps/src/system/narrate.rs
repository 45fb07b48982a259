//! What the server's `-v` log tells, from the service's events ([`PoolEvent`]): miners
//! joining and leaving, each request when it is accepted and when it is answered (answer,
//! duration, rate), jobs re-issued, and how each connection ended.
//!
//! The events carry everything those lines need; the one thing kept here is how many
//! answers each connected client got, to tell a client that left after its answers (the
//! protocol has no goodbye, so the server learns of it as silence) from one lost with
//! requests unanswered. A connection is forgotten when it is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use bitcoin_core::accounting::{PoolEvent, PoolEventKind};
use lsp_core::ConnId;

use super::log::Log;

/// A connection whose end is being reported: its id, and how it ended (`lost` or
/// `closed`).
pub type Departure<'a> = (ConnId, &'a str);

/// The narrator's memory: answers per connected client.
#[derive(Debug, Default)]
pub struct Narrator {
    answered: BTreeMap<ConnId, u64>,
}

impl Narrator {
    /// A narrator that has seen nothing.
    pub fn new() -> Narrator {
        Narrator::default()
    }

    /// Logs `event` (at `-v`); `departure` is the connection whose end the service was
    /// just told of, if any, and `addr` the address of the event's subject
    /// ([`super::events::subject`]: a joining miner, a client whose request was accepted),
    /// if known. Returns whether the line told that connection's end.
    pub fn event(
        &mut self,
        log: &Log,
        event: &PoolEvent<ConnId>,
        departure: Option<Departure<'_>>,
        addr: Option<&str>,
    ) -> bool {
        let from = addr.map(|a| format!(" from {a}")).unwrap_or_default();
        let how = |conn: ConnId| match departure {
            Some((gone, how)) if gone == conn => Some(how),
            _ => None,
        };
        match &event.kind {
            PoolEventKind::MinerJoined { miner } => {
                log.info(format_args!("conn {miner}: miner joined{from}"));
            }
            PoolEventKind::MinerLost {
                miner,
                jobs_returned,
                ..
            } => {
                let how = how(*miner);
                log.info(format_args!(
                    "conn {miner}: miner {} ({jobs_returned} unanswered job(s) back to their \
                     requests)",
                    how.unwrap_or("lost")
                ));
                return how.is_some();
            }
            PoolEventKind::RequestAccepted {
                client,
                msg,
                lower,
                upper,
                ..
            } => log.info(format_args!(
                "conn {client}: request {msg:?} {lower}..={upper} accepted{from}"
            )),
            PoolEventKind::RequestAnswered {
                client,
                msg,
                lower,
                upper,
                hash,
                nonce,
                nonces,
                took,
                ..
            } => {
                *self.answered.entry(*client).or_default() += 1;
                let rate = *nonces as f64 / took.max(&Duration::from_micros(1)).as_secs_f64() / 1e6;
                log.info(format_args!(
                    "conn {client}: request {msg:?} {lower}..={upper} answered: Result {hash} \
                     {nonce} in {took:.2?} ({rate:.1} M nonces/s)"
                ));
            }
            PoolEventKind::JobReissued {
                request,
                from,
                to,
                lower,
                upper,
            } => log.info(format_args!(
                "{request} {lower}..={upper}: lease ended on conn {from}, re-issued to conn {to}"
            )),
            PoolEventKind::ClientLost { client, dropped } => {
                let how = how(*client);
                log.info(format_args!(
                    "conn {client}: client {} with {dropped} request(s) unanswered (dropped)",
                    how.unwrap_or("refused")
                ));
                return how.is_some();
            }
            PoolEventKind::MinerRejected {
                miner,
                reason,
                totals,
            } => log.info(format_args!(
                "conn {miner}: miner disconnected: {reason} (after {} valid answer(s))",
                totals.valid
            )),
            // Told by the glue as it closes the connection.
            PoolEventKind::RequestRefused { .. } => {}
            _ => {}
        }
        false
    }

    /// `departure`'s connection is gone; `told` if an event's line already said so.
    /// Otherwise says how it left, and forgets it either way.
    pub fn gone(&mut self, log: &Log, (conn, how): Departure<'_>, told: bool) {
        let answered = self.answered.remove(&conn);
        if told {
            return;
        }
        match answered {
            Some(n) => log.info(format_args!("conn {conn}: client left after {n} answer(s)")),
            None => log.info(format_args!("conn {conn}: {how}")),
        }
    }
}
