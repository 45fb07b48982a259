//! Join / Request / Result: the miner protocol's messages, one per LSP Data payload, as the
//! Go reference's `encoding/json` writes and reads them.
//!
//! Encoding produces the reference's exact bytes: all six keys in order, Go's string escapes
//! (`<`, `>`, `&`, U+2028 and U+2029 escaped as `\u....`; `\b \f \n \r \t` short), u64 values
//! as plain numbers:
//!
//! ```
//! use bitcoin_core::message::Message;
//! let request = Message::Request { data: "hello".into(), lower: 0, upper: 10_000_000 };
//! let bytes = br#"{"Type":1,"Data":"hello","Lower":0,"Upper":10000000,"Hash":0,"Nonce":0}"#;
//! assert_eq!(request.encode(), bytes);
//! assert_eq!(Message::decode(bytes), Ok(request));
//! ```
//!
//! Decoding is as lenient as Go's `json.Unmarshal` into the reference's struct: keys match
//! case-insensitively (Unicode simple folding), unknown keys are ignored, a missing key or a
//! `null` value leaves the field zero, the last duplicate wins, invalid UTF-8 inside strings
//! becomes U+FFFD. Anything Go would reject — bad JSON, a value of the wrong type, a number
//! that is negative, fractional or too large for its field — and a `Type` other than 0 to 4
//! is a [`MessageError`]: the server counts such payloads and drops them. Two deliberate
//! differences: a top-level `null` (a Join to Go) is an error here, and a `\u` escape of a lone
//! surrogate in `Data` (U+FFFD to Go) is an error too.
//!
//! The target-mode extension (`Caps`, `Zeros`, `Algo`, `Found` and the Cancel message) is in
//! [`ext`]; its keys are read into [`Decoded::ext`].

pub mod ext;

pub use ext::{Cap, Caps, Extensions, Mode, ModeError};

use crate::hash::{decimal, MAX_DIGITS};
use core::fmt;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One message of the miner protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// Miner → server, once connected: "give me jobs" (`Type` 0).
    Join,
    /// Client → server, and server → miner: find the minimum hash of `data` over the nonces
    /// `lower ..= upper` (`Type` 1). The wire does not promise `lower <= upper`.
    Request {
        /// The message text to hash.
        data: String,
        /// The first nonce.
        lower: u64,
        /// The last nonce, inclusive.
        upper: u64,
    },
    /// Miner → server, and server → client: the answer to a Request (`Type` 2).
    Result {
        /// The minimum hash.
        hash: u64,
        /// The nonce giving it (the smallest, on ties).
        nonce: u64,
    },
    /// Server → client, an extension (`Type` 4): how far the client's request is. Sent only
    /// to a client whose Request carried `"Progress": true` (see [`Decoded::progress`]);
    /// the reference never sends that key, so it never receives one. On the wire `Lower`
    /// is `covered`, `Upper` is `total`, `Hash` is `rate`, `Data` empty, `Nonce` zero.
    Progress {
        /// Nonces of the request answered so far (at most `u64::MAX`).
        covered: u64,
        /// The request's nonces (at most `u64::MAX`: the whole range reads one less).
        total: u64,
        /// Nonces per second since the request became active.
        rate: u64,
    },
    /// Server → miner, an extension (`Type` 3): stop the job `data`, `lower ..= upper` and
    /// answer nothing for it. Sent only to miners whose Join listed `"cancel"` ([`ext`]).
    Cancel {
        /// The job's text.
        data: String,
        /// The job's first nonce.
        lower: u64,
        /// The job's last nonce.
        upper: u64,
    },
}

/// A decoded payload with what the reference's struct does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// The payload's `Lower` and `Upper` whatever its type (zero when absent).
    pub range: (u64, u64),
    /// Whether the payload has the key `Progress` (matched like the others) with the value
    /// `true`: a client asking for [`Message::Progress`] messages. Any other value, or
    /// none, is `false`.
    pub progress: bool,
    /// The target-mode keys (`Caps`, `Zeros`, `Algo`, `Found`; see [`ext`]).
    pub ext: Extensions,
}

/// The `Type` value of each message.
pub mod kind {
    /// [`super::Message::Join`].
    pub const JOIN: i64 = 0;
    /// [`super::Message::Request`].
    pub const REQUEST: i64 = 1;
    /// [`super::Message::Result`].
    pub const RESULT: i64 = 2;
    /// [`super::Message::Cancel`] (an extension).
    pub const CANCEL: i64 = 3;
    /// [`super::Message::Progress`] (an extension).
    pub const PROGRESS: i64 = 4;
}

