//! An answer that crosses a Cancel on the wire, while its miner already holds a new job over
//! the same nonces: matched by its `"Job"` id, it is stale, never taken for the new job's
//! answer (a wrong answer to the client) nor for a lie (an honest miner disconnected).

use lsp_core::Timestamp;

use crate::hash::{Algo, Zeros};
use crate::message::ext::{encode_join, encode_request, encode_target_result, with_job};
use crate::message::{Caps, Message, Mode};
use crate::scheduler::Config;
use crate::service::MinerService;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A job written to a miner: `(miner, data, lower, upper, mode, job id)`.
type Sent = (u32, String, u64, u64, Mode, Option<u64>);

/// What the service wrote: the jobs, the Cancels' ids, the client answers
/// `(client, hit)`.
#[derive(Default, Debug)]
struct Writes {
    jobs: Vec<Sent>,
    cancels: Vec<Option<u64>>,
    answers: Vec<(u32, Option<(u64, u64)>)>,
}

fn writes(s: &mut MinerService<u32>) -> Writes {
    let mut w = Writes::default();
    while let Some((to, bytes)) = s.poll_write() {
        let d = Message::decode_full(&bytes).unwrap();
        match d.message {
            Message::Request { data, lower, upper } => {
                let mode = d.ext.mode.unwrap();
                w.jobs.push((to, data, lower, upper, mode, d.ext.job));
            }
            Message::Cancel { .. } => w.cancels.push(d.ext.job),
            Message::Result { hash, nonce } => {
                w.answers.push((to, d.ext.found.then_some((hash, nonce))))
            }
            other => panic!("{other:?}"),
        }
    }
    w
}

/// The honest answer to `lower ..= upper` of `data` in `mode`, by a plain scan.
fn solve(data: &str, lower: u64, upper: u64, mode: Mode) -> Option<(u64, u64)> {
    match mode {
        Mode::Minimum => (lower..=upper)
            .map(|n| (crate::hash::hash(data, n), n))
            .min(),
        Mode::Target { zeros, algo } => (lower..=upper)
            .map(|n| (algo.hash(data, n), n))
            .find(|(h, _)| zeros.accepts(*h)),
    }
}

/// A cancel-capable miner's answer to `job`, echoing its range and id.
fn answer(job: &Sent) -> Vec<u8> {
    answer_echoing(job, true)
}

/// A cancel-capable miner's answer to `job`, echoing its range, and its id if `id`.
fn answer_echoing(job: &Sent, id: bool) -> Vec<u8> {
    let (_, data, lower, upper, mode, job_id) = job;
    let hit = solve(data, *lower, *upper, *mode);
    let encoded = encode_target_result(hit, (*lower, *upper));
    if id {
        with_job(encoded, *job_id)
    } else {
        encoded
    }
}

/// Client 10 asks for `first`, is lost (its jobs on miner 1 are cancelled), client 11 asks
/// for `second`; then miner 1's answer to the first cancelled job arrives (it crossed the
/// Cancel), then its answers to everything it holds. Returns the crossed job, the jobs of
/// the second request and what client 11 was answered, after asserting that it is `want`,
/// that nobody was called a liar and that the crossed answer counted as stale.
fn crossing(first: (&str, u64, u64, Mode), second: (&str, u64, u64, Mode)) -> (Sent, Vec<Sent>) {
    crossing_echoing(first, second, true)
}

/// [`crossing`], the miner echoing job ids in its answers only if `ids` (a third-party
/// miner that announced `cancel` but does not echo them gets the content matching of
/// [`Scheduler::answers_cancelled`](super::Scheduler), which must be just as safe).
fn crossing_echoing(
    first: (&str, u64, u64, Mode),
    second: (&str, u64, u64, Mode),
    ids: bool,
) -> (Sent, Vec<Sent>) {
    let mut s = MinerService::new(Config {
        backup_jobs: false,
        ..Config::default()
    })
    .unwrap();
    s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
    let (data, lower, upper, mode) = first;
    s.handle_payload(at(0), 10, &encode_request(data, lower, upper, mode));
    let old = writes(&mut s).jobs;
    assert!(old.iter().all(|j| j.5.is_some()), "ids for a cancel miner");
    s.handle_connection_gone(at(1), 10);
    let (data, lower, upper, mode) = second;
    s.handle_payload(at(1), 11, &encode_request(data, lower, upper, mode));
    let w = writes(&mut s);
    assert_eq!(w.cancels.len(), old.len(), "{w:?}");
    assert_eq!(
        w.cancels,
        old.iter().map(|j| j.5).collect::<Vec<_>>(),
        "each Cancel names its job's id"
    );
    let new = w.jobs;
    s.handle_payload(at(2), 1, &answer_echoing(&old[0], ids));
    let mut pending = new.clone();
    let mut answers = Vec::new();
    while let Some(job) = pending.pop() {
        s.handle_payload(at(3), 1, &answer_echoing(&job, ids));
        let w = writes(&mut s);
        pending.retain(|j| !w.cancels.contains(&j.5));
        pending.extend(w.jobs);
        answers.extend(w.answers);
    }
    let want = solve(data, lower, upper, mode);
    assert_eq!(answers, vec![(11, want)], "{data}: the true answer");
    assert_eq!(
        s.poll_close(),
        None,
        "{data}: an honest miner is not a liar"
    );
    assert_eq!(s.scheduler_stats().stale_results, 1);
    (old[0].clone(), new)
}

