//! The reference's test vectors, embedded from the repository's `testdata/` folder.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lsp_core::{checksum, Message, MsgType};
use serde_json::Value;

/// The `vectors` array of one of the two LSP vector files in `testdata/`.
fn load(name: &str) -> Vec<Value> {
    let text = match name {
        "lsp-checksum.json" => include_str!("../../testdata/lsp-checksum.json"),
        "wire.json" => include_str!("../../testdata/wire.json"),
        other => panic!("no vector file {other} in testdata/"),
    };
    let doc: Value = serde_json::from_str(text).expect("vector file is JSON");
    doc["vectors"]
        .as_array()
        .expect("a `vectors` array")
        .clone()
}

#[test]
fn all_checksum_vectors_match() {
    let vectors = load("lsp-checksum.json");
    assert_eq!(vectors.len(), 308);
    for v in &vectors {
        let payload = BASE64
            .decode(v["payload_base64"].as_str().unwrap())
            .unwrap();
        let got = checksum(
            v["conn_id"].as_i64().unwrap(),
            v["seq_num"].as_i64().unwrap(),
            v["size"].as_i64().unwrap(),
            &payload,
        );
        assert_eq!(
            u64::from(got),
            v["checksum"].as_u64().unwrap(),
            "vector {v}"
        );
    }
}

#[test]
fn lsp_wire_vectors_encode_and_decode_exactly() {
    let mut seen = 0;
    for v in load("wire.json") {
        let json = v["json"].as_str().unwrap();
        let note = v["note"].as_str().unwrap();
        if note.starts_with("bitcoin") {
            continue;
        }
        seen += 1;
        let decoded = Message::decode(json.as_bytes()).unwrap_or_else(|e| panic!("{note}: {e}"));
        assert_eq!(
            decoded.encode(),
            json.as_bytes(),
            "{note}: re-encoding differs"
        );
        assert_eq!(decoded.encoded_len(), json.len(), "{note}");
        // Rebuilt from the constructors, the same bytes come out.
        let rebuilt = match decoded.kind {
            MsgType::Connect => Message::connect(decoded.seq_num),
            MsgType::Data => {
                Message::data(decoded.conn_id, decoded.seq_num, decoded.payload.clone())
            }
            MsgType::Ack => Message::ack(decoded.conn_id, decoded.seq_num),
            MsgType::CAck => Message::cack(decoded.conn_id, decoded.seq_num),
        };
        assert_eq!(
            rebuilt.encode(),
            json.as_bytes(),
            "{note}: constructor output differs"
        );
    }
    assert_eq!(seen, 7, "every LSP wire vector was checked");
}
