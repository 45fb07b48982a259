//! The distributed miner's core: the hash, the mining kernel, the wire messages between
//! miners, clients and the server, the sans-IO miner, and the sans-IO scheduler.
#![deny(unsafe_code)]

pub mod accounting;
pub mod hash;
pub mod kernel;
pub mod message;
pub mod miner;
pub mod request_size;
pub mod scheduler;
pub mod service;
