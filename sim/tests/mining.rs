//! The whole-system simulation in the normal test run: a few hundred seeds (a larger sweep
//! is `cargo run --release -p sim -- sweep-miner --seeds 10000`), and checks that each
//! invariant does catch a deliberately broken system.

use std::time::Duration;

use sim::mining::{check_seed, run_case, MinerCase, Sabotage};

#[test]
fn a_sweep_of_200_seeds_passes_and_replays_identically() {
    let mut answered = 0;
    let failures: Vec<String> = (0..200)
        .filter_map(|seed| match check_seed(seed) {
            Ok(o) => {
                answered += o.answered;
                None
            }
            Err(e) => Some(format!("seed {seed}: {e}")),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Not vacuous: most clients survive and are answered.
    assert!(answered > 400, "only {answered} clients answered");
}

#[test]
fn different_seeds_draw_different_cases_and_traces() {
    let a = run_case(&MinerCase::generate(1), false).expect("seed 1 passes");
    let b = run_case(&MinerCase::generate(2), false).expect("seed 2 passes");
    assert_ne!(MinerCase::generate(1), MinerCase::generate(2));
    assert_ne!(a.digest, b.digest);
}

/// The first seed from 0 whose run with `sabotage` fails, and its failure.
fn first_caught(sabotage: Sabotage) -> Option<(u64, String)> {
    (0..20).find_map(|seed| {
        let mut case = MinerCase::generate(seed);
        case.sabotage = Some(sabotage);
        run_case(&case, false).err().map(|e| (seed, e))
    })
}

#[test]
fn wrong_answers_trusted_by_the_server_are_caught() {
    let (_, e) = first_caught(Sabotage::WrongAnswers).expect("caught");
    assert!(e.contains("verified result"), "{e}");
}

#[test]
fn an_idle_miner_is_caught() {
    let (_, e) = first_caught(Sabotage::DropJoins).expect("caught");
    assert!(e.contains("idles while request"), "{e}");
}

#[test]
fn a_write_after_loss_is_caught() {
    // One slow miner; the client crashes long before its answer could be ready, so the
    // server loses it first.
    let mut case = MinerCase::generate(0);
    case.miners.truncate(1);
    case.miners[0].rate = 20_000;
    case.clients.truncate(1);
    let client = &mut case.clients[0];
    client.upper = client.lower + 19_999;
    client.crash_at = Some(client.start + Duration::from_millis(1));
    client.start = Duration::ZERO;
    assert!(run_case(&case, false).is_ok());
    case.sabotage = Some(Sabotage::ForgetLosses);
    let e = run_case(&case, false).unwrap_err();
    assert!(e.contains("after its loss"), "{e}");
}

#[test]
fn a_hung_miner_needs_backup_jobs_or_leases() {
    // The first seeds with a miner that hangs holding work pass only thanks to backups
    // and leases.
    let caught = (0..200)
        .map(MinerCase::generate)
        .filter(|case| case.miners.iter().any(|m| m.stall_on_job.is_some()))
        .filter_map(|mut case| {
            // Minimum mode only: a hung miner's target job above a hit needs no recovery.
            for c in &mut case.clients {
                c.mode = bitcoin_core::message::Mode::Minimum;
            }
            for m in &mut case.miners {
                m.caps = bitcoin_core::message::Caps::NONE;
            }
            run_case(&case, false).expect("passes with backups");
            case.sabotage = Some(Sabotage::NoRecovery);
            run_case(&case, false).err()
        })
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(caught.len(), 2, "{caught:?}");
    assert!(caught.iter().all(|e| e.contains("liveness")), "{caught:?}");
}
