//! The scheduler's invariants, checked after every step of random event sequences
//! (quickcheck): joins and losses of miners, requests (small ranges, some at the top of the
//! u64 range, some empty), client losses, answers (true minima computed with a cheap stand-in
//! hash, to the oldest or the newest job, the job's range echoed as on some miners' wire),
//! lies (a nonce outside the job, a wrong hash, a lazy answer to a job small enough to be
//! checked in full), timeouts and the passing of time.
//!
//! A model beside the scheduler records what each miner holds and which nonces of each
//! request have been answered, and checks:
//! - a miner is disconnected exactly when it lied, and is then forgotten;
//! - a result goes only to a live client, for its oldest unanswered request, once every
//!   nonce of that request is covered by answered jobs, and it is the true minimum (ties
//!   to the smallest nonce);
//! - jobs go only to joined miners, for a live client's active request, within its range,
//!   never over answered nonces, and two jobs of a request are either disjoint or the same
//!   job and its one backup (so no nonce is counted twice or skipped);
//! - a miner never holds more than `jobs_per_miner` jobs, and the scheduler agrees with the
//!   model on how many it holds;
//! - no miner has a free slot while a request has nonces that no miner holds, unless the
//!   miner holds a job of that request's text (a second one could be ambiguous);
//! - timeouts are in the future;
//! - at the end, once the miners answer everything, every live client has its answers;
//! - the same sequence gives the same effects twice.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use lsp_core::Timestamp;
use quickcheck::{Gen, QuickCheck, TestResult};

use super::*;

mod generate;

use generate::{test_hash, true_min, Case, Event, LieKind};

/// A job as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job {
    request: RequestId,
    msg: &'static str,
    lower: u64,
    upper: u64,
}

#[derive(Debug)]
struct ModelRequest {
    client: u32,
    msg: &'static str,
    lower: u64,
    upper: u64,
    /// Ranges of answered jobs.
    answered: Vec<(u64, u64)>,
}

