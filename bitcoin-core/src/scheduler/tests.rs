//! Scenario tests of the scheduler's policy, one behaviour each. The invariants over random
//! event sequences are in `properties.rs`.

use std::time::Duration;

use lsp_core::Timestamp;

use super::*;

pub(super) type Sched = Scheduler<u32>;

pub(super) fn ms(t: u64) -> Timestamp {
    Timestamp::from_millis(t)
}

/// A stand-in hash under which every nonce hashes to 0, so that any nonce of a job is a
/// true minimum: the policy tests answer without hashing.
fn zero(_: &str, _: u64) -> u64 {
    0
}

/// A scheduler verifying with [`zero`].
fn sched(config: Config) -> Result<Sched, ConfigError> {
    Sched::with_hash(config, zero)
}

pub(super) fn drain(s: &mut Sched) -> Vec<Effect<u32>> {
    std::iter::from_fn(|| s.poll_effect()).collect()
}

/// The `(miner, lower, upper)` of the jobs in `effects`.
pub(super) fn jobs(effects: &[Effect<u32>]) -> Vec<(u32, u64, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SendJob {
                miner,
                lower,
                upper,
                ..
            } => Some((*miner, *lower, *upper)),
            _ => None,
        })
        .collect()
}

/// The `(client, hash, nonce)` of the results in `effects`.
pub(super) fn results(effects: &[Effect<u32>]) -> Vec<(u32, u64, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SendResult {
                client,
                hash,
                nonce,
                ..
            } => Some((*client, *hash, *nonce)),
            _ => None,
        })
        .collect()
}

fn one_job_per_miner() -> Config {
    Config {
        jobs_per_miner: 1,
        backup_jobs: false,
        ..Config::default()
    }
}

#[test]
fn rejects_an_invalid_config() {
    let config = Config {
        jobs_per_miner: 0,
        ..Config::default()
    };
    assert_eq!(sched(config).unwrap_err(), ConfigError::JobsPerMiner(0));
}

#[test]
fn empty_range_is_refused_and_nothing_is_kept() {
    let mut s = sched(Config::default()).unwrap();
    s.handle_miner_joined(ms(0), 1);
    assert_eq!(
        s.handle_request(ms(0), 10, "m", 5, 4),
        Err(RequestError::EmptyRange { lower: 5, upper: 4 })
    );
    assert_eq!(s.request_count(), 0);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.stats().rejected_requests, 1);
}

#[test]
fn first_jobs_have_the_initial_size_then_grow_with_the_measured_rate() {
    let mut s = sched(one_job_per_miner()).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "m", 0, u64::MAX).unwrap();
    let mut sizes = Vec::new();
    let mut now = 0;
    for _ in 0..12 {
        let [(1, lower, upper)] = jobs(&drain(&mut s))[..] else {
            panic!("expected one job for miner 1");
        };
        let size = upper - lower + 1;
        sizes.push(size);
        // The miner does 10 M nonces per second.
        now += size / 10 + 1;
        s.handle_result(Timestamp::from_micros(now), 1, 0, lower, None);
    }
    assert_eq!(sizes[0], 10_000);
    assert!(sizes.windows(2).all(|w| w[1] >= w[0]), "{sizes:?}");
    // The target duration at 10 M/s.
    let target = 10 * s.config().target_job_duration.as_micros() as u64;
    let last = *sizes.last().unwrap();
    assert!((target * 9 / 10..=target).contains(&last), "{sizes:?}");
}

/// A stand-in hash: 7 at nonce 0, 8 everywhere else.
fn seven_at_zero(_: &str, nonce: u64) -> u64 {
    if nonce == 0 {
        7
    } else {
        8
    }
}

