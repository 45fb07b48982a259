//! Target mode in the log: the `Accept`'s mode, `TargetDone`, `AnsweredNotFound`, when a
//! target request is answerable, and old log entries and snapshots still decoding.

use super::*;
use crate::hash::{Algo, Zeros};

fn key(id: u64) -> RequestKey {
    RequestKey {
        client: "c".into(),
        id,
    }
}

fn target(zeros: u32, algo: Algo) -> Mode {
    Mode::Target {
        zeros: Zeros::new(zeros).unwrap(),
        algo,
    }
}

fn accept(id: u64, lower: u64, upper: u64, mode: Mode) -> Command {
    Command::Accept {
        key: key(id),
        message: "m".into(),
        lower,
        upper,
        mode,
    }
}

fn chunk(id: u64, lower: u64, upper: u64, hit: Option<u64>) -> Command {
    // Hash 1 has 63 leading zero bits: a hit for any difficulty up to 63.
    Command::TargetDone {
        key: key(id),
        lower,
        upper,
        hit: hit.map(|nonce| (1, nonce)),
    }
}

fn apply_all(state: &mut ReplicatedState, commands: &[Command]) -> Vec<Applied> {
    let start = state.applied_index();
    commands
        .iter()
        .enumerate()
        .map(|(i, c)| state.apply(start + i as u64 + 1, c))
        .collect()
}

