//! [`Coordinator`]: the miner server of one replica. The leader runs the ordinary
//! [`MinerService`] and [`crate::scheduler::Scheduler`]; what must survive its death goes
//! through the log first:
//!
//! - a client's Request is proposed as [`Command::Accept`], and handed to the scheduler
//!   only once applied;
//! - each chunk the scheduler verifies is proposed as [`Command::RangeDone`];
//! - a Result the scheduler would write is proposed as [`Command::Answered`] and written
//!   only once applied — so a request is answered one way, even across leaders.
//!
//! Target mode (`"Zeros"`, `"Algo"`) goes the same way: the mode rides in the `Accept`, a
//! target chunk is logged as [`Command::TargetDone`] with its first hit or none, and a
//! `"Found": false` answer as [`Command::AnsweredNotFound`]. The bytes written to the
//! client are those the plain server writes for the same request.
//!
//! A new leader rebuilds its scheduler from the replicated state: every unanswered request
//! is restored with the nonces still uncovered and the best answer so far
//! ([`MinerService::restore_request`]); miners, jobs and rates are soft state that starts
//! afresh as miners join it. A replica that is not the leader serves no one: it closes
//! every client or miner connection that sends it anything (after a NotLeader naming the
//! leader, to a peer that announced it: [`redirect`](super::redirect)), and on losing
//! leadership it closes all of them, so they look for the leader: those that announced it
//! after a NotLeader, kept until a leader is known if none is yet (`coordinator/leaving.rs`,
//! which also hands leadership over on purpose).
//!
//! Requests are named by [`RequestKey`]: a Request carrying `"Id": N` (an extension the
//! reference never sends) is `id:N`, so a client that resubmits it to the next leader is
//! answered once, from the log if need be; one without is named by the leader, the term
//! and the connection, and is answered only on that connection.
//!
//! Sans-IO like the rest: inputs take `now`; outputs are [`CoordinatorEffect`]s, in the
//! order the driver must honour (persist before sending what depends on it).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use lsp_core::Timestamp;

use super::command::{Asked, Command, RequestKey};
use super::disk::Disk;
pub use super::interface::{CoordinatorEffect, CoordinatorStats, Port};
use super::node::{Replica, ReplicaConfig, ReplicaEffect, ReplicaError};
use super::orphans::Orphans;

mod leaving;
use super::redirect;
use super::slots::Slots;
use super::state::{Applied, Outcome};
use super::RaftMessage;
use crate::message::ext::encode_target_result;
use crate::message::Message;
use crate::scheduler::Config;
use crate::scheduler::RequestError;
use crate::service::{CloseReason, MinerService};

/// One replica's miner server. See the [module documentation](self).
pub struct Coordinator<K> {
    replica: Replica,
    config: Config,
    service: Option<MinerService<Port<K>>>,
    slots: Slots,
    waiters: BTreeMap<RequestKey, BTreeSet<K>>,
    conns: BTreeSet<K>,
    /// Of `conns`, those whose payloads announced they understand a NotLeader.
    announced: BTreeSet<K>,
    /// Of `conns`, those whose Request asked for Progress messages (`"Progress": true`, as
    /// the plain server decides): the only ones a slot's Progress is forwarded to.
    progress: BTreeSet<K>,
    requests_on: BTreeMap<K, u64>,
    /// Announced connections held after stepping down with no leader known.
    orphans: Orphans<K>,
    /// How many ticks [`Coordinator::orphans`] are held at most: twice this replica's
    /// election timeout, time for an election to finish.
    orphan_ticks: usize,
    effects: VecDeque<CoordinatorEffect<K>>,
    stats: CoordinatorStats,
}

impl<K> fmt::Debug for Coordinator<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Copy + fmt::Debug> Coordinator<K> {
    /// A coordinator over a replica starting from `disk`, whose leader schedules with
    /// `config`.
    pub fn new(replica: &ReplicaConfig, disk: Disk, config: Config) -> Result<Self, ReplicaError> {
        // Checked now, so that becoming leader cannot fail later.
        if let Err(e) = MinerService::<Port<K>>::new(config.clone()) {
            return Err(ReplicaError::Config(e));
        }
        Ok(Coordinator {
            replica: Replica::new(replica, disk)?,
            config,
            service: None,
            slots: Slots::default(),
            waiters: BTreeMap::new(),
            conns: BTreeSet::new(),
            announced: BTreeSet::new(),
            progress: BTreeSet::new(),
            requests_on: BTreeMap::new(),
            orphans: Orphans::default(),
            orphan_ticks: 2 * replica.election_tick.max(1),
            effects: VecDeque::new(),
            stats: CoordinatorStats::default(),
        })
    }

