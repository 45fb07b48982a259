//! The conformance scenarios over real UDP on loopback, through the fault proxy, for each
//! pairing of runtimes. One test per (family, pairing); scenarios of a family run one after
//! another so that the machine's cores are not oversubscribed.

use std::time::{SystemTime, UNIX_EPOCH};

use sim::scenario::{Family, SCENARIOS};
use tests::runner::{run, supports, Pairing};

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

fn run_family(family: Family, pairing: Pairing) {
    let base = seed();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        if scenario.family != family || !supports(scenario.mode) {
            continue;
        }
        let seed = base.wrapping_add(index as u64);
        ran += 1;
        match run(scenario, index, pairing, seed) {
            Ok(took) => eprintln!("{pairing:?} {}: ok in {took:?}", scenario.name),
            Err(e) => {
                eprintln!(
                    "{pairing:?} {}: FAILED: {e} (LSP_UDP_SEED={base})",
                    scenario.name
                );
                failures.push(format!("{}: {e}", scenario.name));
            }
        }
    }
    assert!(ran > 0, "no scenario of {family:?} ran");
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
}
