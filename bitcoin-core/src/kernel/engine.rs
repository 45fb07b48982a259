//! The interface between the search driver and a SHA-256 implementation: an [`Engine`]
//! compresses one 64-byte block for each of its lanes at once, in struct-of-arrays layout.
//!
//! The scalar engine, built on `sha2::compress256`, lives here; the SIMD engines live in
//! `simd` (the only module with `unsafe` code), the portable multi-lane one in `lanes`.

use sha2::digest::generic_array::GenericArray;

/// The SHA-256 round constants (FIPS 180-4, 4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The SHA-256 initial chaining value (FIPS 180-4, 5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Words 8..16 of the block that hashes a 32-byte digest a second time (`sha256d`): the
/// padding byte 0x80 and the length, 256 bits. Words 0..8 are the digest.
pub(crate) const DIGEST_PAD: [u32; 8] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 256];

/// The constants of the second compression of `sha256d`, whose block is a digest (words 0..8)
/// followed by [`DIGEST_PAD`], and whose chaining value is [`IV`].
pub(crate) struct Rehash {
    /// `K[8 + i] + DIGEST_PAD[i]`: rounds 8..16 add constants only.
    pub(crate) pad_kw: [u32; 8],
    /// Round 0 from [`IV`]: the new `a` is `W[0] + round0_a`, the new `e` is `W[0] + round0_e`.
    pub(crate) round0_a: u32,
    /// See `round0_a`.
    pub(crate) round0_e: u32,
    /// σ1(`W[15]`), the constant term of `W[17]`.
    pub(crate) w17: u32,
    /// σ0(`W[8]`), the constant term of `W[23]`.
    pub(crate) w23: u32,
    /// σ0(`W[15]`), the constant term of `W[30]`.
    pub(crate) w30: u32,
}

/// The [`Rehash`] constants, computed at compile time.
pub(crate) const REHASH: Rehash = {
    let mut pad_kw = [0u32; 8];
    let mut i = 0;
    while i < 8 {
        pad_kw[i] = K[8 + i].wrapping_add(DIGEST_PAD[i]);
        i += 1;
    }
    let [a, b, c, d, e, f, g, h] = IV;
    let sigma1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
    let choose = (e & f) ^ (!e & g);
    let t1 = h
        .wrapping_add(sigma1)
        .wrapping_add(choose)
        .wrapping_add(K[0]);
    let sigma0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
    let t2 = sigma0.wrapping_add((a & b) ^ (a & c) ^ (b & c));
    let w15 = DIGEST_PAD[7];
    let w8 = DIGEST_PAD[0];
    Rehash {
        pad_kw,
        round0_a: t1.wrapping_add(t2),
        round0_e: t1.wrapping_add(d),
        w17: w15.rotate_right(17) ^ w15.rotate_right(19) ^ (w15 >> 10),
        w23: w8.rotate_right(7) ^ w8.rotate_right(18) ^ (w8 >> 3),
        w30: w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3),
    }
};

/// The values of one 32-bit word in every lane of an engine: `[u32; LANES]`.
pub(crate) trait Lanes: Copy + AsRef<[u32]> + AsMut<[u32]> {
    /// The same value in every lane.
    fn splat(value: u32) -> Self;
}

impl<const N: usize> Lanes for [u32; N] {
    fn splat(value: u32) -> Self {
        [value; N]
    }
}

/// One message block per lane: `words[w][lane]` is big-endian word `w` of that lane's block.
/// Aligned so that a SIMD engine's loads never straddle cache lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Block<L>(pub(crate) [L; 16]);

/// One chaining value per lane: `words[i][lane]` is word `i` (a..h) of that lane's state.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct State<L>(pub(crate) [L; 8]);

impl<L: Lanes> State<L> {
    /// The same chaining value in every lane.
    pub(crate) fn splat(words: &[u32; 8]) -> Self {
        State(words.map(L::splat))
    }
}

