//! Target mode and Cancel through the service: who gets target jobs, the answer against an
//! independent scan, cancellation above a hit and on a lost client, lies, stale answers.

use lsp_core::Timestamp;

use crate::accounting::PoolEventKind;
use crate::hash::{Algo, Zeros};
use crate::message::ext::{encode_join, encode_request, encode_target_result};
use crate::message::{Caps, Message, Mode};
use crate::scheduler::{Config, Misbehaviour};
use crate::service::{CloseReason, MinerService};

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn target(zeros: u32, algo: Algo) -> Mode {
    Mode::Target {
        zeros: Zeros::new(zeros).unwrap(),
        algo,
    }
}

/// A written message, decoded with its mode and `Found`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Out {
    to: u32,
    message: Message,
    mode: Mode,
    found: bool,
}

fn writes(s: &mut MinerService<u32>) -> Vec<Out> {
    std::iter::from_fn(|| s.poll_write())
        .map(|(to, bytes)| {
            let d = Message::decode_full(&bytes).unwrap();
            Out {
                to,
                message: d.message,
                mode: d.ext.mode.unwrap(),
                found: d.ext.found,
            }
        })
        .collect()
}

/// The smallest qualifying nonce of `lower ..= upper`, by a plain scan.
fn scan(data: &str, lower: u64, upper: u64, mode: Mode) -> Option<(u64, u64)> {
    let Mode::Target { zeros, algo } = mode else {
        panic!("{mode:?}");
    };
    (lower..=upper)
        .map(|n| (algo.hash(data, n), n))
        .find(|(h, _)| zeros.accepts(*h))
}

/// An honest miner's answer to a target job, as its payload.
fn answer(data: &str, lower: u64, upper: u64, mode: Mode) -> Vec<u8> {
    encode_target_result(scan(data, lower, upper, mode), (lower, upper))
}

fn request(
    s: &mut MinerService<u32>,
    now: Timestamp,
    client: u32,
    data: &str,
    upper: u64,
    mode: Mode,
) {
    s.handle_payload(now, client, &encode_request(data, 0, upper, mode));
}

/// Runs until nothing more is written: capable miners answer their jobs newest first (so
/// higher jobs often answer before lower ones). Returns everything written.
fn run(s: &mut MinerService<u32>, now: Timestamp) -> Vec<Out> {
    let mut all = Vec::new();
    let mut held: Vec<(u32, String, u64, u64, Mode)> = Vec::new();
    loop {
        for out in writes(s) {
            match &out.message {
                Message::Request { data, lower, upper } => {
                    held.push((out.to, data.clone(), *lower, *upper, out.mode))
                }
                Message::Cancel { data, lower, upper } => held.retain(|(to, d, l, u, _)| {
                    (*to, d.as_str(), *l, *u) != (out.to, data.as_str(), *lower, *upper)
                }),
                _ => {}
            }
            all.push(out);
        }
        let Some((miner, data, lower, upper, mode)) = held.pop() else {
            return all;
        };
        s.handle_payload(now, miner, &answer(&data, lower, upper, mode));
    }
}

/// The `(mode, answer, nonces)` of the one `request_answered` event among the service's
/// events so far.
fn answer_event(s: &mut MinerService<u32>) -> (Mode, Option<(u64, u64)>, u128) {
    let answered: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e.kind {
            PoolEventKind::RequestAnswered {
                mode,
                answer,
                nonces,
                ..
            } => Some((mode, answer, nonces)),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 1, "{answered:?}");
    answered[0]
}