#[test]
fn the_whole_u64_range_is_covered_without_overflow() {
    let config = Config {
        // Jobs of 10¹⁵ nonces per second for an hour: about ten jobs cover 2⁶⁴.
        initial_job_nonces: u64::MAX,
        target_job_duration: MAX_JOB_DURATION,
        ..one_job_per_miner()
    };
    let mut s = Sched::with_hash(config, seven_at_zero).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "m", 0, u64::MAX).unwrap();
    let mut covered: u128 = 0;
    let mut next = 0u64;
    for step in 1..=200 {
        let effects = drain(&mut s);
        if let [(10, 7, nonce)] = results(&effects)[..] {
            assert_eq!(covered, 1u128 << 64);
            assert_eq!(nonce, 0);
            return;
        }
        let [(1, lower, upper)] = jobs(&effects)[..] else {
            panic!("expected one job, got {effects:?}");
        };
        assert_eq!(lower, next, "jobs are contiguous");
        covered += u128::from(upper - lower) + 1;
        next = upper.wrapping_add(1);
        s.handle_result(
            ms(step * 3_600_000),
            1,
            seven_at_zero("m", lower),
            lower,
            None,
        );
    }
    panic!("the range was not covered in 200 jobs");
}

#[test]
fn a_lost_miners_job_goes_back_to_the_front() {
    let mut s = sched(one_job_per_miner()).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_miner_joined(ms(0), 2);
    s.handle_request(ms(0), 10, "m", 0, 1_000_000).unwrap();
    let first = jobs(&drain(&mut s));
    assert_eq!(first.len(), 2);
    let (_, lost_lower, lost_upper) = first[0];
    s.handle_miner_lost(ms(1), first[0].0);
    assert!(drain(&mut s).is_empty(), "the other miner is busy");
    let other = first[1].0;
    s.handle_result(ms(2), other, 0, first[1].1, None);
    let next = jobs(&drain(&mut s));
    assert_eq!(next[0].0, other);
    assert_eq!(next[0].1, lost_lower, "the lost job's nonces come first");
    assert!(next[0].2 >= lost_upper);
    assert_eq!(s.stats().requeued_jobs, 1);
}

#[test]
fn a_lost_clients_work_is_dropped_and_late_answers_ignored() {
    let mut s = sched(one_job_per_miner()).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "big", 0, 1_000_000).unwrap();
    let [(1, lower, _)] = jobs(&drain(&mut s))[..] else {
        panic!()
    };
    s.handle_client_lost(ms(1), 10);
    s.handle_request(ms(1), 11, "small", 0, 99).unwrap();
    assert!(
        drain(&mut s).is_empty(),
        "the miner still holds the old job"
    );
    s.handle_result(ms(2), 1, 0, lower, None);
    assert_eq!(s.stats().stale_results, 1);
    let effects = drain(&mut s);
    assert_eq!(jobs(&effects), [(1, 0, 99)]);
    s.handle_result(ms(3), 1, 0, 17, None);
    assert_eq!(results(&drain(&mut s)), [(11, 0, 17)]);
    assert_eq!(s.stats().dropped_requests, 1);
    assert_eq!(s.request_count(), 0);
}

/// Runs `requests` (client, size, arrival ms) on `miners` equal miners at 1 M nonces per
/// second with no latency, and returns the clients in the order they were answered.
fn completion_order(config: Config, miners: u32, requests: &[(u32, u64, u64)]) -> Vec<u32> {
    let mut s = sched(config).unwrap();
    let mut held: std::collections::BTreeMap<u32, std::collections::VecDeque<(u64, u64)>> =
        (1..=miners).map(|m| (m, Default::default())).collect();
    let mut busy_until: std::collections::BTreeMap<u32, u64> = Default::default();
    let mut order = Vec::new();
    let mut pending = requests.to_vec();
    let mut now_us = 0u64;
    for m in 1..=miners {
        s.handle_miner_joined(Timestamp::ZERO, m);
    }
    for _ in 0..1_000_000 {
        pending.retain(|&(client, size, at)| {
            if at * 1000 > now_us {
                return true;
            }
            s.handle_request(Timestamp::from_micros(now_us), client, "m", 0, size - 1)
                .unwrap();
            false
        });
        for e in std::iter::from_fn(|| s.poll_effect()) {
            match e.clone() {
                Effect::SendJob {
                    miner,
                    lower,
                    upper,
                    ..
                } => {
                    let start = busy_until.get(&miner).copied().unwrap_or(0).max(now_us);
                    let end = start + (upper - lower + 1);
                    busy_until.insert(miner, end);
                    held.get_mut(&miner).unwrap().push_back((end, lower));
                }
                Effect::SendResult { client, .. } => order.push(client),
                Effect::Disconnect { miner, reason } => panic!("{miner} lied: {reason}"),
                Effect::Cancel { .. } | Effect::SendNotFound { .. } => panic!("{e:?}"),
            }
        }
        if order.len() == requests.len() {
            return order;
        }
        // Advance to the next job end or arrival.
        let next_end = held.values().filter_map(|q| q.front()).map(|j| j.0).min();
        let next_arrival = pending.iter().map(|r| r.2 * 1000).min();
        now_us = next_end.into_iter().chain(next_arrival).min().unwrap();
        for (m, q) in &mut held {
            if let Some(&(end, lower)) = q.front() {
                if end == now_us {
                    q.pop_front();
                    s.handle_result(Timestamp::from_micros(now_us), *m, 0, lower, None);
                }
            }
        }
    }
    panic!("did not finish");
}

