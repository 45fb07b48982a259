//! The replicated-coordinator world: one real [`Coordinator`] per replica with its disk,
//! the faulty raft network between them ([`super::raftnet`]), reliable connections to
//! simulated miners and clients ([`super::conns`], [`super::miners`], [`super::clients`]),
//! and the checks of [`super::invariants`]. See the [parent module](super) for what is
//! checked.
//!
//! Effects are honoured in the order the coordinator emits them, each `Persist` applied to
//! the replica's disk before anything after it is acted on. A replica may crash in the
//! middle of that: on a `Persist` it may die instead (before the heal, with the case's
//! crash probability), so that batch and every later effect are lost, as a process killed
//! between two writes loses them; it restarts from its disk.

use std::collections::BTreeMap;
use std::time::Duration;

use bitcoin_core::hash::hash;
use bitcoin_core::replica::{
    Coordinator, CoordinatorEffect, Disk, Outcome as Answer, ReplicaConfig,
};
use bitcoin_core::scheduler::Config;
use lsp_core::Timestamp;

use super::case::RequestPlan;
use super::case::{ReplicaCase, Sabotage, TICK_MS};
use super::clients::Client;
use super::conns::{ConnKey, Conns, Delivery, Peer};
use super::invariants::Checks;
use super::miners::Miner;
use super::raftnet::RaftNet;
use crate::digest::Digest;
use crate::mining::first_hit;
use crate::rng::Rng;

/// After the heal, every request must be answered within this long.
const LIVENESS_MS: u64 = 30_000;

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Virtual milliseconds played.
    pub ms: u64,
    /// Requests answered (to their clients).
    pub answered: u64,
    /// Of those, target requests.
    pub target_answered: u64,
    /// Of those, answered `"Found": false`.
    pub not_found: u64,
    /// Reference clients (no `"Id"`) that lost their connection unanswered and exited.
    pub disconnected: u64,
    /// Crashes.
    pub crashes: u64,
    /// Elections won (distinct terms with a leader).
    pub terms: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Jobs the miners searched.
    pub searches: u64,
    /// Of those, target jobs.
    pub target_searches: u64,
    /// Cancels the miners received.
    pub cancels: u64,
    /// NotLeader redirects clients and miners followed.
    pub redirects: u64,
    /// Unanswered requests new leaders restored from the replicated state.
    pub restored: u64,
    /// Requests refused because their `"Id"` named another client's request (each try
    /// counts).
    pub id_conflicts: u64,
    /// Clients never answered because their `"Id"` names another client's request.
    pub refused_for_good: u64,
    /// The trace digest.
    pub digest: u64,
}

impl Outcome {
    /// Adds `other`'s counts (and virtual time) to these, for a sweep's totals; the digest
    /// is a run's own and is left as it is.
    pub fn add(&mut self, other: &Outcome) {
        self.ms += other.ms;
        self.answered += other.answered;
        self.target_answered += other.target_answered;
        self.not_found += other.not_found;
        self.disconnected += other.disconnected;
        self.crashes += other.crashes;
        self.terms += other.terms;
        self.snapshots_installed += other.snapshots_installed;
        self.searches += other.searches;
        self.target_searches += other.target_searches;
        self.cancels += other.cancels;
        self.redirects += other.redirects;
        self.restored += other.restored;
        self.id_conflicts += other.id_conflicts;
        self.refused_for_good += other.refused_for_good;
    }
}

/// One run in progress.
pub struct ReplicaWorld {
    pub(super) case: ReplicaCase,
    verbose: bool,
    pub(super) rng: Rng,
    pub(super) now: u64,
    pub(super) coords: BTreeMap<u64, Coordinator<ConnKey>>,
    pub(super) disks: BTreeMap<u64, Disk>,
    restart_at: BTreeMap<u64, u64>,
    /// Sabotage `ActBeforePersist`: each replica's disk before its last batch of writes.
    unsynced: BTreeMap<u64, Disk>,
    net: RaftNet,
    pub(super) conns: Conns,
    pub(super) miners: Vec<Miner>,
    pub(super) clients: Vec<Client>,
    /// Each request's true answer, by the case's order ([`truth`]).
    pub(super) truth: Vec<Answer>,
    pub(super) checks: Checks,
    pub(super) digest: Digest,
    pub(super) outcome: Outcome,
}

/// The minimum (hash, nonce) of `message` over `lower..=upper` (`(u64::MAX, lower)` if
/// empty): a scalar scan, the reference's definition.
pub fn scan(message: &str, lower: u64, upper: u64) -> (u64, u64) {
    (lower..=upper)
        .map(|n| (hash(message, n), n))
        .min()
        .unwrap_or((u64::MAX, lower))
}

/// What `plan` must be answered, by scalar scans: its minimum in minimum mode; in target
/// mode its first hit, or `"Found": false` if no nonce of its range qualifies.
pub fn truth(plan: &RequestPlan) -> Answer {
    let found = |(hash, nonce)| Answer::Found { hash, nonce };
    if plan.mode.is_target() {
        first_hit(&plan.message, plan.lower, plan.upper, plan.mode).map_or(Answer::NotFound, found)
    } else {
        found(scan(&plan.message, plan.lower, plan.upper))
    }
}

