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

use super::http::replication::{Refused, Replication};
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

    /// The leader's service's `event` with connections for its ports. A request's slot is
    /// remembered under its connection when accepted, and forgotten when the request is
    /// refused, answered or its client lost.
    pub fn event(&mut self, node: &Node, event: PoolEvent<Port<ConnId>>) -> PoolEvent<ConnId> {
        let slot = match event.kind.client() {
            Some(&Port::Slot(slot)) => Some(slot),
            _ => None,
        };
        let accepted = matches!(event.kind, PoolEventKind::RequestAccepted { .. });
        let event = event.map_conns(|port| self.conn(node, port));
        if let Some(slot) = slot {
            match event.kind.client() {
                Some(&conn) if accepted => {
                    self.slots
                        .insert(slot, Some(conn).filter(|&k| k != NO_CONN));
                }
                _ => {
                    self.slots.remove(&slot);
                }
            }
        }
        event
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
            refused: Refused {
                full: stats.refused,
                mode: stats.unsupported_mode,
                id_conflict: stats.id_conflicts,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use bitcoin_core::hash::hash;
    use bitcoin_core::message::Message;
    use bitcoin_core::replica::{CoordinatorEffect, Disk, DiskOp, ReplicaConfig};
    use bitcoin_core::scheduler::Config;

    use super::*;

    const MINER: ConnId = ConnId(1);
    const CLIENT: ConnId = ConnId(5);

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// A replica alone in its group, from `disk`, ticked until it leads; the ops it
    /// persists are applied to `disk`.
    fn leader(disk: &mut Disk) -> Node {
        let config = ReplicaConfig::for_id(1, vec![1]);
        let mut node = Node::new(&config, disk.clone(), Config::default()).expect("valid");
        for t in 0..100 {
            node.tick(at(t));
            drain(&mut node, disk);
            if node.replica().is_leader() {
                return node;
            }
        }
        panic!("never led");
    }

    /// Drains `node`'s effects, applying its persisted ops to `disk`; returns the jobs
    /// written to [`MINER`] and the Results written to [`CLIENT`].
    fn drain(node: &mut Node, disk: &mut Disk) -> (Vec<Message>, Vec<Message>) {
        let (mut jobs, mut results) = (Vec::new(), Vec::new());
        while let Some(effect) = node.poll_effect() {
            match effect {
                CoordinatorEffect::Persist(ops) => {
                    ops.iter().for_each(|op: &DiskOp| disk.apply(op))
                }
                CoordinatorEffect::Write(conn, bytes) | CoordinatorEffect::Answer(conn, bytes) => {
                    let message = Message::decode(&bytes).expect("a message");
                    match conn {
                        MINER => jobs.push(message),
                        _ => results.push(message),
                    }
                }
                _ => {}
            }
        }
        (jobs, results)
    }

    fn events(node: &mut Node, view: &mut View) -> Vec<PoolEvent<ConnId>> {
        let mut told = Vec::new();
        while let Some(event) = node.poll_event() {
            told.push(view.event(node, event));
        }
        told
    }

    fn request(id: u64) -> Vec<u8> {
        format!(r#"{{"Type":1,"Data":"view","Lower":0,"Upper":999,"Hash":0,"Nonce":0,"Id":{id}}}"#)
            .into_bytes()
    }

    #[test]
    fn a_request_is_told_under_its_client_from_acceptance_to_answer_and_in_the_report() {
        let mut disk = Disk::fresh(&[1]);
        let mut node = leader(&mut disk);
        let mut view = View::new(1);
        node.handle_payload(at(200), MINER, &Message::Join.encode());
        node.handle_payload(at(200), CLIENT, &request(7));
        let (mut jobs, _) = drain(&mut node, &mut disk);
        let told = events(&mut node, &mut view);
        assert!(matches!(
            told[0].kind,
            PoolEventKind::MinerJoined { miner: MINER }
        ));
        assert!(
            matches!(
                told[1].kind,
                PoolEventKind::RequestAccepted { client: CLIENT, .. }
            ),
            "{told:?}"
        );
        let report = view.report(&node, at(300), &|_| Some("10.0.0.1:9".into()));
        assert_eq!(report.requests[0].client, CLIENT);
        assert_eq!(report.miners[0].address.as_deref(), Some("10.0.0.1:9"));
        let mut answered = Vec::new();
        let mut results = Vec::new();
        while results.is_empty() {
            let Some(Message::Request { data, lower, upper }) = jobs.pop() else {
                panic!("no job left and no answer");
            };
            let (hash, nonce) = (lower..=upper).map(|n| (hash(&data, n), n)).min().unwrap();
            node.handle_payload(at(400), MINER, &Message::Result { hash, nonce }.encode());
            let (more, res) = drain(&mut node, &mut disk);
            jobs.extend(more);
            results.extend(res);
            answered.extend(events(&mut node, &mut view));
        }
        // Told after the coordinator let go of the slot: still the client's.
        assert!(
            answered.iter().any(|e| matches!(
                e.kind,
                PoolEventKind::RequestAnswered { client: CLIENT, .. }
            )),
            "{answered:?}"
        );
        let r = view.replication(&node);
        assert_eq!((r.id, r.role, r.leader, r.replicas), (1, "leader", 1, 1));
        assert!(r.applied_index >= 3, "accepted, searched, answered: {r:?}");
        // The role is told once, then nothing until something changes.
        let first = view.replica_events(&node, at(500));
        assert!(matches!(
            first[0].kind,
            ReplicaEventKind::ReplicaRole { role: "leader", .. }
        ));
        assert!(view.replica_events(&node, at(600)).is_empty());
    }

    #[test]
    fn a_restored_request_has_no_connection_until_its_client_resubmits_it() {
        let mut disk = Disk::fresh(&[1]);
        let mut node = leader(&mut disk);
        node.handle_payload(at(200), CLIENT, &request(9));
        drain(&mut node, &mut disk);
        // Restarted from its disk: the request is restored before anyone waits for it.
        let mut node = leader(&mut disk);
        let mut view = View::new(1);
        let told = events(&mut node, &mut view);
        assert!(
            matches!(
                told[0].kind,
                PoolEventKind::RequestAccepted {
                    client: NO_CONN,
                    ..
                }
            ),
            "{told:?}"
        );
        let restored = view.replica_events(&node, at(300));
        assert!(restored
            .iter()
            .any(|e| e.kind == ReplicaEventKind::RequestsRestored { term: 2, count: 1 }));
        let resubmitter = ConnId(8);
        node.handle_payload(at(300), resubmitter, &request(9));
        drain(&mut node, &mut disk);
        view.refresh(&node);
        assert_eq!(
            view.slots.values().copied().collect::<Vec<_>>(),
            [Some(resubmitter)]
        );
        let report = view.report(&node, at(400), &|_| None);
        assert_eq!(report.requests[0].client, resubmitter);
    }
}
