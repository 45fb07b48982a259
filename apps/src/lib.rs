//! Shared code of the `apps` binaries: the miner system's glue in [`system`], the `lsp-echo`
//! tool and its runtime-neutral endpoints in [`echo`], benchmark modes in [`mod@bench`].

pub mod bench;
pub mod echo;
pub mod system;