    /// One epoch: ticks the replica.
    pub fn tick(&mut self, now: Timestamp) {
        let chunks = self.slots.take_unlogged();
        if !chunks.is_empty() && !self.propose_all(&chunks) {
            self.hold_again(chunks);
        }
        self.replica.tick();
        self.age_orphans();
        self.pump(now);
    }

    /// Commands a leader could not propose (raft-rs drops proposals while it hands its
    /// leadership over): kept for the next tick, unless this replica no longer leads (its
    /// successor restores from the log what they covered).
    fn hold_again(&mut self, commands: Vec<Command>) {
        if self.replica.is_leader() {
            for command in commands {
                self.slots.hold(command);
            }
        }
    }

    /// A raft message from a peer replica.
    pub fn step_raft(&mut self, now: Timestamp, message: RaftMessage) {
        self.replica.step(message);
        self.pump(now);
    }

    /// A payload from a client or miner connection.
    pub fn handle_payload(&mut self, now: Timestamp, conn: K, payload: &[u8]) {
        if !self.replica.is_leader() {
            self.stats.not_leader += 1;
            let leader = self.replica.leader();
            let orphan = self.orphans.contains(conn);
            if orphan && leader == 0 {
                // Kept until a leader is known (see `orphans`); what it sent (a miner's
                // answer, say) is dropped, as a follower drops it.
                return;
            }
            self.orphans.remove(conn);
            let known = leader != 0 && leader != self.replica.id();
            if known && (orphan || redirect::announces(payload)) {
                // Written before the close, so it is delivered: the peer moves on at once
                // instead of waiting for its loss detection.
                self.stats.redirected += 1;
                let hint = redirect::encode_not_leader(leader);
                self.effects.push_back(CoordinatorEffect::Write(conn, hint));
            }
            self.effects.push_back(CoordinatorEffect::Close(conn));
            return;
        }
        self.conns.insert(conn);
        if redirect::announces(payload) {
            self.announced.insert(conn);
        }
        let decoded = Message::decode_full(payload);
        if decoded.as_ref().is_ok_and(|d| d.progress) {
            self.progress.insert(conn);
        }
        match decoded.map(|d| (d.message, d.ext.mode)) {
            Ok((Message::Request { data, lower, upper }, Ok(mode))) => {
                let key = self.key_of(conn, payload);
                let asked = Asked {
                    message: data,
                    lower,
                    upper,
                    mode: mode.into(),
                };
                self.request(now, conn, key, asked);
            }
            Ok((Message::Request { .. }, Err(_))) => {
                // A bad Zeros/Algo: refused, as the plain server refuses it.
                self.stats.unsupported_mode += 1;
                self.effects.push_back(CoordinatorEffect::Close(conn));
            }
            _ => {
                if let Some(service) = self.service.as_mut() {
                    service.handle_payload(now, Port::Conn(conn), payload);
                }
            }
        }
        self.pump(now);
    }

    /// Connection `conn` is gone. Its requests stay in the log (it may resubmit them to
    /// another replica); if it was a miner, its jobs go back.
    pub fn handle_connection_gone(&mut self, now: Timestamp, conn: K) {
        self.orphans.remove(conn);
        self.conns.remove(&conn);
        self.announced.remove(&conn);
        self.progress.remove(&conn);
        self.requests_on.remove(&conn);
        for waiting in self.waiters.values_mut() {
            waiting.remove(&conn);
        }
        if let Some(service) = self.service.as_mut() {
            service.handle_connection_gone(now, Port::Conn(conn));
        }
        self.pump(now);
    }

