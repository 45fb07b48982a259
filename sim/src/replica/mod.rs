//! Replicated coordinators in the simulator: 3 or 5 real
//! [`bitcoin_core::replica::Coordinator`]s (the per-replica miner server: raft-rs, the
//! replicated state, and on the leader the real `MinerService` and scheduler), each with
//! its disk, on a network that loses, delays and reorders raft messages and partitions a
//! minority away; replicas crash (between steps, or while writing: see `world.rs`) and
//! restart from their disks. Simulated miners (`miners.rs`: the real `MinerCore`, scalar
//! scans after a modelled compute time, announcing the capabilities their plan gives) and
//! clients (`clients.rs`: one request each, most with an `"Id"`; one in three in target
//! mode, `"Zeros"`/`"Algo"`) talk to them by payloads over reliable, ordered connections
//! with latency
//! (`conns.rs`), find the leader by trying the next replica or following a NotLeader, and
//! resubmit when they lose it. Everything is drawn from the seed
//! ([`ReplicaCase::generate`]).
//!
//! Checked (`invariants.rs`):
//! - at most one leader per term;
//! - every replica's disk holds the same entry at each committed index;
//! - every answer in a replica's replicated state, and every answer a client gets, is the
//!   true one (scalar scans): the minimum of its range, or in target mode the first hit or
//!   `"Found": false`; each replicated request has its client's mode; no request is
//!   answered two different ways (across replicas' states, or to its client); what a
//!   client got is what the replicated state holds;
//! - every job a miner gets lies inside a request some client sent, in its mode; a
//!   miner gets only jobs its Join's caps cover, and job ids and Cancels only if it
//!   announced `cancel`;
//! - a NotLeader goes only to a client or miner that announced it understands it.
//!
//! At the end: once the network heals and every replica but at most one returns, every
//! client is answered within 30 virtual seconds. [`check_seed`] runs a seed twice and
//! compares the trace digests. Planted bugs ([`Sabotage`]) show that the checks bite.

mod case;
mod clients;
mod conns;
mod invariants;
mod miners;
mod raftnet;
mod world;

pub use case::{MinerPlan, PartitionPlan, ReplicaCase, RequestPlan, Sabotage, TICK_MS};
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