#[test]
fn old_entries_decode_and_minimum_entries_encode_as_before() {
    // Entries as written before target mode existed.
    let old = br#"{"Accept":{"key":{"client":"id","id":7},"message":"m","lower":0,"upper":9,"mode":"Minimum"}}"#;
    let decoded = Command::decode(old).unwrap();
    assert_eq!(
        decoded,
        Command::Accept {
            key: RequestKey::of_id(7),
            message: "m".into(),
            lower: 0,
            upper: 9,
            mode: Mode::Minimum,
        }
    );
    assert_eq!(decoded.encode(), old.to_vec(), "the same bytes both ways");
    let old = br#"{"Answered":{"key":{"client":"c","id":1},"hash":5,"nonce":3}}"#;
    assert!(matches!(
        Command::decode(old),
        Ok(Command::Answered {
            hash: 5,
            nonce: 3,
            ..
        })
    ));
    // The target mode round-trips, and a difficulty or hash that is not one does not
    // decode.
    for mode in [target(1, Algo::Sha256), target(64, Algo::Sha256d)] {
        let entries = [
            accept(1, 0, 9, mode),
            chunk(1, 0, 4, Some(3)),
            chunk(1, 5, 9, None),
            Command::AnsweredNotFound { key: key(1) },
        ];
        for entry in entries {
            assert_eq!(Command::decode(&entry.encode()).unwrap(), entry);
        }
    }
    let text = String::from_utf8(accept(1, 0, 9, target(12, Algo::Sha256d)).encode()).unwrap();
    assert!(
        text.contains(r#""mode":{"Target":{"zeros":12,"algo":"sha256d"}}"#),
        "{text}"
    );
    for bad in [
        text.replace(r#""zeros":12"#, r#""zeros":0"#),
        text.replace(r#""zeros":12"#, r#""zeros":65"#),
        text.replace("sha256d", "md5"),
    ] {
        assert!(Command::decode(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn a_target_request_is_answerable_once_everything_below_its_smallest_hit_is_covered() {
    let mut s = ReplicatedState::new(8);
    s.apply(1, &accept(1, 100, 1_099, target(8, Algo::Sha256)));
    // Out of order: a hit high up first, then a chunk without one, then a lower hit.
    let applied = apply_all(&mut s, &[chunk(1, 600, 799, Some(700))]);
    assert_eq!(
        applied,
        [Applied::Covered {
            key: key(1),
            complete: false
        }]
    );
    let r = s.request(&key(1)).unwrap();
    assert_eq!(r.best, Some((1, 700)));
    // Nothing above the hit is left to search, and the hit itself is searched.
    assert_eq!(r.gaps(), [(100, 599)]);
    assert_eq!(r.answerable(), None);
    apply_all(&mut s, &[chunk(1, 100, 299, None)]);
    assert_eq!(s.request(&key(1)).unwrap().gaps(), [(300, 599)]);
    // A hit above the gap does not answer, whatever its hash.
    let early = Command::Answered {
        key: key(1),
        hash: 1,
        nonce: 700,
    };
    assert_eq!(
        apply_all(&mut s, std::slice::from_ref(&early)),
        [Applied::Ignored("not the answer the covered nonces prove")]
    );
    // A lower hit in the last gap: everything below it is covered, it is the answer
    // (500..=599 is still unsearched, and need not be).
    let applied = apply_all(&mut s, &[chunk(1, 300, 499, Some(450))]);
    assert_eq!(
        applied,
        [Applied::Covered {
            key: key(1),
            complete: true
        }]
    );
    let r = s.request(&key(1)).unwrap();
    assert_eq!(r.gaps(), Vec::<(u64, u64)>::new());
    assert_eq!(
        r.answerable(),
        Some(Outcome::Found {
            hash: 1,
            nonce: 450
        })
    );
    assert_eq!(
        apply_all(&mut s, &[early]),
        [Applied::Ignored("not the answer the covered nonces prove")]
    );
    let answered = Command::Answered {
        key: key(1),
        hash: 1,
        nonce: 450,
    };
    assert_eq!(
        apply_all(&mut s, std::slice::from_ref(&answered)),
        [Applied::Answered {
            key: key(1),
            hash: 1,
            nonce: 450
        }]
    );
    let r = s.request(&key(1)).unwrap();
    assert_eq!(
        r.outcome(),
        Some(Outcome::Found {
            hash: 1,
            nonce: 450
        })
    );
    assert_eq!(s.unanswered().count(), 0);
    // Idempotent: applied again, nothing changes.
    let before = s.clone();
    apply_all(&mut s, &[answered, chunk(1, 100, 1_099, None)]);
    assert_eq!(s.request(&key(1)), before.request(&key(1)));
}

#[test]
fn a_target_request_without_a_hit_is_answered_not_found_once_all_is_covered() {
    let mut s = ReplicatedState::new(8);
    let not_found = Command::AnsweredNotFound { key: key(2) };
    s.apply(1, &accept(2, 0, 999, target(20, Algo::Sha256d)));
    apply_all(&mut s, &[chunk(2, 500, 999, None), chunk(2, 0, 199, None)]);
    assert_eq!(s.request(&key(2)).unwrap().gaps(), [(200, 499)]);
    assert_eq!(
        apply_all(&mut s, std::slice::from_ref(&not_found)),
        [Applied::Ignored("not the answer the covered nonces prove")]
    );
    apply_all(&mut s, &[chunk(2, 200, 499, None)]);
    assert_eq!(
        s.request(&key(2)).unwrap().answerable(),
        Some(Outcome::NotFound)
    );
    let wrong = Command::Answered {
        key: key(2),
        hash: 0,
        nonce: 0,
    };
    assert_eq!(
        apply_all(&mut s, &[wrong, not_found.clone()]),
        [
            Applied::Ignored("not the answer the covered nonces prove"),
            Applied::NotFound { key: key(2) }
        ]
    );
    let r = s.request(&key(2)).unwrap();
    assert!(r.answered() && r.answerable().is_none());
    assert_eq!(r.outcome(), Some(Outcome::NotFound));
    assert_eq!(s.unanswered().count(), 0);
    assert_eq!(
        apply_all(&mut s, &[not_found]),
        [Applied::Ignored("already answered")]
    );
    // A resubmission finds it answered; the snapshot keeps it.
    assert_eq!(
        apply_all(&mut s, &[accept(2, 0, 999, Mode::Minimum)]),
        [Applied::Accepted {
            key: key(2),
            fresh: false
        }]
    );
    let restored = ReplicatedState::restore(&s.snapshot()).unwrap();
    assert_eq!(restored, s);
    assert_eq!(
        restored.request(&key(2)).unwrap().outcome(),
        Some(Outcome::NotFound)
    );
}

#[test]
fn chunks_of_the_wrong_mode_or_without_a_hit_change_nothing() {
    let mut s = ReplicatedState::new(8);
    s.apply(1, &accept(1, 0, 99, target(8, Algo::Sha256)));
    s.apply(2, &accept(2, 0, 99, Mode::Minimum));
    let before = s.clone();
    let nonsense = [
        Command::RangeDone {
            key: key(1),
            lower: 0,
            upper: 99,
            hash: 5,
            nonce: 3,
        },
        chunk(2, 0, 99, None),
        // 2^56 has 7 leading zero bits: not a hit at 8.
        Command::TargetDone {
            key: key(1),
            lower: 0,
            upper: 99,
            hit: Some((1 << 56, 4)),
        },
        chunk(1, 0, 99, Some(100)),
        chunk(1, 50, 100, None),
        chunk(3, 0, 9, None),
        Command::AnsweredNotFound { key: key(2) },
    ];
    for applied in apply_all(&mut s, &nonsense) {
        assert!(matches!(applied, Applied::Ignored(_)), "{applied:?}");
    }
    assert_eq!(
        s.request(&key(1)),
        before.request(&key(1)),
        "target unchanged"
    );
    assert_eq!(
        s.request(&key(2)),
        before.request(&key(2)),
        "minimum unchanged"
    );
    // A complete minimum request is not answered "not found".
    apply_all(
        &mut s,
        &[Command::RangeDone {
            key: key(2),
            lower: 0,
            upper: 99,
            hash: 5,
            nonce: 3,
        }],
    );
    assert!(matches!(
        apply_all(&mut s, &[Command::AnsweredNotFound { key: key(2) }])[..],
        [Applied::Ignored(_)]
    ));
}

#[test]
fn coverage_in_any_order_gives_the_same_state() {
    let chunks = [
        chunk(1, 0, 99, None),
        chunk(1, 100, 199, Some(150)),
        chunk(1, 200, 299, Some(210)),
        chunk(1, 300, 399, None),
        chunk(1, 120, 140, None),
    ];
    let mut reference = None;
    // Every rotation and its reverse.
    for start in 0..chunks.len() {
        for reverse in [false, true] {
            let mut order: Vec<Command> =
                chunks.iter().cycle().skip(start).take(5).cloned().collect();
            if reverse {
                order.reverse();
            }
            let mut s = ReplicatedState::new(8);
            s.apply(1, &accept(1, 0, 399, target(8, Algo::Sha256)));
            apply_all(&mut s, &order);
            let r = s.request(&key(1)).unwrap().clone();
            assert_eq!(
                r.answerable(),
                Some(Outcome::Found {
                    hash: 1,
                    nonce: 150
                })
            );
            assert_eq!(*reference.get_or_insert_with(|| r.clone()), r);
        }
    }
}

#[test]
fn minimum_snapshots_are_the_bytes_they_were_and_old_ones_restore() {
    let mut s = ReplicatedState::new(8);
    s.apply(1, &accept(1, 0, 9, Mode::Minimum));
    s.apply(
        2,
        &Command::RangeDone {
            key: key(1),
            lower: 0,
            upper: 9,
            hash: 5,
            nonce: 3,
        },
    );
    let snapshot = String::from_utf8(s.snapshot()).unwrap();
    assert!(!snapshot.contains("not_found"), "{snapshot}");
    assert!(snapshot.contains(r#""mode":"Minimum""#), "{snapshot}");
    // What a replica wrote before target mode: no `not_found` key.
    let old = r#"{"requests":[[{"client":"c","id":1},{"message":"m","lower":0,"upper":9,"mode":"Minimum","covered":{},"best":[5,3],"answer":[5,3]}]],"answered":[{"client":"c","id":1}],"max_answered":8,"applied_index":3}"#;
    let restored = ReplicatedState::restore(old.as_bytes()).unwrap();
    let r = restored.request(&key(1)).unwrap();
    assert_eq!(r.outcome(), Some(Outcome::Found { hash: 5, nonce: 3 }));
    assert_eq!(String::from_utf8(restored.snapshot()).unwrap(), old);
}