/// Where a compression starts: the chaining value it adds back at the end (`init`) and the
/// state after its first `skip` rounds (`start`, words a..h; equal to `init` when `skip` is 0).
///
/// A tail block opens with the prefix's last bytes, the same for every nonce: the rounds that
/// read only those words give the same state for every nonce, computed once per search.
#[derive(Clone, Copy)]
// Only the SIMD engines (x86-64) read `start`, `skip` and `uniform`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Entry<'a, L> {
    /// The chaining value before the block.
    pub(crate) init: &'a State<L>,
    /// The state after `skip` rounds.
    pub(crate) start: &'a State<L>,
    /// Rounds already done: a multiple of the engine's [`Engine::SKIP_STEP`], below 16.
    pub(crate) skip: usize,
    /// Every lane of `init` holds the same value, and every lane of `start` too.
    pub(crate) uniform: bool,
}

impl<'a, L> Entry<'a, L> {
    /// A compression from round 0.
    pub(crate) fn from(state: &'a State<L>) -> Self {
        Entry {
            init: state,
            start: state,
            skip: 0,
            uniform: false,
        }
    }
}

/// `K[t] + W[t]` for the 64 rounds of a block whose words are known in advance, in groups of
/// sixteen rounds.
pub(crate) type Schedule = [[u32; 16]; 4];

/// The schedule of a block: its message expansion plus the round constants.
pub(crate) fn schedule(words: &[u32; 16]) -> Schedule {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(words);
    for t in 16..64 {
        let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
        let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16]
            .wrapping_add(s0)
            .wrapping_add(w[t - 7])
            .wrapping_add(s1);
    }
    let mut out = [[0u32; 16]; 4];
    for (t, (word, k)) in w.iter().zip(K).enumerate() {
        out[t / 16][t % 16] = word.wrapping_add(k);
    }
    out
}

/// Runs rounds `0..words.len()` (at most 16, no message schedule needed) from `state`.
pub(crate) fn first_rounds(state: &[u32; 8], words: &[u32]) -> [u32; 8] {
    debug_assert!(words.len() <= 16);
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (t, word) in words.iter().enumerate() {
        let t1 = h
            .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
            .wrapping_add((e & f) ^ (!e & g))
            .wrapping_add(K[t])
            .wrapping_add(*word);
        let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22))
            .wrapping_add((a & b) ^ (a & c) ^ (b & c));
        [h, g, f, e, d, c, b, a] = [g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2)];
    }
    [a, b, c, d, e, f, g, h]
}

/// A SHA-256 compression function over `LANES` independent lanes.
///
/// Implementations must compute exactly FIPS 180-4 compression for every lane; the kernel's
/// quickcheck properties compare every engine with the scalar reference hash.
pub(crate) trait Engine: Copy {
    /// `[u32; LANES]`.
    type Lanes: Lanes;
    /// How many nonces one call processes.
    const LANES: usize;
    /// The engine can start at round `skip` when `skip` is a multiple of this (16: never).
    const SKIP_STEP: usize;

    /// Compresses `block` for every lane and returns the new chaining values.
    fn compress(
        &self,
        entry: Entry<'_, Self::Lanes>,
        block: &Block<Self::Lanes>,
    ) -> State<Self::Lanes>;

    /// Compresses the last block of every lane and writes the first two words of each new
    /// chaining value (`out[0]` is the high half of the hash, `out[1]` the low half).
    ///
    /// Returns a mask with bit `lane` set when `out[0][lane] <= threshold`: only those lanes
    /// can beat a best hash whose high half is `threshold`. Other bits are zero.
    fn finish(
        &self,
        entry: Entry<'_, Self::Lanes>,
        block: &Block<Self::Lanes>,
        threshold: u32,
        out: &mut [Self::Lanes; 2],
    ) -> u32;

