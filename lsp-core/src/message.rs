//! LSP messages and their JSON wire codec (docs/protocol.md §1).
//!
//! Encoding produces exactly the reference's bytes: six keys in a fixed order, no white space,
//! standard base64 with padding, `null` payloads for Connect/Ack/CAck. Decoding is at least as
//! lenient as the reference (`Payload` null, empty or absent; unknown keys ignored; missing
//! integers are 0) and strict where the reference would misbehave (unknown `Type`, negative
//! `Size`, out-of-range integers, non-integer numbers, bad base64, oversized datagrams are all
//! rejected with a [`DecodeError`]).
//!
//! Only Data carries a payload: a Connect, Ack or CAck datagram that holds a (valid base64)
//! `Payload` decodes with an empty one, as its encoding (`null`) says. A datagram whose
//! message would encode to more than [`MAX_DATAGRAM_LEN`] bytes (possible when keys are
//! missing: the encoding writes all six) is rejected: no reference peer could have sent it,
//! and it could not be sent on. So for every datagram the decoder accepts, decode → encode →
//! decode gives back the first decoded message.

use std::borrow::Cow;
use std::fmt;

use base64_simd::STANDARD as BASE64;
use serde::Deserialize;

use crate::checksum::checksum;

/// The largest datagram LSP sends or accepts: the reference reads into a 1500-byte buffer.
pub const MAX_DATAGRAM_LEN: usize = 1500;

/// A payload of this many bytes or fewer always fits in one datagram, whatever the
/// connection id and sequence number.
pub const MAX_GUARANTEED_PAYLOAD: usize = 1000;

/// The four message types (the `Type` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `0`: a client asks to connect; `SeqNum` carries its initial sequence number.
    Connect = 0,
    /// `1`: application data.
    Data = 1,
    /// `2`: acknowledges one message (or the Connect); `SeqNum` 0 is a heartbeat.
    Ack = 2,
    /// `3`: cumulative acknowledgement of every transmitted message ≤ `SeqNum`.
    CAck = 3,
}

impl MsgType {
    fn from_wire(value: i64) -> Option<MsgType> {
        match value {
            0 => Some(MsgType::Connect),
            1 => Some(MsgType::Data),
            2 => Some(MsgType::Ack),
            3 => Some(MsgType::CAck),
            _ => None,
        }
    }
}

/// One LSP message, field for field as on the wire.
///
/// The fields are kept as received (a `Size` that disagrees with the payload, a wrong
/// checksum), so that integrity checks, middleboxes and tests can see and craft anything the
/// wire can carry. The constructors build well-formed messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub kind: MsgType,
    /// `ConnID`: 0 in Connect, otherwise the id the server assigned.
    pub conn_id: i64,
    /// `SeqNum`.
    pub seq_num: i64,
    /// `Size`: the payload length a Data message claims; 0 otherwise. Never negative.
    pub size: i64,
    /// `Checksum`: Data only; 0 otherwise.
    pub checksum: u16,
    /// The decoded payload; empty for Connect/Ack/CAck (encoded as `null`).
    pub payload: Vec<u8>,
}

impl Message {
    /// `(Connect, 0, isn)`.
    pub fn connect(isn: i64) -> Message {
        Message::control(MsgType::Connect, 0, isn)
    }

    /// `(Ack, conn_id, seq_num)`; `seq_num` 0 is a heartbeat.
    pub fn ack(conn_id: i64, seq_num: i64) -> Message {
        Message::control(MsgType::Ack, conn_id, seq_num)
    }

    /// `(CAck, conn_id, seq_num)`.
    pub fn cack(conn_id: i64, seq_num: i64) -> Message {
        Message::control(MsgType::CAck, conn_id, seq_num)
    }

    /// A well-formed Data message: `Size` is the payload length and the checksum matches.
    pub fn data(conn_id: i64, seq_num: i64, payload: Vec<u8>) -> Message {
        let size = payload.len() as i64;
        Message {
            kind: MsgType::Data,
            conn_id,
            seq_num,
            size,
            checksum: checksum(conn_id, seq_num, size, &payload),
            payload,
        }
    }

    fn control(kind: MsgType, conn_id: i64, seq_num: i64) -> Message {
        Message {
            kind,
            conn_id,
            seq_num,
            size: 0,
            checksum: 0,
            payload: Vec::new(),
        }
    }

