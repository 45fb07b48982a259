//! The SHA-NI engine, part of the `simd` module and under its safety argument: the token
//! [`ShaNi`] is built only by `detect`, after the CPU was seen to have every feature its
//! `#[target_feature]` functions enable.

use super::super::engine::{Block, Engine, Entry, Schedule, State, DIGEST_PAD, IV};
use core::arch::x86_64::*;

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
        groups[i / 4][i % 4] = super::super::engine::K[i];
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
