//! The 64 conformance scenarios, each under several seeds, in virtual time.

use sim::conformance;
use sim::scenario::{Family, SCENARIOS};

const SEEDS: std::ops::RangeInclusive<u64> = 1..=4;

fn run_family(family: Family) {
    let mut failures = Vec::new();
    let mut runs = 0;
    for scenario in SCENARIOS.iter().filter(|s| s.family == family) {
        for seed in SEEDS {
            runs += 1;
            if let Err(e) = conformance::run(scenario, seed, false) {
                failures.push(format!("{} seed {seed}: {e}", scenario.name));
            }
        }
    }
    assert!(runs > 0);
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn echo_and_robustness() {
    run_family(Family::Echo);
}

#[test]
fn windows_backoff_and_ordering() {
    run_family(Family::Window);
}

#[test]
fn close() {
    run_family(Family::Close);
}

#[test]
fn buffering_while_the_network_is_down() {
    run_family(Family::Buffering);
}

#[test]
fn sequence_numbers_and_cack() {
    run_family(Family::SeqNum);
}

#[test]
fn integrity() {
    run_family(Family::Integrity);
}

#[test]
fn a_scenario_replays_to_the_same_digest() {
    for name in ["robust-5", "out-of-order-2", "cack-server-4"] {
        let s = sim::scenario::Scenario::by_name(name).expect("known scenario");
        let a = conformance::run(s, 7, false).expect("passes");
        let b = conformance::run(s, 7, false).expect("passes");
        let c = conformance::run(s, 8, false).expect("passes");
        assert_eq!(a, b, "{name}");
        assert_ne!(
            a.digest, c.digest,
            "{name}: seeds 7 and 8 gave the same trace"
        );
    }
}
