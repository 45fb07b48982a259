//! [`Replica`]: one member of the Raft group, as a sans-IO state machine around raft-rs's
//! [`RawNode`] and the [`ReplicatedState`].

use std::collections::{BTreeMap, VecDeque};

use core::fmt;

use raft::eraftpb::{Entry, EntryType, Message, Snapshot};
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole, Storage};

use super::command::Command;
use super::disk::{Disk, DiskOp};
use super::state::{Applied, ReplicatedState};

/// Bytes counted for each log entry besides its payload (index, term, type, framing), in
/// [`ReplicaConfig::snapshot_log_percent`]'s size trigger.
pub const ENTRY_OVERHEAD: u64 = 24;

/// A replica's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This replica's id (1-based, unique in the group).
    pub id: u64,
    /// Every voter's id, this one included.
    pub voters: Vec<u64>,
    /// Ticks without hearing a leader before this replica stands for election.
    ///
    /// **Determinism.** raft-rs draws each election timeout from an ambient RNG
    /// (`rand::thread_rng`) in `[min_election_tick, max_election_tick)`. The replica sets
    /// `min = election_tick` and `max = election_tick + 1`, so the draw always yields
    /// `election_tick`: no randomness is left. Split votes are avoided instead by giving
    /// each replica a *distinct* `election_tick` — drawn from the seed in the simulator,
    /// derived from the replica id in the programs ([`ReplicaConfig::for_id`]).
    pub election_tick: usize,
    /// Ticks between the leader's heartbeats (less than `election_tick`).
    pub heartbeat_tick: usize,
    /// The fewest applied entries between two snapshots (and, with
    /// `snapshot_log_percent` 0, exactly how many: a snapshot every this many).
    pub snapshot_every: u64,
    /// Size trigger: a snapshot is also held back until the entries applied since the last
    /// one add up to at least this percent of that snapshot's bytes (each entry counted as
    /// its payload plus [`ENTRY_OVERHEAD`]). With 100, the log stays about the snapshot's
    /// size, and the snapshot bytes written are at most the log bytes written, whatever
    /// the state's size (amortized O(1) per logged byte). 0: `snapshot_every` alone
    /// decides (tests use it to force frequent snapshots).
    ///
    /// Both counts are a pure function of the applied log and of the state at the last
    /// snapshot's index, so the decision is deterministic.
    pub snapshot_log_percent: u64,
    /// Answered requests remembered (to answer resubmissions the same way).
    pub max_answered: usize,
}

impl ReplicaConfig {
    /// The programs' configuration for replica `id` of `voters`: heartbeat every tick,
    /// election after `10 + 3 × (id − 1)` ticks (distinct per replica, so elections rarely
    /// split), a snapshot after at least 1,000 entries once their bytes reach the last
    /// snapshot's (`snapshot_log_percent` 100).
    #[must_use]
    pub fn for_id(id: u64, voters: Vec<u64>) -> Self {
        ReplicaConfig {
            id,
            voters,
            election_tick: 10 + 3 * (id.saturating_sub(1) as usize % 64),
            heartbeat_tick: 1,
            snapshot_every: 1_000,
            snapshot_log_percent: 100,
            max_answered: 100_000,
        }
    }
}

/// Why a replica could not be built, or a proposal was not taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplicaError {
    /// raft-rs refused the configuration or the disk.
    Raft(raft::Error),
    /// The disk's snapshot does not decode.
    BadSnapshot(super::command::CommandError),
    /// The leader's scheduler configuration is invalid.
    Config(crate::scheduler::ConfigError),
    /// Only the leader takes proposals; this replica believes `leader` is (0: unknown).
    NotLeader {
        /// The leader this replica knows of, or 0.
        leader: u64,
    },
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaError::Raft(e) => write!(f, "raft: {e}"),
            ReplicaError::BadSnapshot(e) => write!(f, "snapshot: {e}"),
            ReplicaError::Config(e) => write!(f, "scheduler configuration: {e}"),
            ReplicaError::NotLeader { leader } => write!(f, "not the leader (leader: {leader})"),
        }
    }
}

