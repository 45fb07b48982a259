//! SIGTERM and SIGINT as a request to leave gracefully, for the replicated server: a
//! leader then hands its leadership to a follower and names it to its peers before it
//! exits (docs/replication.md, "Leaving on purpose"). A second signal ends the process at
//! once, as the first would have without this.
//!
//! The handlers are process-wide and stay installed: [`Leaving::on_signals`] is for a
//! process that serves once and then exits (the `server` binary). The flag is read once per
//! turn of the server's loop, so a signal during start-up takes effect when it begins.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// Whether a signal asked this process to leave. Set from the signal handler (an atomic
/// store, the only thing it does); read by the server's loop once per turn.
#[derive(Clone, Debug)]
pub struct Leaving(Arc<AtomicBool>);

impl Leaving {
    /// Installs the handlers for SIGTERM and SIGINT: the first sets the flag, a second one
    /// exits the process with status 1 at once.
    pub fn on_signals() -> io::Result<Leaving> {
        let asked = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            // Registered first, so it runs first: exits only if the flag was already set.
            flag::register_conditional_shutdown(signal, 1, Arc::clone(&asked))?;
            flag::register(signal, Arc::clone(&asked))?;
        }
        Ok(Leaving(asked))
    }

    /// Whether a signal asked to leave.
    pub fn asked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