    /// Appends the reference encoding of this message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut ints = itoa::Buffer::new();
        out.extend_from_slice(b"{\"Type\":");
        out.extend_from_slice(ints.format(self.kind as i64).as_bytes());
        out.extend_from_slice(b",\"ConnID\":");
        out.extend_from_slice(ints.format(self.conn_id).as_bytes());
        out.extend_from_slice(b",\"SeqNum\":");
        out.extend_from_slice(ints.format(self.seq_num).as_bytes());
        out.extend_from_slice(b",\"Size\":");
        out.extend_from_slice(ints.format(self.size).as_bytes());
        out.extend_from_slice(b",\"Checksum\":");
        out.extend_from_slice(ints.format(self.checksum).as_bytes());
        if self.kind == MsgType::Data {
            out.extend_from_slice(b",\"Payload\":\"");
            BASE64.encode_append(&self.payload, out);
            out.extend_from_slice(b"\"}");
        } else {
            out.extend_from_slice(b",\"Payload\":null}");
        }
    }

    /// The reference encoding of this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// The exact length of [`Message::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let payload = if self.kind == MsgType::Data {
            base64_len(self.payload.len()) + 2
        } else {
            4
        };
        FIXED_OVERHEAD
            + decimal_len(self.kind as i64)
            + decimal_len(self.conn_id)
            + decimal_len(self.seq_num)
            + decimal_len(self.size)
            + decimal_len(i64::from(self.checksum))
            + payload
    }

    /// Decodes one datagram. Never panics; every malformed input is a [`DecodeError`].
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_DATAGRAM_LEN {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        if let Some(message) = decode_canonical(bytes) {
            return Ok(message);
        }
        let raw = parse_lenient(bytes)?;
        let payload = match raw.payload {
            Some(text) if !text.is_empty() => BASE64
                .decode_to_vec(text.as_bytes())
                .map_err(|_| DecodeError::Base64)?,
            _ => Vec::new(),
        };
        let message = validate(
            raw.kind,
            raw.conn_id,
            raw.seq_num,
            raw.size,
            raw.checksum,
            payload,
        )?;
        // The canonical path's input is its own encoding, so only here can the encoding be
        // longer than the datagram (keys left out are written back).
        let encoded = message.encoded_len();
        if encoded > MAX_DATAGRAM_LEN {
            return Err(DecodeError::EncodingTooLong(encoded));
        }
        Ok(message)
    }
}

/// Checks decoded field values and builds the message.
fn validate(
    kind: i64,
    conn_id: i64,
    seq_num: i64,
    size: i64,
    checksum: i64,
    payload: Vec<u8>,
) -> Result<Message, DecodeError> {
    let kind = MsgType::from_wire(kind).ok_or(DecodeError::UnknownType(kind))?;
    if size < 0 {
        return Err(DecodeError::NegativeSize(size));
    }
    let checksum =
        u16::try_from(checksum).map_err(|_| DecodeError::ChecksumOutOfRange(checksum))?;
    // Only Data has a payload on the wire's re-encoding; anything else encodes `null`, so
    // keeping one here would break decode → encode → decode (fuzz input `{"Payload":"yloa"}`).
    let payload = if kind == MsgType::Data {
        payload
    } else {
        Vec::new()
    };
    Ok(Message {
        kind,
        conn_id,
        seq_num,
        size,
        checksum,
        payload,
    })
}

/// Length of everything but the six values: `{"Type":,"ConnID":,"SeqNum":,"Size":,"Checksum":,"Payload":}`.
const FIXED_OVERHEAD: usize = 60;

/// The length of a Data message's encoding with the given fields, without building it.
pub fn data_encoded_len(conn_id: i64, seq_num: i64, payload_len: usize) -> usize {
    FIXED_OVERHEAD
        + 1
        + decimal_len(conn_id)
        + decimal_len(seq_num)
        + decimal_len(payload_len as i64)
        + 5 // a checksum has at most five digits
        + base64_len(payload_len)
        + 2
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

fn decimal_len(value: i64) -> usize {
    let mut ints = itoa::Buffer::new();
    ints.format(value).len()
}

/// The slow path: any JSON object the reference's `json.Unmarshal` would accept.
fn parse_lenient(bytes: &[u8]) -> Result<RawMessage<'_>, DecodeError> {
    // serde would also read a JSON array as the fields in order; the reference wants an
    // object, so anything else is rejected up front.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Json);
    }
    serde_json::from_slice(bytes).map_err(|_| DecodeError::Json)
}

