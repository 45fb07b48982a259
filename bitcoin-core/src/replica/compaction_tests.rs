//! The compaction policy ([`ReplicaConfig::snapshot_every`] and
//! [`ReplicaConfig::snapshot_log_percent`]) on a group of one replica: what it snapshots,
//! and what it leaves in the log.

use super::*;

/// One replica of a group of one, its effects drained into a tally of the snapshots it
/// asked to persist.
struct Solo {
    replica: Replica,
    /// The data size of each snapshot persisted, in order.
    snapshots: Vec<u64>,
    /// Bytes of the entries appended (payload plus [`ENTRY_OVERHEAD`]).
    logged: u64,
}

impl Solo {
    fn new(snapshot_every: u64, snapshot_log_percent: u64, max_answered: usize) -> Solo {
        let config = ReplicaConfig {
            snapshot_every,
            snapshot_log_percent,
            max_answered,
            ..ReplicaConfig::for_id(1, vec![1])
        };
        let mut solo = Solo {
            replica: Replica::new(&config, Disk::fresh(&[1])).unwrap(),
            snapshots: Vec::new(),
            logged: 0,
        };
        while !solo.replica.is_leader() {
            solo.replica.tick();
            solo.drain();
        }
        solo
    }

    fn drain(&mut self) {
        while let Some(effect) = self.replica.poll_effect() {
            let ReplicaEffect::Persist(ops) = effect else {
                continue;
            };
            for op in ops {
                match op {
                    DiskOp::Compact(snapshot) => self.snapshots.push(snapshot.data.len() as u64),
                    DiskOp::Append(entries) => {
                        self.logged += entries
                            .iter()
                            .map(|e| e.data.len() as u64 + ENTRY_OVERHEAD)
                            .sum::<u64>();
                    }
                    _ => {}
                }
            }
        }
    }

    /// Request `id` accepted with a `size`-byte message, searched, then answered.
    fn request(&mut self, id: u64, size: usize) {
        let key = RequestKey {
            client: "c".into(),
            id,
        };
        let commands = [
            Command::Accept {
                key: key.clone(),
                message: "m".repeat(size),
                lower: 0,
                upper: 9,
                mode: Mode::Minimum,
            },
            Command::RangeDone {
                key: key.clone(),
                lower: 0,
                upper: 9,
                hash: id,
                nonce: 0,
            },
            Command::Answered {
                key,
                hash: id,
                nonce: 0,
            },
        ];
        for command in &commands {
            self.replica.propose(command).unwrap();
            self.drain();
        }
    }

    /// Bytes of the entries left in the log, counted as the policy counts them.
    fn log_bytes(&self) -> u64 {
        self.replica
            .disk()
            .entries_ref()
            .iter()
            .map(|e| e.data.len() as u64 + ENTRY_OVERHEAD)
            .sum()
    }

    fn snapshot_bytes(&self) -> u64 {
        self.replica.disk().snapshot_ref().data.len() as u64
    }
}

/// A state that grows with every request: with the size trigger, each snapshot waits for
/// a log as large as the last one, so the snapshots' sizes grow geometrically and their
/// number grows with the logarithm of the requests, and all the snapshot bytes written
/// but the latest snapshot's are at most the log bytes written. Counting entries alone, a snapshot every 2 entries
/// writes the whole state once per request.
#[test]
fn snapshots_of_a_growing_state_wait_for_a_log_of_their_size() {
    let mut sized = Solo::new(2, 100, 100_000);
    let mut counted = Solo::new(2, 0, 100_000);
    for id in 0..300 {
        sized.request(id, 1_000);
        counted.request(id, 1_000);
        assert!(
            sized.log_bytes() < sized.snapshot_bytes() + 2 * 1_100,
            "after request {id}: a log of {} bytes beside a snapshot of {}",
            sized.log_bytes(),
            sized.snapshot_bytes()
        );
    }
    assert_eq!(sized.replica.state(), counted.replica.state());
    let written: u64 = sized.snapshots.iter().sum();
    assert!(
        sized.snapshots.len() >= 5 && sized.snapshots.len() <= 12,
        "{} snapshots, of {:?} bytes",
        sized.snapshots.len(),
        sized.snapshots
    );
    assert!(
        sized.snapshots.windows(2).all(|w| 2 * w[1] >= 3 * w[0]),
        "each snapshot at least 1.5 times the last: {:?}",
        sized.snapshots
    );
    // Each snapshot but the latest was followed by at least its size of log.
    assert!(
        written <= sized.logged + sized.snapshot_bytes(),
        "{written} snapshot bytes written for {} log bytes",
        sized.logged
    );
    assert!(
        counted.snapshots.len() >= 300,
        "{}",
        counted.snapshots.len()
    );
    let counted_written: u64 = counted.snapshots.iter().sum();
    assert!(
        counted_written > 50 * sized.logged,
        "{counted_written} vs {}",
        sized.logged
    );
}

/// A bounded state (10 answers remembered) under a stream of large requests: the log is
/// compacted again and again, never beyond about the snapshot's size, and each snapshot
/// waits for at least `snapshot_every` entries.
#[test]
fn the_log_of_a_bounded_state_is_compacted_at_about_the_snapshots_size() {
    let mut solo = Solo::new(4, 100, 10);
    let mut peak = 0;
    for id in 0..400 {
        solo.request(id, 2_000);
        peak = peak.max(solo.log_bytes());
        assert!(
            solo.log_bytes() < solo.snapshot_bytes() + 2 * 2_100,
            "after request {id}: a log of {} bytes beside a snapshot of {}",
            solo.log_bytes(),
            solo.snapshot_bytes()
        );
    }
    // 1,200 entries, 400 of them of about 2 kB, 10 requests in a snapshot of about 24 kB:
    // one snapshot about every 10 requests, not one every 4 entries (snapshot_every).
    assert!(
        (30..=50).contains(&solo.snapshots.len()),
        "{} snapshots",
        solo.snapshots.len()
    );
    assert!(peak > 15_000, "the log grew to about the snapshot ({peak})");
    let written: u64 = solo.snapshots.iter().sum();
    assert!(written <= solo.logged + solo.snapshot_bytes());
    // Restarted from its disk, it replays the log kept and is the same.
    let config = ReplicaConfig {
        snapshot_every: 4,
        max_answered: 10,
        ..ReplicaConfig::for_id(1, vec![1])
    };
    let mut again = Replica::new(&config, solo.replica.disk().clone()).unwrap();
    while !again.is_leader() {
        again.tick();
        while again.poll_effect().is_some() {}
    }
    assert_eq!(again.state(), solo.replica.state());
}

/// Small entries beside a small state: `snapshot_every` decides, as with the size trigger
/// off.
#[test]
fn a_small_state_is_still_snapshotted_every_snapshot_every_entries() {
    let mut solo = Solo::new(10, 100, 3);
    for id in 0..100 {
        solo.request(id, 1);
    }
    // 300 entries of about 100 bytes (and the leader's empty one) beside a snapshot of
    // about 600 bytes: one snapshot per 10.
    assert_eq!(solo.snapshots.len(), 30);
}
