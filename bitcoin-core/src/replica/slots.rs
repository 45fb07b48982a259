//! [`Slots`]: a leader's bookkeeping between the log's requests and its scheduler — which
//! request runs in which scheduler slot, which Accepts it proposed that are not applied
//! yet, which requests the scheduler had no room for, and which verified chunks are not
//! proposed to the log yet.
//!
//! Soft state, like the scheduler itself: it lives as long as one leadership and is
//! cleared when the replica steps down.

use std::collections::{BTreeMap, BTreeSet};

use super::command::{Asked, Command, RequestKey};

/// See the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct Slots {
    by_slot: BTreeMap<u64, RequestKey>,
    by_key: BTreeMap<RequestKey, u64>,
    next: u64,
    /// Accepts this leader proposed that are not applied yet, with what they ask. They
    /// count against the request limit, so that Accepts proposed together cannot take the
    /// log past it.
    proposed: BTreeMap<RequestKey, Asked>,
    /// Requests in the log, unanswered, that the scheduler refused for want of room (the
    /// log can still hold more than the limit: Accepts a previous leader proposed may be
    /// committed under this one). Scheduled, in key order, as slots free.
    deferred: BTreeSet<RequestKey>,
    /// Chunks verified and not yet proposed (`RangeDone`/`TargetDone`), oldest first:
    /// proposed together at the next tick, or before their request's answer.
    unlogged: Vec<Command>,
}

impl Slots {
    /// Forgets everything (leadership lost or taken).
    pub(super) fn clear(&mut self) {
        *self = Slots {
            next: self.next,
            ..Slots::default()
        };
    }

    /// The slot running `key`, if any.
    pub(super) fn slot(&self, key: &RequestKey) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    /// The request running in `slot`, if any.
    pub(super) fn key(&self, slot: u64) -> Option<&RequestKey> {
        self.by_slot.get(&slot)
    }

    /// A slot number never used before by this coordinator.
    pub(super) fn allocate(&mut self) -> u64 {
        let slot = self.next;
        self.next += 1;
        slot
    }

    /// `key` now runs in `slot` (and is no longer deferred).
    pub(super) fn bind(&mut self, slot: u64, key: RequestKey) {
        self.deferred.remove(&key);
        self.by_key.insert(key.clone(), slot);
        self.by_slot.insert(slot, key);
    }

    /// The scheduler is done with `slot` (it answered): the request it ran, if any.
    pub(super) fn release(&mut self, slot: u64) -> Option<RequestKey> {
        let key = self.by_slot.remove(&slot)?;
        self.by_key.remove(&key);
        Some(key)
    }

    /// The scheduler had no room for `key`: to be scheduled when a slot frees.
    pub(super) fn defer(&mut self, key: RequestKey) {
        self.deferred.insert(key);
    }

    /// The deferred requests, in key order, taken out (those still refused are
    /// deferred again by the caller).
    pub(super) fn take_deferred(&mut self) -> Vec<RequestKey> {
        std::mem::take(&mut self.deferred).into_iter().collect()
    }

    /// This leader proposed an Accept of `key` asking `asked`.
    pub(super) fn proposed(&mut self, key: RequestKey, asked: Asked) {
        self.proposed.insert(key, asked);
    }

    /// An Accept of `key` was applied (or dropped): it is no longer pending. Returns what
    /// this leader's Accept of `key` asked, if it proposed one.
    pub(super) fn applied(&mut self, key: &RequestKey) -> Option<Asked> {
        self.proposed.remove(key)
    }

    /// Whether an Accept of `key` is proposed and not applied yet.
    pub(super) fn is_proposed(&self, key: &RequestKey) -> bool {
        self.proposed.contains_key(key)
    }

    /// What the Accept of `key` proposed and not applied yet asks, if there is one.
    pub(super) fn proposed_asking(&self, key: &RequestKey) -> Option<&Asked> {
        self.proposed.get(key)
    }

    /// Accepts proposed and not applied yet.
    pub(super) fn proposed_count(&self) -> usize {
        self.proposed.len()
    }

    /// A verified chunk, to be proposed later.
    pub(super) fn hold(&mut self, chunk: Command) {
        self.unlogged.push(chunk);
    }

    /// Every chunk held, oldest first, taken out.
    pub(super) fn take_unlogged(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.unlogged)
    }

    /// The chunks held for `key`, oldest first, taken out (the others stay).
    pub(super) fn take_unlogged_of(&mut self, key: &RequestKey) -> Vec<Command> {
        let (of_key, others) = std::mem::take(&mut self.unlogged)
            .into_iter()
            .partition(|c| c.key() == key);
        self.unlogged = others;
        of_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64) -> RequestKey {
        RequestKey::of_id(id)
    }

    #[test]
    fn slots_bind_release_and_defer() {
        let mut s = Slots::default();
        let a = s.allocate();
        let b = s.allocate();
        assert_ne!(a, b);
        s.defer(key(1));
        s.bind(a, key(1));
        assert_eq!(s.slot(&key(1)), Some(a));
        assert_eq!(s.key(a), Some(&key(1)));
        assert!(
            s.take_deferred().is_empty(),
            "a bound request is not deferred"
        );
        s.defer(key(3));
        s.defer(key(2));
        assert_eq!(s.take_deferred(), vec![key(2), key(3)]);
        assert!(s.take_deferred().is_empty());
        assert_eq!(s.release(a), Some(key(1)));
        assert_eq!(s.release(a), None);
        assert_eq!(s.slot(&key(1)), None);
        let asked = Asked {
            message: "m".into(),
            lower: 0,
            upper: 9,
            mode: Default::default(),
        };
        s.proposed(key(4), asked.clone());
        assert!(s.is_proposed(&key(4)));
        assert_eq!(s.proposed_asking(&key(4)), Some(&asked));
        assert_eq!(s.proposed_asking(&key(3)), None);
        assert_eq!(s.proposed_count(), 1);
        let chunk = |id, lower| Command::RangeDone {
            key: key(id),
            lower,
            upper: lower,
            hash: 0,
            nonce: lower,
        };
        s.hold(chunk(5, 1));
        s.hold(chunk(6, 2));
        s.hold(chunk(5, 3));
        assert_eq!(s.take_unlogged_of(&key(5)), vec![chunk(5, 1), chunk(5, 3)]);
        assert_eq!(s.take_unlogged(), vec![chunk(6, 2)]);
        s.hold(chunk(7, 4));
        s.clear();
        assert!(s.take_unlogged().is_empty());
        assert_eq!(s.proposed_count(), 0);
        assert!(s.allocate() > b, "slot numbers are never reused");
    }
}