    /// The time named by [`Coordinator::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if let Some(service) = self.service.as_mut() {
            service.handle_timeout(now);
        }
        self.pump(now);
    }

    /// When [`Coordinator::handle_timeout`] is next due (the leader's service's timeout).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.service.as_ref().and_then(MinerService::poll_timeout)
    }

    /// The next effect, oldest first.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<CoordinatorEffect<K>> {
        self.effects.pop_front()
    }

    /// The replica underneath.
    #[must_use]
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The leader's service, while this replica leads.
    #[must_use]
    pub fn service(&self) -> Option<&MinerService<Port<K>>> {
        self.service.as_ref()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &CoordinatorStats {
        &self.stats
    }

    /// The leader's service's next event ([`MinerService::poll_event`]); `None` on a
    /// follower. A request's client in them is its [`Port::Slot`]: see
    /// [`Coordinator::slot_clients`].
    pub fn poll_event(&mut self) -> Option<crate::accounting::PoolEvent<Port<K>>> {
        self.service.as_mut()?.poll_event()
    }

    /// The connections waiting for the request in `slot` (none once it is answered, or
    /// while its client has not resubmitted it to this leader).
    pub fn slot_clients(&self, slot: u64) -> impl Iterator<Item = K> + '_ {
        let key = self.slots.key(slot);
        key.and_then(|key| self.waiters.get(key))
            .into_iter()
            .flatten()
            .copied()
    }

    fn key_of(&mut self, conn: K, payload: &[u8]) -> RequestKey {
        match RequestKey::id_in(payload) {
            Some(id) => RequestKey::of_id(id),
            None => {
                let seq = self.requests_on.entry(conn).or_insert(0);
                *seq += 1;
                RequestKey {
                    client: format!("{}.{}.{conn:?}", self.replica.id(), self.replica.term()),
                    id: *seq,
                }
            }
        }
    }

    fn request(&mut self, now: Timestamp, conn: K, key: RequestKey, asked: Asked) {
        let fits = crate::request_size::check_mode(&asked.message, asked.upper, asked.mode.into());
        if asked.lower > asked.upper || fits.is_err() {
            self.effects.push_back(CoordinatorEffect::Close(conn));
            return;
        }
        let known = match self.replica.state().request(&key) {
            Some(request) => Some(request.asks(&asked)),
            None => self.slots.proposed_asking(&key).map(|a| *a == asked),
        };
        if known == Some(false) {
            // The id names another request: answering this one with its answer would be
            // wrong, so it is refused like any request the server cannot take.
            self.stats.id_conflicts += 1;
            self.effects.push_back(CoordinatorEffect::Close(conn));
            return;
        }
        let known = known.is_some();
        let held = self.replica.state().unanswered().count() + self.slots.proposed_count();
        if !known && held >= self.config.max_requests {
            // The log holds (or will, once what this leader proposed is applied) as many
            // unanswered requests as the scheduler may: refused, so that no client can grow
            // the replicated state without a bound.
            self.stats.refused += 1;
            self.effects.push_back(CoordinatorEffect::Close(conn));
            return;
        }
        self.waiters.entry(key.clone()).or_default().insert(conn);
        self.want_progress(now, &key);
        match self.replica.state().request(&key).map(|r| r.outcome()) {
            Some(Some(outcome)) => self.answer(&key, outcome),
            // Accepted and unanswered: normally running already (then this does nothing);
            // if the scheduler had no room for it, it is tried again.
            Some(None) => self.schedule(now, &key),
            None if self.slots.is_proposed(&key) => {}
            None => {
                if self.propose(&asked.clone().accept(key.clone())) {
                    self.slots.proposed(key, asked);
                } else {
                    // Not taken (a hand-over is under way): nothing would ever answer
                    // this waiter. Closed, so that its client resubmits.
                    if let Some(waiting) = self.waiters.get_mut(&key) {
                        waiting.remove(&conn);
                    }
                    self.effects.push_back(CoordinatorEffect::Close(conn));
                }
            }
        }
    }

    /// Closes every connection waiting for `key`, as requests whose id names another
    /// request.
    fn refuse_waiters(&mut self, key: &RequestKey) {
        for conn in self.waiters.remove(key).unwrap_or_default() {
            self.stats.id_conflicts += 1;
            self.effects.push_back(CoordinatorEffect::Close(conn));
        }
    }

    /// Proposes `command`; whether raft-rs took it.
    fn propose(&mut self, command: &Command) -> bool {
        self.propose_all(std::slice::from_ref(command))
    }

    /// Proposes `commands` as one batch ([`Replica::propose_all`]); whether raft-rs took
    /// them all.
    fn propose_all(&mut self, commands: &[Command]) -> bool {
        let taken = self.replica.propose_all(commands).is_ok();
        if !taken {
            self.stats.proposals_dropped += 1;
        }
        taken
    }

    /// Writes the answer of `key` to every connection waiting for it: the bytes the plain
    /// server writes (a Result, or a Result with `"Found": false`).
    fn answer(&mut self, key: &RequestKey, outcome: Outcome) {
        let payload = match outcome {
            Outcome::Found { hash, nonce } => Message::Result { hash, nonce }.encode(),
            Outcome::NotFound => encode_target_result(None, (0, 0)),
        };
        for conn in self.waiters.remove(key).unwrap_or_default() {
            self.effects
                .push_back(CoordinatorEffect::Answer(conn, payload.clone()));
        }
    }

    /// Hands request `key` (unanswered in the log) to the scheduler, with what is left.
    fn schedule(&mut self, now: Timestamp, key: &RequestKey) {
        if self.slots.slot(key).is_some() {
            return;
        }
        let Some(request) = self.replica.state().request(key).cloned() else {
            return;
        };
        if request.answered() {
            return;
        }
        if let Some(outcome) = request.answerable() {
            self.propose(&Command::answering(key.clone(), outcome));
            return;
        }
        let Some(service) = self.service.as_mut() else {
            return;
        };
        let slot = self.slots.allocate();
        let gaps = request.gaps();
        let restored = service.restore_request(
            now,
            Port::Slot(slot),
            &request.message,
            request.lower,
            request.upper,
            request.mode.into(),
            &gaps,
            request.best,
        );
        match restored {
            Ok(()) => {
                self.slots.bind(slot, key.clone());
                self.want_progress(now, key);
            }
            Err(refused) => {
                // The service keeps a record of the port it was given: forget it.
                service.handle_connection_gone(now, Port::Slot(slot));
                // No room in the scheduler (the log is past the limit: Accepts of an
                // earlier leader committed under this one): the request stays accepted,
                // its clients keep waiting, and it is scheduled when a slot frees.
                if matches!(refused, CloseReason::Refused(RequestError::Full { .. })) {
                    self.slots.defer(key.clone());
                    return;
                }
                for conn in self.waiters.remove(key).unwrap_or_default() {
                    self.effects.push_back(CoordinatorEffect::Close(conn));
                }
            }
        }
    }

    /// Asks the service for Progress on `key`'s slot if a connection waiting for it asked
    /// for Progress messages (see `progress`).
    fn want_progress(&mut self, now: Timestamp, key: &RequestKey) {
        let (Some(slot), Some(service)) = (self.slots.slot(key), self.service.as_mut()) else {
            return;
        };
        let mut waiting = self.waiters.get(key).into_iter().flatten();
        if waiting.any(|c| self.progress.contains(c)) {
            service.want_progress(now, Port::Slot(slot));
        }
    }

    /// Forwards a Progress the service wrote to `slot`, bytes unchanged, to the waiting
    /// connections that asked for Progress messages.
    fn forward_progress(&mut self, slot: u64, payload: &[u8]) {
        let Some(waiting) = self.slots.key(slot).and_then(|k| self.waiters.get(k)) else {
            return;
        };
        for &conn in waiting.intersection(&self.progress) {
            self.effects
                .push_back(CoordinatorEffect::Write(conn, payload.to_vec()));
        }
    }

    fn become_leader(&mut self, now: Timestamp) {
        let Ok(mut service) = MinerService::new(self.config.clone()) else {
            return;
        };
        service.report_coverage();
        self.service = Some(service);
        let keys: Vec<RequestKey> = self
            .replica
            .state()
            .unanswered()
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.stats.restored += 1;
            self.schedule(now, &key);
        }
    }

    /// Moves outputs along until nothing moves: the replica's effects (applying what was
    /// committed), then the service's coverage reports, writes and closes.
    fn pump(&mut self, now: Timestamp) {
        loop {
            let mut moved = false;
            if self.replica.is_leader() && self.service.is_none() {
                self.become_leader(now);
            } else if !self.replica.is_leader() && self.service.is_some() {
                self.step_down();
            }
            self.tell_orphans();
            while let Some(effect) = self.replica.poll_effect() {
                moved = true;
                match effect {
                    ReplicaEffect::Persist(ops) => {
                        self.effects.push_back(CoordinatorEffect::Persist(ops));
                    }
                    ReplicaEffect::Send(m) => {
                        self.effects.push_back(CoordinatorEffect::SendRaft(m))
                    }
                    ReplicaEffect::Applied {
                        command, outcome, ..
                    } => self.applied(now, &command, outcome),
                    _ => {}
                }
            }
            let mut covered = Vec::new();
            let mut writes = Vec::new();
            let mut closes = Vec::new();
            if let Some(service) = self.service.as_mut() {
                covered.extend(std::iter::from_fn(|| service.poll_covered()));
                writes.extend(std::iter::from_fn(|| service.poll_write()));
                closes.extend(std::iter::from_fn(|| service.poll_close()));
            }
            moved |= !(covered.is_empty() && writes.is_empty() && closes.is_empty());
            for c in covered {
                if let Port::Slot(slot) = c.client {
                    if let Some(key) = self.slots.key(slot).cloned() {
                        let done = Command::chunk_done(key, &c);
                        // Proposed at the next tick, with every chunk verified meanwhile:
                        // one log append (one fsync, one message per follower) per tick
                        // rather than per chunk. A leader that dies first loses them, and
                        // its successor searches them again.
                        self.slots.hold(done);
                    }
                }
            }
            let mut freed = Vec::new();
            for (to, payload) in writes {
                match to {
                    Port::Conn(conn) => self
                        .effects
                        .push_back(CoordinatorEffect::Write(conn, payload)),
                    Port::Slot(slot)
                        if matches!(Message::decode(&payload), Ok(Message::Progress { .. })) =>
                    {
                        self.forward_progress(slot, &payload);
                    }
                    Port::Slot(slot) => {
                        // The scheduler answered (and forgot) the request: log the answer.
                        let Some(key) = self.slots.release(slot) else {
                            continue;
                        };
                        freed.push(slot);
                        // Its chunks first, in the same batch: the log takes an answer
                        // only once it holds the coverage that makes it answerable.
                        let mut batch = self.slots.take_unlogged_of(&key);
                        if let Ok(d) = Message::decode_full(&payload) {
                            if let Message::Result { hash, nonce } = d.message {
                                let outcome = if d.ext.found {
                                    Outcome::Found { hash, nonce }
                                } else {
                                    Outcome::NotFound
                                };
                                batch.push(Command::answering(key, outcome));
                            }
                        }
                        if !self.propose_all(&batch) {
                            self.hold_again(batch);
                        }
                    }
                }
            }
            if !freed.is_empty() {
                // The service forgets the answered slots (it keeps a record per port)...
                if let Some(service) = self.service.as_mut() {
                    for slot in freed {
                        service.handle_connection_gone(now, Port::Slot(slot));
                    }
                }
                // ...and the requests the scheduler had no room for get their turn.
                for key in self.slots.take_deferred() {
                    self.schedule(now, &key);
                }
            }
            for (conn, _) in closes {
                if let Port::Conn(conn) = conn {
                    self.conns.remove(&conn);
                    self.announced.remove(&conn);
                    self.progress.remove(&conn);
                    self.effects.push_back(CoordinatorEffect::Close(conn));
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn applied(&mut self, now: Timestamp, command: &Command, outcome: Applied) {
        if let Command::Accept { key, .. } = command {
            let asked = self.slots.applied(key);
            let logged = self.replica.state().request(key);
            if let (Some(asked), Some(logged)) = (asked, logged) {
                if !logged.asks(&asked) {
                    // Another leader's Accept of this id, asking something else, came
                    // first: those waiting here asked for what this leader proposed.
                    self.refuse_waiters(key);
                }
            }
        }
        let leader = self.replica.is_leader() && self.service.is_some();
        match outcome {
            Applied::Accepted { key, .. } if leader => {
                if let Some(Some(outcome)) = self.replica.state().request(&key).map(|r| r.outcome())
                {
                    self.answer(&key, outcome);
                } else {
                    self.schedule(now, &key);
                }
            }
            Applied::Answered { key, hash, nonce } if leader => {
                self.answer(&key, Outcome::Found { hash, nonce })
            }
            Applied::NotFound { key } if leader => self.answer(&key, Outcome::NotFound),
            Applied::Ignored(_) if leader => {
                // An answer the log refused (a RangeDone of it was lost with an earlier
                // leadership): search what the log still lacks.
                if let Command::Answered { key, .. } | Command::AnsweredNotFound { key } = command {
                    self.schedule(now, key);
                }
            }
            _ => {}
        }
    }
}
