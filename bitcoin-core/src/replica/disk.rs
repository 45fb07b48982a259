//! What a replica must keep on disk — hard state, snapshot, log entries — as a pure
//! in-memory image ([`Disk`]) changed only by [`DiskOp`]s. The replica keeps one as its
//! raft-rs [`Storage`]; its driver applies the same ops, in the same order, to its durable
//! copy (the simulator's "disk", or the server's embedded store) and rebuilds a replica
//! from that copy after a crash.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// One change to a replica's durable state. A driver must make every op of a
/// [`crate::replica::ReplicaEffect::Persist`] durable before acting on any effect after it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DiskOp {
    /// A snapshot received from the leader replaces the whole log.
    InstallSnapshot(Snapshot),
    /// Entries appended, replacing any stored entries from the first one's index on.
    Append(Vec<Entry>),
    /// The new hard state (term, vote, commit).
    HardState(HardState),
    /// The replica's own snapshot: entries up to its index are dropped, later ones kept.
    Compact(Snapshot),
}

/// A replica's durable state, and the raft-rs [`Storage`] over it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Disk {
    hard_state: HardState,
    /// The latest snapshot (its metadata always carries the configuration).
    snapshot: Snapshot,
    /// Entries after the snapshot's index, contiguous.
    entries: Vec<Entry>,
}

impl Disk {
    /// The disk of a fresh replica of a group whose voters are `voters`.
    #[must_use]
    pub fn fresh(voters: &[u64]) -> Self {
        let mut disk = Disk::default();
        disk.snapshot.mut_metadata().mut_conf_state().voters = voters.to_vec();
        disk
    }

    /// A disk read back from durable storage: `entries` must follow `snapshot`'s index
    /// contiguously (those that do not are dropped).
    #[must_use]
    pub fn from_parts(hard_state: HardState, snapshot: Snapshot, entries: Vec<Entry>) -> Self {
        let mut disk = Disk {
            hard_state,
            snapshot,
            entries: Vec::new(),
        };
        let first = disk.first();
        disk.entries = entries
            .into_iter()
            .zip(first..)
            .take_while(|(entry, index)| entry.index == *index)
            .map(|(entry, _)| entry)
            .collect();
        disk
    }

    /// Applies one op. Ops out of order (a gap in the log, a stale snapshot) are ignored,
    /// as raft-rs never produces them.
    pub fn apply(&mut self, op: &DiskOp) {
        match op {
            DiskOp::InstallSnapshot(snapshot) => {
                let meta = snapshot.get_metadata();
                if meta.index < self.snapshot.get_metadata().index {
                    return;
                }
                self.hard_state.term = self.hard_state.term.max(meta.term);
                self.hard_state.commit = self.hard_state.commit.max(meta.index);
                self.entries.clear();
                self.snapshot = snapshot.clone();
            }
            DiskOp::Append(entries) => {
                let Some(first) = entries.first() else { return };
                if first.index < self.first() || first.index > self.last() + 1 {
                    return;
                }
                let keep = (first.index - self.first()) as usize;
                self.entries.truncate(keep);
                self.entries.extend_from_slice(entries);
            }
            DiskOp::HardState(hs) => self.hard_state = hs.clone(),
            DiskOp::Compact(snapshot) => {
                let index = snapshot.get_metadata().index;
                if index <= self.snapshot.get_metadata().index || index > self.last() {
                    return;
                }
                let drop = (index + 1 - self.first()) as usize;
                self.entries.drain(..drop);
                self.snapshot = snapshot.clone();
            }
        }
    }

    /// The hard state.
    #[must_use]
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot.
    #[must_use]
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the snapshot.
    #[must_use]
    pub fn entries_ref(&self) -> &[Entry] {
        &self.entries
    }

    /// Bytes held: snapshot data plus entry payloads and [`super::ENTRY_OVERHEAD`] per entry
    /// (what compaction bounds).
    #[must_use]
    pub fn size(&self) -> usize {
        self.snapshot.data.len()
            + self
                .entries
                .iter()
                .map(|e| e.data.len() + super::node::ENTRY_OVERHEAD as usize)
                .sum::<usize>()
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.get_metadata().index, |e| e.index)
    }

    fn conf_state(&self) -> ConfState {
        self.snapshot.get_metadata().get_conf_state().clone()
    }
}

impl Storage for Disk {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut entries = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let meta = self.snapshot.get_metadata();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
