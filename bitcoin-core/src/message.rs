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
mod fields;
mod go_json;

pub use ext::{Cap, Caps, Extensions, Mode, ModeError};
pub use fields::Field;

use crate::hash::{decimal, MAX_DIGITS};
use core::fmt;
use fields::FieldsVisitor;
use go_json::{parse_uint, replace_invalid_utf8, write_go_string};
use serde::de::Deserializer;
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
            job: fields.job.as_deref().and_then(parse_uint),
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

#[cfg(test)]
mod tests;