impl Message {
    /// The message's `Type` value (see [`kind`]).
    pub fn kind(&self) -> i64 {
        match self {
            Message::Join => kind::JOIN,
            Message::Request { .. } => kind::REQUEST,
            Message::Result { .. } => kind::RESULT,
            Message::Progress { .. } => kind::PROGRESS,
            Message::Cancel { .. } => kind::CANCEL,
        }
    }

    /// The reference's exact JSON bytes for this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        self.encode_into(&mut out);
        out
    }

    /// Appends the reference's exact JSON bytes for this message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (data, lower, upper, hash, nonce) = match self {
            Message::Join => ("", 0, 0, 0, 0),
            Message::Request { data, lower, upper } => (data.as_str(), *lower, *upper, 0, 0),
            Message::Result { hash, nonce } => ("", 0, 0, *hash, *nonce),
            Message::Progress {
                covered,
                total,
                rate,
            } => ("", *covered, *total, *rate, 0),
            Message::Cancel { data, lower, upper } => (data.as_str(), *lower, *upper, 0, 0),
        };
        let mut digits = [0u8; MAX_DIGITS];
        out.extend_from_slice(b"{\"Type\":");
        // Types are 0 to 4: a single digit.
        out.push(b'0' + self.kind() as u8);
        out.extend_from_slice(b",\"Data\":");
        write_go_string(data, out);
        for (key, value) in [
            (&b",\"Lower\":"[..], lower),
            (b",\"Upper\":", upper),
            (b",\"Hash\":", hash),
            (b",\"Nonce\":", nonce),
        ] {
            out.extend_from_slice(key);
            out.extend_from_slice(decimal(value, &mut digits));
        }
        out.push(b'}');
    }

    /// Reads a payload the way the reference does (see the module documentation).
    pub fn decode(payload: &[u8]) -> Result<Message, MessageError> {
        Message::decode_with_range(payload).map(|(message, _)| message)
    }

    /// Like [`Message::decode`], and also returns the payload's `Lower` and `Upper` values
    /// whatever its type (zero when absent). The reference's Result carries zeros there,
    /// but some miners echo the range of the job they answer: a hint for the server.
    pub fn decode_with_range(payload: &[u8]) -> Result<(Message, (u64, u64)), MessageError> {
        Message::decode_full(payload).map(|d| (d.message, d.range))
    }

    /// Like [`Message::decode`], with the payload's range and `Progress` flag
    /// ([`Decoded`]).
    pub fn decode_full(payload: &[u8]) -> Result<Decoded, MessageError> {
        let text = match std::str::from_utf8(payload) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => Cow::Owned(replace_invalid_utf8(payload)),
        };
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        let fields = deserializer
            .deserialize_any(FieldsVisitor)
            .map_err(MessageError::Json)??;
        deserializer.end().map_err(MessageError::Json)?;
        let range = (fields.lower, fields.upper);
        let message = match fields.kind {
            kind::JOIN => Message::Join,
            kind::REQUEST => Message::Request {
                data: fields.data,
                lower: fields.lower,
                upper: fields.upper,
            },
            kind::RESULT => Message::Result {
                hash: fields.hash,
                nonce: fields.nonce,
            },
            kind::PROGRESS => Message::Progress {
                covered: fields.lower,
                total: fields.upper,
                rate: fields.hash,
            },
            kind::CANCEL => Message::Cancel {
                data: fields.data,
                lower: fields.lower,
                upper: fields.upper,
            },
            other => return Err(MessageError::UnknownType(other)),
        };
        let ext = Extensions {
            caps: fields.caps.as_deref().map_or(Caps::NONE, Caps::from_json),
            mode: ext::mode_from_json(fields.zeros.as_deref(), fields.algo.as_deref()),
            found: fields.found.as_deref() != Some("false"),
        };
        Ok(Decoded {
            message,
            range,
            progress: fields.progress,
            ext,
        })
    }
}

/// A payload that is not a message.
#[derive(Debug)]
pub enum MessageError {
    /// Not JSON, not a JSON object, or followed by more than white space.
    Json(serde_json::Error),
    /// A key of the message holds a value of the wrong JSON type, or a number out of its
    /// field's range (negative, fractional, exponent, too large).
    Field(Field),
    /// `Type` is not 0 (Join), 1 (Request), 2 (Result), 3 (Cancel) or 4 (Progress).
    UnknownType(i64),
}

