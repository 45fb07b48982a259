//! Where the nonce's digits sit in the SHA-256 input.
//!
//! The hashed text is `prefix ‖ digits` with `prefix = msg ‖ " "`. Every full 64-byte block
//! of the prefix is compressed once into a midstate ([`Prepared`]); what is left — the
//! prefix's last `< 64` bytes, the digits, the padding and the length — forms one or two
//! *tail* blocks whose shape depends only on the digit count ([`Layout`]).

use super::engine::{schedule, Schedule, IV};
use crate::hash::MAX_DIGITS;
use sha2::digest::generic_array::GenericArray;

/// A message made ready for searching: its prefix's full blocks are already compressed.
#[derive(Clone, Debug)]
pub(crate) struct Prefix {
    /// The chaining value after every full 64-byte block of `msg ‖ " "`.
    pub(crate) midstate: [u32; 8],
    /// The prefix bytes after those blocks (the first `rest_len` bytes are meaningful).
    rest: [u8; 64],
    /// How many bytes of `rest` are meaningful (`< 64`).
    rest_len: usize,
    /// The length of `msg ‖ " "` in bytes.
    len: u64,
}

impl Prefix {
    /// Compresses the full blocks of `msg ‖ " "`.
    pub(crate) fn new(msg: &[u8]) -> Self {
        let mut midstate = IV;
        let full = msg.len() / 64;
        let (blocks, tail) = msg.split_at(full * 64);
        for block in blocks.chunks_exact(64) {
            sha2::compress256(&mut midstate, &[*GenericArray::from_slice(block)]);
        }
        // `tail.len() < 64`; the space makes the rest at most 64 bytes long.
        let mut rest = [0u8; 64];
        rest[..tail.len()].copy_from_slice(tail);
        let mut rest_len = tail.len();
        if rest_len == 63 {
            // The space completes a block: fold it into the midstate too.
            rest[63] = b' ';
            sha2::compress256(&mut midstate, &[GenericArray::from(rest)]);
            rest = [0u8; 64];
            rest_len = 0;
        } else {
            rest[rest_len] = b' ';
            rest_len += 1;
        }
        Prefix {
            midstate,
            rest,
            rest_len,
            // A slice never holds more than `isize::MAX` bytes: the sum fits a `u64`.
            len: msg.len() as u64 + 1,
        }
    }
}

/// The shape of the tail blocks for one digit count.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// How many tail blocks follow the midstate: 1 or 2.
    pub(crate) blocks: usize,
    /// The tail's big-endian words with every digit byte zero.
    pub(crate) template: [u32; 32],
    /// How many digits the nonces have.
    pub(crate) digits: usize,
    /// How many leading words of the first tail block hold only prefix bytes (below 16).
    pub(crate) prefix_words: usize,
    /// With two tail blocks and every digit in the first, the second block is the same for
    /// every nonce: its schedule, computed once.
    pub(crate) fixed_last: Option<Schedule>,
    /// For digit position `i` (0 = units), the index of the tail word holding it.
    pub(crate) word: [usize; MAX_DIGITS],
    /// For digit position `i`, the left shift placing its byte in that word.
    pub(crate) shift: [u32; MAX_DIGITS],
}

impl Layout {
    /// The layout of the tail after `prefix` for nonces of `digits` digits (1 to 20).
    pub(crate) fn new(prefix: &Prefix, digits: usize) -> Self {
        debug_assert!((1..=MAX_DIGITS).contains(&digits));
        let start = prefix.rest_len;
        let end = start + digits; // Offset of the 0x80 padding byte.
        let blocks = if end + 9 <= 64 { 1 } else { 2 };
        let mut bytes = [0u8; 128];
        bytes[..start].copy_from_slice(&prefix.rest[..start]);
        bytes[end] = 0x80;
        let bits = (prefix.len + digits as u64).wrapping_mul(8);
        bytes[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
        let mut template = [0u32; 32];
        for (word, chunk) in template.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let mut word = [0usize; MAX_DIGITS];
        let mut shift = [0u32; MAX_DIGITS];
        for position in 0..digits {
            let offset = end - 1 - position;
            word[position] = offset / 4;
            shift[position] = 8 * (3 - (offset % 4) as u32);
        }
        let fixed_last = (blocks == 2 && end <= 64).then(|| {
            let mut last = [0u32; 16];
            last.copy_from_slice(&template[16..]);
            schedule(&last)
        });
        Layout {
            blocks,
            template,
            digits,
            prefix_words: start / 4,
            fixed_last,
            word,
            shift,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rebuilds the tail bytes of `msg ‖ " " ‖ nonce` from a layout and checks them against
    /// SHA-256's own padding of the whole text.
    fn check(msg: &[u8], nonce: u64) {
        let mut buf = [0u8; MAX_DIGITS];
        let digits = crate::hash::decimal(nonce, &mut buf);
        let prefix = Prefix::new(msg);
        let layout = Layout::new(&prefix, digits.len());
        let mut words = layout.template;
        for (position, digit) in digits.iter().rev().enumerate() {
            words[layout.word[position]] |= u32::from(*digit) << layout.shift[position];
        }
        let mut text = msg.to_vec();
        text.push(b' ');
        text.extend_from_slice(digits);
        let full = ((msg.len() + 1) / 64) * 64;
        let mut padded = text[full..].to_vec();
        padded.push(0x80);
        while padded.len() % 64 != 56 {
            padded.push(0);
        }
        padded.extend_from_slice(&(text.len() as u64 * 8).to_be_bytes());
        assert_eq!(padded.len(), layout.blocks * 64, "msg len {}", msg.len());
        for (i, chunk) in padded.chunks_exact(4).enumerate() {
            let expected = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            assert_eq!(words[i], expected, "msg len {} word {i}", msg.len());
        }
        let mut state = IV;
        for block in text[..full].chunks_exact(64) {
            sha2::compress256(&mut state, &[*GenericArray::from_slice(block)]);
        }
        assert_eq!(prefix.midstate, state);
    }

    #[test]
    fn tails_match_sha256_padding() {
        for len in 0..200 {
            let msg = vec![b'x'; len];
            for nonce in [0, 9, 12345, 9_999_999_999, u64::MAX] {
                check(&msg, nonce);
            }
        }
    }
}
