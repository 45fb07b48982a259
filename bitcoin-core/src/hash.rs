//! The proof-of-work hash: `hash(msg, nonce)` is the first eight bytes, read big-endian, of
//! SHA-256 over `msg`, one space, and `nonce` in decimal (no leading zeros).
//!
//! This module holds the definition and its scalar reference; the fast search over ranges of
//! nonces lives in [`crate::kernel`] and is tested against [`hash`].

use sha2::{Digest, Sha256};

/// The most decimal digits a `u64` can have (`u64::MAX` = 18446744073709551615).
pub const MAX_DIGITS: usize = 20;

/// Returns `hash(msg, nonce)`: the first 8 bytes, big-endian, of
/// SHA-256(`msg` ‖ `" "` ‖ decimal(`nonce`)).
///
/// `msg` may be any byte string, empty included (the reference hashes the UTF-8 bytes of a Go
/// string). Allocation-free; this is the scalar reference every kernel path is checked against.
///
/// ```
/// assert_eq!(bitcoin_core::hash::hash("msg", 0), 13781283048668101583);
/// ```
pub fn hash(msg: impl AsRef<[u8]>, nonce: u64) -> u64 {
    let mut digits = [0u8; MAX_DIGITS];
    let digits = decimal(nonce, &mut digits);
    let digest = Sha256::new()
        .chain_update(msg.as_ref())
        .chain_update(b" ")
        .chain_update(digits)
        .finalize();
    first_word(&digest)
}

/// Returns `hash(msg, nonce)` computed the obvious way — `format!` then `Sha256::digest` —
/// exactly as the Go reference does (`fmt.Sprintf` + `sha256.Sum256`).
///
/// It allocates on every call: it exists as the naive baseline of the `bench` tool and as a
/// second, independent statement of the definition in tests. Use [`hash`] otherwise.
pub fn hash_naive(msg: &str, nonce: u64) -> u64 {
    let text = format!("{msg} {nonce}");
    first_word(&Sha256::digest(text.as_bytes()))
}

/// Writes `n` in decimal, without leading zeros, at the end of `buf` and returns the digits.
///
/// ```
/// let mut buf = [0u8; bitcoin_core::hash::MAX_DIGITS];
/// assert_eq!(bitcoin_core::hash::decimal(9050, &mut buf), b"9050");
/// ```
pub fn decimal(mut n: u64, buf: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let mut start = MAX_DIGITS;
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// Returns how many decimal digits `n` has (1 for 0, 20 for `u64::MAX`).
pub fn digit_count(n: u64) -> usize {
    // `checked_ilog10` is `None` only for 0; the result is at most 19.
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Returns `10^exp` for `exp < 20` (every power of ten a `u64` holds).
///
/// # Panics
/// If `exp >= 20`; callers pass digit positions of a `u64`, which are below 20.
pub(crate) const fn pow10(exp: usize) -> u64 {
    10u64.pow(exp as u32)
}

/// Reads the first 8 bytes of a SHA-256 digest as a big-endian `u64`.
fn first_word(digest: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn spec_examples() {
        assert_eq!(hash("msg", 0), 13781283048668101583);
        assert_eq!(hash("msg", 1), 4754799531757243342);
        assert_eq!(hash("msg", 2), 5611725180048225792);
    }

    #[test]
    fn digit_counts_at_powers_of_ten() {
        assert_eq!(digit_count(0), 1);
        assert_eq!(digit_count(u64::MAX), MAX_DIGITS);
        for exp in 1..MAX_DIGITS {
            assert_eq!(digit_count(pow10(exp) - 1), exp);
            assert_eq!(digit_count(pow10(exp)), exp + 1);
        }
    }

    quickcheck! {
        fn decimal_matches_display(n: u64) -> bool {
            let mut buf = [0u8; MAX_DIGITS];
            decimal(n, &mut buf) == n.to_string().as_bytes()
                && digit_count(n) == n.to_string().len()
        }

        fn hash_matches_naive(msg: String, nonce: u64) -> bool {
            hash(&msg, nonce) == hash_naive(&msg, nonce)
        }
    }
}
