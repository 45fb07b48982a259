//! The miner system's glue, shared by the `server`, `miner`, `client` and `mine` binaries
//! (docs/miner.md): the server's loop between LSP and the scheduler, the miner's loop around
//! the kernel, the client's request, and the in-process local run. The wire messages are
//! `bitcoin_core::message`'s.

pub mod args;
pub mod client;
pub mod clock;
pub mod events;
pub mod hashrate;
pub mod http;
pub mod leaving;
pub mod local;
pub mod log;
pub mod miner;
pub mod mode_args;
pub mod narrate;
pub mod observe;
pub mod progress;
pub mod replica_events;
pub mod replica_view;
pub mod replicated;
pub mod search;
pub mod serve;
pub mod store;
