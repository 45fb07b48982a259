//! The trace digest: a 64-bit FNV-1a fold over every event of a run.
//!
//! Two runs of the same seed must produce the same digest; a difference means something
//! non-deterministic (a clock, a hash map's iteration order, an uninitialised value) leaked
//! into the simulation or the core under test.

/// An incremental FNV-1a 64 hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Digest {
    fn default() -> Self {
        Digest(OFFSET)
    }
}

impl Digest {
    /// Folds `bytes` into the digest.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        self.0 = h;
    }

    /// Folds one integer (its 8 little-endian bytes) into the digest.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// The digest so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_vectors() {
        let mut d = Digest::default();
        assert_eq!(d.value(), 0xcbf2_9ce4_8422_2325);
        d.bytes(b"a");
        assert_eq!(d.value(), 0xaf63_dc4c_8601_ec8c);
        let mut e = Digest::default();
        e.bytes(b"foobar");
        assert_eq!(e.value(), 0x8594_4171_f739_67e8);
    }
}
