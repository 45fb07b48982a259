//! The proof-of-work hash: `hash(msg, nonce)` is the first eight bytes, read big-endian, of
//! SHA-256 over `msg`, one space, and `nonce` in decimal (no leading zeros).
//!
//! The target-mode extension adds a second [`Algo`], `sha256d`: the same bytes hashed twice,
//! the outer SHA-256 taking the inner one's 32 raw bytes ([`hash_sha256d`]), and a difficulty,
//! [`Zeros`]: how many leading zero bits a 64-bit hash must have.
//!
//! This module holds the definitions and their scalar references; the fast search over ranges
//! of nonces lives in [`crate::kernel`] and is tested against [`hash`] and [`hash_sha256d`].

use core::fmt;
use core::str::FromStr;
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

/// Returns the `sha256d` hash of `(msg, nonce)`: the first 8 bytes, big-endian, of
/// SHA-256(SHA-256(`msg` ‖ `" "` ‖ decimal(`nonce`))), the outer SHA-256 taking the inner
/// digest's 32 raw bytes (not its hex).
///
/// Allocation-free; the scalar reference every kernel path's `sha256d` search is checked
/// against.
///
/// ```
/// assert_eq!(bitcoin_core::hash::hash_sha256d("msg", 0), 7250967423458368344);
/// ```
pub fn hash_sha256d(msg: impl AsRef<[u8]>, nonce: u64) -> u64 {
    let mut digits = [0u8; MAX_DIGITS];
    let digits = decimal(nonce, &mut digits);
    let inner = Sha256::new()
        .chain_update(msg.as_ref())
        .chain_update(b" ")
        .chain_update(digits)
        .finalize();
    first_word(&Sha256::digest(inner))
}

/// Which proof-of-work hash a request asks for. The default is [`Algo::Sha256`], the hash of
/// the reference implementation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algo {
    /// [`hash`]: one SHA-256. Named `sha256`.
    #[default]
    Sha256,
    /// [`hash_sha256d`]: SHA-256 of the SHA-256 digest. Named `sha256d`.
    Sha256d,
}

impl Algo {
    /// Every algorithm, the default first.
    pub const ALL: [Algo; 2] = [Algo::Sha256, Algo::Sha256d];

    /// The name [`FromStr`] accepts and [`fmt::Display`] prints: `sha256` or `sha256d`.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Sha256d => "sha256d",
        }
    }

    /// The hash of `(msg, nonce)` under this algorithm: [`hash`] or [`hash_sha256d`].
    pub fn hash(self, msg: impl AsRef<[u8]>, nonce: u64) -> u64 {
        match self {
            Algo::Sha256 => hash(msg, nonce),
            Algo::Sha256d => hash_sha256d(msg, nonce),
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algo {
    type Err = UnknownAlgo;
    /// Parses `sha256` or `sha256d` (exactly: lower case, no spaces).
    fn from_str(name: &str) -> Result<Algo, UnknownAlgo> {
        Algo::ALL
            .into_iter()
            .find(|algo| algo.name() == name)
            .ok_or_else(|| UnknownAlgo(name.to_string()))
    }
}

/// A name that is not one of [`Algo`]'s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAlgo(pub String);

impl fmt::Display for UnknownAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown hash algorithm `{}` (expected sha256 or sha256d)",
            self.0
        )
    }
}

impl std::error::Error for UnknownAlgo {}

/// A difficulty: how many leading zero bits (1 ..= 64) a 64-bit hash must have to qualify.
///
/// ```
/// use bitcoin_core::hash::Zeros;
/// let zeros = Zeros::new(4).unwrap();
/// assert!(zeros.accepts(0x0fff_ffff_ffff_ffff));
/// assert!(!zeros.accepts(0x1000_0000_0000_0000));
/// assert!(Zeros::new(0).is_err() && Zeros::new(65).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zeros(u8);

impl Zeros {
    /// The fewest zero bits a difficulty may ask for.
    pub const MIN: u32 = 1;
    /// The most zero bits a difficulty may ask for (only the hash 0 has 64).
    pub const MAX: u32 = 64;

