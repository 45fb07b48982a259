//! Replicated coordinators in the simulator: 3 or 5 [`bitcoin_core::replica::Replica`]s
//! (raft-rs underneath) with their disks, on a network that loses, delays and reorders
//! raft messages and partitions a minority away; replicas crash and restart from their
//! disks. A modelled leader searches requests in chunks and proposes each finished chunk
//! (`RangeDone`) and each answer (`Answered`) to the log; clients resubmit their request,
//! under the same id, to whichever replica leads, and are answered from the log if it was
//! answered already. Everything is drawn from the seed ([`ReplicaCase::generate`]).
//!
//! Checked after every step:
//! - at most one leader per term;
//! - every replica applies the same command at the same log index;
//! - every answer applied or written to a client is the true minimum of its range (a
//!   scalar scan), and no request is answered two different ways.
//!
//! At the end: once the network heals and every replica but at most one returns, every
//! request is answered within 30 virtual seconds. [`check_seed`] runs a seed twice and
//! compares the trace digests.

mod case;
mod world;

pub use case::{PartitionPlan, ReplicaCase, RequestPlan, Sabotage, TICK_MS};
pub use world::{Outcome, ReplicaWorld};

/// Plays `case` to its end; `Err` names the first broken invariant (or a panic).
pub fn run_case(case: &ReplicaCase, verbose: bool) -> Result<Outcome, String> {
    crate::twice::catching(|| ReplicaWorld::new(case.clone(), verbose)?.run())
}

/// Runs `sweep-raft` seed `seed` twice: fails if either run fails or the digests differ.
pub fn check_seed(seed: u64) -> Result<Outcome, String> {
    let case = ReplicaCase::generate(seed);
    crate::twice::twice(|| run_case(&case, false), |o| o.digest, |e| e)
}