/// The fast path: exactly the reference's own encoding (keys in order, no white space,
/// plain integers, a valid base64 payload ending the datagram, or `null`) with valid field
/// values. Returns `None` for anything else, which then goes through the lenient path; what
/// this accepts, serde would decode to the same message (valid base64 holds no quote,
/// backslash or control character, so the payload string needs no unescaping).
fn decode_canonical(bytes: &[u8]) -> Option<Message> {
    let mut cursor = Cursor { bytes, pos: 0 };
    cursor.expect(b"{\"Type\":")?;
    let kind = cursor.integer()?;
    cursor.expect(b",\"ConnID\":")?;
    let conn_id = cursor.integer()?;
    cursor.expect(b",\"SeqNum\":")?;
    let seq_num = cursor.integer()?;
    cursor.expect(b",\"Size\":")?;
    let size = cursor.integer()?;
    cursor.expect(b",\"Checksum\":")?;
    let checksum = cursor.integer()?;
    cursor.expect(b",\"Payload\":")?;
    let payload = if cursor.expect(b"null}").is_some() && cursor.pos == bytes.len() {
        Vec::new()
    } else {
        cursor.expect(b"\"")?;
        let text = bytes.get(cursor.pos..)?.strip_suffix(b"\"}")?;
        if text.is_empty() {
            Vec::new()
        } else {
            BASE64.decode_to_vec(text).ok()?
        }
    };
    validate(kind, conn_id, seq_num, size, checksum, payload).ok()
}

/// A read position in a datagram, for [`parse_canonical`].
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn expect(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(literal.len())?;
        (self.bytes.get(self.pos..end)? == literal).then(|| self.pos = end)
    }

    /// A JSON integer in canonical form (no leading zeros, no fraction or exponent) that
    /// fits an `i64`; `None` for anything else.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let digits = self
            .bytes
            .get(start..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 19 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        let end = start + digits;
        if matches!(self.bytes.get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut magnitude: i128 = 0;
        for &d in &self.bytes[start..end] {
            magnitude = magnitude * 10 + i128::from(d - b'0');
        }
        let value = if negative { -magnitude } else { magnitude };
        self.pos = end;
        i64::try_from(value).ok()
    }
}

/// The wire form as the reference's `json.Unmarshal` sees it.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(rename = "Type", default)]
    kind: i64,
    #[serde(rename = "ConnID", default)]
    conn_id: i64,
    #[serde(rename = "SeqNum", default)]
    seq_num: i64,
    #[serde(rename = "Size", default)]
    size: i64,
    #[serde(rename = "Checksum", default)]
    checksum: i64,
    #[serde(rename = "Payload", default, borrow)]
    payload: Option<Cow<'a, str>>,
}

