//! Scenario tests of how the scheduler treats its miners' answers, with the real hash:
//! matching by content, verification, the spot check, and disconnecting liars.

use super::tests::{drain, jobs, ms, results, Sched};
use super::*;
use crate::hash::hash;

fn disconnects(effects: &[Effect<u32>]) -> Vec<(u32, Misbehaviour)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Disconnect { miner, reason } => Some((*miner, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The true answer over `lower ..= upper`.
fn truth(msg: &str, lower: u64, upper: u64) -> (u64, u64) {
    (lower..=upper).map(|n| (hash(msg, n), n)).min().unwrap()
}

fn config(jobs_per_miner: usize) -> Config {
    Config {
        jobs_per_miner,
        backup_jobs: false,
        ..Config::default()
    }
}

#[test]
fn answers_in_reverse_order_are_matched_to_their_jobs() {
    let mut s = Sched::new(config(2)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "ooo", 0, 19_999).unwrap();
    let sent = jobs(&drain(&mut s));
    assert_eq!(sent, [(1, 0, 9_999), (1, 10_000, 19_999)]);
    for (i, &(_, lower, upper)) in sent.iter().rev().enumerate() {
        let (h, n) = truth("ooo", lower, upper);
        s.handle_result(ms(10 + i as u64), 1, h, n, None);
    }
    let effects = drain(&mut s);
    let (h, n) = truth("ooo", 0, 19_999);
    assert_eq!(results(&effects), [(10, h, n)]);
    assert!(disconnects(&effects).is_empty());
    assert_eq!(s.stats().invalid_results + s.stats().stale_results, 0);
}

#[test]
fn an_echoed_range_picks_the_job_and_a_wrong_echo_is_only_a_hint() {
    let mut s = Sched::new(config(2)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "hint", 0, 19_999).unwrap();
    drain(&mut s);
    let (h, n) = truth("hint", 10_000, 19_999);
    s.handle_result(ms(5), 1, h, n, Some((10_000, 19_999)));
    let (h, n) = truth("hint", 0, 9_999);
    // The echo names the job already answered: still matched by content.
    s.handle_result(ms(6), 1, h, n, Some((10_000, 19_999)));
    let (h, n) = truth("hint", 0, 19_999);
    assert_eq!(results(&drain(&mut s)), [(10, h, n)]);
}

#[test]
fn a_wrong_hash_disconnects_the_miner_and_its_jobs_go_to_another() {
    let mut s = Sched::new(config(1)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_miner_joined(ms(0), 2);
    s.handle_request(ms(0), 10, "liar", 0, 19_999).unwrap();
    let sent = jobs(&drain(&mut s));
    assert_eq!(sent.len(), 2);
    let (liar, lower, upper) = sent[0];
    let (h, n) = truth("liar", lower, upper);
    s.handle_result(ms(5), liar, h / 2, n, None);
    let effects = drain(&mut s);
    assert_eq!(
        disconnects(&effects),
        [(
            liar,
            Misbehaviour::WrongHash {
                nonce: n,
                claimed: h / 2,
                actual: h
            }
        )]
    );
    assert_eq!(s.jobs_held(liar), None, "forgotten at once");
    assert_eq!(s.stats().wrong_hash_results, 1);
    assert_eq!(s.stats().miners_disconnected, 1);
    // Its later messages find no miner.
    s.handle_result(ms(6), liar, h, n, None);
    assert_eq!(s.stats().unexpected_results, 1);
    // The honest miner finishes its job, then the liar's.
    let honest = sent[1].0;
    let mut pending = vec![(sent[1].1, sent[1].2)];
    let mut now = 10;
    while let Some((lower, upper)) = pending.pop() {
        let (h, n) = truth("liar", lower, upper);
        now += 1;
        s.handle_result(ms(now), honest, h, n, None);
        let effects = drain(&mut s);
        pending.extend(jobs(&effects).into_iter().map(|(m, l, u)| {
            assert_eq!(m, honest);
            (l, u)
        }));
        if let [r] = results(&effects)[..] {
            let (h, n) = truth("liar", 0, 19_999);
            assert_eq!(r, (10, h, n));
            return;
        }
    }
    panic!("no result");
}

#[test]
fn a_nonce_outside_every_job_is_a_lie() {
    let mut s = Sched::new(config(1)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "out", 100, 199).unwrap();
    assert_eq!(jobs(&drain(&mut s)), [(1, 100, 199)]);
    s.handle_result(ms(1), 1, hash("out", 5), 5, None);
    let effects = drain(&mut s);
    assert_eq!(
        disconnects(&effects),
        [(1, Misbehaviour::OutOfRange { nonce: 5 })]
    );
    assert_eq!(s.stats().out_of_range_results, 1);
    assert_eq!(s.stats().requeued_jobs, 1);
    // The job waits for the next miner.
    s.handle_miner_joined(ms(2), 2);
    assert_eq!(jobs(&drain(&mut s)), [(2, 100, 199)]);
}

#[test]
fn a_miner_that_reports_its_first_nonce_without_searching_is_caught() {
    let mut s = Sched::new(config(1)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "lazy", 0, 9_999).unwrap();
    assert_eq!(jobs(&drain(&mut s)), [(1, 0, 9_999)]);
    s.handle_result(ms(1), 1, hash("lazy", 0), 0, None);
    let effects = drain(&mut s);
    let [(
        1,
        Misbehaviour::Lazy {
            claimed,
            nonce,
            hash: better,
        },
    )] = disconnects(&effects)[..]
    else {
        panic!("not caught: {effects:?}");
    };
    assert_eq!(claimed, hash("lazy", 0));
    assert_eq!(better, hash("lazy", nonce));
    assert!(better < claimed && nonce <= 9_999);
    assert_eq!(s.stats().lazy_results, 1);
}

#[test]
fn a_result_from_a_miner_without_jobs_is_counted_and_dropped() {
    let mut s = Sched::new(config(1)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_result(ms(1), 1, 0, 0, None);
    s.handle_result(ms(1), 7, 0, 0, None);
    assert_eq!(s.stats().unexpected_results, 2);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.miner_count(), 1);
}

#[test]
fn a_miner_never_holds_two_overlapping_jobs_of_one_text() {
    // Two clients ask the same thing: one answer would verify against both jobs, so the
    // miner gets them one after the other.
    let mut s = Sched::new(config(2)).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "same", 0, 9_999).unwrap();
    s.handle_request(ms(0), 11, "same", 0, 9_999).unwrap();
    s.handle_request(ms(0), 12, "other", 0, 9_999).unwrap();
    let first = jobs(&drain(&mut s));
    assert_eq!(first.len(), 2, "{first:?}");
    let texts: Vec<&str> = s.miners[&1].jobs.iter().map(|a| &*a.msg).collect();
    assert_eq!(
        texts,
        ["same", "other"],
        "the second slot went to the other text"
    );
    let (h, n) = truth("same", 0, 9_999);
    let (oh, on) = truth("other", 0, 9_999);
    let mut answered = Vec::new();
    for step in 1..10 {
        let held: Vec<_> = s.miners[&1].jobs.iter().map(|a| a.msg.clone()).collect();
        let Some(msg) = held.first() else { break };
        let (hh, nn) = if &**msg == "same" { (h, n) } else { (oh, on) };
        s.handle_result(ms(step), 1, hh, nn, None);
        let effects = drain(&mut s);
        assert!(disconnects(&effects).is_empty(), "{effects:?}");
        answered.extend(results(&effects));
    }
    answered.sort_unstable();
    assert_eq!(answered, [(10, h, n), (11, h, n), (12, oh, on)]);
}