/// The instant of virtual millisecond `ms`.
pub fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

impl ReplicaWorld {
    /// A world for `case`, every replica up with a fresh disk.
    pub fn new(case: ReplicaCase, verbose: bool) -> Result<Self, String> {
        let voters: Vec<u64> = (1..=case.replicas).collect();
        let mut truth = Vec::new();
        for r in &case.requests {
            if r.lower > r.upper {
                return Err("empty request".into());
            }
            truth.push(self::truth(r));
        }
        let miners = case.miners.iter().map(Miner::new).collect();
        let clients = case
            .requests
            .iter()
            .map(|r| Client::new(1 + r.id % case.replicas))
            .collect();
        let mut world = ReplicaWorld {
            rng: Rng::new(case.seed),
            verbose,
            now: 0,
            coords: BTreeMap::new(),
            disks: voters.iter().map(|&v| (v, Disk::fresh(&voters))).collect(),
            restart_at: BTreeMap::new(),
            unsynced: BTreeMap::new(),
            net: RaftNet::default(),
            conns: Conns::new(case.loss_ms),
            miners,
            clients,
            truth,
            checks: Checks::default(),
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
            snapshot_log_percent: self.case.snapshot_log_percent,
            max_answered: self.case.max_answered,
            ..ReplicaConfig::for_id(id, (1..=self.case.replicas).collect())
        }
    }

    /// The leader's scheduler: small first jobs (so a request takes several, each logged
    /// as a `RangeDone`), short leases (so a lost miner's work moves on quickly), and the
    /// case's request limit.
    fn scheduler_config(&self) -> Config {
        Config {
            initial_job_nonces: 64,
            lease_slack: Duration::from_millis(300),
            max_requests: self.case.max_requests,
            max_requests_per_client: self.case.max_requests.min(16),
            ..Config::default()
        }
    }

    /// Records `what` in the digest (and prints it with -v).
    pub(super) fn trace(&mut self, what: &str) {
        self.digest.u64(self.now);
        self.digest.bytes(what.as_bytes());
        if self.verbose {
            println!("{:>7} ms  {what}", self.now);
        }
    }

    pub(super) fn healed(&self) -> bool {
        self.now >= self.case.heal_ms
    }

    fn start(&mut self, id: u64) -> Result<(), String> {
        if self.case.sabotage == Sabotage::ForgetDisk && self.now > 0 {
            let voters: Vec<u64> = (1..=self.case.replicas).collect();
            self.disks.insert(id, Disk::fresh(&voters));
        }
        let disk = self.disks[&id].clone();
        let coord = Coordinator::new(&self.config(id), disk, self.scheduler_config())
            .map_err(|e| e.to_string())?;
        self.coords.insert(id, coord);
        self.checks.restarted(id);
        self.trace(&format!("replica {id} starts"));
        self.drain(id)
    }

    /// Adds what a coordinator's counters say to the outcome (at its crash or the end).
    fn count(&mut self, coord: &Coordinator<ConnKey>) {
        self.outcome.snapshots_installed += coord.replica().stats().snapshots_installed;
        self.outcome.restored += coord.stats().restored;
        self.outcome.id_conflicts += coord.stats().id_conflicts;
    }

    fn crash(&mut self, id: u64) {
        if let Some(coord) = self.coords.remove(&id) {
            self.count(&coord);
        }
        if let Some(disk) = self.unsynced.remove(&id) {
            self.disks.insert(id, disk);
        }
        self.conns.replica_crashed(self.now, id);
        self.outcome.crashes += 1;
        let down = self.rng.range(TICK_MS, self.case.down_ms);
        self.restart_at.insert(id, self.now + down);
        self.trace(&format!("replica {id} crashes"));
    }

    /// Replica `id` dies before a `Persist`: that batch and what follows are lost, except
    /// that a driver may write jobs (`Write`, which depend on nothing durable) before the
    /// writes queued ahead of them, so some of them went out.
    fn die_writing(&mut self, id: u64) {
        let mut coord = self.coords.remove(&id);
        while let Some(effect) = coord.as_mut().and_then(Coordinator::poll_effect) {
            if let CoordinatorEffect::Write(k, payload) = effect {
                if self.rng.below(2) == 0 {
                    self.digest.u64(k);
                    self.conns.send_to_peer(self.now, k, payload);
                }
            }
        }
        if let Some(coord) = coord {
            self.coords.insert(id, coord);
        }
        self.crash(id);
    }

