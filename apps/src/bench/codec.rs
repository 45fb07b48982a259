//! `bench -- codec` (not written yet).

/// Runs the `codec` benchmark with the arguments that follow the mode name.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("the codec benchmark is not written yet".to_string())
}
