//! Every kernel path against the scalar reference [`crate::hash::hash`].

use super::driver;
use super::engine::Engine;
use super::lanes::PortableEngine;
use super::layout::Prefix;
use super::*;
use crate::hash::{hash, pow10, Algo, Zeros};
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

/// The minimum under `algo` from the independent definitions: [`reference`] for `sha256`,
/// the plain `sha2` digest applied twice to the formatted text for `sha256d`.
fn reference_algo(algo: Algo, msg: &[u8], lower: u64, upper: u64) -> MinHash {
    let mut best = MinHash::MAX;
    for nonce in lower..=upper {
        let hash = independent_hash(algo, msg, nonce);
        if hash < best.hash {
            best = MinHash { hash, nonce };
        }
    }
    best
}

/// The hash of `(msg, nonce)` under `algo`, by `format!` and `Sha256::digest` (twice for
/// `sha256d`), not by the crate's `hash` module.
fn independent_hash(algo: Algo, msg: &[u8], nonce: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let mut text = msg.to_vec();
    text.extend_from_slice(format!(" {nonce}").as_bytes());
    let digest = match algo {
        Algo::Sha256 => Sha256::digest(&text),
        Algo::Sha256d => Sha256::digest(Sha256::digest(&text)),
    };
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The smallest nonce of `lower ..= upper` meeting `zeros` under `algo`: a plain ascending
/// scan of [`independent_hash`].
fn reference_first(algo: Algo, msg: &[u8], lower: u64, upper: u64, zeros: Zeros) -> Option<Hit> {
    (lower..=upper).find_map(|nonce| {
        let hash = independent_hash(algo, msg, nonce);
        (hash.leading_zeros() >= zeros.get()).then_some(Hit { hash, nonce })
    })
}

/// Every available path, and the portable 16-lane engine, on one range.
fn every_engine(msg: &[u8], lower: u64, upper: u64) -> Vec<(String, MinHash)> {
    every_engine_algo(Algo::Sha256, msg, lower, upper)
}

/// [`every_engine`] under `algo`.
fn every_engine_algo(algo: Algo, msg: &[u8], lower: u64, upper: u64) -> Vec<(String, MinHash)> {
    let goal = driver::Goal::Min(MinHash::MAX);
    every_engine_goal(algo, msg, lower, upper, goal, |prepared| {
        driver::Goal::Min(prepared.min_hash(lower, upper))
    })
    .into_iter()
    .map(|(name, goal)| match goal {
        driver::Goal::Min(best) => (name, best),
        other => panic!("{name}: a min search gave {other:?}"),
    })
    .collect()
}

/// The first hit under `algo` by every available path (through the chunked
/// [`Prepared::first_hit`]) and by the portable 16-lane engine (one unchunked walk).
fn every_engine_first(
    algo: Algo,
    msg: &[u8],
    lower: u64,
    upper: u64,
    zeros: Zeros,
) -> Vec<(String, Option<Hit>)> {
    let goal = driver::Goal::First {
        limit: zeros.limit(),
        hit: None,
    };
    every_engine_goal(algo, msg, lower, upper, goal, |prepared| {
        driver::Goal::First {
            limit: zeros.limit(),
            hit: prepared.first_hit(lower, upper, zeros),
        }
    })
    .into_iter()
    .map(|(name, goal)| match goal {
        driver::Goal::First { hit, .. } => (name, hit),
        other => panic!("{name}: a target search gave {other:?}"),
    })
    .collect()
}

/// `public` on every available path's prepared message, and the driver with the portable
/// 16-lane engine from `goal`.
fn every_engine_goal(
    algo: Algo,
    msg: &[u8],
    lower: u64,
    upper: u64,
    goal: driver::Goal,
    public: impl Fn(&Prepared) -> driver::Goal,
) -> Vec<(String, driver::Goal)> {
    fn run<E: Engine>(
        engine: E,
        algo: Algo,
        msg: &[u8],
        lower: u64,
        upper: u64,
        goal: driver::Goal,
    ) -> driver::Goal {
        driver::search(engine, algo, &Prefix::new(msg), lower, upper, goal)
    }
    let mut out: Vec<(String, driver::Goal)> = Path::available()
        .into_iter()
        .map(|path| {
            let kernel = Kernel::new(path).expect("listed as available");
            (path.to_string(), public(&kernel.prepare_algo(msg, algo)))
        })
        .collect();
    // The AVX-512 engine's code with portable lanes, for machines without AVX-512.
    let portable = run(PortableEngine::<16>, algo, msg, lower, upper, goal);
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

/// Cases per run of each of the `sha256d` and target-search properties.
const ALGO_CASES: u64 = 2_500;

fn sha256d_min_matches_reference(case: Case) -> TestResult {
    let expected = reference_algo(Algo::Sha256d, &case.msg, case.lower, case.upper);
    for (name, got) in every_engine_algo(Algo::Sha256d, &case.msg, case.lower, case.upper) {
        if got != expected {
            return TestResult::error(format!(
                "sha256d {name}: {got:?}, expected {expected:?} for {case:?}"
            ));
        }
    }
    TestResult::passed()
}

#[test]
fn quickcheck_sha256d_min_on_every_path() {
    QuickCheck::new()
        .tests(ALGO_CASES)
        .max_tests(ALGO_CASES)
        .quickcheck(sha256d_min_matches_reference as fn(Case) -> TestResult);
}

/// A target search: a [`Case`] and a difficulty, mostly low enough for a hit in the range,
/// sometimes too high for any.
#[derive(Clone, Debug)]
struct TargetCase {
    case: Case,
    zeros: Zeros,
}

impl Arbitrary for TargetCase {
    fn arbitrary(g: &mut Gen) -> TargetCase {
        let zeros = if u8::arbitrary(g) % 8 == 0 {
            1 + u32::arbitrary(g) % 64
        } else {
            1 + u32::arbitrary(g) % 10
        };
        TargetCase {
            case: Case::arbitrary(g),
            zeros: Zeros::new(zeros).expect("1 ..= 64"),
        }
    }
}

fn first_hit_matches_reference(algo: Algo, target: TargetCase) -> TestResult {
    let TargetCase { case, zeros } = &target;
    let expected = reference_first(algo, &case.msg, case.lower, case.upper, *zeros);
    for (name, got) in every_engine_first(algo, &case.msg, case.lower, case.upper, *zeros) {
        if got != expected {
            return TestResult::error(format!(
                "{algo} {name}: {got:?}, expected {expected:?} for {target:?}"
            ));
        }
    }
    TestResult::passed()
}

#[test]
fn quickcheck_first_hit_on_every_path() {
    fn sha256(target: TargetCase) -> TestResult {
        first_hit_matches_reference(Algo::Sha256, target)
    }
    fn sha256d(target: TargetCase) -> TestResult {
        first_hit_matches_reference(Algo::Sha256d, target)
    }
    for property in [sha256, sha256d] {
        QuickCheck::new()
            .tests(ALGO_CASES)
            .max_tests(ALGO_CASES)
            .quickcheck(property as fn(TargetCase) -> TestResult);
    }
}

#[test]
fn sha256d_and_first_hit_at_the_edges() {
    let msgs = [
        "",
        "msg",
        &"y".repeat(55),
        &"z".repeat(63),
        &"w".repeat(119),
    ];
    let ranges = [
        (0, 0),
        (7, 7),
        (9, 10),
        (5, 14),
        (99, 100),
        (90, 110),
        (999_999_999, 1_000_000_000),
        (u64::MAX, u64::MAX),
        (u64::MAX - 40, u64::MAX),
    ];
    for msg in msgs {
        for (lower, upper) in ranges {
            for algo in Algo::ALL {
                let expected = reference_algo(algo, msg.as_bytes(), lower, upper);
                for (name, got) in every_engine_algo(algo, msg.as_bytes(), lower, upper) {
                    assert_eq!(got, expected, "{algo} {name} {msg:?} {lower}..={upper}");
                }
                for zeros in [1, 2, 3, 5, 64] {
                    let zeros = Zeros::new(zeros).expect("valid");
                    let expected = reference_first(algo, msg.as_bytes(), lower, upper, zeros);
                    for (name, got) in every_engine_first(algo, msg.as_bytes(), lower, upper, zeros)
                    {
                        assert_eq!(got, expected, "{algo} {name} {msg:?} {lower}..={upper}");
                    }
                }
            }
        }
    }
}

#[test]
fn first_hit_across_chunks() {
    // Ranges longer than a chunk, with a difficulty whose first hit lies chunks in (or
    // nowhere): the ascending chunk walk must still give the smallest nonce.
    for algo in Algo::ALL {
        for (lower, zeros) in [(3, 17), (999_950, 18), (u64::MAX - 150_000, 40)] {
            let upper = lower.saturating_add(150_000);
            let zeros = Zeros::new(zeros).expect("valid");
            let expected = reference_first(algo, b"chunks", lower, upper, zeros);
            for path in Path::available() {
                let kernel = Kernel::new(path).expect("available");
                let got = kernel.first_hit("chunks", algo, lower, upper, zeros);
                assert_eq!(got, expected, "{algo} {path} {lower}..={upper} {zeros}");
            }
        }
    }
    let empty = first_hit("x", Algo::Sha256d, 5, 4, Zeros::new(1).expect("valid"));
    assert_eq!(empty, None);
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
fn parallel_first_hit_matches_single_thread() {
    for path in Path::available() {
        let kernel = Kernel::new(path).expect("available");
        for algo in Algo::ALL {
            let prepared = kernel.prepare_algo("parallel", algo);
            for threads in [1, 2, 3] {
                let threads = NonZeroUsize::new(threads).expect("nonzero");
                for (lower, upper, zeros) in [
                    (0, 600_000, 19),
                    (0, 300_000, 30),
                    (u64::MAX - 300_000, u64::MAX, 18),
                    (7, 7, 1),
                    (8, 7, 1),
                ] {
                    let zeros = Zeros::new(zeros).expect("valid");
                    assert_eq!(
                        prepared.first_hit_parallel(lower, upper, zeros, threads),
                        prepared.first_hit(lower, upper, zeros),
                        "{path} {algo} {threads} threads {lower}..={upper} {zeros}"
                    );
                }
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
