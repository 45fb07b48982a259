//! Shared code of the `apps` binaries: the miner system's glue in [`system`], the `lsp-echo`
//! tool and its runtime-neutral endpoints in [`echo`], benchmark modes in [`mod@bench`].
//!
//! The programs' command lines, outputs and failure behaviour are described in
//! `docs/miner.md`; the protocol under them in `docs/protocol.md` (repository root).

pub mod bench;
pub mod echo;
pub mod system;