    /// Honours every effect replica `id` has, in order (it may crash on a `Persist`).
    pub(super) fn drain(&mut self, id: u64) -> Result<(), String> {
        let now = self.now;
        let mut synced = false;
        loop {
            let Some(effect) = self.coords.get_mut(&id).and_then(Coordinator::poll_effect) else {
                break;
            };
            match effect {
                CoordinatorEffect::Persist(ops) => {
                    if !self.healed() && self.rng.chance(self.case.crash) {
                        self.trace(&format!("replica {id} dies before a write"));
                        // What it applied (committed entries) and wrote so far stands.
                        self.check_log(id)?;
                        self.check_state(id)?;
                        self.die_writing(id);
                        return Ok(());
                    }
                    if let Some(disk) = self.disks.get_mut(&id) {
                        if self.case.sabotage == Sabotage::ActBeforePersist && !synced {
                            synced = true;
                            self.unsynced.insert(id, disk.clone());
                        }
                        ops.iter().for_each(|op| disk.apply(op));
                    }
                }
                CoordinatorEffect::SendRaft(m) => {
                    self.net
                        .send(&self.case, &mut self.rng, &mut self.digest, now, m);
                }
                CoordinatorEffect::Write(k, payload) | CoordinatorEffect::Answer(k, payload) => {
                    self.digest.u64(k);
                    self.conns.send_to_peer(now, k, payload);
                }
                CoordinatorEffect::Close(k) => {
                    self.digest.u64(k);
                    self.conns.close_by_replica(now, k);
                }
                _ => {}
            }
        }
        self.check_log(id)?;
        self.check_state(id)
    }

    /// Plays the case to its end.
    pub fn run(mut self) -> Result<Outcome, String> {
        let deadline = self.case.heal_ms + LIVENESS_MS;
        while self.now <= deadline {
            self.step()?;
            self.check_leaders()?;
            let finished =
                (0..self.clients.len()).all(|i| self.clients[i].done() || self.refused_for_good(i));
            if self.healed() && finished {
                self.outcome.refused_for_good = (0..self.clients.len())
                    .filter(|&i| !self.clients[i].done())
                    .count() as u64;
                self.outcome.ms = self.now;
                self.outcome.terms = self.checks.terms();
                for coord in std::mem::take(&mut self.coords).values() {
                    self.count(coord);
                }
                self.outcome.digest = self.digest.value();
                return Ok(self.outcome);
            }
            self.now += 1;
        }
        let waiting: Vec<u64> = self
            .case
            .requests
            .iter()
            .zip(&self.clients)
            .enumerate()
            .filter(|(i, (_, c))| !c.done() && !self.refused_for_good(*i))
            .map(|(_, (r, _))| r.id)
            .collect();
        Err(format!(
            "liveness: requests {waiting:?} unanswered {LIVENESS_MS} ms after the heal"
        ))
    }

    fn step(&mut self) -> Result<(), String> {
        let now = self.now;
        // Crashes and restarts.
        let ids: Vec<u64> = (1..=self.case.replicas).collect();
        for &id in &ids {
            let up = self.coords.contains_key(&id);
            let stays_down = self.healed() && self.case.stay_down == Some(id);
            if up && stays_down {
                self.crash(id);
                self.restart_at.remove(&id);
            } else if up
                && !self.healed()
                && now.is_multiple_of(TICK_MS)
                && self.rng.chance(self.case.crash)
            {
                self.crash(id);
            } else if !up && !stays_down {
                let due = self.restart_at.get(&id).copied().unwrap_or(0);
                if due <= now || self.healed() {
                    self.restart_at.remove(&id);
                    self.start(id)?;
                }
            }
        }
        // Raft messages due.
        while let Some(message) = self.net.pop_due(&self.case, now) {
            let to = message.to;
            if let Some(coord) = self.coords.get_mut(&to) {
                coord.step_raft(at(now), message);
                self.drain(to)?;
            }
        }
        // Connections' deliveries due.
        while let Some(due) = self.conns.pop_due(now) {
            if let Some((delivery, conn)) = due {
                self.deliver(delivery, conn.replica, conn.peer)?;
            }
        }
        // Epochs and the leaders' timers.
        for &id in &ids {
            let tick = now.is_multiple_of(TICK_MS);
            let Some(coord) = self.coords.get_mut(&id) else {
                continue;
            };
            if tick {
                coord.tick(at(now));
            }
            if coord.poll_timeout().is_some_and(|t| t <= at(now)) {
                coord.handle_timeout(at(now));
            }
            self.drain(id)?;
        }
        self.miners_step()?;
        self.clients_step()
    }

    fn deliver(&mut self, delivery: Delivery, replica: u64, peer: Peer) -> Result<(), String> {
        let now = at(self.now);
        match (delivery, peer) {
            (Delivery::ToReplica(k, payload), _) => {
                if let Some(coord) = self.coords.get_mut(&replica) {
                    coord.handle_payload(now, k, &payload);
                    self.drain(replica)?;
                }
            }
            (Delivery::GoneAtReplica(k), _) => {
                if let Some(coord) = self.coords.get_mut(&replica) {
                    coord.handle_connection_gone(now, k);
                    self.drain(replica)?;
                }
            }
            (Delivery::ToPeer(k, payload), Peer::Miner(i)) => self.miner_payload(i, k, &payload)?,
            (Delivery::ToPeer(k, payload), Peer::Client(i)) => {
                self.client_payload(i, k, &payload)?;
            }
            (Delivery::GoneAtPeer(k), Peer::Miner(i)) => self.miner_gone(i, k),
            (Delivery::GoneAtPeer(k), Peer::Client(i)) => self.client_gone(i, k),
        }
        Ok(())
    }
}
