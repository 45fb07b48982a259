use std::collections::BTreeMap;

use super::*;

fn key(id: u64) -> RequestKey {
    RequestKey {
        client: "c".into(),
        id,
    }
}

fn accept(id: u64, lower: u64, upper: u64) -> Command {
    Command::Accept {
        key: key(id),
        message: "m".into(),
        lower,
        upper,
        mode: Mode::Minimum,
    }
}

fn done(id: u64, lower: u64, upper: u64, hash: u64, nonce: u64) -> Command {
    Command::RangeDone {
        key: key(id),
        lower,
        upper,
        hash,
        nonce,
    }
}

#[test]
fn ranges_merge_and_gaps_are_what_is_left() {
    let mut s = ReplicatedState::new(10);
    s.apply(1, &accept(1, 0, 99));
    s.apply(2, &done(1, 10, 19, 50, 12));
    s.apply(3, &done(1, 40, 49, 40, 45));
    assert_eq!(
        s.request(&key(1)).unwrap().gaps(),
        [(0, 9), (20, 39), (50, 99)]
    );
    s.apply(4, &done(1, 20, 39, 60, 30));
    assert_eq!(s.request(&key(1)).unwrap().gaps(), [(0, 9), (50, 99)]);
    let outcome = s.apply(5, &done(1, 0, 9, 70, 3));
    assert!(matches!(
        outcome,
        Applied::Covered {
            complete: false,
            ..
        }
    ));
    let outcome = s.apply(6, &done(1, 50, 99, 41, 77));
    assert!(matches!(outcome, Applied::Covered { complete: true, .. }));
    let request = s.request(&key(1)).unwrap();
    assert!(request.gaps().is_empty());
    assert_eq!(request.best, Some((40, 45)));
    // Only the best answer of a complete range is taken, once.
    let wrong = Command::Answered {
        key: key(1),
        hash: 41,
        nonce: 77,
    };
    assert!(matches!(s.apply(7, &wrong), Applied::Ignored(_)));
    let right = Command::Answered {
        key: key(1),
        hash: 40,
        nonce: 45,
    };
    assert!(matches!(s.apply(8, &right), Applied::Answered { .. }));
    assert!(matches!(s.apply(9, &right), Applied::Ignored(_)));
    // A resubmission changes nothing.
    assert!(matches!(
        s.apply(10, &accept(1, 0, 5)),
        Applied::Accepted { fresh: false, .. }
    ));
    assert_eq!(s.request(&key(1)).unwrap().answer, Some((40, 45)));
}

#[test]
fn nonsense_commands_change_nothing() {
    let mut s = ReplicatedState::new(10);
    assert!(matches!(
        s.apply(1, &done(9, 0, 1, 0, 0)),
        Applied::Ignored(_)
    ));
    s.apply(2, &accept(1, 10, 20));
    let before = s.snapshot();
    for bad in [
        done(1, 5, 12, 0, 6),
        done(1, 12, 11, 0, 12),
        done(1, 12, 14, 0, 20),
    ] {
        assert!(matches!(s.apply(3, &bad), Applied::Ignored(_)), "{bad:?}");
    }
    assert!(matches!(s.apply(3, &accept(2, 5, 4)), Applied::Ignored(_)));
    let mut after = ReplicatedState::restore(&s.snapshot()).unwrap();
    after.apply(0, &accept(1, 10, 20));
    assert_eq!(
        ReplicatedState::restore(&before).unwrap().request(&key(1)),
        after.request(&key(1))
    );
}

#[test]
fn snapshots_round_trip_and_answered_requests_are_bounded() {
    let mut s = ReplicatedState::new(2);
    for id in 0..4 {
        s.apply(3 * id + 1, &accept(id, 0, u64::MAX));
        s.apply(3 * id + 2, &done(id, 0, u64::MAX, id, id));
        let answered = Command::Answered {
            key: key(id),
            hash: id,
            nonce: id,
        };
        s.apply(3 * id + 3, &answered);
    }
    s.apply(13, &accept(9, 1, 2));
    let restored = ReplicatedState::restore(&s.snapshot()).unwrap();
    assert_eq!(restored, s);
    assert_eq!(restored.snapshot(), s.snapshot());
    let known: Vec<u64> = restored.requests().map(|(k, _)| k.id).collect();
    assert_eq!(
        known,
        [2, 3, 9],
        "the two latest answered, and the open one"
    );
    assert_eq!(restored.unanswered().count(), 1);
    assert_eq!(restored.applied_index(), 13);
    assert!(ReplicatedState::restore(b"{").is_err());
}

/// Replicas on a perfect network, each with its durable disk.
struct Group {
    replicas: BTreeMap<u64, Replica>,
    disks: BTreeMap<u64, Disk>,
    config: BTreeMap<u64, ReplicaConfig>,
    applied: BTreeMap<u64, Vec<(u64, Command)>>,
    /// Snapshot messages still to lose.
    lose_snapshots: u32,
}

impl Group {
    fn new(n: u64, snapshot_every: u64) -> Group {
        let voters: Vec<u64> = (1..=n).collect();
        let mut g = Group {
            replicas: BTreeMap::new(),
            disks: BTreeMap::new(),
            config: BTreeMap::new(),
            applied: BTreeMap::new(),
            lose_snapshots: 0,
        };
        for id in 1..=n {
            let config = ReplicaConfig {
                snapshot_every,
                snapshot_log_percent: 0,
                ..ReplicaConfig::for_id(id, voters.clone())
            };
            g.disks.insert(id, Disk::fresh(&voters));
            g.config.insert(id, config);
            g.start(id);
        }
        g
    }

