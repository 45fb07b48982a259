//! The miner service (bitcoin-core) fed arbitrary payloads, well-formed miner messages with
//! arbitrary fields, connection ends and time: nothing panics, everything it writes decodes
//! as a miner message, and nothing is written to a connection after its end was reported.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use arbitrary::Arbitrary;
use bitcoin_core::message::Message;
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
    },
    Request {
        conn: u8,
        data: String,
        lower: u64,
        span: u16,
    },
    Result {
        conn: u8,
        hash: u64,
        nonce: u64,
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
            | Call::Join { conn }
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
            Call::Join { conn } => service.handle_payload(now, conn, &Message::Join.encode()),
            Call::Request {
                conn,
                data,
                lower,
                span,
            } => {
                let upper = lower.saturating_add(u64::from(span));
                let m = Message::Request { data, lower, upper };
                service.handle_payload(now, conn, &m.encode());
            }
            Call::Result { conn, hash, nonce } => {
                let m = Message::Result { hash, nonce };
                service.handle_payload(now, conn, &m.encode());
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
