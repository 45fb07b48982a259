//! The mining kernel (in progress).
