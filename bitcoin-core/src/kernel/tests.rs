//! Every kernel path against the scalar reference [`crate::hash::hash`].

use super::driver;
use super::engine::Engine;
use super::lanes::PortableEngine;
use super::layout::Prefix;
use super::*;
use crate::hash::{hash, pow10};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// Quickcheck cases per run; each case checks every path.
const CASES: u64 = 10_000;

/// The reference: a plain scan with strict `<`, so the earliest nonce wins ties.
fn reference(msg: &[u8], lower: u64, upper: u64) -> MinHash {
    let mut best = MinHash::MAX;
    for nonce in lower..=upper {
        let hash = hash(msg, nonce);
        if hash < best.hash {
            best = MinHash { hash, nonce };
        }
    }
    best
}

/// Every available path, and the portable 16-lane engine, on one range.
fn every_engine(msg: &[u8], lower: u64, upper: u64) -> Vec<(String, MinHash)> {
    fn run<E: Engine>(engine: E, msg: &[u8], lower: u64, upper: u64) -> MinHash {
        driver::search(engine, &Prefix::new(msg), lower, upper)
    }
    let mut out: Vec<(String, MinHash)> = Path::available()
        .into_iter()
        .map(|path| {
            let kernel = Kernel::new(path).expect("listed as available");
            (path.to_string(), kernel.min_hash(msg, lower, upper))
        })
        .collect();
    // The AVX-512 engine's code with portable lanes, for machines without AVX-512.
    let portable = run(PortableEngine::<16>, msg, lower, upper);
    out.push(("portable-16".into(), portable));
    out
}

/// A message and a small range, usually straddling a digit-count boundary.
#[derive(Clone, Debug)]
struct Case {
    msg: Vec<u8>,
    lower: u64,
    upper: u64,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Case {
        let len = usize::arbitrary(g) % 201;
        let msg = (0..len).map(|_| u8::arbitrary(g)).collect();
        // Mostly short ranges; one in sixteen long enough for the 16-lane lockstep to use two
        // low digits (16 · 10^2 nonces).
        let span = if u8::arbitrary(g) % 16 == 0 {
            u64::arbitrary(g) % 2_500
        } else {
            u64::arbitrary(g) % 200
        };
        let (lower, upper) = match u8::arbitrary(g) % 8 {
            // Around 10^e, e = 1..=19: crosses from e to e + 1 digits.
            0..=4 => {
                let edge = pow10(1 + usize::arbitrary(g) % 19);
                let below = (u64::arbitrary(g) % (span + 1)).min(edge);
                (edge - below, edge - below + span)
            }
            // Up to the end of the nonces.
            5 => {
                let upper = u64::MAX - u64::arbitrary(g) % 3;
                (upper - span, upper)
            }
            // From zero.
            6 => (0, span),
            // Anywhere.
            _ => {
                let lower = u64::arbitrary(g).min(u64::MAX - span);
                (lower, lower + span)
            }
        };
        Case { msg, lower, upper }
    }
}

fn every_engine_matches_reference(case: Case) -> TestResult {
    let expected = reference(&case.msg, case.lower, case.upper);
    for (name, got) in every_engine(&case.msg, case.lower, case.upper) {
        if got != expected {
            return TestResult::error(format!("{name}: {got:?}, expected {expected:?}"));
        }
    }
    TestResult::passed()
}

#[test]
fn quickcheck_every_path_against_reference() {
    QuickCheck::new()
        .tests(CASES)
        .max_tests(CASES)
        .quickcheck(every_engine_matches_reference as fn(Case) -> TestResult);
}

#[test]
fn paths_detected() {
    let available = Path::available();
    assert_eq!(available.first(), Some(&Path::Scalar));
    assert!(available.contains(&Path::best()));
    assert_eq!(Kernel::best().path(), Path::best());
    for path in Path::ALL {
        assert_eq!(path.name().parse::<Path>(), Ok(path));
        assert_eq!(Kernel::new(path).is_ok(), available.contains(&path));
    }
    assert!("sse9".parse::<Path>().is_err());
    eprintln!(
        "kernel paths available: {available:?}, best {}",
        Path::best()
    );
}

#[test]
fn empty_range_is_the_identity() {
    for path in Path::available() {
        let kernel = Kernel::new(path).expect("available");
        assert_eq!(kernel.min_hash("msg", 5, 4), MinHash::MAX);
        assert_eq!(kernel.min_hash_parallel("msg", 5, 4, cores()), MinHash::MAX);
    }
}

#[test]
fn single_nonces_everywhere() {
    for msg in [
        "",
        "msg",
        &"y".repeat(55),
        &"z".repeat(63),
        &"w".repeat(119),
    ] {
        for nonce in [0, 1, 9, 10, 99, 100, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            let expected = MinHash {
                hash: hash(msg, nonce),
                nonce,
            };
            for (name, got) in every_engine(msg.as_bytes(), nonce, nonce) {
                assert_eq!(got, expected, "{name} msg len {} nonce {nonce}", msg.len());
            }
        }
    }
}

#[test]
fn chunks_fold_with_min() {
    let prepared = Kernel::best().prepare("chunks");
    let whole = prepared.min_hash(990, 20_010);
    let folded = (0..20)
        .map(|i| prepared.min_hash(990 + i * 1001, 990 + i * 1001 + 1000))
        .fold(MinHash::MAX, MinHash::min);
    assert_eq!(whole, folded);
    assert_eq!(whole, reference(b"chunks", 990, 20_010));
}

#[test]
fn parallel_matches_single_thread() {
    for path in Path::available() {
        let kernel = Kernel::new(path).expect("available");
        for threads in [1, 2, 3] {
            let threads = NonZeroUsize::new(threads).expect("nonzero");
            for (lower, upper) in [(0, 300_000), (u64::MAX - 200_000, u64::MAX), (7, 7)] {
                assert_eq!(
                    kernel.min_hash_parallel("parallel", lower, upper, threads),
                    kernel.min_hash("parallel", lower, upper),
                    "{path} {threads} threads {lower}..={upper}"
                );
            }
        }
    }
}

#[test]
fn whole_nonce_space_does_not_overflow() {
    // The whole range would take years; check the splitting arithmetic on its two ends.
    let kernel = Kernel::new(Path::Scalar).expect("scalar is always available");
    let top = kernel.min_hash("x", u64::MAX - 50, u64::MAX);
    assert_eq!(top, reference(b"x", u64::MAX - 50, u64::MAX));
    let bottom = kernel.min_hash("x", 0, 50);
    assert_eq!(bottom, reference(b"x", 0, 50));
}
