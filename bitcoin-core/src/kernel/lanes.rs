//! SHA-256 compression over many lanes at once, written once for any [`Vector`] of `u32`
//! lanes: the AVX2 and AVX-512 engines in `simd` instantiate it with their registers, the
//! tests with [`Portable`] arrays (so the 16-lane logic is checked on every machine).
//!
//! The round is written for the dependency chain, not the operation count: AVX-512's integer
//! operations have 2-cycle latency on Zen 5, so the order of the additions decides the speed.
//! `new_e = ((d + h + K + W) + Ch) + Σ1` and `new_a = (T1 + Maj) + Σ0`, with
//! [`Vector::barrier`] stopping LLVM from re-associating the sums (it would otherwise add the
//! constant last and lengthen the chain).

use super::engine::{Block, Entry, Schedule, State, DIGEST_PAD, IV, K, REHASH};

/// `vpternlogd` truth tables (bit `4a + 2b + c` of the immediate is `f(a, b, c)`), shared by
/// the AVX-512 engine and the tests that check them.
pub(crate) mod ternary {
    /// `a ^ b ^ c`.
    pub(crate) const XOR3: i32 = 0x96;
    /// `if a { b } else { c }` (SHA-256's Ch).
    pub(crate) const CHOOSE: i32 = 0xca;
    /// The majority of `a, b, c` (SHA-256's Maj).
    pub(crate) const MAJORITY: i32 = 0xe8;
}

/// A register of `u32` lanes. Every operation is lane-wise and wrapping.
pub(crate) trait Vector: Copy {
    /// The lanes in memory: `[u32; LANES]`.
    type Array;
    /// `value` in every lane.
    fn splat(value: u32) -> Self;
    /// Reads the lanes.
    fn load(array: &Self::Array) -> Self;
    /// Writes the lanes.
    fn store(self, array: &mut Self::Array);
    /// Wrapping addition.
    fn add(self, other: Self) -> Self;
    /// Bitwise and.
    fn and(self, other: Self) -> Self;
    /// Bitwise or.
    fn or(self, other: Self) -> Self;
    /// Bitwise exclusive or.
    fn xor(self, other: Self) -> Self;
    /// Logical right shift by `bits` (`< 32`).
    fn shr(self, bits: u32) -> Self;
    /// Left shift by `bits` (`< 32`).
    fn shl(self, bits: u32) -> Self;
    /// Bit mask of the lanes whose value is at most `bound`'s (unsigned).
    fn at_most(self, bound: Self) -> u32;

    /// Right rotation by `bits` (`1..32`).
    #[inline(always)]
    fn rotr(self, bits: u32) -> Self {
        self.shr(bits).or(self.shl(32 - bits))
    }
    /// `a ^ b ^ c`.
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        a.xor(b).xor(c)
    }
    /// SHA-256's `Ch(e, f, g) = (e & f) ^ (!e & g)`.
    #[inline(always)]
    fn choose(e: Self, f: Self, g: Self) -> Self {
        f.xor(g).and(e).xor(g)
    }
    /// SHA-256's `Maj(a, b, c)`.
    #[inline(always)]
    fn majority(a: Self, b: Self, c: Self) -> Self {
        a.and(b).or(c.and(a.or(b)))
    }
    /// Returns `self` unchanged, but opaque to the optimiser: sums on either side of it are not
    /// re-associated.
    #[inline(always)]
    fn barrier(self) -> Self {
        self
    }
}

#[inline(always)]
fn big_sigma0<V: Vector>(x: V) -> V {
    V::xor3(x.rotr(2), x.rotr(13), x.rotr(22))
}

#[inline(always)]
fn big_sigma1<V: Vector>(x: V) -> V {
    V::xor3(x.rotr(6), x.rotr(11), x.rotr(25))
}

#[inline(always)]
fn small_sigma0<V: Vector>(x: V) -> V {
    V::xor3(x.rotr(7), x.rotr(18), x.shr(3))
}

#[inline(always)]
fn small_sigma1<V: Vector>(x: V) -> V {
    V::xor3(x.rotr(17), x.rotr(19), x.shr(10))
}

