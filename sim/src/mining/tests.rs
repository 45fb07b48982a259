//! Whole-system runs with miners that lie, answer out of order or never answer, and with
//! honest prompt miners, checking the figures the trust and lease policies promise.

use super::*;
use crate::net::Faults;

/// The totals of `outcomes`.
fn total(outcomes: &[Outcome]) -> Outcome {
    outcomes.iter().fold(Outcome::default(), |mut t, o| {
        t.answered += o.answered;
        t.jobs += o.jobs;
        t.backups += o.backups;
        t.nonces_sent += o.nonces_sent;
        t.nonces_requested += o.nonces_requested;
        t.lazy_answers += o.lazy_answers;
        t.lazy_caught += o.lazy_caught;
        t.lazy_escaped += o.lazy_escaped;
        t.lies_caught += o.lies_caught;
        t.expired_leases += o.expired_leases;
        t.reissued += o.reissued;
        t
    })
}

#[test]
fn lying_out_of_order_and_silent_miners_never_corrupt_an_answer() {
    let seeds = 0..300;
    let mut outcomes = Vec::new();
    for seed in seeds.clone() {
        match check_seed(seed) {
            Ok(o) => outcomes.push(o),
            Err(e) => panic!(
                "seed {seed}: {e}\n  replay: cargo run --release -p sim -- replay-miner --seed {seed} -v"
            ),
        }
    }
    let cases: Vec<MinerCase> = seeds.map(MinerCase::generate).collect();
    for b in [
        Behaviour::OutOfOrder,
        Behaviour::WrongHash,
        Behaviour::OutOfRange,
        Behaviour::Lazy,
    ] {
        let n = cases
            .iter()
            .filter(|c| c.miners.iter().any(|m| m.behaviour == b))
            .count();
        assert!(n >= 10, "only {n} cases with a {b:?} miner");
    }
    let t = total(&outcomes);
    let rate = t.lazy_caught as f64 / t.lazy_answers.max(1) as f64;
    eprintln!(
        "{} seeds: {} answered ({} wrong through an escaped lazy answer); lies caught {}; \
         lazy answers {} caught {} ({:.1}%, documented 32/33 = 97.0% for jobs over 32 \
         nonces, 100% below); leases expired {}, jobs re-issued {}",
        outcomes.len(),
        t.answered,
        t.lazy_escaped,
        t.lies_caught,
        t.lazy_answers,
        t.lazy_caught,
        100.0 * rate,
        t.expired_leases,
        t.reissued
    );
    assert!(t.lies_caught > 50 && t.lazy_answers > 20, "{t:?}");
    assert!(rate >= 0.9, "lazy detection {rate:.3} is far below 32/33");
    assert!(t.reissued > 0, "no lease ever re-issued a job");
}

/// `sweep-miner` seed `seed` with every miner honest, prompt and immortal, every client
/// patient, and a perfect network.
fn honest_prompt(seed: u64) -> MinerCase {
    let mut case = MinerCase::generate(seed);
    case.faults = Faults::default();
    case.outages.clear();
    for m in &mut case.miners {
        m.behaviour = Behaviour::Honest;
        m.crash_at = None;
        m.crash_on_job = None;
        m.stall_on_job = None;
        // Prompt: at least as fast as the scheduler's starting estimate (10 000 nonces per
        // 50 ms), so no job is late.
        m.rate = m.rate.max(200_000);
    }
    for c in &mut case.clients {
        c.crash_at = None;
    }
    case
}

#[test]
fn honest_prompt_miners_get_at_most_five_percent_redundant_work() {
    let mut outcomes = Vec::new();
    for seed in 0..200 {
        let case = honest_prompt(seed);
        let o = run_case(&case, false).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let ratio = o.nonces_sent as f64 / o.nonces_requested.max(1) as f64;
        assert!(
            o.nonces_sent * 100 <= o.nonces_requested * 105,
            "seed {seed}: {} nonces handed out for {} requested ({ratio:.3})\n{case}",
            o.nonces_sent,
            o.nonces_requested
        );
        outcomes.push(o);
    }
    let t = total(&outcomes);
    eprintln!(
        "honest prompt miners, 200 seeds: {} nonces handed out for {} requested ({:.4}), \
         {} backups, {} leases expired",
        t.nonces_sent,
        t.nonces_requested,
        t.nonces_sent as f64 / t.nonces_requested.max(1) as f64,
        t.backups,
        t.expired_leases
    );
}
