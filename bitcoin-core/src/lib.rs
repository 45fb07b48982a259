//! bitcoin-core (work in progress).
