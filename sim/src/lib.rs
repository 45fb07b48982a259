//! A deterministic, single-threaded discrete-event simulator for LSP (and the miner system
//! on it). `docs/architecture.md` describes it among the test layers, `docs/conformance.md`
//! its scenarios (repository root).
//!
//! One `u64` seed determines a whole run: virtual time advances from event to event (an
//! event queue ordered by time and then by scheduling order), every random choice comes from
//! the run's own [`Rng`], and a [`Digest`] of every step proves two runs identical. Nodes own
//! `lsp-core` endpoints plus application logic (an echo server, scripted clients); the
//! [`Network`] applies every fault of `docs/conformance.md` plus partitions, and clients can crash
//! and restart. After every step the [`World`] checks the protocol's invariants:
//! exactly-once in-order delivery per connection, nothing from a `close_conn`ed connection,
//! timely (and not premature) loss detection, bounded buffers, the exact back-off schedule of
//! every retransmission, a keep-alive (Data, heartbeat or Connect) at every tick, and no
//! sending after an endpoint finished.
//!
//! On top of the world:
//! - [`scenario`]: the 64 conformance scenarios as plain data, for any runner;
//! - [`conformance`]: this crate's runner of those scenarios in virtual time;
//! - [`sweep`]: swarm testing — each seed draws its own fault mix and workload;
//! - [`shrink`]: minimisation of a failing sweep case.
#![forbid(unsafe_code)]

mod agenda;
mod backoff;
pub mod conformance;
pub mod digest;
mod heartbeat;
pub mod mining;
pub mod net;
pub mod replica;
pub mod rng;
pub mod scenario;
pub mod shrink;
pub mod sweep;
mod twice;
pub mod view;
pub mod world;

pub use digest::Digest;
pub use net::{
    Addr, DelayBy, FaultMix, Faults, Middlebox, Network, Partition, Role, Sniffed, Verdict,
};
pub use rng::{Prob, Rng};
pub use world::{ClientLife, ConnView, Echo, ServerView, Violation, World};
