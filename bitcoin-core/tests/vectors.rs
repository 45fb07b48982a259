//! The reference implementation's outputs (the repository's `testdata/`): hashes, minimum hashes over
//! ranges on every kernel path, and the exact bytes of the bitcoin messages.

use bitcoin_core::hash::{hash, hash_naive};
use bitcoin_core::kernel::{cores, min_hash_parallel, Kernel, MinHash, Path};
use bitcoin_core::message::Message;
use serde_json::Value;

/// The `vectors` array of `testdata/<name>` (embedded at compile time).
fn vectors(name: &str) -> Vec<Value> {
    let text = match name {
        "bitcoin-hash.json" => include_str!("../../testdata/bitcoin-hash.json"),
        "bitcoin-min-hash.json" => include_str!("../../testdata/bitcoin-min-hash.json"),
        "wire.json" => include_str!("../../testdata/wire.json"),
        other => panic!("no vector file {other} in testdata/"),
    };
    let path = format!("testdata/{name}");
    let file: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
    file["vectors"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no `vectors` array"))
        .clone()
}

fn string(vector: &Value, key: &str) -> String {
    vector[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {vector}"))
        .to_string()
}

fn number(vector: &Value, key: &str) -> u64 {
    vector[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {vector}"))
}

#[test]
fn hash_vectors() {
    let vectors = vectors("bitcoin-hash.json");
    assert_eq!(vectors.len(), 235);
    for vector in &vectors {
        let (msg, nonce) = (string(vector, "msg"), number(vector, "nonce"));
        let expected = number(vector, "hash");
        assert_eq!(hash(&msg, nonce), expected, "{vector}");
        assert_eq!(hash_naive(&msg, nonce), expected, "{vector}");
        for path in Path::available() {
            let kernel = Kernel::new(path).expect("available");
            assert_eq!(
                kernel.min_hash(&msg, nonce, nonce),
                MinHash {
                    hash: expected,
                    nonce
                },
                "{path} {vector}"
            );
        }
    }
}

#[test]
fn min_hash_vectors_on_every_path() {
    let vectors = vectors("bitcoin-min-hash.json");
    assert!(!vectors.is_empty());
    for vector in &vectors {
        let msg = string(vector, "msg");
        let (lower, upper) = (number(vector, "lower"), number(vector, "upper"));
        let expected = MinHash {
            hash: number(vector, "min_hash"),
            nonce: number(vector, "nonce"),
        };
        for path in Path::available() {
            let kernel = Kernel::new(path).expect("available");
            assert_eq!(
                kernel.min_hash(&msg, lower, upper),
                expected,
                "{path} {vector}"
            );
        }
        assert_eq!(
            min_hash_parallel(&msg, lower, upper, cores()),
            expected,
            "{vector}"
        );
    }
}

#[test]
fn wire_vectors_of_the_bitcoin_messages() {
    let mut seen = 0;
    for vector in vectors("wire.json") {
        let note = string(&vector, "note");
        let Some(kind) = note.strip_prefix("bitcoin ") else {
            continue;
        };
        let bytes = string(&vector, "json").into_bytes();
        let message = Message::decode(&bytes).unwrap_or_else(|e| panic!("{note}: {e}"));
        let expected_kind = match kind {
            "join" => 0,
            "request" => 1,
            "result" => 2,
            other => panic!("unknown bitcoin vector `{other}`"),
        };
        assert_eq!(message.kind(), expected_kind, "{note}");
        assert_eq!(message.encode(), bytes, "{note}");
        seen += 1;
    }
    assert_eq!(seen, 3, "join, request and result");
}

#[test]
fn wire_vector_values() {
    let request = br#"{"Type":1,"Data":"hello","Lower":0,"Upper":10000000,"Hash":0,"Nonce":0}"#;
    assert_eq!(
        Message::decode(request),
        Ok(Message::Request {
            data: "hello".into(),
            lower: 0,
            upper: 10_000_000
        })
    );
    let result =
        br#"{"Type":2,"Data":"","Lower":0,"Upper":0,"Hash":18446744073709551615,"Nonce":9909321}"#;
    assert_eq!(
        Message::decode(result),
        Ok(Message::Result {
            hash: u64::MAX,
            nonce: 9909321
        })
    );
}

#[test]
fn the_target_extension_writes_the_reference_s_bytes_when_it_has_nothing_to_say() {
    use bitcoin_core::message::ext::{encode_join, encode_request};
    use bitcoin_core::message::{Caps, Mode};
    let mut seen = 0;
    for vector in vectors("wire.json") {
        let note = string(&vector, "note");
        let bytes = string(&vector, "json").into_bytes();
        match note.strip_prefix("bitcoin ") {
            Some("join") => assert_eq!(encode_join(Caps::NONE), bytes, "{note}"),
            Some("request") => {
                let Ok(Message::Request { data, lower, upper }) = Message::decode(&bytes) else {
                    panic!("{note}");
                };
                assert_eq!(encode_request(&data, lower, upper, Mode::Minimum), bytes);
            }
            _ => continue,
        }
        // And the reference's messages carry no extension.
        let decoded = Message::decode_full(&bytes).unwrap_or_else(|e| panic!("{note}: {e}"));
        assert_eq!(decoded.ext, Default::default(), "{note}");
        seen += 1;
    }
    assert_eq!(seen, 2, "join and request");
}
