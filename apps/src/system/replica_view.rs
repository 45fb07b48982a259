//! The replicated server's pool as the plain server's observers see it
//! ([`super::observe`]): the leader's service keys requests by
//! [`Port::Slot`], so each is told under the connection waiting for it; and the replica's
//! place in its group, as [`ReplicaEvent`]s when it changes and as a [`Replication`]
//! for `/status` and `/metrics`.
//!
//! A request's connection is the first (lowest id) connection waiting for it, remembered
//! from when it was accepted (its answer comes after the coordinator has let go of the
//! slot), or [`NO_CONN`] while none waits: a request a new leader restored from the log
//! before its client resubmitted it.

use std::collections::BTreeMap;

use bitcoin_core::accounting::{
    DepartedMiner, MinerReport, PoolEvent, PoolEventKind, PoolReport, RequestReport,
};
use bitcoin_core::replica::{Coordinator, Port};
use lsp_core::{ConnId, Timestamp};

use super::http::replication::Replication;
use super::observe::empty_report;
use super::replica_events::{ReplicaEvent, ReplicaEventKind};

/// The connection told for a request no connection waits for (LSP connection ids start
/// at 1).
pub const NO_CONN: ConnId = ConnId(0);

/// The driver's own counters, for [`Replication`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Raft messages handed to a peer's connection.
    pub raft_sent: u64,
    /// Raft messages received from peers.
    pub raft_received: u64,
    /// Durable writes (one fsync each).
    pub persisted_batches: u64,
}

/// What the view remembers between rounds. See the [module documentation](self).
#[derive(Debug)]
pub struct View {
    replicas: usize,
    /// Requests accepted by the service, by slot, with the connection told for each.
    slots: BTreeMap<u64, Option<ConnId>>,
    /// Role, term and leader last told.
    role: Option<(&'static str, u64, u64)>,
    restored: u64,
    redirected: u64,
    installed: u64,
    /// The driver's counters.
    pub counters: Counters,
}

type Node = Coordinator<ConnId>;

impl View {
    /// A view of a replica in a group of `replicas`.
    pub fn new(replicas: usize) -> View {
        View {
            replicas,
            slots: BTreeMap::new(),
            role: None,
            restored: 0,
            redirected: 0,
            installed: 0,
            counters: Counters::default(),
        }
    }

    /// The connection told for `port`.
    fn conn(&self, node: &Node, port: Port<ConnId>) -> ConnId {
        match port {
            Port::Conn(conn) => conn,
            Port::Slot(slot) => node
                .slot_clients(slot)
                .next()
                .or_else(|| self.slots.get(&slot).copied().flatten())
                .unwrap_or(NO_CONN),
        }
    }

    /// The leader's service's `event` with connections for its ports; `None` for a kind
    /// the view does not know.
    pub fn event(
        &mut self,
        node: &Node,
        event: PoolEvent<Port<ConnId>>,
    ) -> Option<PoolEvent<ConnId>> {
        let c = |port| self.conn(node, port);
        let kind = match event.kind {
            PoolEventKind::MinerJoined { miner } => PoolEventKind::MinerJoined { miner: c(miner) },
            PoolEventKind::MinerLost {
                miner,
                jobs_returned,
                totals,
            } => PoolEventKind::MinerLost {
                miner: c(miner),
                jobs_returned,
                totals,
            },
            PoolEventKind::MinerRejected {
                miner,
                reason,
                totals,
            } => PoolEventKind::MinerRejected {
                miner: c(miner),
                reason,
                totals,
            },
            PoolEventKind::RequestAccepted {
                client,
                request,
                msg,
                lower,
                upper,
                mode,
            } => {
                let conn = c(client);
                if let Port::Slot(slot) = client {
                    self.slots
                        .insert(slot, Some(conn).filter(|&k| k != NO_CONN));
                }
                PoolEventKind::RequestAccepted {
                    client: conn,
                    request,
                    msg,
                    lower,
                    upper,
                    mode,
                }
            }
            PoolEventKind::RequestRefused { client, reason } => {
                let conn = c(client);
                self.forget(client);
                PoolEventKind::RequestRefused {
                    client: conn,
                    reason,
                }
            }
            PoolEventKind::RequestAnswered {
                client,
                request,
                msg,
                lower,
                upper,
                mode,
                answer,
                nonces,
                took,
            } => {
                let conn = c(client);
                self.forget(client);
                PoolEventKind::RequestAnswered {
                    client: conn,
                    request,
                    msg,
                    lower,
                    upper,
                    mode,
                    answer,
                    nonces,
                    took,
                }
            }
            PoolEventKind::JobReissued {
                request,
                from,
                to,
                lower,
                upper,
            } => PoolEventKind::JobReissued {
                request,
                from: c(from),
                to: c(to),
                lower,
                upper,
            },
            PoolEventKind::ClientLost { client, dropped } => {
                let conn = c(client);
                self.forget(client);
                PoolEventKind::ClientLost {
                    client: conn,
                    dropped,
                }
            }
            _ => return None,
        };
        Some(PoolEvent { at: event.at, kind })
    }

