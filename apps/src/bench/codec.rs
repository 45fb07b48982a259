//! `bench -- codec`: LSP codec cost per message for 0, 100 and 1000-byte payloads — encode,
//! decode and checksum — next to a plain `serde_json` round trip of the same struct (derive
//! `Serialize`/`Deserialize`, base64 `String` payload) measured in the same run.

use std::hint::black_box;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lsp_core::{checksum, Message};
use serde::{Deserialize, Serialize};

use super::timing::ns_per_call;

/// The wire struct as a newcomer would write it with serde: the baseline.
#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct NaiveMessage {
    Type: i64,
    ConnID: i64,
    SeqNum: i64,
    Size: i64,
    Checksum: i64,
    Payload: Option<String>,
}

fn naive_round_trip(conn: i64, seq: i64, payload: &[u8]) -> usize {
    let sum = checksum(conn, seq, payload.len() as i64, payload);
    let m = NaiveMessage {
        Type: 1,
        ConnID: conn,
        SeqNum: seq,
        Size: payload.len() as i64,
        Checksum: i64::from(sum),
        Payload: Some(BASE64.encode(payload)),
    };
    let bytes = serde_json::to_vec(&m).unwrap_or_default();
    let back: Option<NaiveMessage> = serde_json::from_slice(&bytes).ok();
    let decoded = back
        .and_then(|b| b.Payload)
        .and_then(|p| BASE64.decode(p).ok())
        .unwrap_or_default();
    let check = checksum(conn, seq, decoded.len() as i64, &decoded);
    bytes.len() + decoded.len() + usize::from(check)
}

/// The options of `bench codec`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Shorter rounds (30 ms instead of 200 ms).
    #[arg(long)]
    quick: bool,
}

/// Runs the codec benchmark.
pub fn run(options: &Options) -> Result<(), String> {
    let round = Duration::from_millis(if options.quick { 30 } else { 200 });
    let rounds = 5;
    println!("LSP codec, ns per Data message (median of {rounds} rounds)");
    println!(
        "{:>8} {:>8} {:>8} {:>9} {:>10} {:>12} {:>8}",
        "payload", "encode", "decode", "checksum", "enc+dec+ck", "serde_json", "speedup"
    );
    let mut last = (0.0, 0.0);
    for size in [0usize, 100, 1000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let message = Message::data(12_345, 67_890, payload.clone());
        let encoded = message.encode();
        let mut buf = Vec::with_capacity(1500);
        let encode = ns_per_call(rounds, round, || {
            buf.clear();
            black_box(&message).encode_into(&mut buf);
            black_box(&buf);
        });
        let decode = ns_per_call(rounds, round, || {
            black_box(Message::decode(black_box(&encoded)).ok());
        });
        let check = ns_per_call(rounds, round, || {
            black_box(checksum(12_345, 67_890, size as i64, black_box(&payload)));
        });
        let total = ns_per_call(rounds, round, || {
            buf.clear();
            black_box(&message).encode_into(&mut buf);
            if let Ok(m) = Message::decode(&buf) {
                black_box(checksum(m.conn_id, m.seq_num, m.size, &m.payload));
            }
        });
        let naive = ns_per_call(rounds, round, || {
            black_box(naive_round_trip(12_345, 67_890, black_box(&payload)));
        });
        println!(
            "{size:>8} {encode:>8.0} {decode:>8.0} {check:>9.0} {total:>10.0} {naive:>12.0} {:>7.2}x",
            naive / total
        );
        last = (total, naive);
    }
    println!(
        "codec: {:.0} ns per 1000-byte message, serde_json {:.0} ns",
        last.0, last.1
    );
    Ok(())
}
