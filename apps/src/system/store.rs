//! `--data-dir`: a replica's durable state ([`bitcoin_core::replica::Disk`]) in one
//! [redb](https://docs.rs/redb) database file, `DIR/replica.redb`.
//!
//! Why redb: pure Rust (no C toolchain, nothing to install in CI), ACID with
//! copy-on-write B-trees, and a commit that returns only once the data is on disk
//! (`Durability::Immediate`, its default: fsync). Each [`DiskOp`] batch the replica asks
//! for is one write transaction, committed before the driver acts on any later effect
//! (before the raft messages that depend on it are sent, and before any answer is
//! written), as raft-rs requires.
//!
//! Layout: table `meta` holds `hard_state` and `snapshot` (protobuf, as raft-rs encodes
//! them); table `entries` maps each log index after the snapshot to its entry (protobuf).
//! Compaction deletes the entries a snapshot covers, so the file holds the state's
//! snapshot plus the log after it (about the snapshot's size, at most: see
//! `ReplicaConfig::snapshot_log_percent`).
//!
//! After each transaction that writes a snapshot, [`Database::compact`] gives the free
//! pages at the file's end back. Without it the file grew to 3 to 7 times what it holds
//! (`bench replica-disk`): redb writes copy-on-write, so the new snapshot (one value of up
//! to ~19 MB, likely in a power-of-two block) is written beside the old one, and the file
//! never shrinks by itself. Snapshots are rare (the log must first reach the
//! snapshot's size), so compacting then costs little per request (`bench replica-disk`).

use std::fmt;
use std::path::Path;

use bitcoin_core::replica::{Disk, DiskOp, Entry, HardState, Snapshot};
use protobuf::Message as _;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");

