//! LSP core (in progress).
#![forbid(unsafe_code)]

pub mod time;
pub use time::Timestamp;
