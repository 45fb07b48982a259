//! Checks of the service's accounting and events against the simulator's own record of
//! the run: who joined, which answers verified, which Results were written.
//!
//! After every step in which the service was called (runs without sabotage):
//! - each joined miner's nonces in [`MinerService::pool`] are the sizes of the jobs it
//!   answered with a result that verifies and that the service used (not from a closed
//!   connection, not a lie), a target job with a hit counting up to its hit, and the
//!   pool's nonces their sum over every miner, departed
//!   ones included (Σ per-miner nonces = nonces covered by answered jobs);
//! - every miner the report lists is joined, with the address the simulator described;
//! - each request's covered nonces never decrease, never exceed its size, and never exceed
//!   the nonces of its range covered by verified answers; its ETA is finite once it has a
//!   rate (a job answered, time gone by) and unknown before;
//! - no event was dropped.
//!
//! And for every event the service emits: its time is the current step's, a miner joins
//! once and leaves (lost or rejected) once with the nonces the simulator credited it, a
//! job is re-issued between joined miners, and every Result written has its
//! `request_answered` event.
//!
//! [`MinerService::pool`]: bitcoin_core::service::MinerService::pool

use std::collections::{BTreeMap, BTreeSet};

use bitcoin_core::accounting::{PoolEvent, PoolEventKind};
use lsp_core::ConnId;

use super::{covered, MiningWorld};

/// The simulator's side of the accounting.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Nonces credited to each connection by answers the service used.
    credited: BTreeMap<ConnId, u128>,
    /// Their sum, over every connection ever.
    total: u128,
    /// Miners joined according to the events.
    joined: BTreeSet<ConnId>,
    /// Each reported request's covered nonces at the latest check.
    progress: BTreeMap<u64, u128>,
    /// `request_answered` events, and Results written.
    answered_events: u64,
    /// Results the service wrote to clients.
    results_written: u64,
    /// The name described to the service for each connection.
    pub(super) names: BTreeMap<ConnId, String>,
}

impl Ledger {
    /// `conn` answered a job of `nonces` and the service used the answer.
    pub(super) fn credit(&mut self, conn: ConnId, nonces: u128) {
        *self.credited.entry(conn).or_default() += nonces;
        self.total += nonces;
    }

    /// The service wrote a Result.
    pub(super) fn result_written(&mut self) {
        self.results_written += 1;
    }

    /// The total credited to the run's miners.
    pub(super) fn total(&self) -> u128 {
        self.total
    }
}

impl MiningWorld {
    /// Checks one event of the service against the simulator's record.
    pub(super) fn on_pool_event(&mut self, event: PoolEvent<ConnId>) {
        if event.at != self.now {
            return self.fail(format!(
                "event at {} in the step at {}: {event:?}",
                event.at, self.now
            ));
        }
        if self.case.sabotage.is_some() {
            return;
        }
        let ledger = &mut self.server.ledger;
        let problem = match &event.kind {
            PoolEventKind::MinerJoined { miner } => {
                let joined = self.server.conns.get(miner).is_some_and(|r| r.joined);
                (!joined || !ledger.joined.insert(*miner))
                    .then_some("joins twice or never sent Join")
            }
            PoolEventKind::MinerLost { miner, totals, .. }
            | PoolEventKind::MinerRejected { miner, totals, .. } => {
                let credited = ledger.credited.get(miner).copied().unwrap_or(0);
                if !ledger.joined.remove(miner) {
                    Some("leaves without having joined")
                } else {
                    (totals.nonces != credited).then_some("leaves with nonces not credited")
                }
            }
            PoolEventKind::JobReissued { from, to, .. } => (from == to
                || !ledger.joined.contains(to))
            .then_some("re-issued to no other joined miner"),
            PoolEventKind::RequestAnswered { .. } => {
                ledger.answered_events += 1;
                None
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.fail(format!("event {event:?}: {problem}"));
        }
    }

    /// Checks the service's accounting after a step that called it.
    pub(super) fn check_accounting(&mut self) {
        if self.case.sabotage.is_some() || self.server.last_call != self.now {
            return;
        }
        let server = &self.server;
        let report = server.service.pool(self.now);
        let ledger = &server.ledger;
        let mut problems = Vec::new();
        if ledger.answered_events != ledger.results_written {
            problems.push(format!(
                "{} request_answered events for {} Results written",
                ledger.answered_events, ledger.results_written
            ));
        }
        if report.totals.nonces != ledger.total {
            problems.push(format!(
                "pool nonces {} but answers the service used cover {}",
                report.totals.nonces, ledger.total
            ));
        }
        if report.totals.events_dropped > 0
            || report.miners.len() != server.service.scheduler().miner_count()
        {
            problems.push(format!(
                "events dropped or miners miscounted: {:?}",
                report.totals
            ));
        }
        for m in &report.miners {
            let credited = ledger.credited.get(&m.miner).copied().unwrap_or(0);
            if m.totals.nonces != credited {
                problems.push(format!(
                    "{}: {} nonces reported, {credited} credited",
                    m.miner, m.totals.nonces
                ));
            }
            if !ledger.joined.contains(&m.miner) || m.address.as_ref() != ledger.names.get(&m.miner)
            {
                problems.push(format!(
                    "{} reported but not joined, or with address {:?}",
                    m.miner, m.address
                ));
            }
        }
        let mut progress = BTreeMap::new();
        for r in &report.requests {
            let id = r.request.get();
            let before = ledger.progress.get(&id).copied().unwrap_or(0);
            let verified = server.pending.get(&*r.msg).map_or(r.total, |p| {
                covered(p.lower, p.upper, &mut p.answered.clone())
            });
            if r.covered < before || r.covered > r.total || r.covered > verified {
                problems.push(format!(
                    "request {id}: covered {} (before {before}, verified {verified}, total {})",
                    r.covered, r.total
                ));
            }
            let rated = r.covered > 0 && r.active_since.is_some_and(|t| t < self.now);
            let eta_ok = if rated {
                r.rate.is_finite() && r.rate > 0.0 && r.eta.is_some()
            } else {
                r.eta.is_none()
            };
            if !eta_ok {
                problems.push(format!(
                    "request {id}: rate {} and ETA {:?} at {}",
                    r.rate, r.eta, self.now
                ));
            }
            progress.insert(id, r.covered);
        }
        self.server.ledger.progress = progress;
        if let Some(first) = problems.into_iter().next() {
            self.fail(format!("accounting: {first}"));
        }
    }
}
