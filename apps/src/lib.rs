//! Shared code of the `apps` binaries: benchmark modes live in [`bench`].

pub mod bench;
