//! The scheduler's side of the pool's accounting ([`crate::accounting`]): snapshots of its
//! miners and requests, and the events it recorded.

use lsp_core::Timestamp;

use super::state::{Request, Waiting};
use super::{RequestId, Scheduler};
use crate::accounting::{
    MinerReport, PoolEvent, PoolEventKind, PoolReport, PoolTotals, RequestReport,
};

impl<K: Ord + Copy> Scheduler<K> {
    /// The pool at `now` (at least the latest time seen): every joined miner, every
    /// accepted, unanswered request, and the totals. The connection counts are left zero
    /// (the scheduler does not see connections; [`crate::service::MinerService::pool`]
    /// fills them) and so are the addresses.
    pub fn pool(&self, now: Timestamp) -> PoolReport<K> {
        let now = now.max(self.now);
        let s = &self.stats;
        let mut totals = PoolTotals {
            miners: self.miners.len(),
            requests_active: self.request_count(),
            requests_accepted: s.requests,
            requests_answered: s.results_sent,
            requests_dropped: s.dropped_requests,
            requests_refused: s.rejected_requests,
            jobs_sent: s.jobs_sent,
            jobs_reissued: s.reissued_jobs,
            ..PoolTotals::default()
        };
        let history = self.accounting.pool(now, &mut totals);
        let miners = self
            .miners
            .iter()
            .filter_map(|(k, m)| {
                let (totals, hash_rate, history) = self.accounting.miner(*k, now)?;
                Some(MinerReport {
                    miner: *k,
                    address: None,
                    totals,
                    hash_rate,
                    history,
                    jobs_held: m.jobs.len(),
                    late: m.is_late(),
                })
            })
            .collect();
        let mut requests: Vec<RequestReport<K>> = self
            .requests
            .iter()
            .map(|(id, r)| active_report(*id, r, now))
            .chain(
                self.clients
                    .iter()
                    .flat_map(|(client, c)| c.waiting.iter().map(|w| waiting_report(*client, w))),
            )
            .collect();
        requests.sort_by_key(|r| r.request);
        PoolReport {
            at: now,
            totals,
            history,
            miners,
            departed: self.accounting.departed(),
            requests,
        }
    }

    /// The progress at `now` of `client`'s active request, if it has one.
    pub fn progress(&self, client: K, now: Timestamp) -> Option<RequestReport<K>> {
        let id = self.clients.get(&client)?.active;
        let r = self.requests.get(&id)?;
        Some(active_report(id, r, now.max(self.now)))
    }

    /// The oldest pool event not yet drained (see [`crate::accounting`]).
    pub fn poll_event(&mut self) -> Option<PoolEvent<K>> {
        self.accounting.poll_event()
    }

    /// Records an event the driver or service observed at `now` (bounded like the rest).
    pub(crate) fn record(&mut self, now: Timestamp, kind: PoolEventKind<K>) {
        let now = now.max(self.now);
        self.accounting.record(now, kind);
    }
}

fn active_report<K: Copy>(id: RequestId, r: &Request<K>, now: Timestamp) -> RequestReport<K> {
    RequestReport {
        request: id,
        client: r.client,
        msg: r.msg.clone(),
        lower: r.range.first(),
        upper: r.range.last(),
        total: r.size,
        mode: r.mode,
        covered: r.size - r.remaining,
        searched: r.searched,
        accepted: r.accepted,
        active_since: Some(r.active_since),
        rate: 0.0,
        eta: None,
    }
    .measured(now)
}

fn waiting_report<K>(client: K, w: &Waiting) -> RequestReport<K> {
    RequestReport {
        request: w.id,
        client,
        msg: w.msg.clone(),
        lower: w.range.first(),
        upper: w.range.last(),
        total: w.range.len(),
        mode: w.mode,
        covered: 0,
        searched: 0,
        accepted: w.accepted,
        active_since: None,
        rate: 0.0,
        eta: None,
    }
}