#[test]
fn a_minimum_answer_crossing_a_cancel_is_not_taken_for_an_overlapping_job_s() {
    // The same message over overlapping ranges: pick one whose crossed answer verifies
    // against a new job without being its minimum, so content matching would be wrong.
    let mut tried = 0;
    for i in 0..200 {
        let data = format!("y{i}");
        let (crossed, new) = crossing(
            (&data, 0, 999, Mode::Minimum),
            (&data, 500, 1499, Mode::Minimum),
        );
        let stale = solve(&data, crossed.2, crossed.3, Mode::Minimum).unwrap();
        let misleading = new.iter().any(|j| {
            (j.2..=j.3).contains(&stale.1) && solve(&data, j.2, j.3, Mode::Minimum) != Some(stale)
        });
        if misleading {
            tried += 1;
        }
    }
    assert!(tried >= 5, "only {tried} messages exercise the crossing");
}

#[test]
fn a_found_false_crossing_a_cancel_is_not_taken_for_another_message_s_job() {
    let never = Mode::Target {
        zeros: Zeros::new(40).unwrap(),
        algo: Algo::Sha256d,
    };
    let easy = Mode::Target {
        zeros: Zeros::new(7).unwrap(),
        algo: Algo::Sha256d,
    };
    let mut tried = 0;
    for i in 0..50 {
        let data = format!("b{i}");
        let (crossed, new) = crossing(("a", 0, 999, never), (&data, 0, 999, easy));
        assert_eq!(solve("a", crossed.2, crossed.3, never), None);
        // The crossed "Found": false echoes the bounds of a new job that holds a hit.
        if new
            .iter()
            .any(|j| (j.2, j.3) == (crossed.2, crossed.3) && solve(&data, j.2, j.3, easy).is_some())
        {
            tried += 1;
        }
    }
    assert!(tried >= 5, "only {tried} messages exercise the crossing");
}

#[test]
fn a_reference_miner_gets_the_reference_s_bytes_and_unknown_ids_are_ignored() {
    let mut s = MinerService::new(Config::default()).unwrap();
    s.handle_payload(at(0), 1, &encode_join(Caps::NONE));
    s.handle_payload(at(0), 10, &encode_request("r", 0, 99, Mode::Minimum));
    let (to, bytes) = s.poll_write().unwrap();
    assert_eq!(to, 1);
    assert_eq!(bytes, encode_request("r", 0, 99, Mode::Minimum));

    let mut s = MinerService::new(Config::default()).unwrap();
    s.handle_payload(at(0), 1, &encode_join(Caps::ALL));
    s.handle_payload(at(0), 10, &encode_request("r", 0, 99, Mode::Minimum));
    let jobs = writes(&mut s).jobs;
    let mut unknown = jobs[0].clone();
    unknown.5 = Some(u64::MAX);
    s.handle_payload(at(1), 1, &answer(&unknown));
    assert_eq!(s.scheduler_stats().unexpected_results, 1);
    assert_eq!(s.poll_close(), None);
    assert!(writes(&mut s).answers.is_empty(), "not taken for the job");
}

#[test]
fn without_ids_a_crossed_answer_is_stale_too_never_a_wrong_answer_or_a_lie() {
    // The same two crossings as above, from a miner that announced `cancel` but does not
    // echo `"Job"`: the crossed answer fits the withdrawn job, so it is stale even where it
    // also fits a held job; the held jobs' own answers then count.
    for i in 0..40 {
        let data = format!("y{i}");
        crossing_echoing(
            (&data, 0, 999, Mode::Minimum),
            (&data, 500, 1499, Mode::Minimum),
            false,
        );
    }
    let never = Mode::Target {
        zeros: Zeros::new(40).unwrap(),
        algo: Algo::Sha256d,
    };
    let easy = Mode::Target {
        zeros: Zeros::new(7).unwrap(),
        algo: Algo::Sha256d,
    };
    for i in 0..20 {
        let data = format!("b{i}");
        crossing_echoing(("a", 0, 999, never), (&data, 0, 999, easy), false);
    }
}
