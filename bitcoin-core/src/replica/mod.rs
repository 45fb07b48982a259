//! Replicated coordinators: a Raft group (TiKV's raft-rs) whose log holds what must survive
//! a crash of the miner server — requests accepted, ranges searched with their partial
//! answers, answers given. See `docs/replication.md` (repository root).
//!
//! - [`Command`]: one log entry; [`ReplicatedState`]: the pure state machine they build,
//!   snapshotted as JSON;
//! - [`Disk`] and [`DiskOp`]: a replica's durable state (hard state, snapshot, entries) and
//!   the changes the driver must make durable;
//! - [`Replica`]: one member, sans-IO like the rest of the crate: `tick` (from the epoch
//!   timer), `step` (a peer's raft message), `propose` (a command, on the leader) in;
//!   [`ReplicaEffect`]s out — persist, send, applied — in the order the driver must honour.
//!
//! No clock, no IO, no ambient randomness (see [`ReplicaConfig::election_tick`]): the same
//! inputs give the same effects.
#![forbid(unsafe_code)]

mod command;
#[cfg(test)]
mod compaction_tests;
mod coordinator;
#[cfg(test)]
mod coordinator_id_tests;
#[cfg(test)]
mod coordinator_orphan_tests;
#[cfg(test)]
mod coordinator_target_tests;
#[cfg(test)]
mod coordinator_tests;
mod disk;
pub mod frames;
mod interface;
mod node;
mod orphans;
pub mod redirect;
mod slots;
mod state;
#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;

pub use command::{Asked, Command, CommandError, Mode, RequestKey};
pub use coordinator::{Coordinator, CoordinatorEffect, CoordinatorStats, Port};
pub use disk::{Disk, DiskOp};
pub use node::{Replica, ReplicaConfig, ReplicaEffect, ReplicaError, ReplicaStats, ENTRY_OVERHEAD};
pub use raft::eraftpb::{Entry, HardState, Message as RaftMessage, Snapshot};
pub use state::{Applied, Outcome, ReplicatedState, Request};

/// A raft message as bytes for the wire (protobuf, as raft-rs defines it).
#[must_use]
pub fn encode_message(message: &RaftMessage) -> Vec<u8> {
    use protobuf::Message as _;
    // Encoding an in-memory protobuf message into a Vec cannot fail.
    message.write_to_bytes().unwrap_or_default()
}

/// A raft message from the wire, or why its bytes are not one.
pub fn decode_message(bytes: &[u8]) -> Result<RaftMessage, protobuf::ProtobufError> {
    use protobuf::Message as _;
    RaftMessage::parse_from_bytes(bytes)
}
