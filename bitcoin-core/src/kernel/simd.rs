//! The SIMD engines — the crate's only `unsafe` code: AVX-512 (16 lanes), AVX2 (8 lanes) and
//! interleaved SHA-NI (4 streams), each behind a token type that exists only once the CPU has
//! been seen to support it.
//!
//! # Safety argument
//!
//! * An engine token ([`Avx512`], [`Avx2`], [`ShaNi`]) has a private field and is built only by
//!   its `detect`, after `is_x86_feature_detected!` confirmed every feature its code enables.
//!   Its safe methods are therefore entitled to call the `#[target_feature]` functions below.
//! * The register wrappers ([`Zmm`], [`Ymm`]) are private to this module and are created only
//!   inside those `#[target_feature]` functions, so their safe methods, which call the
//!   intrinsics of the same features, only ever run on a CPU that has them.
//! * Every memory access goes through references to arrays of exactly the register's width
//!   (`[u32; 16]` for 512 bits, `[u32; 8]` for 256, `[u32; 4]` for 128), with unaligned
//!   loads and stores.
//!
//! Every engine is compared with the scalar reference by the kernel's quickcheck properties.
//! Where the CPU lacks AVX-512 (our VMs and CI), the quickcheck runs the same generic round
//! code with portable 16-lane arrays, and `tests/avx512_emulation.py` runs the compiled AVX-512
//! functions in an emulated CPU against a Python SHA-256.
#![allow(unsafe_code)]

use super::engine::{Block, Engine, Entry, Schedule, State, DIGEST_PAD, IV};
use super::lanes::{self, ternary, Vector};
use core::arch::asm;
use core::arch::x86_64::*;

/// The AVX-512 engine: 16 lanes in `zmm` registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512 {
    _detected: (),
}

impl Avx512 {
    /// The engine, if this CPU has AVX-512F.
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx512f").then_some(Avx512 { _detected: () })
    }
}

/// 16 lanes of `u32` (AVX-512F).
#[derive(Clone, Copy)]
struct Zmm(__m512i);

impl Vector for Zmm {
    type Array = [u32; 16];
    #[inline(always)]
    fn splat(value: u32) -> Self {
        // SAFETY: see the module's safety argument (a `Zmm` implies AVX-512F).
        Zmm(unsafe { _mm512_set1_epi32(value as i32) })
    }
    #[inline(always)]
    fn load(array: &[u32; 16]) -> Self {
        // SAFETY: AVX-512F as above; `array` is 64 readable bytes.
        Zmm(unsafe { _mm512_loadu_si512(array.as_ptr().cast()) })
    }
    #[inline(always)]
    fn store(self, array: &mut [u32; 16]) {
        // SAFETY: AVX-512F as above; `array` is 64 writable bytes.
        unsafe { _mm512_storeu_si512(array.as_mut_ptr().cast(), self.0) }
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_add_epi32(self.0, other.0) })
    }
    #[inline(always)]
    fn and(self, other: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_and_si512(self.0, other.0) })
    }
    #[inline(always)]
    fn or(self, other: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_or_si512(self.0, other.0) })
    }
    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_xor_si512(self.0, other.0) })
    }
    #[inline(always)]
    fn shr(self, bits: u32) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_srl_epi32(self.0, _mm_cvtsi32_si128(bits as i32)) })
    }
    #[inline(always)]
    fn shl(self, bits: u32) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_sll_epi32(self.0, _mm_cvtsi32_si128(bits as i32)) })
    }
    #[inline(always)]
    fn at_most(self, bound: Self) -> u32 {
        // SAFETY: AVX-512F as above.
        u32::from(unsafe { _mm512_cmple_epu32_mask(self.0, bound.0) })
    }
    #[inline(always)]
    fn rotr(self, bits: u32) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_rorv_epi32(self.0, _mm512_set1_epi32(bits as i32)) })
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_ternarylogic_epi32::<{ ternary::XOR3 }>(a.0, b.0, c.0) })
    }
    #[inline(always)]
    fn choose(e: Self, f: Self, g: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_ternarylogic_epi32::<{ ternary::CHOOSE }>(e.0, f.0, g.0) })
    }
    #[inline(always)]
    fn majority(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { _mm512_ternarylogic_epi32::<{ ternary::MAJORITY }>(a.0, b.0, c.0) })
    }
    #[inline(always)]
    fn barrier(self) -> Self {
        // SAFETY: AVX-512F as above.
        Zmm(unsafe { opaque_zmm(self.0) })
    }
}