/// One round: updates `d` (to the new `e`) and `h` (to the new `a`); the caller rotates the
/// names of the eight variables.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn round<V: Vector>(a: V, b: V, c: V, d: &mut V, e: V, f: V, g: V, h: &mut V, kw: V) {
    // The sums of values known early are sealed, so that LLVM cannot fold Ch into them (it
    // would then add K and the rest after Ch, on the critical path).
    let hkw = h.add(kw).barrier();
    let dhkw = d.add(hkw).barrier();
    let ch = V::choose(e, f, g);
    let s1 = big_sigma1(e);
    let t1 = hkw.add(ch).barrier().add(s1);
    *d = dhkw.add(ch).barrier().add(s1);
    *h = t1.add(V::majority(a, b, c)).barrier().add(big_sigma0(a));
}

/// Sixteen rounds over the variables `[a b c d e f g h]`, their names rotating by one each
/// round, from round `first` of the sixteen on. Round `j` adds `kw`, an expression of `j`.
macro_rules! sixteen_rounds {
    ([$a:ident $b:ident $c:ident $d:ident $e:ident $f:ident $g:ident $h:ident],
     $j:ident => $kw:expr, $first:expr) => {
        sixteen_rounds!(@each $j => $kw, $first;
            0 $a $b $c $d $e $f $g $h; 1 $h $a $b $c $d $e $f $g; 2 $g $h $a $b $c $d $e $f;
            3 $f $g $h $a $b $c $d $e; 4 $e $f $g $h $a $b $c $d; 5 $d $e $f $g $h $a $b $c;
            6 $c $d $e $f $g $h $a $b; 7 $b $c $d $e $f $g $h $a; 8 $a $b $c $d $e $f $g $h;
            9 $h $a $b $c $d $e $f $g; 10 $g $h $a $b $c $d $e $f; 11 $f $g $h $a $b $c $d $e;
            12 $e $f $g $h $a $b $c $d; 13 $d $e $f $g $h $a $b $c; 14 $c $d $e $f $g $h $a $b;
            15 $b $c $d $e $f $g $h $a;
        )
    };
    (@each $j:ident => $kw:expr, $first:expr;
     $($t:literal $a:ident $b:ident $c:ident $d:ident $e:ident $f:ident $g:ident $h:ident;)*) => {$(
        if $t >= $first {
            let $j: usize = $t;
            round($a, $b, $c, &mut $d, $e, $f, $g, &mut $h, $kw);
        }
    )*};
}

/// Runs rounds `entry.skip..64` over `block`; returns the new chaining value.
///
/// The rounds run as a loop of four groups of sixteen: sixteen is a multiple of the eight-round
/// name rotation and of the sixteen-word schedule window, so every index in the loop body is a
/// constant and everything stays in registers — and the body is small enough for LLVM to
/// compile quickly (fully unrolled, its scalar-replacement pass takes minutes).
#[inline(always)]
fn rounds<V: Vector>(entry: Entry<'_, V::Array>, block: &Block<V::Array>) -> [V; 8] {
    let mut w: [V; 16] = core::array::from_fn(|i| V::load(&block.0[i]));
    // Round t names the state (a, b, ...) by the variables rotated right by t % 8: start the
    // variables so that round `skip` finds its roles.
    let start: [V; 8] = core::array::from_fn(|i| V::load(&entry.start.0[i]));
    let rotation = entry.skip % 8;
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h]: [V; 8] =
        core::array::from_fn(|i| start[(i + rotation) % 8]);
    // The first group, which may start late, apart from the other three: their rounds then
    // run unconditionally.
    sixteen_rounds!([a b c d e f g h], j => w[j].add(V::splat(K_GROUPS[0][j])), entry.skip);
    for k in &K_GROUPS[1..] {
        expand(&mut w);
        sixteen_rounds!([a b c d e f g h], j => w[j].add(V::splat(k[j])), 0);
    }
    let init: [V; 8] = core::array::from_fn(|i| V::load(&entry.init.0[i]));
    [
        a.add(init[0]),
        b.add(init[1]),
        c.add(init[2]),
        d.add(init[3]),
        e.add(init[4]),
        f.add(init[5]),
        g.add(init[6]),
        h.add(init[7]),
    ]
}