    /// [`Engine::finish`] for a last block that is the same in every lane and for every
    /// nonce, whose schedule `kw` ([`schedule`] of `block`) is therefore computed once: the
    /// engine skips the message expansion. `entry.skip` is 0.
    fn finish_fixed(
        &self,
        entry: Entry<'_, Self::Lanes>,
        block: &Block<Self::Lanes>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [Self::Lanes; 2],
    ) -> u32 {
        let _ = kw;
        self.finish(entry, block, threshold, out)
    }

    /// Hashes each lane's 32-byte digest `digest` (its eight chaining words, big-endian) with
    /// one more SHA-256 and writes the first two words of the result as [`Engine::finish`]
    /// does, with the same mask: the second half of `sha256d`.
    fn rehash(
        &self,
        digest: &State<Self::Lanes>,
        threshold: u32,
        out: &mut [Self::Lanes; 2],
    ) -> u32;

    /// [`Engine::finish`] for `sha256d`: compresses the last block, then [rehashes](
    /// Engine::rehash) the digest.
    fn finish_double(
        &self,
        entry: Entry<'_, Self::Lanes>,
        block: &Block<Self::Lanes>,
        threshold: u32,
        out: &mut [Self::Lanes; 2],
    ) -> u32 {
        let digest = self.compress(entry, block);
        self.rehash(&digest, threshold, out)
    }

    /// [`Engine::compress`] for a block whose schedule `kw` is known (see
    /// [`Engine::finish_fixed`]). `entry.skip` is 0.
    fn compress_fixed(
        &self,
        entry: Entry<'_, Self::Lanes>,
        block: &Block<Self::Lanes>,
        kw: &Schedule,
    ) -> State<Self::Lanes> {
        let _ = kw;
        self.compress(entry, block)
    }

    /// [`Engine::finish_fixed`] for `sha256d` (see [`Engine::finish_double`]).
    fn finish_double_fixed(
        &self,
        entry: Entry<'_, Self::Lanes>,
        block: &Block<Self::Lanes>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [Self::Lanes; 2],
    ) -> u32 {
        let digest = self.compress_fixed(entry, block, kw);
        self.rehash(&digest, threshold, out)
    }
}

/// The portable engine: one lane, `sha2::compress256` (which itself picks SHA-NI or its
/// software rounds at run time).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

impl Scalar {
    fn run(state: &State<[u32; 1]>, block: &Block<[u32; 1]>) -> [u32; 8] {
        let mut bytes = [0u8; 64];
        for (chunk, word) in bytes.chunks_exact_mut(4).zip(block.0.iter()) {
            chunk.copy_from_slice(&word[0].to_be_bytes());
        }
        let mut words = state.0.map(|lane| lane[0]);
        sha2::compress256(&mut words, &[GenericArray::from(bytes)]);
        words
    }
}

impl Engine for Scalar {
    type Lanes = [u32; 1];
    const LANES: usize = 1;
    const SKIP_STEP: usize = 16;

    fn compress(&self, entry: Entry<'_, [u32; 1]>, block: &Block<[u32; 1]>) -> State<[u32; 1]> {
        State(Self::run(entry.init, block).map(|word| [word]))
    }

    fn finish(
        &self,
        entry: Entry<'_, [u32; 1]>,
        block: &Block<[u32; 1]>,
        threshold: u32,
        out: &mut [[u32; 1]; 2],
    ) -> u32 {
        let words = Self::run(entry.init, block);
        *out = [[words[0]], [words[1]]];
        u32::from(words[0] <= threshold)
    }

    fn rehash(&self, digest: &State<[u32; 1]>, threshold: u32, out: &mut [[u32; 1]; 2]) -> u32 {
        let mut block = Block([[0u32]; 16]);
        for (word, value) in block
            .0
            .iter_mut()
            .zip(digest.0.iter().chain(&DIGEST_PAD.map(|w| [w])))
        {
            *word = *value;
        }
        let words = Self::run(&State::splat(&IV), &block);
        *out = [[words[0]], [words[1]]];
        u32::from(words[0] <= threshold)
    }
}
