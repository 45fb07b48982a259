//! Raft messages over LSP: a message (protobuf) may exceed one LSP payload (at most
//! [`lsp_core::MAX_GUARANTEED_PAYLOAD`] bytes are guaranteed; an append of many entries or
//! a snapshot is far larger), so it travels as fragments: payloads `F` + bytes for all but
//! the last, `R` + bytes for the last. LSP delivers a connection's payloads once and in
//! order, so a [`Reassembler`] per connection needs no numbering. Client and miner
//! payloads are JSON objects (`{`), never `F` or `R`.

use core::fmt;

use super::{decode_message, encode_message, RaftMessage};

/// Tag of a fragment that more follow.
pub const MORE: u8 = b'F';
/// Tag of a message's last (or only) fragment.
pub const LAST: u8 = b'R';
/// The most a reassembled message may hold; a peer sending more is cut off.
pub const MAX_MESSAGE: usize = 64 << 20;

/// Whether `payload` is a fragment of a raft message.
#[must_use]
pub fn is_fragment(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&MORE) | Some(&LAST))
}

/// `message` as payloads of at most `max_payload` bytes (at least 2), in order.
#[must_use]
pub fn fragment(message: &RaftMessage, max_payload: usize) -> Vec<Vec<u8>> {
    let bytes = encode_message(message);
    let room = max_payload.max(2) - 1;
    let count = bytes.len().div_ceil(room).max(1);
    (0..count)
        .map(|i| {
            let part = &bytes[(i * room).min(bytes.len())..((i + 1) * room).min(bytes.len())];
            let tag = if i + 1 == count { LAST } else { MORE };
            let mut payload = Vec::with_capacity(part.len() + 1);
            payload.push(tag);
            payload.extend_from_slice(part);
            payload
        })
        .collect()
}

/// Why a reassembled message was dropped.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// More than [`MAX_MESSAGE`] bytes.
    TooLong,
    /// Not a fragment.
    NotAFragment,
    /// The bytes are not a raft message.
    Malformed(protobuf::ProtobufError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong => write!(f, "raft message over {MAX_MESSAGE} bytes"),
            FrameError::NotAFragment => write!(f, "not a raft fragment"),
            FrameError::Malformed(e) => write!(f, "malformed raft message: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Rebuilds one connection's raft messages from its fragments.
#[derive(Debug, Default)]
pub struct Reassembler {
    buffer: Vec<u8>,
    overflow: bool,
}

impl Reassembler {
    /// Takes the next payload: `None` while a message is incomplete, then the message (or
    /// why it was dropped; the next one starts afresh).
    pub fn push(&mut self, payload: &[u8]) -> Option<Result<RaftMessage, FrameError>> {
        let (tag, part) = match payload.split_first() {
            Some((&tag, part)) if tag == MORE || tag == LAST => (tag, part),
            _ => return Some(Err(FrameError::NotAFragment)),
        };
        if self.buffer.len() + part.len() > MAX_MESSAGE {
            self.overflow = true;
            self.buffer = Vec::new();
        } else if !self.overflow {
            self.buffer.extend_from_slice(part);
        }
        if tag == MORE {
            return None;
        }
        let bytes = std::mem::take(&mut self.buffer);
        if std::mem::take(&mut self.overflow) {
            return Some(Err(FrameError::TooLong));
        }
        Some(decode_message(&bytes).map_err(FrameError::Malformed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    #[test]
    fn messages_of_any_size_survive_fragmentation() {
        for entries in [0usize, 1, 7, 300] {
            let mut m = RaftMessage::default();
            m.set_msg_type(MessageType::MsgAppend);
            m.to = 2;
            m.from = 1;
            m.entries = (0..entries)
                .map(|i| Entry {
                    index: i as u64,
                    data: vec![b'x'; i % 200].into(),
                    ..Entry::default()
                })
                .collect();
            let payloads = fragment(&m, 1000);
            assert!(payloads.iter().all(|p| p.len() <= 1000 && is_fragment(p)));
            let mut r = Reassembler::default();
            let (last, rest) = payloads.split_last().unwrap();
            assert!(rest.iter().all(|p| r.push(p).is_none()));
            assert_eq!(r.push(last).unwrap().unwrap(), m);
        }
        let mut r = Reassembler::default();
        assert!(matches!(r.push(b"{}"), Some(Err(FrameError::NotAFragment))));
        assert!(matches!(
            r.push(b"R\xff\xff"),
            Some(Err(FrameError::Malformed(_)))
        ));
    }
}