fn service() -> MinerService<u32> {
    MinerService::new(Config {
        backup_jobs: false,
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn a_target_request_gets_the_smallest_qualifying_nonce_and_only_capable_miners_work() {
    for (algo, zeros) in [(Algo::Sha256, 15), (Algo::Sha256d, 14), (Algo::Sha256d, 17)] {
        let mode = target(zeros, algo);
        let mut s = service();
        s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
        s.handle_payload(at(0), 2, &encode_join(Caps::ALL));
        s.handle_payload(at(0), 3, &Message::Join.encode()); // a reference miner
        request(&mut s, at(1), 9, "tgt", 400_000, mode);
        let out = run(&mut s, at(2));
        let truth = scan("tgt", 0, 400_000, mode);
        let answers: Vec<_> = out.iter().filter(|o| o.to == 9).collect();
        assert_eq!(answers.len(), 1, "{out:?}");
        match truth {
            Some((hash, nonce)) => {
                assert_eq!(answers[0].message, Message::Result { hash, nonce });
                assert!(answers[0].found);
            }
            None => assert!(!answers[0].found),
        }
        assert!(
            out.iter().all(|o| o.to != 3),
            "the reference miner got {out:?}"
        );
        // Jobs went out in ascending order, and none was handed out above the hit.
        let jobs: Vec<u64> = out
            .iter()
            .filter_map(|o| match o.message {
                Message::Request { lower, .. } => Some(lower),
                _ => None,
            })
            .collect();
        assert!(jobs.windows(2).all(|w| w[0] < w[1]), "{jobs:?}");
        assert!(out.iter().all(|o| o.to == 9 || o.mode == mode));
        assert_eq!(s.scheduler_stats().invalid_results, 0);
    }
}

#[test]
fn jobs_above_a_hit_are_cancelled_and_the_answer_waits_for_the_jobs_below() {
    let mode = target(13, Algo::Sha256d);
    let truth = scan("cut", 0, 1_000_000, mode).expect("a hit");
    let mut s = service();
    s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
    s.handle_payload(at(0), 2, &encode_join(Caps::ALL));
    request(&mut s, at(0), 9, "cut", 1_000_000, mode);
    let jobs = writes(&mut s);
    assert_eq!(jobs.len(), 4, "two jobs each: {jobs:?}");
    let range = |o: &Out| match o.message {
        Message::Request { lower, upper, .. } => (lower, upper),
        _ => panic!("{o:?}"),
    };
    // The job holding the hit answers first if it is not the lowest; the others wait.
    let holder = jobs
        .iter()
        .position(|o| (range(o).0..=range(o).1).contains(&truth.1))
        .expect("the hit lies in the first jobs (10 000 nonces each)");
    let (l, u) = range(&jobs[holder]);
    s.handle_payload(at(1), jobs[holder].to, &answer("cut", l, u, mode));
    let after = writes(&mut s);
    let cancels: Vec<_> = after
        .iter()
        .filter(|o| matches!(o.message, Message::Cancel { .. }))
        .collect();
    let above = jobs.iter().filter(|o| range(o).0 > truth.1).count();
    assert_eq!(cancels.len(), above, "{after:?}");
    assert_eq!(s.scheduler_stats().cancelled_jobs, above as u64);
    let answered = after.iter().any(|o| o.to == 9);
    assert_eq!(
        answered,
        holder == 0,
        "answered only once nothing below is open"
    );
    // Whatever runs below the hit is answered; then the client gets the hit.
    let rest = run(&mut s, at(2));
    let all: Vec<_> = after.into_iter().chain(rest).collect();
    let answers: Vec<_> = all.iter().filter(|o| o.to == 9).collect();
    assert_eq!(
        answers.iter().map(|o| &o.message).collect::<Vec<_>>(),
        [&Message::Result {
            hash: truth.0,
            nonce: truth.1
        }]
    );
    assert!(all
        .iter()
        .all(|o| !matches!(o.message, Message::Request { lower, .. } if lower > truth.1)));
    // Searched: every job below the hit's, and the hit's job up to the hit; the jobs
    // above were cancelled unanswered. The miners are credited as much.
    let searched = u128::from(truth.1) + 1;
    assert_eq!(answer_event(&mut s), (mode, Some(truth), searched));
    assert_eq!(s.pool(at(2)).totals.nonces, searched);
}

#[test]
fn no_qualifying_nonce_is_found_false() {
    let mode = target(40, Algo::Sha256);
    assert_eq!(scan("none", 0, 30_000, mode), None);
    let mut s = service();
    s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
    request(&mut s, at(0), 9, "none", 30_000, mode);
    let out = run(&mut s, at(1));
    let answer: Vec<_> = out.iter().filter(|o| o.to == 9).collect();
    assert_eq!(answer.len(), 1);
    assert!(!answer[0].found);
    assert_eq!(
        answer[0].message,
        Message::Result { hash: 0, nonce: 0 },
        "{answer:?}"
    );
    assert_eq!(s.scheduler_stats().not_found_sent, 1);
    // The event says so, and the whole range was searched.
    assert_eq!(answer_event(&mut s), (mode, None, 30_001));
}

#[test]
fn a_target_request_waits_for_a_capable_miner() {
    let mode = target(8, Algo::Sha256d);
    let mut s = service();
    s.handle_payload(at(0), 1, &Message::Join.encode());
    s.handle_payload(
        at(0),
        2,
        &encode_join(Caps::NONE.with(crate::message::Cap::Target)),
    );
    request(&mut s, at(0), 9, "wait", 50_000, mode);
    assert!(writes(&mut s).is_empty(), "no miner has sha256d");
    // A minimum request still goes to everyone meanwhile.
    request(&mut s, at(0), 8, "plain", 100, Mode::Minimum);
    assert_eq!(writes(&mut s).len(), 1);
    s.handle_payload(at(1), 3, &encode_join(Caps::ALL));
    let jobs = writes(&mut s);
    assert!(!jobs.is_empty() && jobs.iter().all(|o| o.to == 3 && o.mode == mode));
}

#[test]
fn a_bad_zeros_or_algo_refuses_the_request() {
    let mut s = service();
    s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
    s.handle_payload(
        at(0),
        9,
        br#"{"Type":1,"Data":"x","Lower":0,"Upper":9,"Hash":0,"Nonce":0,"Zeros":65}"#,
    );
    assert!(matches!(s.poll_close(), Some((9, CloseReason::BadMode(_)))));
    assert_eq!(s.stats().refused, 1);
    assert!(writes(&mut s).is_empty());
}

#[test]
fn a_lost_client_s_jobs_are_cancelled_on_miners_that_can_stop_in_both_modes() {
    for mode in [Mode::Minimum, target(30, Algo::Sha256d)] {
        let mut s = service();
        s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
        s.handle_payload(
            at(0),
            2,
            &encode_join(
                Caps::NONE
                    .with(crate::message::Cap::Target)
                    .with(crate::message::Cap::Sha256d),
            ),
        );
        request(&mut s, at(0), 9, "gone", 1_000_000, mode);
        let jobs = writes(&mut s);
        assert_eq!(jobs.len(), 4);
        s.handle_connection_gone(at(1), 9);
        let cancels = writes(&mut s);
        assert_eq!(cancels.len(), 2, "{cancels:?}");
        assert!(cancels.iter().all(|o| o.to == 1
            && matches!(o.message, Message::Cancel { ref data, .. } if data == "gone")));
        assert_eq!(s.scheduler().jobs_held(1), Some(0));
        assert_eq!(
            s.scheduler().jobs_held(2),
            Some(2),
            "no cancel cap: left to run"
        );
        // An answer that crossed the Cancel is stale, not a lie.
        let Message::Request { lower, upper, .. } = jobs[0].message else {
            panic!()
        };
        let crossed = match mode {
            Mode::Minimum => {
                let (h, n) = (lower..=upper)
                    .map(|n| (crate::hash::hash("gone", n), n))
                    .min()
                    .unwrap();
                Message::Result { hash: h, nonce: n }.encode()
            }
            Mode::Target { .. } => answer("gone", lower, upper, mode),
        };
        s.handle_payload(at(2), jobs[0].to, &crossed);
        assert_eq!(s.poll_close(), None);
        assert_eq!(s.scheduler_stats().stale_results, 1);
    }
}

#[test]
fn target_lies_are_caught() {
    let mode = target(1, Algo::Sha256d);
    let setup = || {
        let mut s = service();
        s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
        request(&mut s, at(0), 9, "lie", 9_999, mode);
        let jobs = writes(&mut s);
        assert_eq!(jobs.len(), 1);
        s
    };
    // A "hit" without the zeros.
    let miss = (0..)
        .find(|n| {
            !Zeros::new(1)
                .unwrap()
                .accepts(crate::hash::hash_sha256d("lie", *n))
        })
        .unwrap();
    let mut s = setup();
    let h = crate::hash::hash_sha256d("lie", miss);
    s.handle_payload(at(1), 1, &encode_target_result(Some((h, miss)), (0, 9_999)));
    assert!(matches!(
        s.poll_close(),
        Some((1, CloseReason::Lied(Misbehaviour::NotAHit { .. })))
    ));
    // "Found": false on a job where half the nonces qualify.
    let mut s = setup();
    s.handle_payload(at(1), 1, &encode_target_result(None, (0, 9_999)));
    assert!(matches!(
        s.poll_close(),
        Some((
            1,
            CloseReason::Lied(Misbehaviour::MissedHit { reported: None, .. })
        ))
    ));
    // A late qualifying nonce when an earlier one qualifies.
    let mut s = setup();
    let late = (100..)
        .find(|n| {
            Zeros::new(1)
                .unwrap()
                .accepts(crate::hash::hash_sha256d("lie", *n))
        })
        .unwrap();
    let h = crate::hash::hash_sha256d("lie", late);
    s.handle_payload(at(1), 1, &encode_target_result(Some((h, late)), (0, 0)));
    assert!(matches!(
        s.poll_close(),
        Some((
            1,
            CloseReason::Lied(Misbehaviour::MissedHit {
                reported: Some(_),
                ..
            })
        ))
    ));
    assert_eq!(s.scheduler_stats().lazy_results, 1);
}

#[test]
fn a_hit_early_in_a_job_does_not_make_its_miner_look_faster() {
    // One zero bit: the first job (of the initial size) has a hit in its first nonces.
    let mode = target(1, Algo::Sha256);
    let initial = Config::default().initial_job_nonces;
    let mut s = service();
    s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
    request(&mut s, at(0), 9, "early", 1_000_000, mode);
    let jobs = writes(&mut s);
    let Message::Request { lower, upper, .. } = jobs[0].message else {
        panic!("{jobs:?}");
    };
    assert_eq!(u128::from(upper - lower) + 1, u128::from(initial));
    let hit = scan("early", lower, upper, mode).expect("a hit");
    assert!(hit.1 - lower < 100, "{hit:?}");
    // Answered 1 ms later: the whole job in 1 ms would be a very fast miner, but it searched
    // only up to its hit.
    s.handle_payload(at(1), 1, &answer("early", lower, upper, mode));
    assert!(writes(&mut s).iter().any(|o| o.to == 9));
    s.handle_payload(
        at(1),
        10,
        &encode_request("next", 0, 1_000_000_000, Mode::Minimum),
    );
    let next = writes(&mut s);
    let Message::Request { lower, upper, .. } = next[0].message else {
        panic!("{next:?}");
    };
    assert_eq!(
        u128::from(upper - lower) + 1,
        u128::from(initial),
        "the next job is sized for the speed measured up to the hit: {next:?}"
    );
}
