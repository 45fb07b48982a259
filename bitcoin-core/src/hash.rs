//! The proof-of-work hash (in progress).
