//! Logging to stderr at a verbosity chosen on the command line (`-v`, `-vv`).
//!
//! stdout belongs to the programs' answers (docs/miner.md §3), so every log line goes to
//! stderr, prefixed with the program's name.

use std::fmt;
use std::process::ExitCode;
use std::time::Instant;

/// Where and how much to log.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    name: &'static str,
    level: u8,
    origin: Instant,
}

impl Log {
    /// A log for program `name` showing messages of level `level` and below: 0 is errors
    /// only, 1 adds connection events, 2 adds every job.
    pub fn new(name: &'static str, level: u8) -> Log {
        Log {
            name,
            level,
            origin: Instant::now(),
        }
    }

    /// A log that shows nothing but errors.
    pub fn quiet(name: &'static str) -> Log {
        Log::new(name, 0)
    }

    /// Whether messages of `level` are shown.
    pub fn enabled(&self, level: u8) -> bool {
        level <= self.level
    }

    /// Writes `args` as one line if `level` is shown, with the seconds since the log began.
    pub fn at(&self, level: u8, args: fmt::Arguments<'_>) {
        if self.enabled(level) {
            let t = self.origin.elapsed().as_secs_f64();
            eprintln!("{} {t:9.3}s {args}", self.name);
        }
    }

    /// Writes an error line (always shown).
    pub fn error(&self, args: fmt::Arguments<'_>) {
        self.at(0, args);
    }

    /// Writes a connection-level event (level 1).
    pub fn info(&self, args: fmt::Arguments<'_>) {
        self.at(1, args);
    }

    /// Writes a job-level event (level 2).
    pub fn debug(&self, args: fmt::Arguments<'_>) {
        self.at(2, args);
    }

    /// A program's exit: success, or the error logged and a failure code.
    pub fn exit(&self, outcome: Result<(), String>) -> ExitCode {
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                self.error(format_args!("{message}"));
                ExitCode::FAILURE
            }
        }
    }
}
