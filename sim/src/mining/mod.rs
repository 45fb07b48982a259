//! Whole-system simulation of the distributed miner: the server's real glue
//! ([`bitcoin_core::service::MinerService`] behind an LSP server endpoint), miners running
//! the real miner logic ([`bitcoin_core::miner::MinerCore`] behind an LSP client endpoint)
//! whose searches take a modelled compute time at different speeds, and clients
//! with one small request each, on the lossy, reordering, duplicating network of
//! [`crate::net`], with miners and clients crashing and miners (re)joining at random times.
//!
//! Checked after every step:
//! - every answer a client receives is the true minimum (least hash, least nonce on ties)
//!   of its range, from a scalar scan with [`bitcoin_core::hash::hash`], unless a lazy
//!   miner's answer escaped the server's spot check (probabilistic by design; counted in
//!   [`Outcome::lazy_escaped`]);
//! - no unverified result is used: when a client is answered, every nonce of its range is
//!   covered by jobs answered with a result that verifies (nonce in the job, hash its
//!   hash), matched to jobs by content as the service does;
//! - the service writes nothing to a connection after it reported that connection gone,
//!   sends jobs only to joined miners and only inside a pending request's range, and a
//!   Result only to a client with a pending request;
//! - no miner idles while work waits: if some pending request has nonces neither answered
//!   nor held by a live miner, every joined live miner holds a job (the scheduler's
//!   "miners never idle while any request has nonces to hand out"), indeed as many as
//!   `jobs_per_miner` allows (it fills every free slot), except a miner past a job's
//!   lease, which gets nothing until it answers;
//! - the service's timeout is always in the future;
//! - a job whose lease ended before the current step has expired (the service woke for
//!   it within one step), and an expired job of a pending request not yet answered runs
//!   on another live miner unless every other one is late.
//!
//! Miners other than miner 0 may answer out of order, lie (wrong hash, nonce out of range,
//! lazy: their job's first nonce without searching; see [`Behaviour`]) or hang holding
//! work; every lie but an escaped lazy answer must be caught.
//!
//! - the service's accounting and events agree with the simulator's record (see
//!   `world/accounting.rs`): Σ per-miner nonces = nonces of the jobs answered by results
//!   the service used, per-request progress never decreases and never exceeds what
//!   verified answers cover, an ETA is known exactly once a request has a rate, every
//!   miner joins and leaves once in the event stream with the nonces credited to it.
//!
//! At the end: every client that neither crashed nor lost its connection got its answer
//! before [`MinerCase::liveness_limit`]. [`check_seed`] runs a seed twice and compares the
//! trace digests.

mod case;
mod world;

pub use case::{Behaviour, ClientPlan, MinerCase, MinerPlan, Node, Outage, Sabotage, MAX_NONCES};
pub(crate) use world::first_hit;
pub use world::{ClientEnd, MiningWorld, Outcome};

/// Plays `case` to its end; `Err` names the first broken invariant (or a panic).
pub fn run_case(case: &MinerCase, verbose: bool) -> Result<Outcome, String> {
    crate::twice::catching(|| MiningWorld::new(case.clone(), verbose)?.run())
}

/// Runs `sweep-miner` seed `seed` twice: fails if either run fails or the digests differ.
pub fn check_seed(seed: u64) -> Result<Outcome, String> {
    let case = MinerCase::generate(seed);
    crate::twice::twice(|| run_case(&case, false), |o| o.digest, |e| e)
}

#[cfg(test)]
mod tests;