impl PartialEq for MessageError {
    /// JSON errors compare equal by category and position, the others by value.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (MessageError::Json(a), MessageError::Json(b)) => {
                a.classify() == b.classify() && a.line() == b.line() && a.column() == b.column()
            }
            (MessageError::Field(a), MessageError::Field(b)) => a == b,
            (MessageError::UnknownType(a), MessageError::UnknownType(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Json(error) => write!(f, "malformed message: {error}"),
            MessageError::Field(field) => write!(f, "message field {field:?} has a bad value"),
            MessageError::UnknownType(kind) => write!(f, "unknown message type {kind}"),
        }
    }
}

impl std::error::Error for MessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MessageError::Json(error) => Some(error),
            MessageError::Field(_) | MessageError::UnknownType(_) => None,
        }
    }
}

/// The six keys of a message, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `Type`: which message (an integer).
    Type,
    /// `Data`: the Request's text.
    Data,
    /// `Lower`: the Request's first nonce.
    Lower,
    /// `Upper`: the Request's last nonce.
    Upper,
    /// `Hash`: the Result's minimum hash.
    Hash,
    /// `Nonce`: the Result's nonce.
    Nonce,
}

impl Field {
    const ALL: [Field; 6] = [
        Field::Type,
        Field::Data,
        Field::Lower,
        Field::Upper,
        Field::Hash,
        Field::Nonce,
    ];

    /// The key as the reference writes it.
    pub fn key(self) -> &'static str {
        match self {
            Field::Type => "Type",
            Field::Data => "Data",
            Field::Lower => "Lower",
            Field::Upper => "Upper",
            Field::Hash => "Hash",
            Field::Nonce => "Nonce",
        }
    }

    /// The field a JSON key names, matched like Go: exactly or under simple case folding.
    fn from_key(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| fold_eq(key, field.key()))
    }
}

/// Whether `key` equals the ASCII `name` under Unicode simple case folding, as Go's
/// `encoding/json` matches keys (`ſ` folds with `s`, the Kelvin sign with `k`).
fn fold_eq(key: &str, name: &str) -> bool {
    let fold = |c: char| match c {
        '\u{017f}' => 'S',
        '\u{212a}' => 'K',
        c => c.to_ascii_uppercase(),
    };
    key.chars().map(fold).eq(name.chars().map(fold))
}

/// Replaces each byte of every invalid UTF-8 sequence with U+FFFD, as Go's decoder does.
fn replace_invalid_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(error) => {
                let (valid, rest) = bytes.split_at(error.valid_up_to());
                // `valid` was just checked.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = error.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n('\u{fffd}', bad));
                bytes = &rest[bad..];
            }
        }
    }
}

/// Writes `text` as a JSON string the way Go's `json.Marshal` does.
fn write_go_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let escape: Option<&[u8]> = match byte {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\x08' => Some(b"\\b"),
            b'\x0c' => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
        let separator = byte == 0xe2
            && bytes.get(i + 1) == Some(&0x80)
            && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9));
        if escape.is_some() || byte < 0x20 || matches!(byte, b'<' | b'>' | b'&') || separator {
            out.extend_from_slice(&bytes[start..i]);
            if let Some(escape) = escape {
                out.extend_from_slice(escape);
                i += 1;
            } else if separator {
                out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
            } else {
                let hex = [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&hex);
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The reference's message struct, filled the way `json.Unmarshal` fills it.
#[derive(Default)]
struct Fields {
    kind: i64,
    data: String,
    lower: u64,
    upper: u64,
    hash: u64,
    nonce: u64,
    /// The extension key `Progress` was `true`.
    progress: bool,
    /// The raw values of the extension keys `Caps`, `Zeros`, `Algo` and `Found` (the last
    /// one of each; `None` when absent or `null`). Bounded by the payload's size.
    caps: Option<Box<str>>,
    zeros: Option<Box<str>>,
    algo: Option<Box<str>>,
    found: Option<Box<str>>,
}

impl Fields {
    /// Stores one raw JSON value under `field`, with Go's type rules.
    fn set(&mut self, field: Field, raw: &str) -> Result<(), MessageError> {
        if raw == "null" {
            return Ok(()); // Go leaves the field as it was.
        }
        let bad = || MessageError::Field(field);
        match field {
            Field::Type => self.kind = parse_int(raw).ok_or_else(bad)?,
            Field::Data => {
                if !raw.starts_with('"') {
                    return Err(bad());
                }
                self.data = serde_json::from_str(raw).map_err(|_| bad())?;
            }
            Field::Lower => self.lower = parse_uint(raw).ok_or_else(bad)?,
            Field::Upper => self.upper = parse_uint(raw).ok_or_else(bad)?,
            Field::Hash => self.hash = parse_uint(raw).ok_or_else(bad)?,
            Field::Nonce => self.nonce = parse_uint(raw).ok_or_else(bad)?,
        }
        Ok(())
    }
}

/// A JSON number into a Go `uint64`: digits only, in range.
fn parse_uint(raw: &str) -> Option<u64> {
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        raw.parse().ok()
    } else {
        None
    }
}

/// A JSON number into a Go `int`: an optional minus and digits, in range.
fn parse_int(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        raw.parse().ok()
    } else {
        None
    }
}

