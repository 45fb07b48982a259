//! The interface between the search driver and a SHA-256 implementation: an [`Engine`]
//! compresses one 64-byte block for each of its lanes at once, in struct-of-arrays layout.
//!
//! The scalar engine, built on `sha2::compress256`, lives here; the SIMD engines live in
//! `simd` (the only module with `unsafe` code), the portable multi-lane one in `lanes`.

use sha2::digest::generic_array::GenericArray;

/// The SHA-256 initial chaining value (FIPS 180-4, 5.3.3).
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

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

/// A SHA-256 compression function over `LANES` independent lanes.
///
/// Implementations must compute exactly FIPS 180-4 compression for every lane; the kernel's
/// quickcheck properties compare every engine with the scalar reference hash.
pub(crate) trait Engine: Copy {
    /// `[u32; LANES]`.
    type Lanes: Lanes;
    /// How many nonces one call processes.
    const LANES: usize;

    /// Compresses `block` into `state` for every lane and writes the new chaining values.
    fn compress(
        &self,
        state: &State<Self::Lanes>,
        block: &Block<Self::Lanes>,
    ) -> State<Self::Lanes>;

    /// Compresses the last block of every lane and writes the first two words of each new
    /// chaining value (`out[0]` is the high half of the hash, `out[1]` the low half).
    ///
    /// Returns a mask with bit `lane` set when `out[0][lane] <= threshold`: only those lanes
    /// can beat a best hash whose high half is `threshold`. Other bits are zero.
    fn finish(
        &self,
        state: &State<Self::Lanes>,
        block: &Block<Self::Lanes>,
        threshold: u32,
        out: &mut [Self::Lanes; 2],
    ) -> u32;
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

    fn compress(&self, state: &State<[u32; 1]>, block: &Block<[u32; 1]>) -> State<[u32; 1]> {
        State(Self::run(state, block).map(|word| [word]))
    }

    fn finish(
        &self,
        state: &State<[u32; 1]>,
        block: &Block<[u32; 1]>,
        threshold: u32,
        out: &mut [[u32; 1]; 2],
    ) -> u32 {
        let words = Self::run(state, block);
        *out = [[words[0]], [words[1]]];
        u32::from(words[0] <= threshold)
    }
}