/// Returns `x`, hidden from the optimiser behind an empty `asm!` block.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn opaque_zmm(mut x: __m512i) -> __m512i {
    // SAFETY: the block is empty; it only pins `x` in a register.
    unsafe { asm!("/* {0} */", inout(zmm_reg) x, options(pure, nomem, nostack, preserves_flags)) };
    x
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_compress(
    entry: Entry<'_, [u32; 16]>,
    block: &Block<[u32; 16]>,
) -> State<[u32; 16]> {
    lanes::compress::<Zmm>(entry, block)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_finish(
    entry: Entry<'_, [u32; 16]>,
    block: &Block<[u32; 16]>,
    threshold: u32,
    out: &mut [[u32; 16]; 2],
) -> u32 {
    lanes::finish::<Zmm>(entry, block, threshold, out)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_finish_fixed(
    entry: Entry<'_, [u32; 16]>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [[u32; 16]; 2],
) -> u32 {
    lanes::finish_fixed::<Zmm>(entry, kw, threshold, out)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_rehash(
    digest: &State<[u32; 16]>,
    threshold: u32,
    out: &mut [[u32; 16]; 2],
) -> u32 {
    lanes::rehash::<Zmm>(digest, threshold, out)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_finish_double(
    entry: Entry<'_, [u32; 16]>,
    block: &Block<[u32; 16]>,
    threshold: u32,
    out: &mut [[u32; 16]; 2],
) -> u32 {
    lanes::finish_double::<Zmm>(entry, block, threshold, out)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_finish_double_fixed(
    entry: Entry<'_, [u32; 16]>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [[u32; 16]; 2],
) -> u32 {
    lanes::finish_double_fixed::<Zmm>(entry, kw, threshold, out)
}

impl Engine for Avx512 {
    type Lanes = [u32; 16];
    const LANES: usize = 16;
    const SKIP_STEP: usize = 1;
    fn compress(&self, entry: Entry<'_, [u32; 16]>, block: &Block<[u32; 16]>) -> State<[u32; 16]> {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_compress(entry, block) }
    }
    fn finish(
        &self,
        entry: Entry<'_, [u32; 16]>,
        block: &Block<[u32; 16]>,
        threshold: u32,
        out: &mut [[u32; 16]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_finish(entry, block, threshold, out) }
    }
    fn finish_fixed(
        &self,
        entry: Entry<'_, [u32; 16]>,
        _block: &Block<[u32; 16]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; 16]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_finish_fixed(entry, kw, threshold, out) }
    }
    fn rehash(&self, digest: &State<[u32; 16]>, threshold: u32, out: &mut [[u32; 16]; 2]) -> u32 {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_rehash(digest, threshold, out) }
    }
    fn finish_double(
        &self,
        entry: Entry<'_, [u32; 16]>,
        block: &Block<[u32; 16]>,
        threshold: u32,
        out: &mut [[u32; 16]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_finish_double(entry, block, threshold, out) }
    }
    fn finish_double_fixed(
        &self,
        entry: Entry<'_, [u32; 16]>,
        _block: &Block<[u32; 16]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; 16]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_finish_double_fixed(entry, kw, threshold, out) }
    }
}

/// The AVX2 engine: 8 lanes in `ymm` registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2 {
    _detected: (),
}

impl Avx2 {
    /// The engine, if this CPU has AVX2.
    pub(crate) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx2").then_some(Avx2 { _detected: () })
    }
}

/// 8 lanes of `u32` (AVX2).
#[derive(Clone, Copy)]
struct Ymm(__m256i);