/// Why the store failed.
#[derive(Debug)]
pub struct StoreError(String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "data dir: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

fn err(e: impl fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A replica's disk on disk.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `dir/replica.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let db = Database::create(dir.join("replica.redb")).map_err(err)?;
        Ok(Store { db })
    }

    /// The disk stored; the first time, `fresh`, stored first (its snapshot carries the
    /// group's voters).
    pub fn load(&self, fresh: &Disk) -> Result<Disk, StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut meta = txn.open_table(META).map_err(err)?;
            txn.open_table(ENTRIES).map_err(err)?;
            if meta.get("snapshot").map_err(err)?.is_none() {
                let bytes = fresh.snapshot_ref().write_to_bytes().map_err(err)?;
                meta.insert("snapshot", bytes.as_slice()).map_err(err)?;
            }
        }
        txn.commit().map_err(err)?;
        let txn = self.db.begin_read().map_err(err)?;
        let meta = txn.open_table(META).map_err(err)?;
        let Some(snapshot) = meta.get("snapshot").map_err(err)? else {
            return Err(err("no snapshot stored"));
        };
        let snapshot = Snapshot::parse_from_bytes(snapshot.value()).map_err(err)?;
        let hard_state = match meta.get("hard_state").map_err(err)? {
            Some(bytes) => HardState::parse_from_bytes(bytes.value()).map_err(err)?,
            None => HardState::default(),
        };
        let mut entries = Vec::new();
        for item in txn.open_table(ENTRIES).map_err(err)?.iter().map_err(err)? {
            let (_, bytes) = item.map_err(err)?;
            entries.push(Entry::parse_from_bytes(bytes.value()).map_err(err)?);
        }
        Ok(Disk::from_parts(hard_state, snapshot, entries))
    }

    /// Makes `ops` durable, in order, in one transaction: returns once they are on disk.
    /// When they hold a snapshot, the file is then compacted (see the module documentation).
    /// A failed compaction loses nothing (the transaction is already durable): it is
    /// returned as `Ok(Some(error))` for the caller to report, and the file is compacted
    /// again after the next snapshot.
    pub fn apply(&mut self, ops: &[DiskOp]) -> Result<Option<StoreError>, StoreError> {
        self.write(ops)?;
        let snapshot = ops
            .iter()
            .any(|op| matches!(op, DiskOp::Compact(_) | DiskOp::InstallSnapshot(_)));
        if snapshot {
            if let Err(e) = self.db.compact() {
                return Ok(Some(err(e)));
            }
        }
        Ok(None)
    }

    fn write(&self, ops: &[DiskOp]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut meta = txn.open_table(META).map_err(err)?;
            let mut entries = txn.open_table(ENTRIES).map_err(err)?;
            for op in ops {
                match op {
                    DiskOp::InstallSnapshot(snapshot) => {
                        entries.retain(|_, _| false).map_err(err)?;
                        let bytes = snapshot.write_to_bytes().map_err(err)?;
                        meta.insert("snapshot", bytes.as_slice()).map_err(err)?;
                    }
                    DiskOp::Append(new) => {
                        let Some(first) = new.first() else { continue };
                        entries
                            .retain_in(first.index.., |_, _| false)
                            .map_err(err)?;
                        for entry in new {
                            let bytes = entry.write_to_bytes().map_err(err)?;
                            entries.insert(entry.index, bytes.as_slice()).map_err(err)?;
                        }
                    }
                    DiskOp::HardState(hs) => {
                        let bytes = hs.write_to_bytes().map_err(err)?;
                        meta.insert("hard_state", bytes.as_slice()).map_err(err)?;
                    }
                    DiskOp::Compact(snapshot) => {
                        let index = snapshot.get_metadata().index;
                        entries.retain_in(..=index, |_, _| false).map_err(err)?;
                        let bytes = snapshot.write_to_bytes().map_err(err)?;
                        meta.insert("snapshot", bytes.as_slice()).map_err(err)?;
                    }
                    _ => {}
                }
            }
        }
        txn.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin_core::replica::{Command, Mode, Replica, ReplicaConfig, ReplicaEffect, RequestKey};

    /// A one-replica group run for a while, its ops stored; the store read back equals the
    /// replica's own disk, across compactions.
    #[test]
    fn the_store_reads_back_what_the_replica_persisted() {
        let dir = std::env::temp_dir().join(format!("store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        let config = ReplicaConfig {
            snapshot_every: 4,
            snapshot_log_percent: 0,
            ..ReplicaConfig::for_id(1, vec![1])
        };
        let fresh = Disk::fresh(&[1]);
        let mut replica = Replica::new(&config, store.load(&fresh).unwrap()).unwrap();
        let mut drain = |r: &mut Replica| {
            while let Some(effect) = r.poll_effect() {
                if let ReplicaEffect::Persist(ops) = effect {
                    store.apply(&ops).unwrap();
                }
            }
        };
        while !replica.is_leader() {
            replica.tick();
            drain(&mut replica);
        }
        for id in 0..10 {
            let accept = Command::Accept {
                key: RequestKey {
                    client: "c".into(),
                    id,
                },
                message: "m".into(),
                lower: 0,
                upper: id,
                mode: Mode::Minimum,
            };
            replica.propose(&accept).unwrap();
            drain(&mut replica);
        }
        assert!(replica.stats().snapshots >= 2);
        let stored = store.load(&fresh).unwrap();
        assert_eq!(&stored, replica.disk());
        drop(store);
        // Reopened (a restart): the same, and a replica built on it has the same state.
        let store = Store::open(&dir).unwrap();
        let again = Replica::new(&config, store.load(&fresh).unwrap()).unwrap();
        assert_eq!(again.disk(), replica.disk());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use bitcoin_core::replica::Disk;

    /// Snapshots of 1 MiB replaced again and again, each after a few entries: the file
    /// stays within a small multiple of what it holds (4.2 MB; without the compaction after
    /// each snapshot, the old and new snapshots' blocks pile up: 8.5 MB).
    #[test]
    fn the_file_is_compacted_after_each_snapshot() {
        let dir = std::env::temp_dir().join(format!("store-size-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        let fresh = Disk::fresh(&[1]);
        store.load(&fresh).unwrap();
        let mut index = 0;
        for round in 0..8u8 {
            let entries: Vec<Entry> = (0..16)
                .map(|_| {
                    index += 1;
                    Entry {
                        index,
                        term: 1,
                        data: vec![round; 1_000].into(),
                        ..Entry::default()
                    }
                })
                .collect();
            store.apply(&[DiskOp::Append(entries)]).unwrap();
            let mut snapshot = fresh.snapshot_ref().clone();
            snapshot.data = vec![round; 1 << 20].into();
            snapshot.mut_metadata().index = index;
            snapshot.mut_metadata().term = 1;
            let failed = store.apply(&[DiskOp::Compact(snapshot)]).unwrap();
            assert!(failed.is_none(), "compaction failed: {failed:?}");
        }
        let len = std::fs::metadata(dir.join("replica.redb")).unwrap().len();
        let held = store.load(&fresh).unwrap().size() as u64;
        assert!(held >= 1 << 20);
        assert!(len <= 5 * held, "a file of {len} bytes for {held} held");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
