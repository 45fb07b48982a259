//! Replicated coordinators (raft-rs) in the simulator: a sweep of seeds, each run twice,
//! and planted bugs that the checkers must catch.

use sim::replica::{check_seed, run_case, ReplicaCase, Sabotage};

#[test]
fn a_sweep_of_seeds_keeps_every_invariant_and_answers_every_request() {
    let mut answered = 0;
    let mut snapshots = 0;
    for seed in 0..200 {
        match check_seed(seed) {
            Ok(o) => {
                answered += o.answered;
                snapshots += o.snapshots_installed;
            }
            Err(failure) => panic!(
                "seed {seed}: {failure}\n{}  replay: cargo run --release -p sim -- replay-raft --seed {seed} -v",
                ReplicaCase::generate(seed)
            ),
        }
    }
    let requests: u64 = (0..200)
        .map(|s| ReplicaCase::generate(s).requests.len() as u64)
        .sum();
    assert_eq!(answered, requests, "every request answered exactly once");
    assert!(snapshots > 0, "some follower caught up through a snapshot");
}

#[test]
fn runs_are_a_function_of_their_seed() {
    let a = run_case(&ReplicaCase::generate(11), false).unwrap();
    let b = run_case(&ReplicaCase::generate(11), false).unwrap();
    let c = run_case(&ReplicaCase::generate(12), false).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.digest, c.digest);
}

#[test]
fn a_lazy_leader_is_caught_by_the_true_minimum_check() {
    let caught = (0..10)
        .filter(|&seed| {
            let case = ReplicaCase::generate(seed).with_sabotage(Sabotage::LazyLeader);
            matches!(run_case(&case, false), Err(e) if e.contains("true minimum"))
        })
        .count();
    assert!(caught >= 9, "only {caught} of 10 lazy runs caught");
}

#[test]
fn a_replica_that_forgets_its_disk_breaks_safety_and_is_caught() {
    let caught: Vec<String> = (0..300)
        .filter_map(|seed| {
            let case = ReplicaCase::generate(seed).with_sabotage(Sabotage::ForgetDisk);
            run_case(&case, false).err()
        })
        .filter(|e| !e.starts_with("liveness"))
        .collect();
    assert!(!caught.is_empty(), "no safety violation caught in 300 runs");
}