impl Vector for Ymm {
    type Array = [u32; 8];
    #[inline(always)]
    fn splat(value: u32) -> Self {
        // SAFETY: see the module's safety argument (a `Ymm` implies AVX2).
        Ymm(unsafe { _mm256_set1_epi32(value as i32) })
    }
    #[inline(always)]
    fn load(array: &[u32; 8]) -> Self {
        // SAFETY: AVX2 as above; `array` is 32 readable bytes.
        Ymm(unsafe { _mm256_loadu_si256(array.as_ptr().cast()) })
    }
    #[inline(always)]
    fn store(self, array: &mut [u32; 8]) {
        // SAFETY: AVX2 as above; `array` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(array.as_mut_ptr().cast(), self.0) }
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        // SAFETY: AVX2 as above.
        Ymm(unsafe { _mm256_add_epi32(self.0, other.0) })
    }
    #[inline(always)]
    fn and(self, other: Self) -> Self {
        // SAFETY: AVX2 as above.
        Ymm(unsafe { _mm256_and_si256(self.0, other.0) })
    }
    #[inline(always)]
    fn or(self, other: Self) -> Self {
        // SAFETY: AVX2 as above.
        Ymm(unsafe { _mm256_or_si256(self.0, other.0) })
    }
    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        // SAFETY: AVX2 as above.
        Ymm(unsafe { _mm256_xor_si256(self.0, other.0) })
    }
    #[inline(always)]
    fn shr(self, bits: u32) -> Self {
        // SAFETY: AVX2 as above.
        Ymm(unsafe { _mm256_srl_epi32(self.0, _mm_cvtsi32_si128(bits as i32)) })
    }
    #[inline(always)]
    fn shl(self, bits: u32) -> Self {
        // SAFETY: AVX2 as above.
        Ymm(unsafe { _mm256_sll_epi32(self.0, _mm_cvtsi32_si128(bits as i32)) })
    }
    #[inline(always)]
    fn at_most(self, bound: Self) -> u32 {
        // SAFETY: AVX2 as above. `min(x, bound) == x` exactly when `x <= bound`.
        unsafe {
            let le = _mm256_cmpeq_epi32(_mm256_min_epu32(self.0, bound.0), self.0);
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_compress(entry: Entry<'_, [u32; 8]>, block: &Block<[u32; 8]>) -> State<[u32; 8]> {
    lanes::compress::<Ymm>(entry, block)
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_finish(
    entry: Entry<'_, [u32; 8]>,
    block: &Block<[u32; 8]>,
    threshold: u32,
    out: &mut [[u32; 8]; 2],
) -> u32 {
    lanes::finish::<Ymm>(entry, block, threshold, out)
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_finish_fixed(
    entry: Entry<'_, [u32; 8]>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [[u32; 8]; 2],
) -> u32 {
    lanes::finish_fixed::<Ymm>(entry, kw, threshold, out)
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_rehash(digest: &State<[u32; 8]>, threshold: u32, out: &mut [[u32; 8]; 2]) -> u32 {
    lanes::rehash::<Ymm>(digest, threshold, out)
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_finish_double(
    entry: Entry<'_, [u32; 8]>,
    block: &Block<[u32; 8]>,
    threshold: u32,
    out: &mut [[u32; 8]; 2],
) -> u32 {
    lanes::finish_double::<Ymm>(entry, block, threshold, out)
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_finish_double_fixed(
    entry: Entry<'_, [u32; 8]>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [[u32; 8]; 2],
) -> u32 {
    lanes::finish_double_fixed::<Ymm>(entry, kw, threshold, out)
}

impl Engine for Avx2 {
    type Lanes = [u32; 8];
    const LANES: usize = 8;
    const SKIP_STEP: usize = 1;
    fn compress(&self, entry: Entry<'_, [u32; 8]>, block: &Block<[u32; 8]>) -> State<[u32; 8]> {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_compress(entry, block) }
    }
    fn finish(
        &self,
        entry: Entry<'_, [u32; 8]>,
        block: &Block<[u32; 8]>,
        threshold: u32,
        out: &mut [[u32; 8]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_finish(entry, block, threshold, out) }
    }
    fn finish_fixed(
        &self,
        entry: Entry<'_, [u32; 8]>,
        _block: &Block<[u32; 8]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; 8]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_finish_fixed(entry, kw, threshold, out) }
    }
    fn rehash(&self, digest: &State<[u32; 8]>, threshold: u32, out: &mut [[u32; 8]; 2]) -> u32 {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_rehash(digest, threshold, out) }
    }
    fn finish_double(
        &self,
        entry: Entry<'_, [u32; 8]>,
        block: &Block<[u32; 8]>,
        threshold: u32,
        out: &mut [[u32; 8]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_finish_double(entry, block, threshold, out) }
    }
    fn finish_double_fixed(
        &self,
        entry: Entry<'_, [u32; 8]>,
        _block: &Block<[u32; 8]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; 8]; 2],
    ) -> u32 {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_finish_double_fixed(entry, kw, threshold, out) }
    }
}

/// The SHA-NI engine: [`STREAMS`] independent messages interleaved instruction by instruction
/// (one stream is bound by `sha256rnds2`'s latency; several fill its throughput).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShaNi {
    _detected: (),
}

