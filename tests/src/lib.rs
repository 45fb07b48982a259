//! Cross-crate tests of the LSP runtimes over real UDP on loopback.
//!
//! - [`proxy`]: a fault-injecting UDP proxy that sits between clients and a server and
//!   applies the fault model of `docs/conformance.md` to real datagrams, switchable at run time.
//! - [`endpoint`]: one blocking interface over both runtimes (`lsp-mio`, `lsp-smol`), with
//!   reader threads that turn reads into channels a scenario can wait on with a timeout.
//! - [`runner`]: drives the conformance scenarios of `sim::scenario` over real UDP.

pub mod endpoint;
pub mod proxy;
pub mod rng;
pub mod runner;