impl std::error::Error for ReplicaError {}

/// What the driver must do, in order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ReplicaEffect {
    /// Make these changes durable (in order) before acting on any later effect.
    Persist(Vec<DiskOp>),
    /// Send this raft message to replica `msg.to`.
    Send(Message),
    /// Log entry `index` was committed and applied to the state: what it did.
    Applied {
        /// The entry's index.
        index: u64,
        /// The command.
        command: Command,
        /// Its outcome.
        outcome: Applied,
    },
    /// A snapshot from the leader replaced the state (the driver must rebuild whatever it
    /// derived from it).
    Restored,
}

/// Counters of what went wrong, harmlessly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Raft messages raft-rs refused.
    pub bad_messages: u64,
    /// Committed entries that did not decode as commands.
    pub bad_entries: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Snapshots sent to a follower and reported failed for want of an acknowledgement.
    pub snapshots_retried: u64,
    /// Snapshots received from the leader and installed (this replica lagged behind the
    /// leader's compacted log).
    pub snapshots_installed: u64,
}

/// One replica. Inputs: [`Replica::tick`], [`Replica::step`], [`Replica::propose`]; outputs:
/// [`Replica::poll_effect`], drained after every input.
pub struct Replica {
    node: RawNode<Disk>,
    state: ReplicatedState,
    effects: VecDeque<ReplicaEffect>,
    snapshot_every: u64,
    snapshot_log_percent: u64,
    /// Bytes (payload plus [`ENTRY_OVERHEAD`]) of the entries applied after the last
    /// snapshot's index: the size trigger's measure of the log.
    log_bytes: u64,
    /// Leader only: ticks each follower has spent waiting for a snapshot.
    snapshot_wait: BTreeMap<u64, usize>,
    /// Ticks after which a snapshot not acknowledged is reported failed.
    snapshot_patience: usize,
    stats: ReplicaStats,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.node.raft.id)
            .field("term", &self.term())
            .field("leader", &self.leader())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// A replica starting from `disk`: [`Disk::fresh`] the first time, the driver's
    /// durable copy after a restart. Its state is the disk's snapshot; committed entries
    /// after it are applied again (and reported as [`ReplicaEffect::Applied`]) as raft-rs
    /// hands them out.
    pub fn new(config: &ReplicaConfig, disk: Disk) -> Result<Self, ReplicaError> {
        let snapshot = disk.snapshot_ref();
        let state = if snapshot.data.is_empty() {
            ReplicatedState::new(config.max_answered)
        } else {
            ReplicatedState::restore(&snapshot.data).map_err(ReplicaError::BadSnapshot)?
        };
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            // See ReplicaConfig::election_tick: a range of one value, so no randomness.
            min_election_tick: config.election_tick,
            max_election_tick: config.election_tick + 1,
            applied: snapshot.get_metadata().index,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // Appends queued for one follower in one round go as one message: the
            // coordinator proposes a tick's chunks together (`propose_all`).
            batch_append: true,
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&raft_config, disk, &logger).map_err(ReplicaError::Raft)?;
        Ok(Replica {
            node,
            state,
            effects: VecDeque::new(),
            snapshot_every: config.snapshot_every.max(1),
            snapshot_log_percent: config.snapshot_log_percent,
            log_bytes: 0,
            snapshot_wait: BTreeMap::new(),
            snapshot_patience: config.election_tick.max(1),
            stats: ReplicaStats::default(),
        })
    }

    /// One tick of the replica's clock (the driver calls it every epoch).
    pub fn tick(&mut self) {
        self.node.tick();
        self.retry_snapshots();
        self.drive();
    }

    /// raft-rs leaves a follower in the snapshot state until the application reports the
    /// snapshot's fate; a lost snapshot message would stall that follower for ever. The
    /// transport cannot tell, so a snapshot not acknowledged within `election_tick` ticks
    /// is reported failed, and raft-rs probes the follower and sends it again.
    fn retry_snapshots(&mut self) {
        if !self.is_leader() {
            self.snapshot_wait.clear();
            return;
        }
        let waiting: Vec<u64> = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(_, pr)| pr.state == ProgressState::Snapshot)
            .map(|(&id, _)| id)
            .collect();
        self.snapshot_wait.retain(|id, _| waiting.contains(id));
        for id in waiting {
            let ticks = self.snapshot_wait.entry(id).or_insert(0);
            *ticks += 1;
            if *ticks > self.snapshot_patience {
                self.snapshot_wait.remove(&id);
                self.stats.snapshots_retried += 1;
                self.node.report_snapshot(id, SnapshotStatus::Failure);
            }
        }
    }

    /// A raft message from a peer. One raft-rs refuses is counted and dropped.
    pub fn step(&mut self, message: Message) {
        if self.node.step(message).is_err() {
            self.stats.bad_messages += 1;
        }
        self.drive();
    }

    /// Proposes `command` to the log. Only the leader takes proposals; it is applied (and
    /// reported) once committed, which may never happen if leadership is lost meanwhile.
    pub fn propose(&mut self, command: &Command) -> Result<(), ReplicaError> {
        self.propose_all(std::slice::from_ref(command))
    }

    /// Like [`Replica::propose`] for several commands, in order, as one batch: raft-rs
    /// appends them together, so they cost one `Persist` and one append message per
    /// follower rather than one per command. Stops at the first one raft-rs refuses
    /// (those before it stay proposed).
    pub fn propose_all(&mut self, commands: &[Command]) -> Result<(), ReplicaError> {
        if !self.is_leader() {
            return Err(ReplicaError::NotLeader {
                leader: self.leader(),
            });
        }
        let mut result = Ok(());
        for command in commands {
            if let Err(e) = self.node.propose(Vec::new(), command.encode()) {
                result = Err(ReplicaError::Raft(e));
                break;
            }
        }
        self.drive();
        result
    }

    /// The next effect, oldest first.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<ReplicaEffect> {
        self.effects.pop_front()
    }

    /// Whether this replica is the leader of its current term.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// This replica's role now: `"leader"`, `"candidate"`, `"pre_candidate"` (asking
    /// whether it could win an election, raft-rs's pre-vote) or `"follower"`.
    #[must_use]
    pub fn role(&self) -> &'static str {
        match self.node.raft.state {
            StateRole::Leader => "leader",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "pre_candidate",
            StateRole::Follower => "follower",
        }
    }

    /// Asks raft-rs to hand this replica's leadership to the follower whose log matches
    /// the most of it (ties to the lowest id), so that it can leave without an election
    /// timeout: the follower is told to campaign at once, once its log is up to date. Until
    /// the transfer succeeds or raft-rs abandons it (after an election timeout), proposals
    /// are dropped. Returns the follower, or `None` if this replica does not lead or has
    /// no other voter.
    pub fn transfer_leadership(&mut self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let me = self.id();
        let to = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(&id, _)| id != me)
            .max_by_key(|(&id, progress)| (progress.matched, std::cmp::Reverse(id)))
            .map(|(&id, _)| id)?;
        self.node.transfer_leader(to);
        self.drive();
        Some(to)
    }

    /// Whether this leader is handing its leadership over ([`Replica::transfer_leadership`]),
    /// not yet done nor abandoned.
    #[must_use]
    pub fn transferring(&self) -> bool {
        self.is_leader() && self.node.raft.lead_transferee.is_some()
    }

    /// The leader this replica knows of (0: none).
    #[must_use]
    pub fn leader(&self) -> u64 {
        self.node.raft.leader_id
    }

    /// The current term.
    #[must_use]
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// This replica's id.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// The replicated state as applied here.
    #[must_use]
    pub fn state(&self) -> &ReplicatedState {
        &self.state
    }

    /// The replica's in-memory copy of its disk.
    #[must_use]
    pub fn disk(&self) -> &Disk {
        self.node.store()
    }

    /// Harmless failures counted.
    #[must_use]
    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// Handles every Ready raft-rs has, per its contract: persist the snapshot, entries and
    /// hard state, then send, then apply what is committed, then advance.
    fn drive(&mut self) {
        while self.node.has_ready() {
            let mut ready = self.node.ready();
            let mut ops = Vec::new();
            let mut sends = ready.take_messages();
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                self.install(&snapshot);
                ops.push(DiskOp::InstallSnapshot(snapshot));
            }
            let committed = ready.take_committed_entries();
            if !ready.entries().is_empty() {
                ops.push(DiskOp::Append(ready.entries().clone()));
            }
            if let Some(hs) = ready.hs() {
                ops.push(DiskOp::HardState(hs.clone()));
            }
            sends.extend(ready.take_persisted_messages());
            self.persist(ops);
            self.effects
                .extend(sends.into_iter().map(ReplicaEffect::Send));
            self.apply(committed);
            let mut light = self.node.advance(ready);
            if let Some(commit) = light.commit_index() {
                let mut hs = self.node.store().hard_state().clone();
                hs.commit = commit;
                self.persist(vec![DiskOp::HardState(hs)]);
            }
            let sends = light.take_messages();
            self.effects
                .extend(sends.into_iter().map(ReplicaEffect::Send));
            self.apply(light.take_committed_entries());
            self.node.advance_apply();
            self.maybe_compact();
        }
    }

    fn persist(&mut self, ops: Vec<DiskOp>) {
        if ops.is_empty() {
            return;
        }
        for op in &ops {
            self.node.mut_store().apply(op);
        }
        self.effects.push_back(ReplicaEffect::Persist(ops));
    }

    fn install(&mut self, snapshot: &Snapshot) {
        self.log_bytes = 0;
        match ReplicatedState::restore(&snapshot.data) {
            Ok(state) => {
                self.state = state;
                self.stats.snapshots_installed += 1;
                self.effects.push_back(ReplicaEffect::Restored);
            }
            Err(_) => self.stats.bad_entries += 1,
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            self.log_bytes += entry.data.len() as u64 + ENTRY_OVERHEAD;
            if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
                continue;
            }
            match Command::decode(&entry.data) {
                Ok(command) => {
                    let outcome = self.state.apply(entry.index, &command);
                    self.effects.push_back(ReplicaEffect::Applied {
                        index: entry.index,
                        command,
                        outcome,
                    });
                }
                Err(_) => self.stats.bad_entries += 1,
            }
        }
    }

    /// Once at least `snapshot_every` entries were applied since the last snapshot, and
    /// their bytes reach `snapshot_log_percent` % of that snapshot's: snapshot the state at
    /// the applied index and drop the log up to it.
    fn maybe_compact(&mut self) {
        let applied = self.node.raft.raft_log.applied;
        let store = self.node.store();
        let last_snapshot = store.snapshot_ref().get_metadata().index;
        let last_size = store.snapshot_ref().data.len() as u64;
        if applied < last_snapshot + self.snapshot_every
            || u128::from(self.log_bytes) * 100
                < u128::from(last_size) * u128::from(self.snapshot_log_percent)
        {
            return;
        }
        let Ok(term) = store.term(applied) else {
            return;
        };
        let mut snapshot = store.snapshot_ref().clone();
        snapshot.data = self.state.snapshot().into();
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = term;
        self.stats.snapshots += 1;
        self.log_bytes = 0;
        self.persist(vec![DiskOp::Compact(snapshot)]);
    }
}
