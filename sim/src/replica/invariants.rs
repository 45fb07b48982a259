//! The checks of a replicated-coordinator run (see the [parent module](super)):
//! - at most one leader per term ([`ReplicaWorld::check_leaders`], after every step);
//! - every replica's disk holds the same entry at each committed index
//!   ([`ReplicaWorld::check_log`], after every batch of effects);
//! - every request the replicated state holds has its client's mode, and every answer it
//!   holds is the true one (the minimum, or in target mode the first hit or
//!   `"Found": false`), one per request across replicas ([`ReplicaWorld::check_state`],
//!   whenever a replica applied more);
//! - every answer a client gets is the true one, never a second different one, and the
//!   one the replicated state holds ([`ReplicaWorld::client_answered`]).

use std::collections::BTreeMap;

use bitcoin_core::message::Mode;
use bitcoin_core::replica::{Asked, Command, Outcome as Answer, Request, RequestKey};

use super::case::RequestPlan;

use super::conns::{ConnKey, Peer};
use super::world::ReplicaWorld;

/// What the checks remember across steps.
#[derive(Default)]
pub struct Checks {
    /// Term → the replica seen leading it.
    leaders: BTreeMap<u64, u64>,
    /// Committed index → (term, data) of its entry, as first seen on any disk.
    log: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Replica → highest committed index of its disk already checked.
    checked_commit: BTreeMap<u64, u64>,
    /// Replica → applied index at its last state check.
    checked_applied: BTreeMap<u64, u64>,
    /// Request (by the case's order) → the answer some replica's state holds, and its key.
    logged: BTreeMap<usize, (Answer, RequestKey)>,
}

impl Checks {
    /// Replica `id` restarted: check its disk and state from the start again.
    pub fn restarted(&mut self, id: u64) {
        self.checked_commit.remove(&id);
        self.checked_applied.remove(&id);
    }

    /// Distinct terms that had a leader.
    pub fn terms(&self) -> u64 {
        self.leaders.len() as u64
    }
}

fn describe(data: &[u8]) -> String {
    match Command::decode(data) {
        Ok(command) => format!("{command:?}"),
        Err(_) => format!("{} bytes", data.len()),
    }
}

impl ReplicaWorld {
    /// At most one leader per term.
    pub(super) fn check_leaders(&mut self) -> Result<(), String> {
        let leading: Vec<(u64, u64)> = self
            .coords
            .iter()
            .filter(|(_, c)| c.replica().is_leader())
            .map(|(&id, c)| (id, c.replica().term()))
            .collect();
        for (id, term) in leading {
            {
                match self.checks.leaders.insert(term, id) {
                    Some(other) if other != id => {
                        return Err(format!("replicas {other} and {id} both lead term {term}"))
                    }
                    Some(_) => {}
                    None => self.trace(&format!("replica {id} leads term {term}")),
                }
            }
        }
        Ok(())
    }

    /// Replica `id`'s disk agrees with every other on each committed entry.
    pub(super) fn check_log(&mut self, id: u64) -> Result<(), String> {
        let Some(disk) = self.disks.get(&id) else {
            return Ok(());
        };
        let commit = disk.hard_state().commit;
        let from = self.checks.checked_commit.get(&id).copied().unwrap_or(0);
        if commit <= from {
            return Ok(());
        }
        for entry in disk.entries_ref() {
            if entry.index <= from || entry.index > commit {
                continue;
            }
            let mine = (entry.term, entry.data.to_vec());
            match self.checks.log.get(&entry.index) {
                Some(known) if *known != mine => {
                    return Err(format!(
                        "replica {id} committed {} (term {}) at index {}, another committed {} (term {})",
                        describe(&mine.1),
                        mine.0,
                        entry.index,
                        describe(&known.1),
                        known.0
                    ))
                }
                Some(_) => {}
                None => {
                    self.checks.log.insert(entry.index, mine);
                }
            }
        }
        self.checks.checked_commit.insert(id, commit);
        Ok(())
    }

