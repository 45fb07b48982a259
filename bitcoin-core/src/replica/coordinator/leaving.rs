//! Leaving leadership: stepping down (naming the new leader to the peers that understand
//! a NotLeader, or keeping them until one is known: `replica/orphans.rs`), and
//! handing leadership over on purpose before the process exits.

use std::fmt;

use lsp_core::Timestamp;

use super::{redirect, Coordinator, CoordinatorEffect};

impl<K: Ord + Copy + fmt::Debug> Coordinator<K> {
    /// Begins leaving the group gracefully: a leader hands its leadership to the most
    /// up-to-date follower ([`super::Replica::transfer_leadership`]); once that follower leads,
    /// this replica steps down, naming it in a NotLeader to every peer that understands
    /// one, so they move at once instead of after their loss detection. Returns the
    /// follower asked to lead, or `None` (not leading, or alone): the driver may then stop
    /// at once.
    pub fn hand_over(&mut self, now: Timestamp) -> Option<u64> {
        let to = self.replica.transfer_leadership();
        self.pump(now);
        to
    }

    /// How many connections this replica keeps since it stepped down, until it can tell
    /// them who leads (see `orphans`): a driver that is leaving waits for none to be left.
    #[must_use]
    pub fn awaiting_leader(&self) -> usize {
        self.orphans.len()
    }

    /// Tells the connections held since stepping down where the leader is, as soon as one
    /// is known (this replica included: they then come back here, and re-join the new
    /// service). Runs whenever the coordinator's outputs move, so after any input.
    pub(super) fn tell_orphans(&mut self) {
        let leader = self.replica.leader();
        if leader == 0 || self.orphans.len() == 0 {
            return;
        }
        for conn in self.orphans.take() {
            self.stats.redirected += 1;
            let hint = redirect::encode_not_leader(leader);
            self.effects.push_back(CoordinatorEffect::Write(conn, hint));
            self.effects.push_back(CoordinatorEffect::Close(conn));
        }
    }

    /// One tick with no leader known: closes the held connections, without a hint, once
    /// their bound has passed.
    pub(super) fn age_orphans(&mut self) {
        if self.replica.leader() != 0 {
            return;
        }
        for conn in self.orphans.tick() {
            self.effects.push_back(CoordinatorEffect::Close(conn));
        }
    }

    /// Leadership lost: the service's state is dropped. Every connection that announced
    /// it understands a NotLeader is sent one naming the new leader and closed, or, if no
    /// leader is known yet (the quorum was lost, or a vote began), kept until one is (see
    /// `orphans`); every other connection is closed at once.
    pub(super) fn step_down(&mut self) {
        self.service = None;
        self.slots.clear();
        self.waiters.clear();
        self.requests_on.clear();
        let announced = std::mem::take(&mut self.announced);
        self.progress.clear();
        let leader = self.replica.leader();
        let known = leader != 0 && leader != self.replica.id();
        let mut orphans = Vec::new();
        for conn in std::mem::take(&mut self.conns) {
            if announced.contains(&conn) {
                if !known {
                    // Kept until a leader is known (see `orphans`).
                    orphans.push(conn);
                    continue;
                }
                self.stats.redirected += 1;
                let hint = redirect::encode_not_leader(leader);
                self.effects.push_back(CoordinatorEffect::Write(conn, hint));
            }
            self.effects.push_back(CoordinatorEffect::Close(conn));
        }
        self.orphans.hold(orphans, self.orphan_ticks);
    }
}
