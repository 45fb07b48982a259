//! `bench -- hash` (not written yet).

/// Runs the `hash` benchmark with the arguments that follow the mode name.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("the hash benchmark is not written yet".to_string())
}
