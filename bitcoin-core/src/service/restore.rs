//! The service's hooks for a replicated coordinator (`crate::replica`): the scheduler's
//! coverage reports ([`crate::scheduler::Scheduler::report_coverage`]) and restoring a
//! request a previous leader had partly searched.

use lsp_core::Timestamp;

use super::{CloseReason, MinerService};
use crate::message::Mode;
use crate::scheduler::Covered;

impl<K: Ord + Copy> MinerService<K> {
    /// Asks the scheduler to report every answered chunk ([`MinerService::poll_covered`]).
    pub fn report_coverage(&mut self) {
        self.scheduler.report_coverage();
    }

    /// The next answered chunk, oldest first; drain after every call, before
    /// [`MinerService::poll_write`].
    #[must_use]
    pub fn poll_covered(&mut self) -> Option<Covered<K>> {
        self.scheduler.poll_covered()
    }

    /// A request from `client` (a key with no request) for `mode` of which only `gaps`
    /// remain to be searched, `best` being the best answer over the rest (in target mode,
    /// the smallest known hit: nothing above it is searched)
    /// ([`crate::scheduler::Scheduler::restore_request`]). Its Result (or `"Found": false`)
    /// is written to `client` like any other. Refused as a Request would be, without
    /// closing anything.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_request(
        &mut self,
        now: Timestamp,
        client: K,
        msg: &str,
        lower: u64,
        upper: u64,
        mode: Mode,
        gaps: &[(u64, u64)],
        best: Option<(u64, u64)>,
    ) -> Result<(), CloseReason> {
        crate::request_size::check_mode(msg, upper, mode).map_err(CloseReason::TooLong)?;
        self.know(client);
        let restored = self
            .scheduler
            .restore_request(now, client, msg, lower, upper, mode, gaps, best)
            .map(|_| ())
            .map_err(CloseReason::Refused);
        self.collect();
        restored
    }
}