/// Reads a JSON object into [`Fields`]; field errors are returned as the visitor's value so
/// they keep their type.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Result<Fields, MessageError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        let mut first_error = None;
        while let Some(key) = map.next_key::<Key>()? {
            let raw: &RawValue = map.next_value()?;
            if let (Some(field), None) = (key.0, &first_error) {
                first_error = fields.set(field, raw.get()).err();
            } else if let Some(ext) = key.1 {
                // An extension key: never an error here, as the reference ignores it.
                let raw = raw.get();
                let value = (raw != "null").then(|| Box::from(raw));
                match ext {
                    // `true` asks, anything else does not.
                    ExtKey::Progress => fields.progress = raw == "true",
                    ExtKey::Caps => fields.caps = value,
                    ExtKey::Zeros => fields.zeros = value,
                    ExtKey::Algo => fields.algo = value,
                    ExtKey::Found => fields.found = value,
                }
            }
        }
        Ok(match first_error {
            Some(error) => Err(error),
            None => Ok(fields),
        })
    }
}

/// An object key: one of the message's fields, or `None` for a key Go would ignore; and
/// which extension key it is, if any.
struct Key(Option<Field>, Option<ExtKey>);

/// The extension keys, matched like the others.
#[derive(Clone, Copy)]
enum ExtKey {
    Progress,
    Caps,
    Zeros,
    Algo,
    Found,
}

