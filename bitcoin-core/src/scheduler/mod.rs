//! The sans-IO scheduler (in progress).