/// How many SHA-NI streams one call interleaves.
const STREAMS: usize = 4;

impl ShaNi {
    /// The engine, if this CPU has the SHA extensions (and SSE4.1, used to shuffle states).
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("sha") && is_x86_feature_detected!("sse4.1"))
            .then_some(ShaNi { _detected: () })
    }
}

/// The round constants in groups of four, as `sha256rnds2` consumes them.
static ROUND_CONSTANTS: [[u32; 4]; 16] = {
    let mut groups = [[0u32; 4]; 16];
    let mut i = 0;
    while i < 64 {
        groups[i / 4][i % 4] = super::engine::K[i];
        i += 1;
    }
    groups
};

/// Transposes four rows of four words: `out[j][i] = rows[i][j]`.
#[target_feature(enable = "sse2")]
#[inline]
fn transpose(rows: [__m128i; 4]) -> [__m128i; 4] {
    let t0 = _mm_unpacklo_epi32(rows[0], rows[1]); // r0[0] r1[0] r0[1] r1[1]
    let t1 = _mm_unpacklo_epi32(rows[2], rows[3]); // r2[0] r3[0] r2[1] r3[1]
    let t2 = _mm_unpackhi_epi32(rows[0], rows[1]); // r0[2] r1[2] r0[3] r1[3]
    let t3 = _mm_unpackhi_epi32(rows[2], rows[3]); // r2[2] r3[2] r2[3] r3[3]
    [
        _mm_unpacklo_epi64(t0, t1),
        _mm_unpackhi_epi64(t0, t1),
        _mm_unpacklo_epi64(t2, t3),
        _mm_unpackhi_epi64(t2, t3),
    ]
}

/// Loads four lanes of one row.
#[target_feature(enable = "sse2")]
#[inline]
fn load4(array: &[u32; 4]) -> __m128i {
    // SAFETY: `array` is 16 readable bytes.
    unsafe { _mm_loadu_si128(array.as_ptr().cast()) }
}