/// The size of the union of `ranges`.
fn union_len(ranges: &[(u64, u64)]) -> u128 {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut total = 0u128;
    let mut current: Option<(u64, u64)> = None;
    for (lo, hi) in sorted {
        current = match current {
            Some((clo, chi)) if lo <= chi.saturating_add(1) => Some((clo, chi.max(hi))),
            Some((clo, chi)) => {
                total += u128::from(chi - clo) + 1;
                Some((lo, hi))
            }
            None => Some((lo, hi)),
        };
    }
    total + current.map_or(0, |(lo, hi)| u128::from(hi - lo) + 1)
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// The scheduler and the model beside it.
struct Harness {
    sched: Scheduler<u32>,
    depth: usize,
    now: Timestamp,
    /// The time passed to the scheduler's latest call.
    called_at: Timestamp,
    /// What each joined miner holds, oldest first.
    miners: BTreeMap<u32, VecDeque<Job>>,
    /// Each live client's unanswered requests, oldest (active) first.
    clients: BTreeMap<u32, VecDeque<RequestId>>,
    requests: BTreeMap<RequestId, ModelRequest>,
    /// Every effect, for the determinism check.
    trace: Vec<Effect<u32>>,
    /// The miner that just lied, until its disconnection is seen.
    liar: Option<u32>,
}

type Check = Result<(), String>;

impl Harness {
    fn new(config: Config) -> Self {
        Harness {
            depth: config.jobs_per_miner,
            sched: Scheduler::with_hash(config, test_hash).expect("generated configs are valid"),
            now: Timestamp::ZERO,
            called_at: Timestamp::ZERO,
            miners: BTreeMap::new(),
            clients: BTreeMap::new(),
            requests: BTreeMap::new(),
            trace: Vec::new(),
            liar: None,
        }
    }

    /// The live request `id`, if its client is live and it is the client's active one.
    fn active(&self, id: RequestId) -> Option<&ModelRequest> {
        let r = self.requests.get(&id)?;
        (self.clients.get(&r.client)?.front() == Some(&id)).then_some(r)
    }

    fn apply(&mut self, event: &Event) -> Check {
        let now = self.now;
        if !matches!(event, Event::Advance(_)) {
            self.called_at = now;
        }
        match *event {
            Event::Advance(us) => self.now = now + Duration::from_micros(u64::from(us)),
            Event::Join(m) => {
                self.sched.handle_miner_joined(now, m);
                self.miners.entry(m).or_default();
            }
            Event::LoseMiner(m) => {
                self.sched.handle_miner_lost(now, m);
                self.miners.remove(&m);
            }
            Event::Request {
                client,
                msg,
                lower,
                upper,
            } => match self.sched.handle_request(now, client, msg, lower, upper) {
                Ok(id) => {
                    if lower > upper {
                        return Err(format!("accepted empty range {lower}..={upper}"));
                    }
                    self.clients.entry(client).or_default().push_back(id);
                    let answered = Vec::new();
                    let r = ModelRequest {
                        client,
                        msg,
                        lower,
                        upper,
                        answered,
                    };
                    self.requests.insert(id, r);
                }
                Err(RequestError::EmptyRange { .. }) if lower > upper => {}
                Err(RequestError::ClientFull { limit })
                    if self.clients.get(&client).map_or(0, VecDeque::len) >= limit => {}
                Err(RequestError::Full { limit })
                    if self.clients.values().map(VecDeque::len).sum::<usize>() >= limit => {}
                Err(e) => return Err(format!("refused {lower}..={upper}: {e}")),
            },
            Event::LoseClient(c) => {
                self.sched.handle_client_lost(now, c);
                if let Some(ids) = self.clients.remove(&c) {
                    for id in ids {
                        self.requests.remove(&id);
                    }
                }
            }
            Event::Answer(m) => self.answer(m, false),
            Event::AnswerNewest(m) => self.answer(m, true),
            Event::Lie(m, kind) => self.lie(m, kind),
            Event::Timeout => {
                if let Some(t) = self.sched.poll_timeout() {
                    self.now = self.now.max(t);
                    self.called_at = self.now;
                    self.sched.handle_timeout(self.now);
                }
            }
        }
        self.drain_and_check()
    }

    /// Miner `m` answers its oldest (or newest) job truly, echoing its range.
    fn answer(&mut self, m: u32, newest: bool) {
        let held = self.miners.get_mut(&m);
        let Some(job) = held.and_then(|q| if newest { q.pop_back() } else { q.pop_front() }) else {
            // Not a miner, or idle: the scheduler must ignore the answer.
            self.sched.handle_result(self.now, m, 0, 0, None);
            return;
        };
        let (hash, nonce) = true_min(job.msg, job.lower, job.upper);
        let echo = Some((job.lower, job.upper));
        self.sched.handle_result(self.now, m, hash, nonce, echo);
        if let Some(r) = self.requests.get_mut(&job.request) {
            r.answered.push((job.lower, job.upper));
        }
    }

    /// Miner `m` lies about its oldest job, if it holds one on which it can; otherwise it
    /// answers truly.
    fn lie(&mut self, m: u32, kind: LieKind) {
        let Some(job) = self.miners.get(&m).and_then(|q| q.front()).copied() else {
            return self.answer(m, false);
        };
        let (hash, nonce) = true_min(job.msg, job.lower, job.upper);
        let (hash, nonce) = match kind {
            LieKind::OutOfRange => {
                let outside = if job.lower > 0 {
                    0
                } else {
                    job.upper.wrapping_add(1)
                };
                if (job.lower..=job.upper).contains(&outside) {
                    return self.answer(m, false); // The job covers every nonce.
                }
                // No nonce hashes to 1000 under the stand-in: it verifies nowhere.
                (1000, outside)
            }
            LieKind::WrongHash => (1000 + hash, nonce),
            LieKind::Lazy => {
                let first = (test_hash(job.msg, job.lower), job.lower);
                let small = u128::from(job.upper - job.lower) < u128::from(SPOT_CHECKS);
                if !small || first.0 == hash {
                    return self.answer(m, false); // Not surely caught, or not a lie.
                }
                first
            }
        };
        self.liar = Some(m);
        self.sched.handle_result(self.now, m, hash, nonce, None);
    }

    fn drain_and_check(&mut self) -> Check {
        while let Some(effect) = self.sched.poll_effect() {
            self.trace.push(effect.clone());
            match effect.clone() {
                Effect::SendJob {
                    miner,
                    request,
                    msg,
                    lower,
                    upper,
                    ..
                } => self.check_job(miner, request, &msg, lower, upper)?,
                Effect::Cancel { .. } | Effect::SendNotFound { .. } => {
                    return Err(format!("no miner announced target or cancel: {effect:?}"));
                }
                Effect::SendResult {
                    client,
                    request,
                    hash,
                    nonce,
                } => self.check_result(client, request, hash, nonce)?,
                Effect::Disconnect { miner, reason } => {
                    if self.liar.take() != Some(miner) {
                        return Err(format!("honest miner {miner} disconnected: {reason}"));
                    }
                    self.miners.remove(&miner);
                }
            }
        }
        if let Some(m) = self.liar {
            return Err(format!("miner {m} lied and was not disconnected"));
        }
        self.check_state()
    }

    fn check_job(&mut self, miner: u32, id: RequestId, msg: &str, lower: u64, upper: u64) -> Check {
        let Some(r) = self.active(id) else {
            return Err(format!("job for {id}, not a live client's active request"));
        };
        if msg != r.msg || lower > upper || lower < r.lower || upper > r.upper {
            return Err(format!(
                "job {msg:?} {lower}..={upper} does not fit {id} {:?} {}..={}",
                r.msg, r.lower, r.upper
            ));
        }
        if r.answered.iter().any(|a| overlaps(*a, (lower, upper))) {
            return Err(format!(
                "job {lower}..={upper} of {id} was already answered"
            ));
        }
        let mut copies = 0;
        for (m, held) in &self.miners {
            for j in held.iter().filter(|j| j.request == id) {
                if (j.lower, j.upper) == (lower, upper) {
                    if *m == miner {
                        return Err(format!("miner {m} got {lower}..={upper} twice"));
                    }
                    copies += 1;
                } else if overlaps((j.lower, j.upper), (lower, upper)) {
                    return Err(format!(
                        "job {lower}..={upper} overlaps {}..={} of {id}",
                        j.lower, j.upper
                    ));
                }
            }
        }
        let late = self
            .miners
            .keys()
            .filter(|m| **m != miner && self.sched.is_late(**m))
            .count();
        if copies > 1 + late {
            return Err(format!(
                "job {lower}..={upper} of {id} runs {} times with {late} late miners",
                copies + 1
            ));
        }
        let text = r.msg;
        let Some(held) = self.miners.get_mut(&miner) else {
            return Err(format!("job for miner {miner}, which is not joined"));
        };
        held.push_back(Job {
            request: id,
            msg: text,
            lower,
            upper,
        });
        if held.len() > self.depth && copies == 0 {
            return Err(format!("miner {miner} holds {} jobs", held.len()));
        }
        Ok(())
    }

    fn check_result(&mut self, client: u32, id: RequestId, hash: u64, nonce: u64) -> Check {
        let Some(r) = self.active(id) else {
            return Err(format!(
                "result for {id} to {client}: not its active request"
            ));
        };
        if r.client != client {
            return Err(format!("result for {id} to {client}, not {}", r.client));
        }
        let len = u128::from(r.upper - r.lower) + 1;
        if union_len(&r.answered) != len {
            return Err(format!(
                "result for {id} before all its nonces were answered"
            ));
        }
        let truth = true_min(r.msg, r.lower, r.upper);
        if (hash, nonce) != truth {
            return Err(format!(
                "result {:?} for {id}, truth {truth:?}",
                (hash, nonce)
            ));
        }
        self.requests.remove(&id);
        if let Some(ids) = self.clients.get_mut(&client) {
            ids.pop_front();
            if ids.is_empty() {
                self.clients.remove(&client);
            }
        }
        Ok(())
    }

    /// Checks the state after all effects were drained.
    fn check_state(&self) -> Check {
        for (m, held) in &self.miners {
            if self.sched.jobs_held(*m) != Some(held.len()) {
                return Err(format!(
                    "miner {m}: the scheduler says {:?} jobs, the model {}",
                    self.sched.jobs_held(*m),
                    held.len()
                ));
            }
        }
        if let Some(t) = self.sched.poll_timeout() {
            if t <= self.called_at {
                return Err(format!("timeout {t} is not after {}", self.called_at));
            }
        }
        self.check_leases()?;
        let modelled: usize = self.clients.values().map(VecDeque::len).sum();
        if self.sched.request_count() != modelled {
            return Err(format!(
                "the scheduler counts {} requests unanswered, the model {modelled}",
                self.sched.request_count()
            ));
        }
        let free =
            |(m, h): &(&u32, &VecDeque<Job>)| h.len() < self.depth && !self.sched.is_late(**m);
        if !self.miners.iter().any(|e| free(&e)) {
            return Ok(());
        }
        // A miner has a free slot: every nonce of every active request must be answered
        // or held by a miner.
        for (client, ids) in &self.clients {
            let Some(id) = ids.front() else { continue };
            let Some(r) = self.requests.get(id) else {
                continue;
            };
            let blocked = self
                .miners
                .iter()
                .filter(free)
                .all(|(_, h)| h.iter().any(|j| j.msg == r.msg));
            if blocked {
                continue;
            }
            let mut covered = r.answered.clone();
            for held in self.miners.values() {
                covered.extend(
                    held.iter()
                        .filter(|j| j.request == *id)
                        .map(|j| (j.lower, j.upper)),
                );
            }
            if union_len(&covered) < u128::from(r.upper - r.lower) + 1 {
                return Err(format!(
                    "a miner has a free slot while {id} of client {client} has work waiting"
                ));
            }
        }
        Ok(())
    }

    /// Every lease ended by the latest call has expired, and every expired job still
    /// unanswered runs on another miner within its lease, unless no miner could take it
    /// (every other one is late, runs it, or holds an overlapping job of the same text).
    fn check_leases(&self) -> Check {
        for (m, held) in &self.miners {
            let leases = self.sched.leases(*m);
            for (job, &(lease, expired)) in held.iter().zip(&leases) {
                if !expired && lease <= self.called_at {
                    return Err(format!(
                        "miner {m}: lease {lease} of {job:?} ended, not expired"
                    ));
                }
                let Some(r) = self.active(job.request) else {
                    continue;
                };
                let range = (job.lower, job.upper);
                if !expired || r.answered.iter().any(|a| overlaps(*a, range)) {
                    continue;
                }
                let mut eligible = false;
                for (other, theirs) in self.miners.iter().filter(|(o, _)| *o != m) {
                    let copy = theirs
                        .iter()
                        .zip(self.sched.leases(*other))
                        .find(|(j, _)| j.request == job.request && (j.lower, j.upper) == range);
                    if let Some((_, (_, false))) = copy {
                        eligible = false;
                        break;
                    }
                    let overlapping = theirs
                        .iter()
                        .any(|j| j.msg == job.msg && overlaps((j.lower, j.upper), range));
                    eligible |= copy.is_none() && !overlapping && !self.sched.is_late(*other);
                }
                if eligible {
                    return Err(format!(
                        "miner {m}'s expired {job:?} was not re-issued to an eligible miner"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Lets the miners answer everything (joining one if none is left), then checks that
    /// every live client was answered.
    fn finish(&mut self) -> Check {
        if self.miners.is_empty() {
            self.apply(&Event::Join(1))?;
        }
        for _ in 0..100_000 {
            let Some(m) = self
                .miners
                .iter()
                .find(|(_, h)| !h.is_empty())
                .map(|(m, _)| *m)
            else {
                break;
            };
            self.apply(&Event::Advance(700))?;
            self.apply(&Event::Answer(m))?;
        }
        if !self.clients.is_empty() || self.sched.request_count() != 0 {
            return Err(format!(
                "unanswered at the end: model {:?}, scheduler {}",
                self.clients,
                self.sched.request_count()
            ));
        }
        Ok(())
    }
}

/// Totals of the scheduler's counters over all cases, to show that the generator reaches
/// every path the invariants are about.
static TOTALS: Mutex<Option<Stats>> = Mutex::new(None);

fn add_to_totals(s: &Stats) {
    let mut guard = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let t = guard.get_or_insert_with(Stats::default);
    t.requests += s.requests;
    t.rejected_requests += s.rejected_requests;
    t.dropped_requests += s.dropped_requests;
    t.results_sent += s.results_sent;
    t.jobs_sent += s.jobs_sent;
    t.backup_jobs += s.backup_jobs;
    t.requeued_jobs += s.requeued_jobs;
    t.stale_results += s.stale_results;
    t.invalid_results += s.invalid_results;
    t.out_of_range_results += s.out_of_range_results;
    t.wrong_hash_results += s.wrong_hash_results;
    t.lazy_results += s.lazy_results;
    t.expired_leases += s.expired_leases;
    t.reissued_jobs += s.reissued_jobs;
    t.unexpected_results += s.unexpected_results;
    t.duplicate_joins += s.duplicate_joins;
}

fn run(case: &Case) -> Result<Vec<Effect<u32>>, String> {
    let mut h = Harness::new(case.config.clone());
    for (i, event) in case.events.iter().enumerate() {
        h.apply(event)
            .map_err(|e| format!("after event {i} {event:?}: {e}"))?;
    }
    h.finish().map_err(|e| format!("while finishing: {e}"))?;
    add_to_totals(h.sched.stats());
    Ok(h.trace)
}

fn invariants_hold(case: Case) -> TestResult {
    match (run(&case), run(&case)) {
        (Ok(a), Ok(b)) if a == b => TestResult::passed(),
        (Ok(_), Ok(_)) => TestResult::error("two runs of the same case differ"),
        (Err(e), _) | (_, Err(e)) => TestResult::error(e),
    }
}

/// The number of random sequences checked; each is run twice.
const CASES: u64 = 5000;

#[test]
fn invariants_hold_over_random_event_sequences() {
    let passed = QuickCheck::new()
        .rng(Gen::new(150))
        .tests(CASES)
        .max_tests(CASES)
        .quicktest(invariants_hold as fn(Case) -> TestResult)
        .unwrap_or_else(|failure| panic!("{failure:?}"));
    assert_eq!(passed, CASES);
    let totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let t = totals.expect("cases ran");
    eprintln!("totals over {CASES} cases, each run twice: {t:?}");
    for (what, n) in [
        ("results", t.results_sent),
        ("rejected requests", t.rejected_requests),
        ("dropped requests", t.dropped_requests),
        ("backup jobs", t.backup_jobs),
        ("requeued jobs", t.requeued_jobs),
        ("stale results", t.stale_results),
        ("out-of-range results", t.out_of_range_results),
        ("wrong-hash results", t.wrong_hash_results),
        ("lazy results", t.lazy_results),
        ("expired leases", t.expired_leases),
        ("re-issued jobs", t.reissued_jobs),
        ("unexpected results", t.unexpected_results),
        ("duplicate joins", t.duplicate_joins),
    ] {
        assert!(n > 0, "the generator never produced {what}");
    }
}

#[test]
fn the_model_can_fail() {
    // A scheduler that hands out nothing must be caught by the end-of-run check.
    let case = Case {
        config: Config::default(),
        events: vec![
            Event::Join(1),
            Event::Request {
                client: 101,
                msg: "msg",
                lower: 0,
                upper: 10,
            },
        ],
    };
    let mut h = Harness::new(case.config.clone());
    for e in &case.events {
        h.apply(e).unwrap();
    }
    // Drop the job the scheduler sent, as a scheduler that forgot it would.
    h.miners.get_mut(&1).unwrap().clear();
    assert!(h.check_state().is_err());
    assert!(run(&case).is_ok());
    assert_eq!(
        union_len(&[(0, 3), (2, 5), (7, 7), (u64::MAX, u64::MAX)]),
        8
    );
}
