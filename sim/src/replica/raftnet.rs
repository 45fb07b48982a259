//! The faulty network between replicas: raft messages are lost (before the heal), delayed
//! by a jitter that reorders them, and dropped on delivery across an active partition.

use std::collections::BTreeMap;

use bitcoin_core::replica::RaftMessage;

use super::case::ReplicaCase;
use crate::digest::Digest;
use crate::rng::Rng;

/// Raft messages in flight, by arrival time.
#[derive(Default)]
pub struct RaftNet {
    seq: u64,
    flights: BTreeMap<(u64, u64), RaftMessage>,
}

impl RaftNet {
    /// Sends `message` at `now` (lost with the case's probability before the heal).
    pub fn send(
        &mut self,
        case: &ReplicaCase,
        rng: &mut Rng,
        digest: &mut Digest,
        now: u64,
        message: RaftMessage,
    ) {
        let (from, to) = (message.from, message.to);
        digest.u64(from << 32 | to);
        digest.u64(message.get_msg_type() as u64);
        if now < case.heal_ms && rng.chance(case.loss) {
            return;
        }
        let at = now + 1 + rng.range(0, case.jitter_ms);
        self.seq += 1;
        self.flights.insert((at, self.seq), message);
    }

    /// The next message due at or before `now` whose ends are on the same side of every
    /// partition active at `now` (others are dropped).
    pub fn pop_due(&mut self, case: &ReplicaCase, now: u64) -> Option<RaftMessage> {
        loop {
            let entry = self.flights.first_entry()?;
            if entry.key().0 > now {
                return None;
            }
            let message = entry.remove();
            if connected(case, now, message.from, message.to) {
                return Some(message);
            }
        }
    }
}

/// Whether `a` and `b` are on the same side of every partition active at `now`.
pub fn connected(case: &ReplicaCase, now: u64, a: u64, b: u64) -> bool {
    now >= case.heal_ms
        || case.partitions.iter().all(|p| {
            !(p.from_ms..p.until_ms).contains(&now) || p.cut.contains(&a) == p.cut.contains(&b)
        })
}
