//! The replicated-coordinator world: replicas with their disks, a faulty network between
//! them, a modelled leader that searches ranges, and clients that resubmit to whoever
//! leads. See the [parent module](super) for what is checked.

use std::collections::BTreeMap;

use bitcoin_core::hash::hash;
use bitcoin_core::replica::{
    Applied, Command, Disk, Mode, RaftMessage, Replica, ReplicaConfig, ReplicaEffect, RequestKey,
};

use super::case::{ReplicaCase, Sabotage, TICK_MS};
use crate::digest::Digest;
use crate::rng::Rng;

/// Nonces a leader's job covers (chunks are aligned on the request's first nonce).
const CHUNK: u64 = 256;
/// Jobs a leader runs at once (its "miners").
const JOBS: usize = 4;
/// A client resubmits every this many ms until answered.
const RETRY_MS: u64 = 40;
/// A proposal not applied within this long is made again.
const PROPOSAL_TIMEOUT_MS: u64 = 400;
/// After the heal, every request must be answered within this long.
const LIVENESS_MS: u64 = 30_000;

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Virtual milliseconds played.
    pub ms: u64,
    /// Requests answered.
    pub answered: u64,
    /// Crashes.
    pub crashes: u64,
    /// Elections won (distinct terms with a leader).
    pub terms: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// The trace digest.
    pub digest: u64,
}

/// A leader's soft state: rebuilt from the replicated state after every change of leader.
#[derive(Default)]
struct Work {
    /// Running jobs: (request, chunk start) → (chunk end, done at ms).
    jobs: BTreeMap<(RequestKey, u64), (u64, u64)>,
    /// Proposals not yet applied: → proposed at ms.
    proposed: BTreeMap<(RequestKey, u64), u64>,
}

struct Client {
    target: u64,
    next_try: u64,
    answer: Option<(u64, u64)>,
}

/// One run in progress.
pub struct ReplicaWorld {
    case: ReplicaCase,
    verbose: bool,
    rng: Rng,
    now: u64,
    seq: u64,
    replicas: BTreeMap<u64, Replica>,
    disks: BTreeMap<u64, Disk>,
    restart_at: BTreeMap<u64, u64>,
    work: BTreeMap<u64, Work>,
    flights: BTreeMap<(u64, u64), RaftMessage>,
    clients: BTreeMap<RequestKey, Client>,
    truth: BTreeMap<RequestKey, (u64, u64)>,
    leaders: BTreeMap<u64, u64>,
    log: BTreeMap<u64, Command>,
    digest: Digest,
    outcome: Outcome,
}

impl ReplicaWorld {
    /// A world for `case`, every replica up with a fresh disk.
    pub fn new(case: ReplicaCase, verbose: bool) -> Result<Self, String> {
        let voters: Vec<u64> = (1..=case.replicas).collect();
        let mut truth = BTreeMap::new();
        for r in &case.requests {
            let best = (r.lower..=r.upper)
                .map(|n| (hash(&r.message, n), n))
                .min()
                .ok_or("empty request")?;
            truth.insert(key(&r.client, r.id), best);
        }
        let mut world = ReplicaWorld {
            rng: Rng::new(case.seed),
            verbose,
            now: 0,
            seq: 0,
            replicas: BTreeMap::new(),
            disks: voters.iter().map(|&v| (v, Disk::fresh(&voters))).collect(),
            restart_at: BTreeMap::new(),
            work: BTreeMap::new(),
            flights: BTreeMap::new(),
            clients: BTreeMap::new(),
            truth,
            leaders: BTreeMap::new(),
            log: BTreeMap::new(),
            digest: Digest::default(),
            outcome: Outcome::default(),
            case,
        };
        for id in voters {
            world.start(id)?;
        }
        Ok(world)
    }

    fn config(&self, id: u64) -> ReplicaConfig {
        ReplicaConfig {
            election_tick: self.case.election_ticks[(id - 1) as usize],
            heartbeat_tick: 2,
            snapshot_every: self.case.snapshot_every,
            ..ReplicaConfig::for_id(id, (1..=self.case.replicas).collect())
        }
    }

