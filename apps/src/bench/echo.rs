//! `bench -- echo` (not written yet).

/// Runs the `echo` benchmark with the arguments that follow the mode name.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("the echo benchmark is not written yet".to_string())
}