/// Why a datagram could not be decoded. Endpoints count these and drop the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_DATAGRAM_LEN`] bytes (the reference would crash on it).
    TooLong(usize),
    /// Decodes to a message whose reference encoding (all six keys) is this many bytes,
    /// more than [`MAX_DATAGRAM_LEN`]: no reference peer sends it, and it could not be sent
    /// on (found by the `decode` fuzz target: a Data datagram leaving keys out).
    EncodingTooLong(usize),
    /// Not a JSON object of the expected shape (includes non-integer or out-of-range numbers).
    Json,
    /// `Type` is not 0..=3.
    UnknownType(i64),
    /// `Size` is negative.
    NegativeSize(i64),
    /// `Checksum` is not in 0..=65535.
    ChecksumOutOfRange(i64),
    /// `Payload` is not valid standard base64.
    Base64,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLong(n) => {
                write!(f, "datagram of {n} bytes exceeds {MAX_DATAGRAM_LEN}")
            }
            DecodeError::EncodingTooLong(n) => {
                write!(
                    f,
                    "message would encode to {n} bytes, over {MAX_DATAGRAM_LEN}"
                )
            }
            DecodeError::Json => write!(f, "not a valid LSP JSON message"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::NegativeSize(s) => write!(f, "negative size {s}"),
            DecodeError::ChecksumOutOfRange(c) => write!(f, "checksum {c} out of range"),
            DecodeError::Base64 => write!(f, "payload is not valid base64"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(text: &str) -> Result<Message, DecodeError> {
        Message::decode(text.as_bytes())
    }

    #[test]
    fn encodes_the_spec_example() {
        let m = Message::data(7, 1, b"hello".to_vec());
        let text =
            r#"{"Type":1,"ConnID":7,"SeqNum":1,"Size":5,"Checksum":11695,"Payload":"aGVsbG8="}"#;
        assert_eq!(m.encode(), text.as_bytes());
        assert_eq!(m.encoded_len(), text.len());
        assert_eq!(data_encoded_len(7, 1, 5), text.len() + 5 - "11695".len());
        assert_eq!(decode_str(text), Ok(m));
    }

    #[test]
    fn lenient_decoding() {
        let m = decode_str(r#"{"SeqNum":3,"Type":2,"Extra":[1,{"x":null}]}"#).unwrap();
        assert_eq!(m, Message::ack(0, 3));
        let m =
            decode_str(r#"{"Type":1,"ConnID":1,"SeqNum":1,"Size":0,"Checksum":65532}"#).unwrap();
        assert_eq!(m.payload, b"");
        let m = decode_str(r#"{"Type":1,"Payload":null}"#).unwrap();
        assert_eq!((m.kind, m.payload.len()), (MsgType::Data, 0));
        let m = decode_str(r#" { "Type" : 0 , "SeqNum" : -4 } "#).unwrap();
        assert_eq!(m, Message::connect(-4));
    }

    #[test]
    fn strict_where_the_reference_misbehaves() {
        assert_eq!(
            decode_str(r#"{"Type":4}"#),
            Err(DecodeError::UnknownType(4))
        );
        assert_eq!(
            decode_str(r#"{"Type":-1}"#),
            Err(DecodeError::UnknownType(-1))
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"Size":-1}"#),
            Err(DecodeError::NegativeSize(-1))
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"Checksum":65536}"#),
            Err(DecodeError::ChecksumOutOfRange(65536))
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"Checksum":-1}"#),
            Err(DecodeError::ChecksumOutOfRange(-1))
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"SeqNum":14.0}"#),
            Err(DecodeError::Json)
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"SeqNum":9223372036854775808}"#),
            Err(DecodeError::Json)
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"Payload":"aGVsbG8"}"#),
            Err(DecodeError::Base64)
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"Payload":"!!!!"}"#),
            Err(DecodeError::Base64)
        );
        assert_eq!(decode_str("[1,2,3]"), Err(DecodeError::Json));
        assert_eq!(decode_str(""), Err(DecodeError::Json));
        assert_eq!(decode_str("{\"Type\":1"), Err(DecodeError::Json));
        let long = vec![b' '; MAX_DATAGRAM_LEN + 1];
        assert_eq!(
            Message::decode(&long),
            Err(DecodeError::TooLong(MAX_DATAGRAM_LEN + 1))
        );
    }

    #[test]
    fn fast_and_lenient_paths_agree() {
        let texts = [
            r#"{"Type":1,"ConnID":7,"SeqNum":1,"Size":5,"Checksum":11695,"Payload":"aGVsbG8="}"#,
            r#"{"Type":2,"ConnID":-5,"SeqNum":9223372036854775807,"Size":0,"Checksum":0,"Payload":null}"#,
            r#"{"Type":1,"ConnID":0,"SeqNum":-9223372036854775808,"Size":0,"Checksum":0,"Payload":""}"#,
        ];
        for text in texts {
            let fast = decode_canonical(text.as_bytes()).expect("canonical");
            let raw = parse_lenient(text.as_bytes()).expect("valid JSON");
            let payload = raw
                .payload
                .map(|p| BASE64.decode_to_vec(p.as_bytes()).unwrap());
            let slow = validate(
                raw.kind,
                raw.conn_id,
                raw.seq_num,
                raw.size,
                raw.checksum,
                payload.unwrap_or_default(),
            );
            assert_eq!(Ok(fast), slow);
        }
        // Not canonical: left to serde, which decides.
        for text in [
            r#"{"Type":01,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":null}"#,
            r#"{"Type":1,"ConnID":0,"SeqNum":1e2,"Size":0,"Checksum":0,"Payload":null}"#,
            r#"{"Type":1,"ConnID":0,"SeqNum":99999999999999999999,"Size":0,"Checksum":0,"Payload":null}"#,
            r#"{"Type":1,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":"YW\/i"}"#,
            r#"{"Type":1,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":"aGk="} "#,
            r#"{"Type":1,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":null} "#,
            r#"{"Type":1,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":null,"X":1}"#,
            r#"{"Type":1,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":"a\"}"#,
            r#"{"Type":9,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":null}"#,
        ] {
            assert!(decode_canonical(text.as_bytes()).is_none(), "{text}");
        }
        assert_eq!(
            decode_str(r#"{"Type":01,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":null}"#),
            Err(DecodeError::Json)
        );
        assert_eq!(
            decode_str(r#"{"Type":1,"ConnID":0,"SeqNum":0,"Size":0,"Checksum":0,"Payload":"a\"}"#),
            Err(DecodeError::Json)
        );
        let escaped = decode_str(
            r#"{"Type":1,"ConnID":1,"SeqNum":1,"Size":3,"Checksum":0,"Payload":"YW\/i"}"#,
        );
        assert_eq!(
            escaped.map(|m| m.payload),
            Ok(vec![0x61, 0x6f, 0xe2]),
            "escaped slash decodes"
        );
    }

    #[test]
    fn control_messages_drop_their_payload() {
        // The fuzz crash: no Type means Connect, whose re-encoding carries `null`.
        let m = decode_str(r#"{"Payload":"yloa"}"#).unwrap();
        assert_eq!(m, Message::connect(0));
        assert_eq!(Message::decode(&m.encode()), Ok(m));
        for text in [
            r#"{"Type":0,"ConnID":0,"SeqNum":4,"Size":0,"Checksum":0,"Payload":"aGk="}"#,
            r#"{"Type":2,"ConnID":3,"SeqNum":4,"Size":2,"Checksum":9,"Payload":"aGk="}"#,
            r#"{"Type":3,"ConnID":3,"SeqNum":4,"Size":0,"Checksum":0,"Payload":"aGk="}"#,
        ] {
            let m = decode_str(text).unwrap();
            assert!(m.payload.is_empty(), "{text}");
            assert_eq!(Message::decode(&m.encode()), Ok(m), "{text}");
        }
        // The payload is still checked: bad base64 is an error whatever the type.
        assert_eq!(
            decode_str(r#"{"Type":2,"Payload":"!!!!"}"#),
            Err(DecodeError::Base64)
        );
        // Data keeps its payload.
        let m = decode_str(r#"{"Type":1,"Payload":"aGk="}"#).unwrap();
        assert_eq!(m.payload, b"hi");
    }

    #[test]
    fn a_message_that_would_encode_too_long_is_rejected() {
        // The fuzz crash: leaving keys out, a Data datagram under 1500 bytes whose
        // re-encoding (all six keys) would be over 1500.
        let payload = BASE64.encode_to_string(vec![0xaa; 1080]);
        let short = format!(r#"{{"Type":1,"ConnID":7,"Payload":"{payload}"}}"#);
        assert!(short.len() <= MAX_DATAGRAM_LEN, "{}", short.len());
        let mut m = Message::data(7, 0, vec![0xaa; 1080]);
        m.size = 0;
        m.checksum = 0;
        assert!(m.encoded_len() > MAX_DATAGRAM_LEN);
        assert_eq!(
            decode_str(&short),
            Err(DecodeError::EncodingTooLong(m.encoded_len()))
        );
        // Shorter payloads still decode and round-trip.
        let payload = BASE64.encode_to_string(vec![0xaa; 900]);
        let text = format!(r#"{{"Type":1,"ConnID":7,"Payload":"{payload}"}}"#);
        let m = decode_str(&text).unwrap();
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn extreme_fields_round_trip() {
        for m in [
            Message::data(i64::MIN, i64::MAX, vec![0xff; 3]),
            Message::data(-1, -7, vec![]),
            Message::cack(i64::MAX, i64::MIN),
        ] {
            let bytes = m.encode();
            assert_eq!(bytes.len(), m.encoded_len());
            assert_eq!(Message::decode(&bytes), Ok(m));
        }
    }

    #[test]
    fn the_guaranteed_payload_always_fits() {
        let worst = data_encoded_len(i64::MIN, i64::MIN, MAX_GUARANTEED_PAYLOAD);
        assert!(worst <= MAX_DATAGRAM_LEN, "{worst}");
        let m = Message::data(i64::MIN, i64::MIN, vec![7; MAX_GUARANTEED_PAYLOAD]);
        assert!(m.encoded_len() <= data_encoded_len(i64::MIN, i64::MIN, MAX_GUARANTEED_PAYLOAD));
    }
}