#[test]
fn a_small_request_after_a_huge_one_finishes_first() {
    let order = completion_order(
        Config::default(),
        4,
        &[(1, 40_000_000, 0), (2, 100_000, 500)],
    );
    assert_eq!(order, [2, 1]);
    let fifo = Config {
        order: Order::Arrival,
        ..Config::default()
    };
    assert_eq!(
        completion_order(fifo, 4, &[(1, 40_000_000, 0), (2, 100_000, 500)]),
        [1, 2]
    );
}

#[test]
fn an_overdue_request_is_not_starved_by_a_stream_of_smaller_ones() {
    // Four miners of 1 M/s; a request of 4 s alone, then 0.1 s requests arriving every
    // 0.1 s: with pure SRPT, the big one waits for the stream to end.
    let mut requests = vec![(1, 16_000_000, 0)];
    requests.extend((0..200).map(|i| (100 + i, 400_000, 10 + 100 * u64::from(i))));
    let position = |overdue_factor| {
        let config = Config {
            order: Order::ShortestRemainingFirst { overdue_factor },
            ..Config::default()
        };
        let order = completion_order(config, 4, &requests);
        order.iter().position(|&c| c == 1).unwrap()
    };
    assert_eq!(position(0), 200, "pure SRPT serves the big request last");
    // Overdue after 2 x 4 s, when about 80 small requests have come and gone, it then has
    // the pool until it is done; the small requests arriving meanwhile wait.
    let p = position(2);
    assert!((70..=90).contains(&p), "finished after {p} small requests");
}

#[test]
fn equal_requests_finish_in_arrival_order() {
    let requests: Vec<(u32, u64, u64)> = (0..30).map(|i| (100 + i, 2_000_000, 0)).collect();
    let order = completion_order(Config::default(), 3, &requests);
    assert_eq!(order, (100..130).collect::<Vec<_>>());
}

#[test]
fn a_second_request_from_a_client_is_answered_after_the_first() {
    let mut s = sched(one_job_per_miner()).unwrap();
    s.handle_miner_joined(ms(0), 1);
    let a = s.handle_request(ms(0), 10, "a", 0, 9).unwrap();
    let b = s.handle_request(ms(0), 10, "b", 0, 0).unwrap();
    assert!(b > a);
    assert_eq!(s.request_count(), 2);
    assert_eq!(jobs(&drain(&mut s)), [(1, 0, 9)]);
    s.handle_result(ms(1), 1, 0, 4, None);
    let effects = drain(&mut s);
    assert_eq!(results(&effects), [(10, 0, 4)]);
    assert_eq!(jobs(&effects), [(1, 0, 0)]);
    s.handle_result(ms(2), 1, 0, 0, None);
    assert_eq!(results(&drain(&mut s)), [(10, 0, 0)]);
}

