//! The simulator's only source of randomness: a seeded xoshiro256** generator.
//!
//! One `u64` seed determines everything a simulation does. The generator is ours (no `rand`
//! dependency), so its output can never change under us with a crate upgrade, and a seed
//! printed today replays the same run tomorrow.

/// A xoshiro256** pseudo-random generator, seeded through SplitMix64 (the seeding its
/// authors recommend). Not cryptographic; fast, small and fully deterministic.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// One SplitMix64 step: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut state = seed;
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        Rng { s }
    }

    /// An independent generator derived from this one's next output (for a sub-system
    /// whose draws must not shift when another sub-system draws more or less).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform value in `0..n` (0 when `n == 0`), without modulo bias worth speaking of
    /// (Lemire's multiply-shift).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform value in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// An initial sequence number from the whole valid domain `0 ..= lsp_core::MAX_ISN`,
    /// edges weighted: 0 one time in eight, the reference tests' small values (1..=255) one
    /// in eight, the top edge (`MAX_ISN − 255 ..= MAX_ISN`) one in eight, `MAX_ISN` itself
    /// one in eight, otherwise uniform over the domain.
    pub fn isn(&mut self) -> i64 {
        use lsp_core::MAX_ISN;
        match self.below(8) {
            0 => 0,
            1 => self.range(1, 255) as i64,
            2 => MAX_ISN - self.below(256) as i64,
            3 => MAX_ISN,
            _ => self.below(MAX_ISN as u64 + 1) as i64,
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: Prob) -> bool {
        match p.0 {
            0 => false,
            Prob::ONE_MILLION.. => true,
            ppm => self.below(u64::from(Prob::ONE_MILLION)) < u64::from(ppm),
        }
    }

    /// A fault probability for swarm testing: never, half of the time; else uniform in
    /// (0, `max_percent`] %.
    pub fn maybe(&mut self, max_percent: u32) -> Prob {
        if self.chance(Prob::percent(50)) {
            Prob::NEVER
        } else {
            Prob(self.range(1, u64::from(max_percent) * 10_000) as u32)
        }
    }
}

/// A probability in parts per million: integer arithmetic only, so a run never depends on
/// floating-point rounding. `Prob::percent(20)` is 20 %.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prob(pub u32);

impl Prob {
    const ONE_MILLION: u32 = 1_000_000;
    /// Never.
    pub const NEVER: Prob = Prob(0);
    /// Always.
    pub const ALWAYS: Prob = Prob(Prob::ONE_MILLION);

    /// `p` percent (clamped to 100).
    pub const fn percent(p: u32) -> Prob {
        let p = if p > 100 { 100 } else { p };
        Prob(p * 10_000)
    }

    /// Whether this probability is zero.
    pub fn is_never(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for Prob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 10_000, (self.0 % 10_000) / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a: Vec<u64> = (0..8)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn isns_cover_the_domain_and_its_edges() {
        use lsp_core::{is_valid_isn, MAX_ISN};
        let mut r = Rng::new(3);
        let isns: Vec<i64> = (0..4000).map(|_| r.isn()).collect();
        assert!(isns.iter().all(|&i| is_valid_isn(i)));
        for edge in [0, MAX_ISN] {
            assert!(isns.iter().filter(|&&i| i == edge).count() > 300, "{edge}");
        }
        assert!(isns.iter().any(|&i| (1..256).contains(&i)));
        assert!(isns.iter().any(|&i| i > MAX_ISN - 256 && i < MAX_ISN));
        assert!(
            isns.iter().any(|&i| i > 1 << 62),
            "the middle of the domain too"
        );
    }

    #[test]
    fn range_and_chance_respect_their_bounds() {
        let mut r = Rng::new(1);
        let mut hits = 0;
        for _ in 0..10_000 {
            let v = r.range(3, 9);
            assert!((3..=9).contains(&v));
            if r.chance(Prob::percent(25)) {
                hits += 1;
            }
        }
        assert!((2_000..3_000).contains(&hits), "25% gave {hits} of 10000");
        assert!(!r.chance(Prob::NEVER));
        assert!(r.chance(Prob::ALWAYS));
        assert_eq!(r.range(5, 5), 5);
        assert_eq!(r.below(0), 0);
    }
}
