//! Shared code of the `apps` binaries: the miner system's glue in [`system`], benchmark
//! modes in [`bench`].

pub mod bench;
pub mod echo;
pub mod system;
