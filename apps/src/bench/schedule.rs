//! `bench -- schedule` (not written yet).

/// Runs the `schedule` benchmark with the arguments that follow the mode name.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("the schedule benchmark is not written yet".to_string())
}
