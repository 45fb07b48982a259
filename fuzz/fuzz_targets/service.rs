//! The miner service (bitcoin-core) fed arbitrary payloads, well-formed miner messages with
//! arbitrary fields (target-mode keys and Cancel-capable miners included), connection ends
//! and time: nothing panics, everything it writes decodes as a miner message, and nothing
//! is written to a connection after its end was reported.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use arbitrary::Arbitrary;
use bitcoin_core::hash::{Algo, Zeros};
use bitcoin_core::message::ext::{encode_join, encode_request, encode_target_result};
use bitcoin_core::message::{Cap, Caps, Message, Mode};
use bitcoin_core::scheduler::Config;
use bitcoin_core::service::MinerService;
use libfuzzer_sys::fuzz_target;
use lsp_core::Timestamp;

#[derive(Arbitrary, Debug)]
enum Call {
    Raw {
        conn: u8,
        bytes: Vec<u8>,
    },
    Join {
        conn: u8,
        /// Bits 0, 1, 2: target, sha256d, cancel.
        caps: u8,
    },
    Request {
        conn: u8,
        data: String,
        lower: u64,
        span: u16,
        /// Target mode with this many zeros (1 to 64 after folding), if any.
        zeros: Option<u8>,
        sha256d: bool,
    },
    Result {
        conn: u8,
        hash: u64,
        nonce: u64,
        /// `Some(found)`: a target Result echoing `hint`.
        found: Option<bool>,
        hint: (u64, u64),
    },
    Gone {
        conn: u8,
    },
    Advance {
        millis: u16,
    },
}

fuzz_target!(|calls: Vec<Call>| {
    let mut service = MinerService::<u8>::new(Config::default()).unwrap();
    let mut now = Timestamp::ZERO;
    let mut gone = BTreeSet::new();
    for call in calls {
        let conn = match &call {
            Call::Raw { conn, .. }
            | Call::Join { conn, .. }
            | Call::Request { conn, .. }
            | Call::Result { conn, .. }
            | Call::Gone { conn } => Some(*conn),
            Call::Advance { .. } => None,
        };
        // Keys are never reused after their end (LSP ids never are): a call on a connection
        // already reported gone is skipped.
        if conn.is_some_and(|c| gone.contains(&c)) {
            continue;
        }
        match call {
            Call::Raw { conn, bytes } => service.handle_payload(now, conn, &bytes),
            Call::Join { conn, caps } => {
                let caps = [Cap::Target, Cap::Sha256d, Cap::Cancel]
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| caps & (1 << i) != 0)
                    .fold(Caps::NONE, |set, (_, cap)| set.with(cap));
                service.handle_payload(now, conn, &encode_join(caps));
            }
            Call::Request {
                conn,
                data,
                lower,
                span,
                zeros,
                sha256d,
            } => {
                let upper = lower.saturating_add(u64::from(span));
                let mode = match zeros.map(|z| Zeros::new(u32::from(z % 64) + 1)) {
                    Some(Ok(zeros)) => Mode::Target {
                        zeros,
                        algo: if sha256d { Algo::Sha256d } else { Algo::Sha256 },
                    },
                    _ => Mode::Minimum,
                };
                service.handle_payload(now, conn, &encode_request(&data, lower, upper, mode));
            }
            Call::Result {
                conn,
                hash,
                nonce,
                found,
                hint,
            } => {
                let bytes = match found {
                    None => Message::Result { hash, nonce }.encode(),
                    Some(found) => encode_target_result(found.then_some((hash, nonce)), hint),
                };
                service.handle_payload(now, conn, &bytes);
            }
            Call::Gone { conn } => {
                gone.insert(conn);
                service.handle_connection_gone(now, conn);
            }
            Call::Advance { millis } => {
                now = now + Duration::from_millis(u64::from(millis));
                if service.poll_timeout().is_some_and(|t| t <= now) {
                    service.handle_timeout(now);
                }
            }
        }
        while let Some((conn, payload)) = service.poll_write() {
            assert!(
                !gone.contains(&conn),
                "wrote to connection {conn} after its end"
            );
            assert!(
                Message::decode(&payload).is_ok(),
                "wrote an undecodable message"
            );
        }
    }
});