    fn start(&mut self, id: u64) {
        let replica = Replica::new(&self.config[&id], self.disks[&id].clone()).unwrap();
        self.replicas.insert(id, replica);
    }

    /// Drains every replica's effects, delivering messages to running replicas, until
    /// nothing is left.
    fn settle(&mut self) {
        loop {
            let mut messages = Vec::new();
            for (&id, replica) in &mut self.replicas {
                while let Some(effect) = replica.poll_effect() {
                    match effect {
                        ReplicaEffect::Persist(ops) => {
                            let disk = self.disks.get_mut(&id).unwrap();
                            ops.iter().for_each(|op| disk.apply(op));
                        }
                        ReplicaEffect::Send(m) => messages.push(m),
                        ReplicaEffect::Applied { index, command, .. } => {
                            self.applied.entry(id).or_default().push((index, command));
                        }
                        ReplicaEffect::Restored => {}
                    }
                }
            }
            if messages.is_empty() {
                return;
            }
            for m in messages {
                if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot
                    && self.lose_snapshots > 0
                {
                    self.lose_snapshots -= 1;
                    continue;
                }
                if let Some(to) = self.replicas.get_mut(&m.to) {
                    to.step(m);
                }
            }
        }
    }

    fn tick_until_leader(&mut self) -> u64 {
        for _ in 0..200 {
            for r in self.replicas.values_mut() {
                r.tick();
            }
            self.settle();
            if let Some((&id, _)) = self.replicas.iter().find(|(_, r)| r.is_leader()) {
                return id;
            }
        }
        panic!("no leader elected");
    }
}

#[test]
fn a_group_elects_the_shortest_timeout_and_replicates_commands() {
    let mut g = Group::new(3, 1_000);
    let leader = g.tick_until_leader();
    assert_eq!(leader, 1, "replica 1 has the shortest election timeout");
    let follower = g.replicas.get_mut(&2).unwrap();
    assert!(matches!(
        follower.propose(&accept(1, 0, 9)),
        Err(ReplicaError::NotLeader { leader: 1 })
    ));
    let leader_replica = g.replicas.get_mut(&leader).unwrap();
    leader_replica.propose(&accept(1, 0, 9)).unwrap();
    leader_replica.propose(&done(1, 0, 9, 5, 3)).unwrap();
    g.settle();
    for r in g.replicas.values() {
        assert_eq!(r.state().request(&key(1)).unwrap().best, Some((5, 3)));
    }
    assert_eq!(g.applied[&1], g.applied[&2]);
    assert_eq!(g.applied[&1], g.applied[&3]);
}

#[test]
fn a_restarted_replica_comes_back_from_its_disk_and_a_laggard_gets_a_snapshot() {
    let mut g = Group::new(3, 5);
    let leader = g.tick_until_leader();
    // Replica 3 is down while 30 commands are committed and the log compacted.
    g.replicas.remove(&3);
    for id in 0..30 {
        g.replicas
            .get_mut(&leader)
            .unwrap()
            .propose(&accept(id, 0, id))
            .unwrap();
        g.settle();
    }
    assert!(g.replicas[&leader].stats().snapshots >= 5);
    assert!(
        g.disks[&leader].entries_ref().len() < 6,
        "the log is compacted"
    );
    // The leader restarts from its disk: same state.
    let before = g.replicas[&leader].state().snapshot();
    g.replicas.remove(&leader);
    g.start(leader);
    g.settle();
    let new_leader = g.tick_until_leader();
    g.settle();
    assert_eq!(g.replicas[&leader].state().snapshot(), before);
    // Replica 3 returns and catches up, through a snapshot (its entries are gone).
    g.start(3);
    for _ in 0..5 {
        for r in g.replicas.values_mut() {
            r.tick();
        }
        g.settle();
    }
    assert_eq!(
        g.replicas[&3].state().snapshot(),
        g.replicas[&new_leader].state().snapshot()
    );
    assert_eq!(g.replicas[&3].state().unanswered().count(), 30);
    assert!(
        g.disks[&3].snapshot_ref().get_metadata().index > 0,
        "through a snapshot"
    );
}

#[test]
fn raft_messages_round_trip_on_the_wire_and_garbage_is_an_error() {
    let mut g = Group::new(3, 1_000);
    g.tick_until_leader();
    g.replicas
        .get_mut(&1)
        .unwrap()
        .propose(&accept(1, 0, 9))
        .unwrap();
    let mut seen = 0;
    while let Some(effect) = g.replicas.get_mut(&1).unwrap().poll_effect() {
        if let ReplicaEffect::Send(m) = effect {
            let bytes = encode_message(&m);
            assert_eq!(decode_message(&bytes).unwrap(), m);
            seen += 1;
        }
    }
    assert!(seen > 0);
    assert!(decode_message(&[0xff, 0xff, 0xff]).is_err());
}

#[test]
fn a_lost_snapshot_is_sent_again() {
    let mut g = Group::new(3, 5);
    let leader = g.tick_until_leader();
    g.replicas.remove(&3);
    for id in 0..12 {
        g.replicas
            .get_mut(&leader)
            .unwrap()
            .propose(&accept(id, 0, id))
            .unwrap();
        g.settle();
    }
    g.lose_snapshots = 2;
    g.start(3);
    for _ in 0..100 {
        for r in g.replicas.values_mut() {
            r.tick();
        }
        g.settle();
    }
    assert_eq!(g.lose_snapshots, 0, "two snapshots were lost");
    assert_eq!(g.replicas[&leader].stats().snapshots_retried, 2);
    assert_eq!(g.replicas[&3].state().unanswered().count(), 12);
}