    /// The requests replica `id`'s state holds have their clients' modes; the answers it
    /// holds are the true ones, the same on every replica, and what clients got.
    pub(super) fn check_state(&mut self, id: u64) -> Result<(), String> {
        let Some(coord) = self.coords.get(&id) else {
            return Ok(());
        };
        let state = coord.replica().state();
        let applied = state.applied_index();
        if self.checks.checked_applied.get(&id) == Some(&applied) {
            return Ok(());
        }
        self.checks.checked_applied.insert(id, applied);
        for (key, request) in state.requests() {
            let i = self.request_of(key, request);
            if let Some(i) = i {
                let mode = Mode::from(request.mode);
                if mode != self.case.requests[i].mode {
                    return Err(format!(
                        "replica {id}'s state holds {key} in {mode}, its client asked for {}",
                        self.case.requests[i].mode
                    ));
                }
            }
            let Some(answer) = request.outcome() else {
                continue;
            };
            let Some(i) = i else {
                return Err(format!(
                    "replica {id} holds an answer to unknown request {key}"
                ));
            };
            let truth = self.truth[i];
            if answer != truth {
                return Err(format!(
                    "replica {id}'s state answers {key} {answer:?}, {}",
                    self.truth_is(i)
                ));
            }
            if let Some(got) = self.clients[i].answer.filter(|&got| got != answer) {
                return Err(format!(
                    "replica {id}'s state answers {key} {answer:?}, its client got {got:?}"
                ));
            }
            match self.checks.logged.insert(i, (answer, key.clone())) {
                Some((other, other_key)) if other != answer || other_key != *key => {
                    return Err(format!(
                        "request {i} answered {other:?} as {other_key} in one replica's state, {answer:?} as {key} in replica {id}'s"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// What request `i`'s true answer is, in words.
    fn truth_is(&self, i: usize) -> String {
        let truth = self.truth[i];
        match self.case.requests[i].mode {
            Mode::Minimum => format!("the true minimum is {truth:?}"),
            mode => format!("the true first hit ({mode}) is {truth:?}"),
        }
    }

    /// Client `i` got `answer` on connection `k`.
    pub(super) fn client_answered(
        &mut self,
        i: usize,
        k: ConnKey,
        answer: Answer,
    ) -> Result<(), String> {
        let key = self.case.requests[i].id;
        let truth = self.truth[i];
        if truth != answer {
            return Err(format!(
                "client {i} (#{key}) got {answer:?} on conn {k}, {}",
                self.truth_is(i)
            ));
        }
        match self.clients[i].answer {
            Some(known) if known != answer => {
                return Err(format!(
                    "client {i} (#{key}) answered {known:?} and then {answer:?}"
                ))
            }
            Some(_) => {}
            None => {
                self.clients[i].answer = Some(answer);
                self.outcome.answered += 1;
                if self.case.requests[i].mode.is_target() {
                    self.outcome.target_answered += 1;
                    self.outcome.not_found += u64::from(answer == Answer::NotFound);
                }
                self.trace(&format!("client {i} (#{key}) answered {answer:?}"));
            }
        }
        match self.checks.logged.get(&i) {
            Some((logged, _)) if *logged == answer => Ok(()),
            // Applied and forgotten within one batch of effects (a state remembering few
            // answers): later states must agree with the client (`check_state`).
            None if self.case.max_answered < self.case.requests.len() => Ok(()),
            logged => Err(format!(
                "client {i} (#{key}) got {answer:?}, the replicated state holds {logged:?}"
            )),
        }
    }

    /// The case's request a replicated request key names: `id:N` by its `"Id"` (of the
    /// clients sending that id, the one asking what the log holds), and
    /// `leader.term.conn` (a request without one) by the client on that connection.
    fn request_of(&self, key: &RequestKey, logged: &Request) -> Option<usize> {
        if key.client == "id" {
            return self
                .case
                .requests
                .iter()
                .position(|r| r.with_id && r.id == key.id && logged.asks(&asked(r)));
        }
        let conn: u64 = key.client.rsplit('.').next()?.parse().ok()?;
        match self.conns.all.get(&conn)?.peer {
            Peer::Client(i) if !self.case.requests[i].with_id && key.id == 1 => Some(i),
            _ => None,
        }
    }
}

/// What the client of `plan` asks for, as the coordinator compares it.
fn asked(plan: &RequestPlan) -> Asked {
    Asked {
        message: plan.message.clone(),
        lower: plan.lower,
        upper: plan.upper,
        mode: plan.mode.into(),
    }
}

impl ReplicaWorld {
    /// Whether client `i` can never be answered: its `"Id"` names, in some replica's
    /// state, a request of another client (it is refused each time it tries).
    pub(super) fn refused_for_good(&self, i: usize) -> bool {
        let plan = &self.case.requests[i];
        if !plan.with_id {
            return false;
        }
        let key = RequestKey::of_id(plan.id);
        let mine = asked(plan);
        self.coords.values().any(|coord| {
            coord
                .replica()
                .state()
                .request(&key)
                .is_some_and(|logged| !logged.asks(&mine))
        })
    }
}
