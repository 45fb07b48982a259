//! The search loop: walks a nonce range through an [`Engine`], lanes in lockstep.
//!
//! A range is first split at powers of ten (the digit count fixes the tail's layout). Within
//! one digit count, the engine's `LANES` lanes walk `LANES` equal, consecutive sub-ranges in
//! lockstep, each sub-range a multiple of `10^k` long. The `k` low digits are then the same in
//! every lane at every step: they live in one scalar buffer, incremented in place, and only the
//! words they touch are rewritten. The high digits differ per lane and change only when the
//! low digits wrap, once every `10^k` steps. With two tail blocks, the first block is
//! recompressed only when a digit in it changed; otherwise its cached output is reused.
//!
//! The first tail block's leading words that hold only prefix bytes are the same for every
//! nonce: the rounds reading them are run once per digit count, and the engines start after
//! them (see [`Entry`]).
//!
//! What the lockstep walk does not cover (fewer than `LANES · 10^k` nonces) is walked again
//! with a smaller `k`, down to a last step of fewer than `LANES` nonces, where the idle lanes
//! repeat that step's last nonce (a duplicate never changes a minimum, nor a first hit).
//!
//! The same walk serves both goals ([`Goal`]): the minimum hash, whose threshold tightens as
//! better hashes turn up, and the first nonce meeting a fixed limit. For the latter the lanes'
//! sub-ranges are disjoint and ascending, so the smallest qualifying nonce among every lane's
//! finds is the range's; the walk stops after the first lockstep run that found one.

use super::engine::{first_rounds, Block, Engine, Entry, Lanes, State};
use super::layout::{Layout, Prefix};
use super::{Hit, MinHash};
use crate::hash::{digit_count, pow10, Algo, MAX_DIGITS};

/// The most lanes any engine has.
const MAX_LANES: usize = 16;

/// What a search looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Goal {
    /// The minimum hash, ties to the smallest nonce; `MinHash::MAX` while nothing was seen.
    Min(MinHash),
    /// The smallest nonce whose hash is at most `limit`, once one was seen.
    First {
        /// The greatest qualifying hash.
        limit: u64,
        /// The smallest qualifying nonce seen, with its hash.
        hit: Option<Hit>,
    },
}

impl Goal {
    /// The high word a hash must not exceed to be worth a look.
    fn threshold(&self) -> u32 {
        let bound = match self {
            Goal::Min(best) => best.hash,
            Goal::First { limit, .. } => *limit,
        };
        // The high half of a u64: the cast cannot truncate.
        (bound >> 32) as u32
    }

    /// Folds in the hash of `nonce`.
    fn offer(&mut self, hash: u64, nonce: u64) {
        match self {
            Goal::Min(best) => *best = (*best).min(MinHash { hash, nonce }),
            Goal::First { limit, hit } => {
                if hash <= *limit && hit.is_none_or(|found| nonce < found.nonce) {
                    *hit = Some(Hit { hash, nonce });
                }
            }
        }
    }

    /// Whether the search may stop: a first hit was found (everything after it is greater).
    fn done(&self) -> bool {
        matches!(self, Goal::First { hit: Some(_), .. })
    }
}

/// Runs `engine` over `lower ..= upper` (`lower <= upper`) for `goal`, hashing with `algo`,
/// from the prepared `prefix` of `msg`. Returns the goal with the range folded in.
pub(crate) fn search<E: Engine>(
    engine: E,
    algo: Algo,
    prefix: &Prefix,
    lower: u64,
    upper: u64,
    mut goal: Goal,
) -> Goal {
    debug_assert!(lower <= upper && E::LANES <= MAX_LANES);
    for digits in digit_count(lower)..=digit_count(upper) {
        let first = if digits == 1 { 0 } else { pow10(digits - 1) };
        let last = if digits == MAX_DIGITS {
            u64::MAX
        } else {
            pow10(digits) - 1
        };
        let layout = Layout::new(prefix, digits);
        let mut walk = Walk::new(engine, algo, &layout, &prefix.midstate);
        walk.segment(lower.max(first), upper.min(last), &mut goal);
        if goal.done() {
            break;
        }
    }
    goal
}

/// The lockstep walk over nonces of one digit count.
struct Walk<'a, E: Engine> {
    engine: E,
    /// Whether the hash is `sha256d` (the tail's digest hashed again).
    double: bool,
    layout: &'a Layout,
    /// The midstate in every lane.
    midstate: State<E::Lanes>,
    /// The state after the first tail block's leading `skip` rounds, which read prefix words
    /// only, in every lane.
    skipped: State<E::Lanes>,
    /// How many rounds of the first tail block `skipped` has done.
    skip: usize,
    /// The tail words with the low digits written in (the same in every lane).
    low: [u32; 32],
    /// Per lane, the high digits' bits of each tail word (zero where no high digit is).
    high: [E::Lanes; 32],
    /// The tail blocks as the engine reads them: `high | low`.
    blocks: [Block<E::Lanes>; 2],
    /// The chaining value after the first tail block, when there are two.
    between: State<E::Lanes>,
}

impl<'a, E: Engine> Walk<'a, E> {
    fn new(engine: E, algo: Algo, layout: &'a Layout, midstate: &[u32; 8]) -> Self {
        let skip = layout.prefix_words - layout.prefix_words % E::SKIP_STEP;
        let skipped = State::splat(&first_rounds(midstate, &layout.template[..skip]));
        let midstate = State::splat(midstate);
        let mut blocks = [Block([E::Lanes::splat(0); 16]); 2];
        for (word, value) in layout.template.iter().enumerate() {
            blocks[word / 16].0[word % 16] = E::Lanes::splat(*value);
        }
        Walk {
            engine,
            double: algo == Algo::Sha256d,
            layout,
            midstate,
            skipped,
            skip,
            low: layout.template,
            high: [E::Lanes::splat(0); 32],
            blocks,
            between: midstate,
        }
    }