/// The next sixteen words of the message schedule, in place: `W[t - 16]` sits where `W[t]`
/// goes.
#[inline(always)]
fn expand<V: Vector>(w: &mut [V; 16]) {
    macro_rules! schedule {
        ($($j:literal)*) => {$(
            w[$j] = small_sigma1(w[($j + 14) % 16])
                .add(w[($j + 9) % 16])
                .add(small_sigma0(w[($j + 1) % 16]))
                .add(w[$j]);
        )*};
    }
    schedule!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
}

/// The second compression of `sha256d`: SHA-256 of each lane's 32-byte `digest` (its eight
/// words), from [`IV`]. Returns the first two words of the result.
///
/// Words 8..16 of the block are the constant [`DIGEST_PAD`], so most of the work that depends
/// on them alone is done at compile time ([`REHASH`]): round 0 (from the constant `IV`, it only
/// adds `W[0]`), `K + W` of rounds 8..16, and the constant terms of `W[16..32]`, where the
/// zero words drop out. Only `a` and `b` are kept: the optimiser drops the rest of the last
/// rounds.
#[inline(always)]
fn rehash_rounds<V: Vector>(digest: [V; 8]) -> [V; 2] {
    let splat = V::splat;
    let mut w: [V; 16] = core::array::from_fn(|i| {
        if i < 8 {
            digest[i]
        } else {
            splat(DIGEST_PAD[i - 8])
        }
    });
    // The state after round 0, by role a..h; round 1 finds role a in variable h (as in
    // `rounds` with `skip` 1).
    let after0 = [
        w[0].add(splat(REHASH.round0_a)),
        splat(IV[0]),
        splat(IV[1]),
        splat(IV[2]),
        w[0].add(splat(REHASH.round0_e)),
        splat(IV[4]),
        splat(IV[5]),
        splat(IV[6]),
    ];
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h]: [V; 8] =
        core::array::from_fn(|i| after0[(i + 1) % 8]);
    sixteen_rounds!([a b c d e f g h], j => if j < 8 {
        w[j].add(splat(K[j]))
    } else {
        splat(REHASH.pad_kw[j % 8])
    }, 1);
    // W[16..32] with the padding's known words folded in (W[9..15] are zero, W[8] and W[15]
    // constants). Each W[t] replaces W[t - 16], read last by it.
    let (s0, s1) = (small_sigma0::<V>, small_sigma1::<V>);
    w[0] = s0(w[1]).add(w[0]);
    w[1] = s0(w[2]).add(w[1]).add(splat(REHASH.w17));
    w[2] = s1(w[0]).add(s0(w[3])).add(w[2]);
    w[3] = s1(w[1]).add(s0(w[4])).add(w[3]);
    w[4] = s1(w[2]).add(s0(w[5])).add(w[4]);
    w[5] = s1(w[3]).add(s0(w[6])).add(w[5]);
    w[6] = s1(w[4]).add(s0(w[7])).add(w[6]).add(splat(DIGEST_PAD[7]));
    w[7] = s1(w[5]).add(w[0]).add(w[7]).add(splat(REHASH.w23));
    w[8] = s1(w[6]).add(w[1]).add(splat(DIGEST_PAD[0]));
    w[9] = s1(w[7]).add(w[2]);
    w[10] = s1(w[8]).add(w[3]);
    w[11] = s1(w[9]).add(w[4]);
    w[12] = s1(w[10]).add(w[5]);
    w[13] = s1(w[11]).add(w[6]);
    w[14] = s1(w[12]).add(w[7]).add(splat(REHASH.w30));
    w[15] = s1(w[13]).add(w[8]).add(s0(w[0])).add(splat(DIGEST_PAD[7]));
    sixteen_rounds!([a b c d e f g h], j => w[j].add(splat(K_GROUPS[1][j])), 0);
    for k in &K_GROUPS[2..] {
        expand(&mut w);
        sixteen_rounds!([a b c d e f g h], j => w[j].add(splat(k[j])), 0);
    }
    [a.add(splat(IV[0])), b.add(splat(IV[1]))]
}

/// Writes a hash's two words and returns the lanes whose high word is at most `threshold`.
#[inline(always)]
fn keep<V: Vector>(hash: [V; 2], threshold: u32, out: &mut [V::Array; 2]) -> u32 {
    hash[0].store(&mut out[0]);
    hash[1].store(&mut out[1]);
    hash[0].at_most(V::splat(threshold))
}