#[test]
fn ties_go_to_the_smallest_nonce_whatever_the_answer_order() {
    let mut s = sched(Config {
        initial_job_nonces: 10,
        ..one_job_per_miner()
    })
    .unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_miner_joined(ms(0), 2);
    s.handle_request(ms(0), 10, "m", 0, 99).unwrap();
    let mut answered = Vec::new();
    for step in 1..100 {
        let effects = drain(&mut s);
        if let [result] = results(&effects)[..] {
            assert_eq!(result, (10, 0, 0));
            assert!(answered.len() > 2 && answered.contains(&0), "{answered:?}");
            return;
        }
        // Every job finds the same hash; the later job of the two answers first.
        let mut held: Vec<(u64, u32)> = [1, 2]
            .iter()
            .filter_map(|&m| s.miners[&m].jobs.front().map(|a| (a.range.first(), m)))
            .collect();
        held.sort_unstable();
        for (lower, miner) in held.into_iter().rev() {
            answered.push(lower);
            s.handle_result(ms(step), miner, 0, lower, None);
        }
    }
    panic!("no result");
}

#[test]
fn a_slow_miners_last_job_is_backed_up_and_the_first_answer_counts() {
    let config = Config {
        jobs_per_miner: 1,
        ..Config::default()
    };
    let mut s = sched(config).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_miner_joined(ms(0), 2);
    // As if measured: miner 1 does 1 M/s, miner 2 does 100 k/s.
    s.miners.get_mut(&1).unwrap().rate = rate::Rate::per_sec(1_000_000);
    s.miners.get_mut(&2).unwrap().rate = rate::Rate::per_sec(100_000);
    s.handle_request(ms(100), 10, "m", 0, 999_999).unwrap();
    let mut now = 100;
    let mut slow_job = None;
    for _ in 0..100 {
        let effects = drain(&mut s);
        for (miner, lower, upper) in jobs(&effects) {
            if miner == 2 {
                slow_job = Some((lower, upper));
            }
        }
        if !results(&effects).is_empty() {
            break;
        }
        now += 10;
        // Only the fast miner answers; the slow one sits on its job.
        if s.jobs_held(1) == Some(1) {
            let lower = s.miners[&1].jobs[0].range.first();
            s.handle_result(ms(now), 1, 0, lower, None);
        } else if let Some(t) = s.poll_timeout() {
            s.handle_timeout(t.max(ms(now)));
        }
    }
    assert!(s.stats().backup_jobs >= 1, "{:?}", s.stats());
    assert_eq!(s.request_count(), 0, "answered without the slow miner");
    assert!(slow_job.is_some());
    // The slow miner's answer, when it comes, is ignored.
    let before = s.stats().stale_results;
    s.handle_result(ms(now + 1000), 2, 0, slow_job.unwrap().0, None);
    assert_eq!(s.stats().stale_results, before + 1);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn a_stalled_miner_is_backed_up_after_the_timeout() {
    let config = Config {
        jobs_per_miner: 1,
        tail_split: 1,
        ..Config::default()
    };
    let mut s = sched(config).unwrap();
    s.handle_miner_joined(ms(0), 1);
    s.handle_request(ms(0), 10, "m", 0, 9_999).unwrap();
    assert_eq!(jobs(&drain(&mut s)), [(1, 0, 9_999)]);
    let lease = s.leases(1)[0].0;
    assert_eq!(
        s.poll_timeout(),
        Some(lease),
        "no idle miner to back up with"
    );
    s.handle_miner_joined(ms(1), 2);
    assert!(drain(&mut s).is_empty(), "not worth a backup yet");
    let due = s.poll_timeout().expect("a backup check is due");
    assert!(due > ms(1));
    s.handle_timeout(due);
    assert!(due < lease, "the backup comes before the lease ends");
    assert_eq!(jobs(&drain(&mut s)), [(2, 0, 9_999)]);
    assert_eq!(s.poll_timeout(), Some(lease.min(s.leases(2)[0].0)));
    s.handle_result(due + Duration::from_millis(1), 2, 0, 2, None);
    assert_eq!(results(&drain(&mut s)), [(10, 0, 2)]);
}

#[test]
fn time_going_backwards_is_ignored() {
    let mut s = sched(one_job_per_miner()).unwrap();
    s.handle_miner_joined(ms(100), 1);
    s.handle_request(ms(50), 10, "m", 0, 9).unwrap();
    assert_eq!(jobs(&drain(&mut s)), [(1, 0, 9)]);
    assert_eq!(s.miners[&1].jobs[0].sent, ms(100));
}