/// Runs the 64 rounds for every stream; returns each stream's new `(ABEF, CDGH)` registers.
/// `state` holds the chaining values as `_mm_set_epi32(a, b, e, f)` and `(c, d, g, h)`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[inline]
fn sha_rounds(
    init: &[[__m128i; 2]; STREAMS],
    start: &[[__m128i; 2]; STREAMS],
    skip: usize,
    mut msg: [[__m128i; 4]; STREAMS],
) -> [[__m128i; 2]; STREAMS] {
    let mut abef: [__m128i; STREAMS] = core::array::from_fn(|s| start[s][0]);
    let mut cdgh: [__m128i; STREAMS] = core::array::from_fn(|s| start[s][1]);
    // Four rounds of every stream per group, groups unrolled so every index is a constant.
    macro_rules! groups {
        ($($group:literal)*) => {$(
            let k = load4(&ROUND_CONSTANTS[$group]);
            for s in 0..STREAMS {
                let m = &mut msg[s];
                if $group >= 4 {
                    // W[t..t+4] from W[t-16..t]: msg1 adds σ0, alignr brings W[t-7..t-3],
                    // msg2 adds σ1.
                    let partial = _mm_add_epi32(
                        _mm_sha256msg1_epu32(m[0], m[1]),
                        _mm_alignr_epi8::<4>(m[3], m[2]),
                    );
                    let next = _mm_sha256msg2_epu32(partial, m[3]);
                    *m = [m[1], m[2], m[3], next];
                }
                if 4 * $group >= skip {
                    let kw = _mm_add_epi32(m[if $group >= 4 { 3 } else { $group }], k);
                    cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], kw);
                    abef[s] =
                        _mm_sha256rnds2_epu32(abef[s], cdgh[s], _mm_shuffle_epi32::<0x0e>(kw));
                }
            }
        )*};
    }
    groups!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    core::array::from_fn(|s| {
        [
            _mm_add_epi32(abef[s], init[s][0]),
            _mm_add_epi32(cdgh[s], init[s][1]),
        ]
    })
}

/// Each stream's message words from a block in struct-of-arrays layout: `msg[s][i]` holds
/// words `4i..4i + 4` of stream `s`.
#[target_feature(enable = "sse2")]
#[inline]
fn sha_load(block: &Block<[u32; 4]>) -> [[__m128i; 4]; STREAMS] {
    let mut msg = [[_mm_setzero_si128(); 4]; STREAMS];
    for (i, rows) in block.0.chunks_exact(4).enumerate() {
        let rows = core::array::from_fn(|j| load4(&rows[j]));
        for (stream, column) in transpose(rows).into_iter().enumerate() {
            msg[stream][i] = column;
        }
    }
    msg
}

/// Converts one stream's `(ABEF, CDGH)` registers to its words in order: `(abcd, efgh)`.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
#[inline]
fn sha_state_rows(state: [__m128i; 2]) -> [__m128i; 2] {
    let abef = _mm_shuffle_epi32::<0x1b>(state[0]); // lanes: a b e f
    let ghcd = _mm_shuffle_epi32::<0xb1>(state[1]); // lanes: g h c d
    [
        _mm_blend_epi16::<0xf0>(abef, ghcd), // lanes: a b c d
        _mm_alignr_epi8::<8>(ghcd, abef),    // lanes: e f g h
    ]
}

/// SHA-256 of each stream's 32-byte digest (its chaining value as `(ABEF, CDGH)`): the second
/// half of `sha256d`. The block is the digest's eight words then the constant padding.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[inline]
fn sha_rehash(digests: &[[__m128i; 2]; STREAMS]) -> [[__m128i; 2]; STREAMS] {
    let pad = |i: usize| DIGEST_PAD[i] as i32;
    let pad_low = _mm_set_epi32(pad(3), pad(2), pad(1), pad(0));
    let pad_high = _mm_set_epi32(pad(7), pad(6), pad(5), pad(4));
    let msg = core::array::from_fn(|s| {
        let [abcd, efgh] = sha_state_rows(digests[s]);
        [abcd, efgh, pad_low, pad_high]
    });
    let iv = sha_state_splat(&State::splat(&IV));
    sha_rounds(&iv, &iv, 0, msg)
}

/// Writes the hash words `a`, `b` of each stream's `(ABEF, CDGH)` and returns the mask of the
/// streams whose `a` is at most `threshold`.
#[target_feature(enable = "sse4.1")]
#[inline]
fn sha_keep(next: &[[__m128i; 2]; STREAMS], threshold: u32, out: &mut [[u32; 4]; 2]) -> u32 {
    let mut mask = 0;
    for (s, [abef, _]) in next.iter().enumerate() {
        // ABEF holds a in lane 3 and b in lane 2.
        let a = _mm_extract_epi32::<3>(*abef) as u32;
        let b = _mm_extract_epi32::<2>(*abef) as u32;
        out[0][s] = a;
        out[1][s] = b;
        mask |= u32::from(a <= threshold) << s;
    }
    mask
}

