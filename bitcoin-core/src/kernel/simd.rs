//! The SIMD engines — the crate's only `unsafe` code: AVX-512 (16 lanes), AVX2 (8 lanes) and
//! interleaved SHA-NI (4 streams, in the child module `sha_ni`), each behind a token type that
//! exists only once the CPU has been seen to support it.
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

mod sha_ni;

pub(crate) use sha_ni::ShaNi;

use super::engine::{Block, Engine, Entry, Schedule, State};
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
unsafe fn avx512_compress_fixed(entry: Entry<'_, [u32; 16]>, kw: &Schedule) -> State<[u32; 16]> {
    lanes::compress_fixed::<Zmm>(entry, kw)
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_rehash(
    digest: &State<[u32; 16]>,
    threshold: u32,
    out: &mut [[u32; 16]; 2],
) -> u32 {
    lanes::rehash::<Zmm>(digest, threshold, out)
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
    fn compress_fixed(
        &self,
        entry: Entry<'_, [u32; 16]>,
        _block: &Block<[u32; 16]>,
        kw: &Schedule,
    ) -> State<[u32; 16]> {
        // SAFETY: the token proves AVX-512F.
        unsafe { avx512_compress_fixed(entry, kw) }
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
unsafe fn avx2_compress_fixed(entry: Entry<'_, [u32; 8]>, kw: &Schedule) -> State<[u32; 8]> {
    lanes::compress_fixed::<Ymm>(entry, kw)
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_rehash(digest: &State<[u32; 8]>, threshold: u32, out: &mut [[u32; 8]; 2]) -> u32 {
    lanes::rehash::<Ymm>(digest, threshold, out)
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
    fn compress_fixed(
        &self,
        entry: Entry<'_, [u32; 8]>,
        _block: &Block<[u32; 8]>,
        kw: &Schedule,
    ) -> State<[u32; 8]> {
        // SAFETY: the token proves AVX2.
        unsafe { avx2_compress_fixed(entry, kw) }
    }
}
