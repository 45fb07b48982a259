//! The conformance scenarios over real UDP on loopback, through the fault proxy, for each
//! pairing of runtimes. One test per (family, pairing); scenarios of a family run one after
//! another so that the machine's cores are not oversubscribed.

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sim::scenario::{Family, Scenario, SCENARIOS};
use tests::runner::{run, Pairing};

fn seed() -> u64 {
    std::env::var("LSP_UDP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Scenarios this long are mostly waiting on epochs: they run in the background, next to
/// the family's short ones, to keep the suite's wall time down.
const LONG: Duration = Duration::from_secs(20);

fn run_family(family: Family, pairing: Pairing) {
    let base = seed();
    let chosen: Vec<(usize, &'static Scenario)> = SCENARIOS
        .iter()
        .enumerate()
        .filter(|(_, s)| s.family == family)
        .collect();
    assert!(
        !chosen.is_empty(),
        "no scenario of {family:?} runs over real UDP"
    );
    let run_one = move |index: usize, scenario: &Scenario| -> Result<(), String> {
        let seed = base.wrapping_add(index as u64);
        match run(scenario, index, pairing, seed) {
            Ok(took) => {
                eprintln!("{pairing:?} {}: ok in {took:?}", scenario.name);
                Ok(())
            }
            Err(e) => {
                eprintln!(
                    "{pairing:?} {}: FAILED: {e} (LSP_UDP_SEED={base})",
                    scenario.name
                );
                Err(format!("{}: {e}", scenario.name))
            }
        }
    };
    let background: Vec<_> = chosen
        .iter()
        .filter(|(_, s)| s.deadline >= LONG)
        .map(|&(index, scenario)| thread::spawn(move || run_one(index, scenario)))
        .collect();
    let mut failures: Vec<String> = chosen
        .iter()
        .filter(|(_, s)| s.deadline < LONG)
        .filter_map(|&(index, scenario)| run_one(index, scenario).err())
        .collect();
    for handle in background {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a scenario panicked".into()),
        }
    }
    assert!(
        failures.is_empty(),
        "{pairing:?} failures (LSP_UDP_SEED={base}): {failures:#?}"
    );
}

macro_rules! family_tests {
    ($($name:ident: $family:expr, $pairing:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_family($family, $pairing);
            }
        )*
    };
}

family_tests! {
    echo_mio: Family::Echo, Pairing::Mio;
    echo_smol: Family::Echo, Pairing::Smol;
    echo_mixed: Family::Echo, Pairing::Mixed;
    window_mio: Family::Window, Pairing::Mio;
    window_smol: Family::Window, Pairing::Smol;
    window_mixed: Family::Window, Pairing::Mixed;
    close_mio: Family::Close, Pairing::Mio;
    close_smol: Family::Close, Pairing::Smol;
    close_mixed: Family::Close, Pairing::Mixed;
    integrity_mio: Family::Integrity, Pairing::Mio;
    integrity_smol: Family::Integrity, Pairing::Smol;
    integrity_mixed: Family::Integrity, Pairing::Mixed;
    buffering_mio: Family::Buffering, Pairing::Mio;
    buffering_smol: Family::Buffering, Pairing::Smol;
    buffering_mixed: Family::Buffering, Pairing::Mixed;
    seqnum_mio: Family::SeqNum, Pairing::Mio;
    seqnum_smol: Family::SeqNum, Pairing::Smol;
    seqnum_mixed: Family::SeqNum, Pairing::Mixed;
}
