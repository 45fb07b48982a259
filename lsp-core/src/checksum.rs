//! The reference checksum (docs/protocol.md §2), quirk included.

/// Folds one integer field the way the reference does: its low 32 bits (two's complement for
/// negatives) split into 16-bit halves that are added **with wrap-around** (carry dropped).
fn fold_field(value: i64) -> u32 {
    let low32 = value as u32; // truncation to the low 32 bits is the rule, not an accident
    let low = low32 as u16;
    let high = (low32 >> 16) as u16;
    u32::from(low.wrapping_add(high))
}

/// Sums `payload` as little-endian 16-bit words; an odd last byte counts as a word with a zero
/// high byte.
fn sum_payload(payload: &[u8]) -> u64 {
    // Blocks of 64 KiB keep each block's u32 sum from overflowing (32768 words × 0xFFFF <
    // 2^32), which lets the compiler vectorise the inner loop.
    payload
        .chunks(1 << 16)
        .map(|block| {
            let mut words = block.chunks_exact(2);
            let sum: u32 = words
                .by_ref()
                .map(|pair| u32::from(u16::from_le_bytes([pair[0], pair[1]])))
                .sum();
            let odd = words.remainder().first().map_or(0, |&b| u32::from(b));
            u64::from(sum) + u64::from(odd)
        })
        .sum()
}

/// The reference's `CalculateChecksum(conn_id, seq_num, size, payload)`.
///
/// Senders pass `size = payload.len()`; receivers pass the fields exactly as received
/// (docs/protocol.md §2), after truncating an over-long payload to `size` (§4).
pub fn checksum(conn_id: i64, seq_num: i64, size: i64, payload: &[u8]) -> u16 {
    let mut acc: u64 = u64::from(fold_field(conn_id))
        + u64::from(fold_field(seq_num))
        + u64::from(fold_field(size))
        + sum_payload(payload);
    while acc > 0xFFFF {
        acc = (acc >> 16) + (acc & 0xFFFF);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_matches() {
        // docs/protocol.md §1: Data, conn 7, seq 1, payload "hello" carries checksum 11695.
        assert_eq!(checksum(7, 1, 5, b"hello"), 11695);
    }

    #[test]
    fn field_halves_wrap_without_end_around_carry() {
        // 0xFFFF + 0xFFFF = 0x1FFFE wraps to 0xFFFE as a u16 (carry dropped): an end-around
        // carry would give 0xFFFF instead.
        let field = 0xFFFF_FFFF_i64;
        assert_eq!(fold_field(field), 0xFFFE);
        assert_eq!(fold_field(-1), 0xFFFE);
        assert_eq!(fold_field(0x1_0000_0001), 1, "bits above 32 are ignored");
    }

    #[test]
    fn odd_trailing_byte_is_a_low_byte() {
        assert_eq!(sum_payload(&[0x01, 0x02, 0x03]), 0x0201 + 0x03);
    }

    #[test]
    fn large_payloads_do_not_overflow() {
        let big = vec![0xff; (1 << 17) + 3];
        assert_eq!(sum_payload(&big), ((1 << 16) + 1) * 0xFFFF + 0xff);
    }
}