    /// Searches `lo ..= hi`, all of `layout.digits` digits, folding results into `goal`, in
    /// ascending runs; stops after a run that completed the goal.
    fn segment(&mut self, mut lo: u64, hi: u64, goal: &mut Goal) {
        let lanes = E::LANES as u64;
        let mut starts = [0u64; MAX_LANES];
        loop {
            // Within one digit count the count fits a u64: the largest segment, 20 digits,
            // holds 2^64 − 10^19 nonces.
            let count = hi - lo + 1;
            if count < lanes {
                for (lane, start) in starts[..E::LANES].iter_mut().enumerate() {
                    *start = lo + (lane as u64).min(count - 1);
                }
                self.lockstep(&starts[..E::LANES], 0, 1, goal);
                return;
            }
            // The largest k with LANES · 10^k <= count; k < digits follows from count.
            let mut k = 0;
            while k + 1 < self.layout.digits
                && lanes
                    .checked_mul(pow10(k + 1))
                    .is_some_and(|span| span <= count)
            {
                k += 1;
            }
            let unit = pow10(k);
            let steps = unit * (count / (lanes * unit));
            for (lane, start) in starts[..E::LANES].iter_mut().enumerate() {
                *start = lo + lane as u64 * steps;
            }
            self.lockstep(&starts[..E::LANES], k, steps, goal);
            let covered = lanes * steps;
            if covered == count || goal.done() {
                return;
            }
            lo += covered;
        }
    }

    /// Runs `steps` steps: at step `j` lane `l` hashes `starts[l] + j`. All starts must agree
    /// modulo `10^low_digits`, and no lane may leave the digit count.
    fn lockstep(&mut self, starts: &[u64], low_digits: usize, steps: u64, goal: &mut Goal) {
        let layout = self.layout;
        let digits = layout.digits;
        // Write the low digits of the first nonce (leading zeros included).
        self.low = layout.template;
        let mut value = starts[0];
        for position in 0..low_digits {
            // `value % 10` is a digit: the cast cannot truncate.
            self.low[layout.word[position]] |=
                u32::from(b'0' + (value % 10) as u8) << layout.shift[position];
            value /= 10;
        }
        self.set_high(starts, low_digits, 0);
        let mut first_changed = layout.word[digits - 1];
        let mut threshold = goal.threshold();
        let mut out = [E::Lanes::splat(0); 2];
        for step in 0..steps {
            if step > 0 {
                match self.increment_low(low_digits) {
                    Some(changed) => first_changed = layout.word[changed - 1],
                    None => {
                        self.set_high(starts, low_digits, step);
                        first_changed = layout.word[digits - 1];
                    }
                }
            }
            self.refresh(first_changed);
            let first = Entry {
                init: &self.midstate,
                start: &self.skipped,
                skip: self.skip,
                uniform: true,
            };
            let entry = if layout.blocks == 2 {
                if first_changed < 16 {
                    self.between = self.engine.compress(first, &self.blocks[0]);
                }
                Entry::from(&self.between)
            } else {
                first
            };
            let last = &self.blocks[layout.blocks - 1];
            let engine = &self.engine;
            let mut mask = match (&layout.fixed_last, self.double) {
                (Some(kw), false) => engine.finish_fixed(entry, last, kw, threshold, &mut out),
                (None, false) => engine.finish(entry, last, threshold, &mut out),
                (Some(kw), true) => {
                    engine.finish_double_fixed(entry, last, kw, threshold, &mut out)
                }
                (None, true) => engine.finish_double(entry, last, threshold, &mut out),
            };
            if mask != 0 {
                while mask != 0 {
                    let lane = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let hash =
                        u64::from(out[0].as_ref()[lane]) << 32 | u64::from(out[1].as_ref()[lane]);
                    goal.offer(hash, starts[lane] + step);
                }
                threshold = goal.threshold();
            }
        }
    }

    /// Adds one to the low digits in place. Returns how many digits changed, or `None` when
    /// they all wrapped to zero (the high digits must then be incremented).
    fn increment_low(&mut self, low_digits: usize) -> Option<usize> {
        let layout = self.layout;
        for position in 0..low_digits {
            let word = &mut self.low[layout.word[position]];
            let shift = layout.shift[position];
            if (*word >> shift) & 0xff == u32::from(b'9') {
                *word -= 9 << shift; // '9' becomes '0', carry on.
            } else {
                *word += 1 << shift;
                return Some(position + 1);
            }
        }
        None
    }

    /// Writes each lane's high digits (positions `low_digits..`) for step `step`.
    fn set_high(&mut self, starts: &[u64], low_digits: usize, step: u64) {
        let layout = self.layout;
        for word in layout.word[layout.digits - 1]..=layout.word[0] {
            self.high[word] = E::Lanes::splat(0);
        }
        let unit = pow10(low_digits);
        for (lane, start) in starts.iter().enumerate() {
            let mut value = (start + step) / unit;
            for position in low_digits..layout.digits {
                // `value % 10` is a digit: the cast cannot truncate.
                let digit = u32::from(b'0' + (value % 10) as u8);
                self.high[layout.word[position]].as_mut()[lane] |= digit << layout.shift[position];
                value /= 10;
            }
        }
    }

    /// Rebuilds the engine's words from `first` to the last digit word.
    fn refresh(&mut self, first: usize) {
        for word in first..=self.layout.word[0] {
            let low = self.low[word];
            let high = self.high[word];
            let target = &mut self.blocks[word / 16].0[word % 16];
            for (out, high) in target.as_mut().iter_mut().zip(high.as_ref()) {
                *out = high | low;
            }
        }
    }
}