/// Converts chaining values from struct-of-arrays to each stream's `(ABEF, CDGH)` pair.
#[target_feature(enable = "sse2,ssse3,sse4.1")]
#[inline]
fn sha_state_in(state: &State<[u32; 4]>) -> [[__m128i; 2]; STREAMS] {
    let abcd = transpose(core::array::from_fn(|i| load4(&state.0[i])));
    let efgh = transpose(core::array::from_fn(|i| load4(&state.0[4 + i])));
    core::array::from_fn(|s| {
        let badc = _mm_shuffle_epi32::<0xb1>(abcd[s]); // lanes: b a d c
        let hgfe = _mm_shuffle_epi32::<0x1b>(efgh[s]); // lanes: h g f e
        [
            _mm_alignr_epi8::<8>(badc, hgfe),    // lanes: f e b a (ABEF)
            _mm_blend_epi16::<0xf0>(hgfe, badc), // lanes: h g d c (CDGH)
        ]
    })
}

/// Runs one compression per stream from `entry` (`skip` a multiple of 4).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[inline]
fn sha_run(entry: Entry<'_, [u32; 4]>, block: &Block<[u32; 4]>) -> [[__m128i; 2]; STREAMS] {
    let convert = if entry.uniform {
        sha_state_splat
    } else {
        sha_state_in
    };
    let init = convert(entry.init);
    let start = if entry.skip == 0 {
        init
    } else {
        convert(entry.start)
    };
    sha_rounds(&init, &start, entry.skip, sha_load(block))
}

/// [`sha_state_in`] for a state whose lanes are all equal: reads lane 0 only.
#[target_feature(enable = "sse2")]
#[inline]
fn sha_state_splat(state: &State<[u32; 4]>) -> [[__m128i; 2]; STREAMS] {
    let word = |i: usize| state.0[i][0] as i32;
    let abef = _mm_set_epi32(word(0), word(1), word(4), word(5));
    let cdgh = _mm_set_epi32(word(2), word(3), word(6), word(7));
    [[abef, cdgh]; STREAMS]
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_compress(entry: Entry<'_, [u32; 4]>, block: &Block<[u32; 4]>) -> State<[u32; 4]> {
    let next = sha_run(entry, block);
    let mut abcd = [_mm_setzero_si128(); STREAMS];
    let mut efgh = [_mm_setzero_si128(); STREAMS];
    for s in 0..STREAMS {
        [abcd[s], efgh[s]] = sha_state_rows(next[s]);
    }
    let mut out = State([[0u32; 4]; 8]);
    for (i, row) in transpose(abcd)
        .into_iter()
        .chain(transpose(efgh))
        .enumerate()
    {
        // SAFETY: `out.0[i]` is 16 writable bytes.
        unsafe { _mm_storeu_si128(out.0[i].as_mut_ptr().cast(), row) };
    }
    out
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_finish(
    entry: Entry<'_, [u32; 4]>,
    block: &Block<[u32; 4]>,
    threshold: u32,
    out: &mut [[u32; 4]; 2],
) -> u32 {
    sha_keep(&sha_run(entry, block), threshold, out)
}

/// [`sha_finish`] for `sha256d`: the first digest stays in registers for [`sha_rehash`].
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_finish_double(
    entry: Entry<'_, [u32; 4]>,
    block: &Block<[u32; 4]>,
    threshold: u32,
    out: &mut [[u32; 4]; 2],
) -> u32 {
    sha_keep(&sha_rehash(&sha_run(entry, block)), threshold, out)
}

/// The second half of `sha256d` for digests in struct-of-arrays layout.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_rehash_state(digest: &State<[u32; 4]>, threshold: u32, out: &mut [[u32; 4]; 2]) -> u32 {
    sha_keep(&sha_rehash(&sha_state_in(digest)), threshold, out)
}

/// [`sha_finish`] for a block whose schedule `kw` is known: the rounds only, from round 0.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_finish_fixed(
    entry: Entry<'_, [u32; 4]>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [[u32; 4]; 2],
) -> u32 {
    sha_keep(&sha_rounds_fixed(entry, kw), threshold, out)
}

