//! LSP core (in progress).
