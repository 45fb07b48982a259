//! What every seeded sweep does with one case: run it with panics turned into failures,
//! and run it twice to prove the trace is a pure function of the seed.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The message of a caught panic (`&str` or `String` payloads), or `(no message)`.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// `run()`, a panic in it becoming `Err("panic: <message>")`.
pub(crate) fn catching<O>(run: impl FnOnce() -> Result<O, String>) -> Result<O, String> {
    catch_unwind(AssertUnwindSafe(run))
        .unwrap_or_else(|panic| Err(format!("panic: {}", panic_message(&*panic))))
}

/// Runs `run` twice: the first outcome if both pass with the same `digest`, else the
/// first failure, or `mismatch` given a message naming the two digests.
pub(crate) fn twice<O, E>(
    run: impl Fn() -> Result<O, E>,
    digest: impl Fn(&O) -> u64,
    mismatch: impl FnOnce(String) -> E,
) -> Result<O, E> {
    let first = run()?;
    let second = run()?;
    let (a, b) = (digest(&first), digest(&second));
    if a != b {
        return Err(mismatch(format!(
            "non-deterministic: trace digests {a:016x} and {b:016x}"
        )));
    }
    Ok(first)
}