    fn trace(&mut self, what: &str) {
        self.digest.u64(self.now);
        self.digest.bytes(what.as_bytes());
        if self.verbose {
            println!("{:>7} ms  {what}", self.now);
        }
    }

    fn start(&mut self, id: u64) -> Result<(), String> {
        if self.case.sabotage == Sabotage::ForgetDisk && self.now > 0 {
            let voters: Vec<u64> = (1..=self.case.replicas).collect();
            self.disks.insert(id, Disk::fresh(&voters));
        }
        let disk = self.disks[&id].clone();
        let replica = Replica::new(&self.config(id), disk).map_err(|e| e.to_string())?;
        self.replicas.insert(id, replica);
        self.trace(&format!("replica {id} starts"));
        self.drain(id)
    }

    fn crash(&mut self, id: u64) {
        self.replicas.remove(&id);
        self.work.remove(&id);
        self.outcome.crashes += 1;
        let down = self.rng.range(TICK_MS, self.case.down_ms);
        self.restart_at.insert(id, self.now + down);
        self.trace(&format!("replica {id} crashes"));
    }

    fn healed(&self) -> bool {
        self.now >= self.case.heal_ms
    }

    /// Whether `a` and `b` are on the same side of every active partition.
    fn connected(&self, a: u64, b: u64) -> bool {
        self.healed()
            || self.case.partitions.iter().all(|p| {
                !(p.from_ms..p.until_ms).contains(&self.now)
                    || p.cut.contains(&a) == p.cut.contains(&b)
            })
    }

    /// Handles every effect replica `id` has, in order.
    fn drain(&mut self, id: u64) -> Result<(), String> {
        loop {
            let Some(replica) = self.replicas.get_mut(&id) else {
                return Ok(());
            };
            let Some(effect) = replica.poll_effect() else {
                return Ok(());
            };
            let is_leader = replica.is_leader();
            match effect {
                ReplicaEffect::Persist(ops) => {
                    if let Some(disk) = self.disks.get_mut(&id) {
                        ops.iter().for_each(|op| disk.apply(op));
                    }
                }
                ReplicaEffect::Send(message) => self.send(message),
                ReplicaEffect::Applied {
                    index,
                    command,
                    outcome,
                } => self.applied(id, is_leader, index, command, outcome)?,
                ReplicaEffect::Restored => {
                    self.outcome.snapshots_installed += 1;
                    self.trace(&format!("replica {id} restored from a snapshot"));
                }
                _ => {}
            }
        }
    }

    fn send(&mut self, message: RaftMessage) {
        let (from, to) = (message.from, message.to);
        self.digest.u64(from << 32 | to);
        self.digest.u64(message.get_msg_type() as u64);
        if !self.healed() && self.rng.chance(self.case.loss) {
            return;
        }
        let at = self.now + 1 + self.rng.range(0, self.case.jitter_ms);
        self.seq += 1;
        self.flights.insert((at, self.seq), message);
    }

    fn applied(
        &mut self,
        id: u64,
        is_leader: bool,
        index: u64,
        command: Command,
        outcome: Applied,
    ) -> Result<(), String> {
        // State machine safety: one command per index, whichever replica applies it.
        match self.log.get(&index) {
            Some(known) if *known != command => {
                return Err(format!(
                    "replica {id} applied {command:?} at index {index}, another applied {known:?}"
                ))
            }
            Some(_) => {}
            None => {
                self.log.insert(index, command.clone());
            }
        }
        self.digest.u64(index);
        if let Some(work) = self.work.get_mut(&id) {
            if let Command::RangeDone { key, lower, .. } = &command {
                work.proposed.remove(&(key.clone(), *lower));
            }
            if let Command::Answered { key, .. } = &command {
                work.proposed.remove(&(key.clone(), u64::MAX));
            }
        }
        if let Applied::Answered { key, hash, nonce } = outcome {
            if self.truth.get(&key) != Some(&(hash, nonce)) {
                return Err(format!(
                    "replica {id} applied answer ({hash}, {nonce}) to {key}, the true minimum is {:?}",
                    self.truth.get(&key)
                ));
            }
            if is_leader {
                self.deliver(id, &key, (hash, nonce))?;
            }
        }
        Ok(())
    }

