//! [`Orphans`]: the connections a leader held when it stepped down without knowing who
//! leads next (it lost its quorum, or a vote began), kept open for a bounded number of
//! ticks so that each can still be told where to go.
//!
//! Only peers that announced they understand a NotLeader are kept (the others are closed
//! at once, as the reference server would drop them). When a leader becomes known within
//! the bound, each is sent a NotLeader naming it (this replica included, if it leads
//! again: the peer then comes back here) and closed; when the bound passes first, they
//! are closed without one, and find the leader through their loss detection and their
//! address list, as before.

use std::collections::BTreeSet;

/// See the [module documentation](self).
#[derive(Debug)]
pub(super) struct Orphans<K> {
    conns: BTreeSet<K>,
    ticks_left: usize,
}

impl<K> Default for Orphans<K> {
    fn default() -> Self {
        Orphans {
            conns: BTreeSet::new(),
            ticks_left: 0,
        }
    }
}

impl<K: Ord + Copy> Orphans<K> {
    /// Keeps `conns` for at most `ticks` ticks (added to any already kept; the bound
    /// restarts).
    pub(super) fn hold(&mut self, conns: impl IntoIterator<Item = K>, ticks: usize) {
        self.conns.extend(conns);
        self.ticks_left = ticks;
    }

    /// Whether `conn` is kept.
    pub(super) fn contains(&self, conn: K) -> bool {
        self.conns.contains(&conn)
    }

    /// Forgets `conn` (it is gone, or has been dealt with otherwise).
    pub(super) fn remove(&mut self, conn: K) {
        self.conns.remove(&conn);
    }

    /// Everything kept, now to be told and closed (a leader is known).
    pub(super) fn take(&mut self) -> Vec<K> {
        std::mem::take(&mut self.conns).into_iter().collect()
    }

    /// One tick passed with no leader known: the connections whose bound has passed, to be
    /// closed without a hint.
    pub(super) fn tick(&mut self) -> Vec<K> {
        if self.conns.is_empty() {
            return Vec::new();
        }
        self.ticks_left = self.ticks_left.saturating_sub(1);
        if self.ticks_left == 0 {
            self.take()
        } else {
            Vec::new()
        }
    }

    /// How many connections are kept.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_taken_or_until_the_bound_passes() {
        let mut o = Orphans::default();
        assert!(o.tick().is_empty(), "nothing kept, nothing due");
        o.hold([3, 1], 2);
        assert_eq!(o.len(), 2);
        assert!(o.tick().is_empty());
        o.remove(3);
        assert_eq!(o.tick(), [1], "the bound passed");
        assert_eq!(o.len(), 0);
        o.hold([5, 4], 10);
        assert_eq!(o.take(), [4, 5]);
        assert!(o.tick().is_empty());
    }
}