    /// The difficulty of `zeros` leading zero bits; an error unless `1 <= zeros <= 64`.
    pub fn new(zeros: u32) -> Result<Zeros, ZerosOutOfRange> {
        if (Self::MIN..=Self::MAX).contains(&zeros) {
            // At most 64: the cast cannot truncate.
            Ok(Zeros(zeros as u8))
        } else {
            Err(ZerosOutOfRange(zeros))
        }
    }

    /// The number of leading zero bits wanted (1 ..= 64).
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    /// The greatest qualifying hash: `u64::MAX >> zeros` (0 for 64).
    pub fn limit(self) -> u64 {
        u64::MAX.checked_shr(self.get()).unwrap_or(0)
    }

    /// Whether `hash` has at least this many leading zero bits (`hash <= self.limit()`).
    pub fn accepts(self, hash: u64) -> bool {
        hash.leading_zeros() >= self.get()
    }
}

impl fmt::Display for Zeros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u64> for Zeros {
    type Error = ZerosOutOfRange;
    /// [`Zeros::new`] for a number as a JSON decoder gives it; values above `u32::MAX` are
    /// reported as `u32::MAX`.
    fn try_from(zeros: u64) -> Result<Zeros, ZerosOutOfRange> {
        Zeros::new(u32::try_from(zeros).unwrap_or(u32::MAX))
    }
}

/// A number of leading zero bits outside 1 ..= 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZerosOutOfRange(pub u32);

impl fmt::Display for ZerosOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} leading zero bits is not a difficulty (expected 1 to 64)",
            self.0
        )
    }
}

impl std::error::Error for ZerosOutOfRange {}

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
    fn sha256d_examples() {
        // Computed independently (Python's hashlib, SHA-256 applied twice).
        assert_eq!(hash_sha256d("msg", 0), 7250967423458368344);
        assert_eq!(hash_sha256d("msg", 1), 6566680723222135900);
        assert_eq!(hash_sha256d("msg", 2), 5077501059832514794);
    }

    #[test]
    fn algo_names_round_trip() {
        for algo in Algo::ALL {
            assert_eq!(algo.name().parse::<Algo>(), Ok(algo));
            assert_eq!(algo.to_string(), algo.name());
        }
        assert_eq!(Algo::default(), Algo::Sha256);
        for bad in ["", "SHA256", "sha256 ", "sha-256d", "sha512"] {
            assert_eq!(bad.parse::<Algo>(), Err(UnknownAlgo(bad.to_string())));
        }
    }

    #[test]
    fn zeros_bounds() {
        assert_eq!(Zeros::new(0), Err(ZerosOutOfRange(0)));
        assert_eq!(Zeros::new(65), Err(ZerosOutOfRange(65)));
        assert_eq!(Zeros::try_from(1u64 << 40), Err(ZerosOutOfRange(u32::MAX)));
        assert_eq!(Zeros::new(1).map(Zeros::limit), Ok(u64::MAX >> 1));
        assert_eq!(Zeros::new(64).map(Zeros::limit), Ok(0));
        let all = Zeros::new(64).expect("64 is valid");
        assert!(all.accepts(0) && !all.accepts(1));
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

        /// `hash_sha256d` against the plain `sha2` digest applied twice to the formatted text.
        fn sha256d_matches_digest_twice(msg: String, nonce: u64) -> bool {
            let inner = Sha256::digest(format!("{msg} {nonce}").as_bytes());
            let outer = Sha256::digest(inner);
            hash_sha256d(&msg, nonce) == first_word(&outer)
                && Algo::Sha256d.hash(&msg, nonce) == first_word(&outer)
        }

        fn zeros_limit_agrees_with_accepts(zeros: u32, hash: u64) -> bool {
            let zeros = Zeros::new(zeros % 64 + 1).expect("in range");
            zeros.accepts(hash) == (hash <= zeros.limit())
        }
    }
}