/// Hashes each lane's digest once more (see [`super::engine::Engine::rehash`]).
#[inline(always)]
pub(crate) fn rehash<V: Vector>(
    digest: &State<V::Array>,
    threshold: u32,
    out: &mut [V::Array; 2],
) -> u32 {
    let words = core::array::from_fn(|i| V::load(&digest.0[i]));
    keep::<V>(rehash_rounds(words), threshold, out)
}

/// [`compress`] for a block whose `K + W` is known for all 64 rounds (see
/// [`super::engine::Engine::compress_fixed`]).
#[inline(always)]
pub(crate) fn compress_fixed<V: Vector>(
    entry: Entry<'_, V::Array>,
    kw: &Schedule,
) -> State<V::Array>
where
    V::Array: Copy,
{
    let next = rounds_fixed::<V>(entry, kw);
    let mut out = *entry.init;
    for (word, value) in out.0.iter_mut().zip(next) {
        value.store(word);
    }
    out
}

/// [`K`] in groups of sixteen, one per iteration of the round loop.
static K_GROUPS: [[u32; 16]; 4] = {
    let mut groups = [[0u32; 16]; 4];
    let mut i = 0;
    while i < 64 {
        groups[i / 16][i % 16] = K[i];
        i += 1;
    }
    groups
};

/// Compresses `block` into `state` in every lane (see [`super::engine::Engine::compress`]).
#[inline(always)]
pub(crate) fn compress<V: Vector>(
    entry: Entry<'_, V::Array>,
    block: &Block<V::Array>,
) -> State<V::Array>
where
    V::Array: Copy,
{
    let next = rounds::<V>(entry, block);
    let mut out = *entry.init;
    for (word, value) in out.0.iter_mut().zip(next) {
        value.store(word);
    }
    out
}

/// Compresses the last block in every lane and keeps the hash's two words (see
/// [`super::engine::Engine::finish`]).
#[inline(always)]
pub(crate) fn finish<V: Vector>(
    entry: Entry<'_, V::Array>,
    block: &Block<V::Array>,
    threshold: u32,
    out: &mut [V::Array; 2],
) -> u32 {
    let next = rounds::<V>(entry, block);
    next[0].store(&mut out[0]);
    next[1].store(&mut out[1]);
    next[0].at_most(V::splat(threshold))
}

/// Runs the 64 rounds from `entry.init` for a block whose message schedule is known: `kw[t]`
/// is `K[t] + W[t]`, the same in every lane. Returns the new chaining value.
#[inline(always)]
fn rounds_fixed<V: Vector>(entry: Entry<'_, V::Array>, kw: &Schedule) -> [V; 8] {
    let init: [V; 8] = core::array::from_fn(|i| V::load(&entry.init.0[i]));
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = init;
    for group in kw {
        sixteen_rounds!([a b c d e f g h], j => V::splat(group[j]), 0);
    }
    [
        a.add(init[0]),
        b.add(init[1]),
        c.add(init[2]),
        d.add(init[3]),
        e.add(init[4]),
        f.add(init[5]),
        g.add(init[6]),
        h.add(init[7]),
    ]
}

/// [`finish`] for a last block whose `K + W` is known for all 64 rounds (see
/// [`super::engine::Engine::finish_fixed`]).
#[inline(always)]
pub(crate) fn finish_fixed<V: Vector>(
    entry: Entry<'_, V::Array>,
    kw: &Schedule,
    threshold: u32,
    out: &mut [V::Array; 2],
) -> u32 {
    let next = rounds_fixed::<V>(entry, kw);
    next[0].store(&mut out[0]);
    next[1].store(&mut out[1]);
    next[0].at_most(V::splat(threshold))
}

/// Plain arrays as a [`Vector`]: the reference the SIMD registers are checked against.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Portable<const N: usize>(pub(crate) [u32; N]);

#[cfg(test)]
impl<const N: usize> Portable<N> {
    fn zip(self, other: Self, op: impl Fn(u32, u32) -> u32) -> Self {
        Portable(core::array::from_fn(|i| op(self.0[i], other.0[i])))
    }
}

