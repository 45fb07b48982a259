//! A replica's place in its Raft group, for `/status` (its `replication` object) and
//! `/metrics` (the `miner_replica_*` metrics), docs/miner.md §7.3. Only a replicated or
//! durable server (`--data-dir`) has one.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::metrics::{counter, gauge};

/// The roles a replica may have, as [`Replication::role`] names them.
pub const ROLES: [&str; 4] = ["leader", "candidate", "pre_candidate", "follower"];

/// One replica's view of its group when the snapshot was taken.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Replication {
    /// This replica's id (its 1-based place in `--cluster`; 1 alone).
    pub id: u64,
    /// Replicas in the group.
    pub replicas: usize,
    /// One of [`ROLES`]. Only the leader serves clients and miners.
    pub role: &'static str,
    /// The current Raft term.
    pub term: u64,
    /// The leader this replica knows of; 0 for none.
    pub leader: u64,
    /// The highest log index known committed.
    pub commit_index: u64,
    /// The highest log index applied to the replicated state.
    pub applied_index: u64,
    /// Raft messages sent to other replicas.
    pub raft_sent: u64,
    /// Raft messages received from other replicas.
    pub raft_received: u64,
    /// Durable writes (one transaction and fsync each, covering a round of inputs).
    pub persisted_batches: u64,
    /// Connections told which replica leads before being closed.
    pub redirected: u64,
    /// Connections closed because this replica did not lead.
    pub not_leader: u64,
    /// Requests restored from the log by this replica on becoming leader.
    pub restored: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Requests refused by this replica as leader, by reason: the log already held as
    /// many unanswered requests as the scheduler may (`full`), their `Zeros`/`Algo` named
    /// no valid mode (`mode`), or their `"Id"` named another request (`id_conflict`).
    pub refused: Refused,
}

/// Requests a leader refused, by reason (see [`Replication::refused`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The log was full (`CoordinatorStats::refused`).
    pub full: u64,
    /// No valid mode (`CoordinatorStats::unsupported_mode`).
    pub mode: u64,
    /// The id named another request (`CoordinatorStats::id_conflicts`).
    pub id_conflict: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Registers `replication`'s metrics in `r`.
pub fn register(r: &mut Registry, replication: &Replication) {
    let role = Family::<RoleLabels, Gauge>::default();
    for name in ROLES {
        role.get_or_create(&RoleLabels { role: name })
            .set(i64::from(replication.role == name));
    }
    r.register(
        "miner_replica_role",
        "1 for this replica's Raft role, 0 for the others",
        role,
    );
    let gauges = [
        ("miner_replica_id", "This replica's id", replication.id),
        (
            "miner_replica_replicas",
            "Replicas in the group",
            replication.replicas as u64,
        ),
        (
            "miner_replica_term",
            "The current Raft term",
            replication.term,
        ),
        (
            "miner_replica_leader",
            "The leader's id as this replica knows it (0: none)",
            replication.leader,
        ),
        (
            "miner_replica_commit_index",
            "The highest log index known committed",
            replication.commit_index,
        ),
        (
            "miner_replica_applied_index",
            "The highest log index applied",
            replication.applied_index,
        ),
    ];
    for (name, help, value) in gauges {
        gauge(r, name, help, value);
    }
    let messages = Family::<DirectionLabels, Counter>::default();
    for (direction, n) in [
        ("sent", replication.raft_sent),
        ("received", replication.raft_received),
    ] {
        messages
            .get_or_create(&DirectionLabels { direction })
            .inc_by(n);
    }
    r.register(
        "miner_replica_raft_messages",
        "Raft messages exchanged with the other replicas",
        messages,
    );
    let refused = Family::<ReasonLabels, Counter>::default();
    let Refused {
        full,
        mode,
        id_conflict,
    } = replication.refused;
    for (reason, n) in [("full", full), ("mode", mode), ("id_conflict", id_conflict)] {
        refused.get_or_create(&ReasonLabels { reason }).inc_by(n);
    }
    r.register(
        "miner_replica_requests_refused",
        "Requests refused by this replica as leader, by reason",
        refused,
    );
    let counters = [
        (
            "miner_replica_persisted_batches",
            "Durable writes, one fsync each",
            replication.persisted_batches,
        ),
        (
            "miner_replica_redirects",
            "Connections told which replica leads",
            replication.redirected,
        ),
        (
            "miner_replica_not_leader",
            "Connections closed because this replica did not lead",
            replication.not_leader,
        ),
        (
            "miner_replica_requests_restored",
            "Requests restored from the log on becoming leader",
            replication.restored,
        ),
        (
            "miner_replica_snapshots_installed",
            "Snapshots installed from a leader",
            replication.snapshots_installed,
        ),
    ];
    for (name, help, value) in counters {
        counter(r, name, help, u128::from(value));
    }
}