impl ExtKey {
    const ALL: [(ExtKey, &'static str); 5] = [
        (ExtKey::Progress, "Progress"),
        (ExtKey::Caps, "Caps"),
        (ExtKey::Zeros, "Zeros"),
        (ExtKey::Algo, "Algo"),
        (ExtKey::Found, "Found"),
    ];

    fn from_key(key: &str) -> Option<ExtKey> {
        ExtKey::ALL
            .into_iter()
            .find(|(_, name)| fold_eq(key, name))
            .map(|(k, _)| k)
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(Key(Field::from_key(key), ExtKey::from_key(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn request(data: &str, lower: u64, upper: u64) -> Message {
        Message::Request {
            data: data.to_string(),
            lower,
            upper,
        }
    }

    #[test]
    fn encodes_go_escapes() {
        let message = request(
            "a\"b\\c\n\r\t\x08\x0c\x01\x1f<>&\u{2028}\u{2029}\u{7f}é€",
            1,
            2,
        );
        let expected = concat!(
            r#"{"Type":1,"Data":"a\"b\\c\n\r\t\b\f\u0001\u001f\u003c\u003e\u0026\u2028\u2029"#,
            "\u{7f}é€\",\"Lower\":1,\"Upper\":2,\"Hash\":0,\"Nonce\":0}"
        );
        assert_eq!(String::from_utf8(message.encode()).unwrap(), expected);
        assert_eq!(Message::decode(expected.as_bytes()).unwrap(), message);
    }

    #[test]
    fn decodes_leniently_like_go() {
        let cases: &[(&str, Message)] = &[
            ("{}", Message::Join),
            (
                r#"{"type":1,"DATA":"x","lower":5,"uPPer":6}"#,
                request("x", 5, 6),
            ),
            (
                r#"{"Type":2,"Haſh":7,"Nonce":8}"#,
                Message::Result { hash: 7, nonce: 8 },
            ),
            (
                r#" {"Type":1,"Extra":[1,{"a":null}],"Data":null,"Lower":1,"Lower":2} "#,
                request("", 2, 0),
            ),
            (r#"{"Type":-0,"Hash":null}"#, Message::Join),
            (
                r#"{"Type":2,"Hash":18446744073709551615,"Nonce":0}"#,
                Message::Result {
                    hash: u64::MAX,
                    nonce: 0,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Message::decode(text.as_bytes()).as_ref(),
                Ok(expected),
                "{text}"
            );
        }
        let invalid = b"{\"Type\":1,\"Data\":\"a\xe2\x82b\xff\"}";
        assert_eq!(
            Message::decode(invalid),
            Ok(request("a\u{fffd}\u{fffd}b\u{fffd}", 0, 0))
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        let field_errors: &[(&str, Field)] = &[
            (r#"{"Type":1.0}"#, Field::Type),
            (r#"{"Type":"1"}"#, Field::Type),
            (r#"{"Type":1e0}"#, Field::Type),
            (r#"{"Type":9223372036854775808}"#, Field::Type),
            (r#"{"Lower":-1}"#, Field::Lower),
            (r#"{"Upper":-0}"#, Field::Upper),
            (r#"{"Hash":18446744073709551616}"#, Field::Hash),
            (r#"{"Nonce":1.5}"#, Field::Nonce),
            (r#"{"Nonce":true}"#, Field::Nonce),
            (r#"{"Data":5}"#, Field::Data),
            (r#"{"Data":["x"]}"#, Field::Data),
        ];
        for (text, field) in field_errors {
            assert_eq!(
                Message::decode(text.as_bytes()),
                Err(MessageError::Field(*field)),
                "{text}"
            );
        }
        for text in [r#"{"Type":5}"#, r#"{"Type":-1}"#] {
            assert!(matches!(
                Message::decode(text.as_bytes()),
                Err(MessageError::UnknownType(_))
            ));
        }
        for text in [
            "",
            "null",
            "[]",
            "5",
            "\"x\"",
            "{",
            r#"{"Type":0} x"#,
            r#"{"Type":01}"#,
        ] {
            assert!(
                matches!(Message::decode(text.as_bytes()), Err(MessageError::Json(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn an_echoed_range_is_read_beside_the_result() {
        let echo = br#"{"Type":2,"Data":"","Lower":5,"Upper":9,"Hash":7,"Nonce":6}"#;
        assert_eq!(
            Message::decode_with_range(echo),
            Ok((Message::Result { hash: 7, nonce: 6 }, (5, 9)))
        );
        let plain = Message::Result { hash: 7, nonce: 6 }.encode();
        assert_eq!(
            Message::decode_with_range(&plain),
            Ok((Message::Result { hash: 7, nonce: 6 }, (0, 0)))
        );
    }

    #[test]
    fn progress_is_an_extension_only_clients_that_ask_see() {
        let p = Message::Progress {
            covered: 5,
            total: 10,
            rate: 3,
        };
        let bytes = br#"{"Type":4,"Data":"","Lower":5,"Upper":10,"Hash":3,"Nonce":0}"#;
        assert_eq!(p.encode(), bytes);
        assert_eq!(Message::decode(bytes), Ok(p));
        let asks = |text: &str| Message::decode_full(text.as_bytes()).map(|d| d.progress);
        // The reference's Request never has the key.
        let plain = request("x", 0, 9).encode();
        assert_eq!(Message::decode_full(&plain).map(|d| d.progress), Ok(false));
        assert_eq!(
            asks(r#"{"Type":1,"Data":"x","Upper":9,"Progress":true}"#),
            Ok(true)
        );
        assert_eq!(
            asks(r#"{"Type":1,"Data":"x","Upper":9,"progress":true}"#),
            Ok(true)
        );
        // Any other value does not ask, and is no error (the reference ignores the key).
        for value in ["false", "1", "\"true\"", "null", "{}"] {
            let text = format!(r#"{{"Type":1,"Data":"x","Upper":9,"Progress":{value}}}"#);
            assert_eq!(asks(&text), Ok(false), "{text}");
        }
        assert_eq!(
            Message::decode(br#"{"Type":5}"#),
            Err(MessageError::UnknownType(5))
        );
    }

    quickcheck! {
        fn round_trips(data: String, lower: u64, upper: u64, hash: u64, nonce: u64) -> bool {
            let progress = Message::Progress { covered: lower, total: upper, rate: hash };
            let cancel = Message::Cancel { data: data.clone(), lower, upper };
            [Message::Join, request(&data, lower, upper), Message::Result { hash, nonce }, progress, cancel]
                .into_iter()
                .all(|message| Message::decode(&message.encode()).ok() == Some(message))
        }

        fn encoding_is_valid_json_with_the_same_text(data: String) -> bool {
            let bytes = request(&data, 0, 1).encode();
            let value: serde_json::Value = match serde_json::from_slice(&bytes) {
                Ok(value) => value,
                Err(_) => return false,
            };
            value["Data"] == serde_json::Value::String(data)
        }

        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let _ = Message::decode(&bytes);
            true
        }
    }
}
