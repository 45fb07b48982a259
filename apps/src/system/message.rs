//! The miner messages (bitcoin.md §2): Join, Request and Result, as the reference's JSON.
//!
//! Encoding produces the reference's exact bytes: the six keys in order, integers in
//! decimal, and the text escaped the way Go's `encoding/json` does (`<`, `>`, `&`, U+2028
//! and U+2029 as `\u00XX`/`\u20XX`, control characters as `\uXXXX` except `\n`, `\r`,
//! `\t`). Decoding is lenient (any key order, missing keys as zero, unknown keys ignored),
//! as Go's decoder is, and rejects anything that is not a JSON object of the right types.

use std::fmt;
use std::fmt::Write as _;

use serde::Deserialize;

/// One miner message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A miner announces itself (miner → server).
    Join,
    /// Search `data` over `lower ..= upper` (client → server, server → miner).
    Request {
        /// The message text.
        data: String,
        /// First nonce.
        lower: u64,
        /// Last nonce, inclusive.
        upper: u64,
    },
    /// The minimum `hash`, found at `nonce` (miner → server, server → client).
    Result {
        /// The minimum hash.
        hash: u64,
        /// The smallest nonce giving it.
        nonce: u64,
    },
}

/// Why a payload is not a miner message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object with fields of the expected types.
    Json(String),
    /// The `Type` field is not 0, 1 or 2.
    UnknownType(i64),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json(e) => write!(f, "malformed message: {e}"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The wire form, as the reference's Go struct.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    #[serde(rename = "Type", default)]
    kind: i64,
    #[serde(default)]
    data: String,
    #[serde(default)]
    lower: u64,
    #[serde(default)]
    upper: u64,
    #[serde(default)]
    hash: u64,
    #[serde(default)]
    nonce: u64,
}

impl Message {
    /// The reference's bytes for this message.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, data, lower, upper, hash, nonce) = match self {
            Message::Join => (0, "", 0, 0, 0, 0),
            Message::Request { data, lower, upper } => (1, data.as_str(), *lower, *upper, 0, 0),
            Message::Result { hash, nonce } => (2, "", 0, 0, *hash, *nonce),
        };
        let mut out = String::with_capacity(80 + data.len());
        out.push_str("{\"Type\":");
        out.push(char::from(b'0' + kind));
        out.push_str(",\"Data\":\"");
        escape_into(&mut out, data);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\",\"Lower\":{lower},\"Upper\":{upper},\"Hash\":{hash},\"Nonce\":{nonce}}}"
        );
        out.into_bytes()
    }

    /// Parses a payload; see the [module documentation](self) for what is accepted.
    pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
        let wire: Wire =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        match wire.kind {
            0 => Ok(Message::Join),
            1 => Ok(Message::Request {
                data: wire.data,
                lower: wire.lower,
                upper: wire.upper,
            }),
            2 => Ok(Message::Result {
                hash: wire.hash,
                nonce: wire.nonce,
            }),
            other => Err(DecodeError::UnknownType(other)),
        }
    }
}

/// Appends `text` as the inside of a Go-encoded JSON string.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitcoin vectors of wire.json, as (note, bytes).
    fn vectors() -> Vec<(String, String)> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/vectors/wire.json"
        );
        let text = std::fs::read_to_string(path).expect("wire.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("wire.json parses");
        doc["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .filter_map(|v| {
                let note = v["note"].as_str()?;
                let json = v["json"].as_str()?;
                note.starts_with("bitcoin")
                    .then(|| (note.to_string(), json.to_string()))
            })
            .collect()
    }

    #[test]
    fn reference_bytes_round_trip() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 3);
        for (note, json) in vectors {
            let message = Message::decode(json.as_bytes()).expect(&note);
            assert_eq!(String::from_utf8(message.encode()).unwrap(), json, "{note}");
        }
    }

    #[test]
    fn escapes_like_go_and_decodes_back() {
        let data = "a<b>&\"\\\n\u{1}\u{2028}é".to_string();
        let request = Message::Request {
            data: data.clone(),
            lower: 1,
            upper: u64::MAX,
        };
        let bytes = request.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#"a\u003cb\u003e\u0026\"\\\n\u0001\u2028é"#),
            "{text}"
        );
        assert!(text.contains("\"Upper\":18446744073709551615"));
        assert_eq!(Message::decode(&bytes), Ok(request));
    }

    #[test]
    fn rejects_garbage_and_unknown_types() {
        assert!(matches!(
            Message::decode(b"nope"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            Message::decode(br#"{"Type":1,"Lower":-1}"#),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            Message::decode(br#"{"Type":7}"#),
            Err(DecodeError::UnknownType(7))
        );
        assert_eq!(
            Message::decode(br#"{"Nonce":3,"Type":2,"Extra":true}"#),
            Ok(Message::Result { hash: 0, nonce: 3 })
        );
    }
}
