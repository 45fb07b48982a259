//! Inclusive nonce ranges, and the queue of a request's nonces not yet given to any miner.
//!
//! A range may reach `u64::MAX`, so lengths are `u128` (`0 ..= u64::MAX` holds 2⁶⁴ nonces)
//! and no arithmetic here can overflow.

use std::collections::VecDeque;

/// A non-empty inclusive range of nonces `first ..= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NonceRange {
    first: u64,
    last: u64,
}

impl NonceRange {
    /// The range `first ..= last`, or `None` if it would be empty (`first > last`).
    pub(crate) fn new(first: u64, last: u64) -> Option<Self> {
        (first <= last).then_some(NonceRange { first, last })
    }

    /// The first nonce of the range.
    pub(crate) fn first(self) -> u64 {
        self.first
    }

    /// The last nonce of the range (inclusive).
    pub(crate) fn last(self) -> u64 {
        self.last
    }

    /// How many nonces the range holds: between 1 and 2⁶⁴.
    pub(crate) fn len(self) -> u128 {
        u128::from(self.last - self.first) + 1
    }

    /// Whether `nonce` lies in the range.
    pub(crate) fn contains(self, nonce: u64) -> bool {
        self.first <= nonce && nonce <= self.last
    }

    /// Whether the two ranges share a nonce.
    pub(crate) fn overlaps(self, other: NonceRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// Splits off the first `n` nonces (at least one): the front part and what remains, if
    /// anything.
    pub(crate) fn split_front(self, n: u128) -> (NonceRange, Option<NonceRange>) {
        let n = n.max(1);
        if n >= self.len() {
            return (self, None);
        }
        // `n - 1 < len - 1 = last - first <= u64::MAX`: the offset fits in a u64 and
        // `first + offset < last`, so neither the cast nor the additions can overflow.
        let end = self.first + (n - 1) as u64;
        (
            NonceRange {
                first: self.first,
                last: end,
            },
            Some(NonceRange {
                first: end + 1,
                last: self.last,
            }),
        )
    }
}

/// The nonces of a request that no miner holds, in the order they will be handed out.
///
/// Jobs are cut from the front; a range given back (its miner was lost) goes to the front,
/// merged with its neighbour when adjacent, so it is the next thing handed out.
#[derive(Debug, Default)]
pub(crate) struct RangeQueue {
    ranges: VecDeque<NonceRange>,
    len: u128,
}

impl RangeQueue {
    /// A queue holding exactly `range`.
    pub(crate) fn new(range: NonceRange) -> Self {
        RangeQueue {
            ranges: VecDeque::from([range]),
            len: range.len(),
        }
    }

    /// A queue holding `ranges`, in that order (ascending and disjoint, as the caller
    /// guarantees).
    pub(crate) fn from_ranges(ranges: Vec<NonceRange>) -> Self {
        let len = ranges.iter().map(|r| r.len()).sum();
        RangeQueue {
            ranges: ranges.into(),
            len,
        }
    }

    /// The number of nonces in the queue.
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// Whether the queue holds no nonce.
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Takes up to `max` nonces (at least one) from the front, as one contiguous range.
    /// The result may be shorter than `max` when the front range is.
    pub(crate) fn take_front(&mut self, max: u128) -> Option<NonceRange> {
        let front = self.ranges.pop_front()?;
        let (taken, rest) = front.split_front(max);
        if let Some(rest) = rest {
            self.ranges.push_front(rest);
        }
        self.len -= taken.len();
        Some(taken)
    }

    /// Puts `range` back at the front, merging it with the front range when they touch.
    pub(crate) fn push_front(&mut self, range: NonceRange) {
        self.len += range.len();
        match self.ranges.front_mut() {
            Some(front) if range.last.checked_add(1) == Some(front.first) => {
                front.first = range.first;
            }
            _ => self.ranges.push_front(range),
        }
    }
}

impl RangeQueue {
    /// Drops every nonce above `last`, keeping the order of what remains (target mode: no
    /// nonce above a hit is handed out).
    pub(crate) fn truncate_above(&mut self, last: u64) {
        self.ranges = self
            .ranges
            .iter()
            .filter_map(|r| NonceRange::new(r.first, r.last.min(last)))
            .collect();
        self.len = self.ranges.iter().map(|r| r.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncating_keeps_what_lies_at_or_below_the_bound() {
        let mut q = RangeQueue::new(NonceRange::new(0, 99).unwrap());
        let a = q.take_front(10).unwrap();
        q.take_front(10);
        q.push_front(a);
        q.truncate_above(50);
        assert_eq!(q.len(), 10 + 31);
        assert_eq!(q.take_front(100), NonceRange::new(0, 9));
        assert_eq!(q.take_front(100), NonceRange::new(20, 50));
        q.push_front(NonceRange::new(60, 70).unwrap());
        q.truncate_above(5);
        assert_eq!((q.is_empty(), q.len()), (true, 0));
    }

    #[test]
    fn lengths_reach_two_to_the_sixty_four() {
        let all = NonceRange::new(0, u64::MAX).unwrap();
        assert_eq!(all.len(), 1u128 << 64);
        assert_eq!(NonceRange::new(7, 7).unwrap().len(), 1);
        assert_eq!(NonceRange::new(8, 7), None);
    }

    #[test]
    fn split_front_at_the_top_of_the_range() {
        let r = NonceRange::new(u64::MAX - 9, u64::MAX).unwrap();
        let (a, b) = r.split_front(4);
        assert_eq!((a.first(), a.last()), (u64::MAX - 9, u64::MAX - 6));
        let b = b.unwrap();
        assert_eq!((b.first(), b.last()), (u64::MAX - 5, u64::MAX));
        assert_eq!(r.split_front(10), (r, None));
        assert_eq!(r.split_front(u128::MAX), (r, None));
        assert_eq!(r.split_front(0).0.len(), 1);
    }

    #[test]
    fn queue_gives_back_to_the_front_and_merges() {
        let mut q = RangeQueue::new(NonceRange::new(0, 99).unwrap());
        let a = q.take_front(10).unwrap();
        let b = q.take_front(10).unwrap();
        assert_eq!(q.len(), 80);
        q.push_front(b);
        q.push_front(a);
        assert_eq!(q.len(), 100);
        assert_eq!(q.take_front(1000), NonceRange::new(0, 99));
        assert!(q.is_empty());
        assert_eq!(q.take_front(1), None);
    }
}
