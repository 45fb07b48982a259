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
use bitcoin_core::message::Mode;
use lsp_core::ConnId;

use super::log::Log;

/// ` target z=Z ALGO` for a target request, nothing for a minimum one.
fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Target { zeros, algo } => format!(" target z={zeros} {algo}"),
        _ => String::new(),
    }
}

/// What a `-v` line says of an answer: `Result <hash> <nonce>` or `NotFound` (as the
/// client prints it), the time from acceptance, and the rate over the `nonces` searched
/// (said when they are not the whole range, that is in target mode).
fn answered_text(mode: Mode, answer: Option<(u64, u64)>, nonces: u128, took: Duration) -> String {
    let what = answer.map_or("NotFound".to_string(), |(hash, nonce)| {
        format!("Result {hash} {nonce}")
    });
    let rate = nonces as f64 / took.max(Duration::from_micros(1)).as_secs_f64() / 1e6;
    let searched = if mode.is_target() {
        format!("{nonces} nonces searched, ")
    } else {
        String::new()
    };
    format!("{what} in {took:.2?} ({searched}{rate:.1} M nonces/s)")
}

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
                mode,
                ..
            } => log.info(format_args!(
                "conn {client}: request {msg:?} {lower}..={upper}{} accepted{from}",
                mode_text(*mode)
            )),
            PoolEventKind::RequestAnswered {
                client,
                msg,
                lower,
                upper,
                mode,
                answer,
                nonces,
                took,
                ..
            } => {
                *self.answered.entry(*client).or_default() += 1;
                log.info(format_args!(
                    "conn {client}: request {msg:?} {lower}..={upper}{} answered: {}",
                    mode_text(*mode),
                    answered_text(*mode, *answer, *nonces, *took)
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

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin_core::hash::{Algo, Zeros};

    #[test]
    fn an_answer_says_result_or_not_found_and_a_target_its_mode_and_nonces_searched() {
        let target = Mode::Target {
            zeros: Zeros::new(20).unwrap(),
            algo: Algo::Sha256d,
        };
        assert_eq!(mode_text(target), " target z=20 sha256d");
        assert_eq!(mode_text(Mode::Minimum), "");
        let took = Duration::from_millis(500);
        assert_eq!(
            answered_text(target, None, 2_000_000, took),
            "NotFound in 500.00ms (2000000 nonces searched, 4.0 M nonces/s)"
        );
        assert_eq!(
            answered_text(target, Some((17, 41)), 42, took),
            "Result 17 41 in 500.00ms (42 nonces searched, 0.0 M nonces/s)"
        );
        assert_eq!(
            answered_text(Mode::Minimum, Some((17, 41)), 1_000_000, took),
            "Result 17 41 in 500.00ms (2.0 M nonces/s)"
        );
    }
}