    /// The leader `id` writes `answer` to the client of `key`.
    fn deliver(&mut self, id: u64, key: &RequestKey, answer: (u64, u64)) -> Result<(), String> {
        let Some(client) = self.clients.get_mut(key) else {
            return Ok(());
        };
        match client.answer {
            Some(known) if known != answer => {
                return Err(format!(
                    "{key} answered {known:?} and then {answer:?} (by replica {id})"
                ))
            }
            Some(_) => {}
            None => {
                client.answer = Some(answer);
                self.outcome.answered += 1;
                self.trace(&format!("replica {id} answers {key}: {answer:?}"));
            }
        }
        if self.truth.get(key) != Some(&answer) {
            return Err(format!(
                "{key} answered {answer:?}, the true minimum is {:?}",
                self.truth.get(key)
            ));
        }
        Ok(())
    }

    /// Plays the case to its end.
    pub fn run(mut self) -> Result<Outcome, String> {
        let deadline = self.case.heal_ms + LIVENESS_MS;
        while self.now <= deadline {
            self.step()?;
            self.check()?;
            if self.healed()
                && self.clients.len() == self.truth.len()
                && self.clients.values().all(|c| c.answer.is_some())
            {
                self.outcome.ms = self.now;
                self.outcome.terms = self.leaders.len() as u64;
                self.outcome.digest = self.digest.value();
                return Ok(self.outcome);
            }
            self.now += 1;
        }
        let waiting: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, c)| c.answer.is_none())
            .map(|(k, _)| k.to_string())
            .collect();
        Err(format!(
            "liveness: {waiting:?} unanswered {LIVENESS_MS} ms after the heal"
        ))
    }

    fn step(&mut self) -> Result<(), String> {
        // Crashes and restarts.
        let ids: Vec<u64> = (1..=self.case.replicas).collect();
        for &id in &ids {
            let up = self.replicas.contains_key(&id);
            let stays_down = self.healed() && self.case.stay_down == Some(id);
            if up && stays_down {
                self.crash(id);
                self.restart_at.remove(&id);
            } else if up
                && !self.healed()
                && self.now.is_multiple_of(TICK_MS)
                && self.rng.chance(self.case.crash)
            {
                self.crash(id);
            } else if !up && !stays_down {
                let due = self.restart_at.get(&id).copied().unwrap_or(0);
                if due <= self.now || self.healed() {
                    self.restart_at.remove(&id);
                    self.start(id)?;
                }
            }
        }
        // Raft messages due.
        while let Some(entry) = self.flights.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let message = entry.remove();
            let (from, to) = (message.from, message.to);
            if !self.connected(from, to) {
                continue;
            }
            if let Some(replica) = self.replicas.get_mut(&to) {
                replica.step(message);
                self.drain(to)?;
            }
        }
        if self.now.is_multiple_of(TICK_MS) {
            for id in ids.iter().copied() {
                if let Some(replica) = self.replicas.get_mut(&id) {
                    replica.tick();
                    self.drain(id)?;
                }
            }
        }
        self.clients_send()?;
        for id in ids {
            self.lead(id)?;
        }
        Ok(())
    }

    /// Clients whose time has come send (or resubmit) their request to their target.
    fn clients_send(&mut self) -> Result<(), String> {
        let plans: Vec<_> = self
            .case
            .requests
            .iter()
            .filter(|r| r.at_ms <= self.now)
            .cloned()
            .collect();
        for plan in plans {
            let key = key(&plan.client, plan.id);
            let n = self.case.replicas;
            let client = self.clients.entry(key.clone()).or_insert(Client {
                target: 1 + plan.id % n,
                next_try: plan.at_ms,
                answer: None,
            });
            if client.answer.is_some() || client.next_try > self.now {
                continue;
            }
            client.next_try = self.now + RETRY_MS;
            let target = client.target;
            let Some(replica) = self.replicas.get_mut(&target) else {
                client.target = target % n + 1;
                continue;
            };
            if !replica.is_leader() {
                let hint = replica.leader();
                client.target = if hint != 0 && hint != target {
                    hint
                } else {
                    target % n + 1
                };
                continue;
            }
            match replica.state().request(&key).map(|r| r.answer) {
                Some(Some(answer)) => self.deliver(target, &key, answer)?,
                Some(None) => {}
                None => {
                    let accept = Command::Accept {
                        key: key.clone(),
                        message: plan.message.clone(),
                        lower: plan.lower,
                        upper: plan.upper,
                        mode: Mode::Minimum,
                    };
                    // Not accepted if leadership is lost meanwhile: the client retries.
                    let result = replica.propose(&accept);
                    self.drain(target)?;
                    self.trace(&format!("{key} sent to replica {target}: {result:?}"));
                }
            }
        }
        Ok(())
    }

    /// The leader's soft state: finishes due jobs (proposing their ranges), starts jobs on
    /// uncovered chunks, and proposes answers of complete requests.
    fn lead(&mut self, id: u64) -> Result<(), String> {
        let Some((leads, term)) = self.replicas.get(&id).map(|r| (r.is_leader(), r.term())) else {
            return Ok(());
        };
        if !leads {
            if self.work.remove(&id).is_some() {
                self.trace(&format!("replica {id} stops leading"));
            }
            return Ok(());
        }
        if !self.work.contains_key(&id) {
            self.trace(&format!("replica {id} leads term {term}"));
            self.work.insert(id, Work::default());
        }
        let Some(replica) = self.replicas.get(&id) else {
            return Ok(());
        };
        let now = self.now;
        let mut proposals = Vec::new();
        let mut work = self.work.remove(&id).unwrap_or_default();
        work.proposed
            .retain(|_, at| now < *at + PROPOSAL_TIMEOUT_MS);
        // Jobs done.
        let done: Vec<_> = work
            .jobs
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, (end, _))| (k.clone(), *end))
            .collect();
        for ((key, start), end) in done {
            work.jobs.remove(&(key.clone(), start));
            let Some(request) = replica.state().request(&key) else {
                continue;
            };
            let (hash, nonce) = if self.case.sabotage == Sabotage::LazyLeader {
                (hash(&request.message, start), start)
            } else {
                (start..=end)
                    .map(|n| (hash(&request.message, n), n))
                    .min()
                    .unwrap_or((u64::MAX, start))
            };
            work.proposed.insert((key.clone(), start), now);
            proposals.push(Command::RangeDone {
                key,
                lower: start,
                upper: end,
                hash,
                nonce,
            });
        }
        // New jobs and answers.
        for (key, request) in replica.state().unanswered() {
            if request.complete() {
                let Some((hash, nonce)) = request.best else {
                    continue;
                };
                if work.proposed.contains_key(&(key.clone(), u64::MAX)) {
                    continue;
                }
                work.proposed.insert((key.clone(), u64::MAX), now);
                proposals.push(Command::Answered {
                    key: key.clone(),
                    hash,
                    nonce,
                });
                continue;
            }
            for (from, to) in request.gaps() {
                let mut start = from;
                while start <= to && work.jobs.len() < JOBS {
                    let end = to.min(start + CHUNK - 1);
                    let k = (key.clone(), start);
                    if !work.jobs.contains_key(&k) && !work.proposed.contains_key(&k) {
                        let at = now + self.rng.range(1, 20);
                        work.jobs.insert(k, (end, at));
                    }
                    start = end + 1;
                }
            }
        }
        self.work.insert(id, work);
        for command in proposals {
            if let Some(replica) = self.replicas.get_mut(&id) {
                let _ = replica.propose(&command);
            }
            self.drain(id)?;
        }
        Ok(())
    }

    /// Invariants after every step.
    fn check(&mut self) -> Result<(), String> {
        for (&id, replica) in &self.replicas {
            if replica.is_leader() {
                let term = replica.term();
                match self.leaders.insert(term, id) {
                    Some(other) if other != id => {
                        return Err(format!("replicas {other} and {id} both lead term {term}"))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn key(client: &str, id: u64) -> RequestKey {
    RequestKey {
        client: client.to_string(),
        id,
    }
}
