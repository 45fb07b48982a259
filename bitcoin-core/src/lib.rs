//! The distributed miner's core: the hash, the mining kernel, the wire messages between
//! miners, clients and the server, the sans-IO miner, and the sans-IO scheduler.
//!
//! The hash, the messages and the scheduling policy are described in `docs/miner.md`, the
//! crate's place in the workspace in `docs/architecture.md` (both in the repository root).
#![deny(unsafe_code)]

pub mod accounting;
pub mod hash;
pub mod kernel;
pub mod message;
pub mod miner;
pub mod replica;
pub mod request_size;
pub mod scheduler;
pub mod service;