/// [`sha_finish_fixed`] for `sha256d`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_finish_double_fixed(
    entry: Entry<'_, [u32; 4]>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [[u32; 4]; 2],
) -> u32 {
    sha_keep(&sha_rehash(&sha_rounds_fixed(entry, kw)), threshold, out)
}

/// The 64 rounds from `entry.init` for a block whose schedule `kw` is known; returns each
/// stream's new chaining value as `(ABEF, CDGH)`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[inline]
fn sha_rounds_fixed(entry: Entry<'_, [u32; 4]>, kw: &Schedule) -> [[__m128i; 2]; STREAMS] {
    let init = if entry.uniform {
        sha_state_splat(entry.init)
    } else {
        sha_state_in(entry.init)
    };
    let mut abef: [__m128i; STREAMS] = core::array::from_fn(|s| init[s][0]);
    let mut cdgh: [__m128i; STREAMS] = core::array::from_fn(|s| init[s][1]);
    for sixteen in kw {
        for four in sixteen.chunks_exact(4) {
            // SAFETY: `four` is 16 readable bytes.
            let kw = unsafe { _mm_loadu_si128(four.as_ptr().cast()) };
            for s in 0..STREAMS {
                cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], kw);
                abef[s] = _mm_sha256rnds2_epu32(abef[s], cdgh[s], _mm_shuffle_epi32::<0x0e>(kw));
            }
        }
    }
    core::array::from_fn(|s| {
        [
            _mm_add_epi32(abef[s], init[s][0]),
            _mm_add_epi32(cdgh[s], init[s][1]),
        ]
    })
}

impl Engine for ShaNi {
    type Lanes = [u32; 4];
    const LANES: usize = STREAMS;
    const SKIP_STEP: usize = 4;
    fn compress(&self, entry: Entry<'_, [u32; 4]>, block: &Block<[u32; 4]>) -> State<[u32; 4]> {
        // SAFETY: the token proves SHA and SSE4.1 (SSE2 and SSSE3 are implied by SSE4.1).
        unsafe { sha_compress(entry, block) }
    }
    fn finish(
        &self,
        entry: Entry<'_, [u32; 4]>,
        block: &Block<[u32; 4]>,
        threshold: u32,
        out: &mut [[u32; 4]; 2],
    ) -> u32 {
        // SAFETY: as for `compress`.
        unsafe { sha_finish(entry, block, threshold, out) }
    }
    fn finish_fixed(
        &self,
        entry: Entry<'_, [u32; 4]>,
        _block: &Block<[u32; 4]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; 4]; 2],
    ) -> u32 {
        // SAFETY: as for `compress`.
        unsafe { sha_finish_fixed(entry, kw, threshold, out) }
    }
    fn rehash(&self, digest: &State<[u32; 4]>, threshold: u32, out: &mut [[u32; 4]; 2]) -> u32 {
        // SAFETY: as for `compress`.
        unsafe { sha_rehash_state(digest, threshold, out) }
    }
    fn finish_double(
        &self,
        entry: Entry<'_, [u32; 4]>,
        block: &Block<[u32; 4]>,
        threshold: u32,
        out: &mut [[u32; 4]; 2],
    ) -> u32 {
        // SAFETY: as for `compress`.
        unsafe { sha_finish_double(entry, block, threshold, out) }
    }
    fn finish_double_fixed(
        &self,
        entry: Entry<'_, [u32; 4]>,
        _block: &Block<[u32; 4]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; 4]; 2],
    ) -> u32 {
        // SAFETY: as for `compress`.
        unsafe { sha_finish_double_fixed(entry, kw, threshold, out) }
    }
}