    fn forget(&mut self, port: Port<ConnId>) {
        if let Port::Slot(slot) = port {
            self.slots.remove(&slot);
        }
    }

    /// Remembers the connections that came to wait for requests restored without one,
    /// and forgets every slot once this replica no longer leads.
    pub fn refresh(&mut self, node: &Node) {
        if node.service().is_none() {
            self.slots.clear();
            return;
        }
        for (&slot, conn) in &mut self.slots {
            if conn.is_none() {
                *conn = node.slot_clients(slot).next();
            }
        }
    }

    /// The pool at `now` with connections for its ports (`addr` gives a miner's
    /// address); empty on a replica that does not lead.
    pub fn report(
        &self,
        node: &Node,
        now: Timestamp,
        addr: &dyn Fn(ConnId) -> Option<String>,
    ) -> PoolReport<ConnId> {
        let Some(service) = node.service() else {
            return empty_report(now);
        };
        let report = service.pool(now);
        let c = |port| self.conn(node, port);
        PoolReport {
            at: report.at,
            totals: report.totals,
            history: report.history,
            miners: report
                .miners
                .into_iter()
                .map(|m| {
                    let miner = c(m.miner);
                    MinerReport {
                        miner,
                        address: m.address.or_else(|| addr(miner)),
                        totals: m.totals,
                        hash_rate: m.hash_rate,
                        history: m.history,
                        jobs_held: m.jobs_held,
                        late: m.late,
                    }
                })
                .collect(),
            departed: report
                .departed
                .into_iter()
                .map(|d| DepartedMiner {
                    miner: c(d.miner),
                    left: d.left,
                    rejected: d.rejected,
                    totals: d.totals,
                })
                .collect(),
            requests: report
                .requests
                .into_iter()
                .map(|r| RequestReport {
                    request: r.request,
                    client: c(r.client),
                    msg: r.msg,
                    lower: r.lower,
                    upper: r.upper,
                    total: r.total,
                    mode: r.mode,
                    covered: r.covered,
                    searched: r.searched,
                    accepted: r.accepted,
                    active_since: r.active_since,
                    rate: r.rate,
                    eta: r.eta,
                })
                .collect(),
        }
    }

    /// What changed in the replica's place in its group since the last call, as events
    /// at `now`.
    pub fn replica_events(&mut self, node: &Node, now: Timestamp) -> Vec<ReplicaEvent> {
        let replica = node.replica();
        let mut events = Vec::new();
        let mut event = |kind| events.push(ReplicaEvent { at: now, kind });
        let role = (replica.role(), replica.term(), replica.leader());
        if self.role != Some(role) {
            self.role = Some(role);
            event(ReplicaEventKind::ReplicaRole {
                id: replica.id(),
                role: role.0,
                term: role.1,
                leader: role.2,
            });
        }
        let stats = node.stats();
        if stats.restored > self.restored {
            event(ReplicaEventKind::RequestsRestored {
                term: replica.term(),
                count: stats.restored - self.restored,
            });
            self.restored = stats.restored;
        }
        if stats.redirected > self.redirected {
            event(ReplicaEventKind::ClientsRedirected {
                count: stats.redirected - self.redirected,
                leader: replica.leader(),
            });
            self.redirected = stats.redirected;
        }
        let installed = replica.stats().snapshots_installed;
        if installed > self.installed {
            self.installed = installed;
            event(ReplicaEventKind::SnapshotInstalled {
                index: replica.disk().snapshot_ref().get_metadata().index,
            });
        }
        events
    }

    /// The replica's place in its group now.
    pub fn replication(&self, node: &Node) -> Replication {
        let replica = node.replica();
        let stats = node.stats();
        Replication {
            id: replica.id(),
            replicas: self.replicas,
            role: replica.role(),
            term: replica.term(),
            leader: replica.leader(),
            commit_index: replica.disk().hard_state().commit,
            applied_index: replica.state().applied_index(),
            raft_sent: self.counters.raft_sent,
            raft_received: self.counters.raft_received,
            persisted_batches: self.counters.persisted_batches,
            redirected: stats.redirected,
            not_leader: stats.not_leader,
            restored: stats.restored,
            snapshots_installed: replica.stats().snapshots_installed,
        }
    }
}