// In unoptimised test builds every operation stays a call: inlined, the 16-lane rounds take
// LLVM minutes to compile at opt-level 1.
#[cfg(test)]
impl<const N: usize> Vector for Portable<N> {
    type Array = [u32; N];
    #[cfg_attr(debug_assertions, inline(never))]
    fn splat(value: u32) -> Self {
        Portable([value; N])
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn load(array: &[u32; N]) -> Self {
        Portable(*array)
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn store(self, array: &mut [u32; N]) {
        *array = self.0;
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn add(self, other: Self) -> Self {
        self.zip(other, u32::wrapping_add)
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn and(self, other: Self) -> Self {
        self.zip(other, |x, y| x & y)
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn or(self, other: Self) -> Self {
        self.zip(other, |x, y| x | y)
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn xor(self, other: Self) -> Self {
        self.zip(other, |x, y| x ^ y)
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn shr(self, bits: u32) -> Self {
        Portable(self.0.map(|x| x >> bits))
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn shl(self, bits: u32) -> Self {
        Portable(self.0.map(|x| x << bits))
    }
    #[cfg_attr(debug_assertions, inline(never))]
    fn at_most(self, bound: Self) -> u32 {
        (0..N).fold(0, |mask, i| {
            mask | (u32::from(self.0[i] <= bound.0[i]) << i)
        })
    }
}

/// The engine built from [`Portable`] lanes.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PortableEngine<const N: usize>;

#[cfg(test)]
impl<const N: usize> super::engine::Engine for PortableEngine<N> {
    type Lanes = [u32; N];
    const LANES: usize = N;
    const SKIP_STEP: usize = 1;
    fn compress(&self, entry: Entry<'_, [u32; N]>, block: &Block<[u32; N]>) -> State<[u32; N]> {
        compress::<Portable<N>>(entry, block)
    }
    fn finish(
        &self,
        entry: Entry<'_, [u32; N]>,
        block: &Block<[u32; N]>,
        threshold: u32,
        out: &mut [[u32; N]; 2],
    ) -> u32 {
        finish::<Portable<N>>(entry, block, threshold, out)
    }
    fn finish_fixed(
        &self,
        entry: Entry<'_, [u32; N]>,
        _block: &Block<[u32; N]>,
        kw: &Schedule,
        threshold: u32,
        out: &mut [[u32; N]; 2],
    ) -> u32 {
        finish_fixed::<Portable<N>>(entry, kw, threshold, out)
    }
    fn rehash(&self, digest: &State<[u32; N]>, threshold: u32, out: &mut [[u32; N]; 2]) -> u32 {
        rehash::<Portable<N>>(digest, threshold, out)
    }
    fn compress_fixed(
        &self,
        entry: Entry<'_, [u32; N]>,
        _block: &Block<[u32; N]>,
        kw: &Schedule,
    ) -> State<[u32; N]> {
        compress_fixed::<Portable<N>>(entry, kw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates a `vpternlogd` immediate the way the instruction defines it, bit by bit.
    fn ternary_logic(imm: i32, a: u32, b: u32, c: u32) -> u32 {
        (0..32).fold(0, |out, bit| {
            let index = ((a >> bit) & 1) << 2 | ((b >> bit) & 1) << 1 | ((c >> bit) & 1);
            out | ((imm as u32 >> index) & 1) << bit
        })
    }

    quickcheck::quickcheck! {
        fn ternary_tables_match_the_formulas(a: u32, b: u32, c: u32) -> bool {
            let (x, y, z) = (Portable([a]), Portable([b]), Portable([c]));
            ternary_logic(ternary::XOR3, a, b, c) == a ^ b ^ c
                && ternary_logic(ternary::CHOOSE, a, b, c) == (a & b) ^ (!a & c)
                && ternary_logic(ternary::MAJORITY, a, b, c) == (a & b) ^ (a & c) ^ (b & c)
                && Portable::choose(x, y, z).0[0] == (a & b) ^ (!a & c)
                && Portable::majority(x, y, z).0[0] == (a & b) ^ (a & c) ^ (b & c)
                && x.rotr(b % 31 + 1).0[0] == a.rotate_right(b % 31 + 1)
        }
    }
}
