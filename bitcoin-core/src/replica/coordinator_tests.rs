use std::collections::{BTreeMap, VecDeque};

use lsp_core::Timestamp;

use super::*;
use crate::hash::hash;
use crate::message::Message;
use crate::scheduler::Config;

pub(super) fn scan(msg: &str, lower: u64, upper: u64) -> (u64, u64) {
    (lower..=upper).map(|n| (hash(msg, n), n)).min().unwrap()
}

pub(super) fn request_with_id(data: &str, lower: u64, upper: u64, id: u64) -> Vec<u8> {
    format!(r#"{{"Type":1,"Data":"{data}","Lower":{lower},"Upper":{upper},"Hash":0,"Nonce":0,"Id":{id}}}"#)
        .into_bytes()
}

/// Coordinators on a perfect network, each with its durable disk; what they write to
/// client and miner connections is collected.
pub(super) struct Cluster {
    pub(super) nodes: BTreeMap<u64, Coordinator<u32>>,
    disks: BTreeMap<u64, Disk>,
    n: u64,
    now: u64,
    raft: VecDeque<RaftMessage>,
    pub(super) writes: Vec<(u64, u32, Message)>,
    /// The same writes as bytes, extension keys included.
    pub(super) raw: Vec<(u64, u32, Vec<u8>)>,
    pub(super) closed: Vec<(u64, u32)>,
    /// NotLeader messages written: (node, conn, the leader named).
    pub(super) hints: Vec<(u64, u32, u64)>,
    /// The scheduler's `max_requests` of coordinators started from now on.
    pub(super) max_requests: usize,
    /// Raft messages the network loses (none unless a test says so).
    pub(super) lose: Box<dyn Fn(&RaftMessage) -> bool>,
}

impl Cluster {
    pub(super) fn new(n: u64) -> Cluster {
        let voters: Vec<u64> = (1..=n).collect();
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            disks: voters.iter().map(|&v| (v, Disk::fresh(&voters))).collect(),
            n,
            now: 0,
            raft: VecDeque::new(),
            writes: Vec::new(),
            raw: Vec::new(),
            closed: Vec::new(),
            hints: Vec::new(),
            max_requests: 4,
            lose: Box::new(|_| false),
        };
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    /// Three replicas, and on the leader two miners (connections 100 and 101) and a
    /// client (connection 7) asking for `data` over `0..=upper` with `"Id": id`. Returns
    /// the cluster and its leader.
    fn two_miners_and_a_request(data: &str, upper: u64, id: u64) -> (Cluster, u64) {
        let mut c = Cluster::new(3);
        let leader = c.leader();
        c.send(leader, 100, &Message::Join.encode());
        c.send(leader, 101, &Message::Join.encode());
        c.send(leader, 7, &request_with_id(data, 0, upper, id));
        (c, leader)
    }

    pub(super) fn at(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    pub(super) fn start(&mut self, id: u64) {
        let config = ReplicaConfig::for_id(id, (1..=self.n).collect());
        let scheduler = Config {
            max_requests: self.max_requests,
            max_requests_per_client: 1,
            ..Config::default()
        };
        let node = Coordinator::new(&config, self.disks[&id].clone(), scheduler).unwrap();
        self.nodes.insert(id, node);
    }

    /// Acts on effects taken from `node` by hand, then drains as usual.
    pub(super) fn replay(&mut self, node: u64, effects: Vec<CoordinatorEffect<u32>>) {
        for effect in effects {
            match effect {
                CoordinatorEffect::Persist(ops) => {
                    let disk = self.disks.get_mut(&node).unwrap();
                    ops.iter().for_each(|op| disk.apply(op));
                }
                CoordinatorEffect::SendRaft(m) => self.raft.push_back(m),
                _ => {}
            }
        }
        self.drain();
    }

    pub(super) fn drain(&mut self) {
        loop {
            for (&id, node) in &mut self.nodes {
                while let Some(effect) = node.poll_effect() {
                    match effect {
                        CoordinatorEffect::Persist(ops) => {
                            let disk = self.disks.get_mut(&id).unwrap();
                            ops.iter().for_each(|op| disk.apply(op));
                        }
                        CoordinatorEffect::SendRaft(m) => self.raft.push_back(m),
                        CoordinatorEffect::Write(conn, bytes)
                        | CoordinatorEffect::Answer(conn, bytes) => {
                            if let Some(leader) = redirect::decode_not_leader(&bytes) {
                                assert!(!self.closed.contains(&(id, conn)), "after the close");
                                self.hints.push((id, conn, leader));
                                continue;
                            }
                            self.writes
                                .push((id, conn, Message::decode(&bytes).unwrap()));
                            self.raw.push((id, conn, bytes));
                        }
                        CoordinatorEffect::Close(conn) => self.closed.push((id, conn)),
                    }
                }
            }
            let Some(m) = self.raft.pop_front() else {
                return;
            };
            let now = self.at();
            if (self.lose)(&m) {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&m.to) {
                node.step_raft(now, m);
            }
        }
    }

    pub(super) fn tick(&mut self) {
        self.now += 10;
        let now = self.at();
        for node in self.nodes.values_mut() {
            node.tick(now);
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
        }
        self.drain();
    }

    pub(super) fn leader(&mut self) -> u64 {
        for _ in 0..100 {
            if let Some((&id, _)) = self.nodes.iter().find(|(_, n)| n.replica().is_leader()) {
                return id;
            }
            self.tick();
        }
        panic!("no leader");
    }

    pub(super) fn send(&mut self, node: u64, conn: u32, payload: &[u8]) {
        let now = self.at();
        self.nodes
            .get_mut(&node)
            .unwrap()
            .handle_payload(now, conn, payload);
        self.drain();
    }

    /// Answers up to `max` jobs written to `node`'s miners, truly; returns the nonces.
    pub(super) fn mine(&mut self, node: u64, miners: &[u32], max: usize) -> u64 {
        let mut nonces = 0;
        for _ in 0..max {
            let job = self.writes.iter().position(|(n, conn, m)| {
                *n == node && miners.contains(conn) && matches!(m, Message::Request { .. })
            });
            let Some(i) = job else { break };
            let (_, miner, message) = self.writes.remove(i);
            let Message::Request { data, lower, upper } = message else {
                unreachable!()
            };
            nonces += upper - lower + 1;
            let (hash, nonce) = scan(&data, lower, upper);
            self.send(node, miner, &Message::Result { hash, nonce }.encode());
        }
        nonces
    }

    pub(super) fn results_to(&self, node: u64, conn: u32) -> Vec<Message> {
        self.writes
            .iter()
            .filter(|(n, c, m)| *n == node && *c == conn && matches!(m, Message::Result { .. }))
            .map(|(_, _, m)| m.clone())
            .collect()
    }
}

#[test]
fn the_leader_answers_through_the_log_and_followers_serve_no_one() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    let follower = leader % 3 + 1;
    c.send(follower, 5, &Message::Join.encode());
    assert_eq!(c.closed, [(follower, 5)], "a follower closes whoever comes");
    assert!(
        c.hints.is_empty(),
        "a reference miner is never sent a NotLeader"
    );
    // A miner or client that announced it is told where the leader is, then closed.
    c.send(
        follower,
        6,
        &redirect::with_redirect(Message::Join.encode()),
    );
    c.send(follower, 9, &request_with_id("log", 0, 9, 1));
    assert_eq!(c.hints, [(follower, 6, leader), (follower, 9, leader)]);
    assert_eq!(c.closed, [(follower, 5), (follower, 6), (follower, 9)]);
    assert_eq!(c.nodes[&follower].stats().redirected, 2);
    assert_eq!(c.nodes[&follower].stats().not_leader, 3);
    c.send(leader, 100, &Message::Join.encode());
    c.send(leader, 7, &request_with_id("log", 0, 29_999, 42));
    assert_eq!(c.mine(leader, &[100], 1_000), 30_000);
    let (hash, nonce) = scan("log", 0, 29_999);
    assert_eq!(c.results_to(leader, 7), [Message::Result { hash, nonce }]);
    let key = RequestKey::of_id(42);
    for node in c.nodes.values() {
        let answer = node.replica().state().request(&key).and_then(|r| r.answer);
        assert_eq!(
            answer,
            Some((hash, nonce)),
            "replica {}",
            node.replica().id()
        );
    }
    // A resubmission is answered from the log, the same way, with no new work.
    c.send(leader, 8, &request_with_id("log", 0, 29_999, 42));
    assert_eq!(c.results_to(leader, 8), [Message::Result { hash, nonce }]);
    assert_eq!(c.mine(leader, &[100], 10), 0);
}

#[test]
fn a_new_leader_resumes_a_request_from_the_log_and_answers_it_once() {
    let (mut c, old) = Cluster::two_miners_and_a_request("failover", 59_999, 9);
    let before = c.mine(old, &[100, 101], 3);
    assert!(before > 0 && before < 60_000);
    c.tick(); // The leader logs the chunks verified since its last tick.
              // The leader dies; its disk survives. Someone else takes over.
    c.nodes.remove(&old);
    c.writes.clear();
    let new = c.leader();
    assert_ne!(new, old);
    assert_eq!(c.nodes[&new].stats().restored, 1);
    c.send(new, 200, &Message::Join.encode());
    c.send(new, 8, &request_with_id("failover", 0, 59_999, 9));
    let after = c.mine(new, &[200], 1_000);
    let (hash, nonce) = scan("failover", 0, 59_999);
    assert_eq!(c.results_to(new, 8), [Message::Result { hash, nonce }]);
    assert_eq!(
        before + after,
        60_000,
        "what the old leader logged is not searched again"
    );
    // The old leader comes back from its disk and learns the answer.
    c.start(old);
    for _ in 0..5 {
        c.tick();
    }
    let key = RequestKey::of_id(9);
    let answer = c.nodes[&old]
        .replica()
        .state()
        .request(&key)
        .and_then(|r| r.answer);
    assert_eq!(answer, Some((hash, nonce)));
    assert!(!c.nodes[&old].replica().is_leader());
}

#[test]
fn a_leader_that_steps_down_closes_its_connections() {
    let mut c = Cluster::new(3);
    let old = c.leader();
    c.send(old, 100, &Message::Join.encode());
    c.send(old, 7, &request_with_id("down", 0, 9, 1));
    // Cut the leader off: its peers elect another, and it loses its quorum.
    let others: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let isolated = c.nodes.remove(&old).unwrap();
    let new = c.leader();
    assert!(others.contains(&new));
    c.nodes.insert(old, isolated);
    for _ in 0..40 {
        c.tick();
    }
    assert!(!c.nodes[&old].replica().is_leader());
    let mut closed: Vec<u32> = c
        .closed
        .iter()
        .filter(|(n, _)| *n == old)
        .map(|(_, k)| *k)
        .collect();
    closed.sort_unstable();
    assert_eq!(closed, [7, 100]);
}

#[test]
fn a_leader_stepping_down_names_the_new_leader_to_peers_that_announced_it() {
    let mut c = Cluster::new(3);
    let old = c.leader();
    let join = Message::Join.encode();
    c.send(old, 100, &redirect::with_redirect(join.clone()));
    c.send(old, 101, &join);
    c.send(old, 7, &request_with_id("down", 0, 9, 1));
    c.send(
        old,
        8,
        &Message::Request {
            data: "plain".into(),
            lower: 0,
            upper: 9,
        }
        .encode(),
    );
    assert!(c.hints.is_empty());
    // Cut off, the old leader misses an election; back, it hears the new leader's higher
    // term and steps down knowing who leads.
    let isolated = c.nodes.remove(&old).unwrap();
    let new = c.leader();
    assert_ne!(new, old);
    c.nodes.insert(old, isolated);
    for _ in 0..40 {
        c.tick();
    }
    assert!(!c.nodes[&old].replica().is_leader());
    assert_eq!(c.nodes[&old].replica().leader(), new);
    let mut hinted: Vec<(u32, u64)> = c
        .hints
        .iter()
        .filter(|(n, _, _)| *n == old)
        .map(|&(_, k, l)| (k, l))
        .collect();
    hinted.sort_unstable();
    assert_eq!(hinted, [(7, new), (100, new)]);
    let mut closed: Vec<u32> = c
        .closed
        .iter()
        .filter(|(n, _)| *n == old)
        .map(|(_, k)| *k)
        .collect();
    closed.sort_unstable();
    assert_eq!(closed, [7, 8, 100, 101]);
    assert_eq!(c.nodes[&old].stats().redirected, 2);
}

#[test]
fn work_done_without_a_majority_is_not_lost_when_a_majority_returns() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    c.send(leader, 100, &Message::Join.encode());
    c.send(leader, 7, &request_with_id("quorum", 0, 59_999, 5));
    c.mine(leader, &[100], 1);
    // Both followers die; the leader goes on for a while (its RangeDones cannot commit).
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    for f in &followers {
        c.nodes.remove(f);
    }
    c.mine(leader, &[100], 2);
    for _ in 0..60 {
        c.tick();
    }
    assert!(
        !c.nodes[&leader].replica().is_leader(),
        "no quorum, no leader"
    );
    assert!(c.results_to(leader, 7).is_empty());
    // One follower returns from its disk: the old leader (longest log) leads again.
    c.start(followers[0]);
    c.writes.clear();
    let now_leader = c.leader();
    c.send(now_leader, 101, &Message::Join.encode());
    c.send(now_leader, 8, &request_with_id("quorum", 0, 59_999, 5));
    c.mine(now_leader, &[101], 1_000);
    for _ in 0..5 {
        c.tick();
        c.mine(now_leader, &[101], 1_000);
    }
    let (hash, nonce) = scan("quorum", 0, 59_999);
    assert_eq!(
        c.results_to(now_leader, 8),
        [Message::Result { hash, nonce }]
    );
}

#[test]
fn the_log_holds_no_more_unanswered_requests_than_the_scheduler_may() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    for id in 0..6u32 {
        c.send(
            leader,
            10 + id,
            &request_with_id("flood", 0, 10, u64::from(id)),
        );
    }
    let unanswered = c.nodes[&leader].replica().state().unanswered().count();
    assert_eq!(unanswered, 4, "max_requests");
    assert_eq!(c.nodes[&leader].stats().refused, 2);
    let mut closed: Vec<u32> = c.closed.iter().map(|(_, k)| *k).collect();
    closed.sort_unstable();
    assert_eq!(closed, [14, 15]);
    // A resubmission of a request already in the log is still taken.
    c.send(leader, 30, &request_with_id("flood", 0, 10, 0));
    assert_eq!(c.nodes[&leader].stats().refused, 2);
}

#[test]
fn accepts_proposed_together_do_not_take_the_log_past_the_limit() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    // Six requests reach the leader before any of their Accepts is committed.
    let now = c.at();
    for id in 0..6u32 {
        let request = request_with_id("together", 0, 10, u64::from(id));
        let node = c.nodes.get_mut(&leader).unwrap();
        node.handle_payload(now, 10 + id, &request);
    }
    // A resubmission of one still in flight is not proposed twice, nor refused.
    let again = request_with_id("together", 0, 10, 0);
    c.nodes
        .get_mut(&leader)
        .unwrap()
        .handle_payload(now, 30, &again);
    c.drain();
    let unanswered = c.nodes[&leader].replica().state().unanswered().count();
    assert_eq!(
        unanswered, 4,
        "the Accepts in flight counted against max_requests"
    );
    assert_eq!(c.nodes[&leader].stats().refused, 2);
    let mut closed: Vec<u32> = c.closed.iter().map(|(_, k)| *k).collect();
    closed.sort_unstable();
    assert_eq!(closed, [14, 15]);
    // All four accepted, and the resubmission, are answered.
    c.send(leader, 100, &Message::Join.encode());
    c.mine(leader, &[100], 100);
    let answer = scan("together", 0, 10);
    let (hash, nonce) = answer;
    for conn in [10, 11, 12, 13, 30] {
        assert_eq!(
            c.results_to(leader, conn),
            [Message::Result { hash, nonce }]
        );
    }
}

#[test]
fn requests_the_scheduler_has_no_room_for_wait_for_a_slot_and_are_answered() {
    // A single durable server accepts four requests, and restarts with room for two
    // (the log may also exceed the limit when Accepts of an earlier leader commit under
    // a new one): the two it cannot schedule wait for a slot instead of being stranded.
    let mut c = Cluster::new(1);
    c.leader();
    for id in 0..4u32 {
        let request = request_with_id("room", 0, 999, u64::from(id));
        c.send(1, 10 + id, &request);
    }
    assert_eq!(c.nodes[&1].replica().state().unanswered().count(), 4);
    c.nodes.remove(&1);
    c.max_requests = 2;
    c.start(1);
    c.leader();
    assert_eq!(c.nodes[&1].stats().restored, 4);
    for id in 0..4u32 {
        let request = request_with_id("room", 0, 999, u64::from(id));
        c.send(1, 20 + id, &request);
    }
    c.send(1, 100, &Message::Join.encode());
    c.mine(1, &[100], 1_000);
    let (hash, nonce) = scan("room", 0, 999);
    for conn in 20..24 {
        assert_eq!(
            c.results_to(1, conn),
            [Message::Result { hash, nonce }],
            "connection {conn}"
        );
    }
    assert_eq!(c.nodes[&1].replica().state().unanswered().count(), 0);
    // The service forgot every slot (answered or refused): it holds the miner only.
    let service = c.nodes[&1].service().unwrap();
    assert_eq!(service.pool(c.at()).totals.connections, 1);
}

#[test]
fn progress_goes_to_the_waiting_connections_that_asked_for_it_and_no_other() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    c.send(leader, 100, &Message::Join.encode());
    let plain = request_with_id("slow", 0, 59_999, 3);
    // The same request (same id) from a client that asks for Progress and one that does
    // not.
    let mut asking = plain.clone();
    asking.pop();
    asking.extend_from_slice(br#","Progress":true}"#);
    c.send(leader, 7, &asking);
    c.send(leader, 8, &plain);
    // One job answered a second, until the answer.
    for _ in 0..100 {
        if !c.results_to(leader, 7).is_empty() {
            break;
        }
        c.mine(leader, &[100], 1);
        c.now += 990;
        c.tick();
    }
    let progress = |conn: u32| -> Vec<(u64, u64)> {
        c.writes
            .iter()
            .filter_map(|(n, k, m)| match m {
                Message::Progress { covered, total, .. } if *n == leader && *k == conn => {
                    Some((*covered, *total))
                }
                _ => None,
            })
            .collect()
    };
    let told = progress(7);
    assert!(told.len() >= 2, "{told:?}");
    assert!(told.iter().all(|&(_, total)| total == 60_000), "{told:?}");
    assert!(told.windows(2).all(|w| w[0].0 <= w[1].0), "{told:?}");
    assert!(told.iter().any(|&(covered, _)| covered > 0), "{told:?}");
    assert!(progress(8).is_empty(), "never to a peer that did not ask");
    let (hash, nonce) = scan("slow", 0, 59_999);
    for conn in [7, 8] {
        assert_eq!(
            c.results_to(leader, conn),
            [Message::Result { hash, nonce }],
            "conn {conn}: a Progress does not end the request"
        );
    }
}

#[test]
fn verified_chunks_are_logged_together_at_the_next_tick_or_before_the_answer() {
    let (mut c, leader) = Cluster::two_miners_and_a_request("batch", 99_999, 3);
    let applied = c.nodes[&leader].replica().state().applied_index();
    let searched = c.mine(leader, &[100, 101], 4);
    assert!(searched > 0 && searched < 100_000);
    let state = |c: &Cluster| c.nodes[&leader].replica().state().clone();
    assert_eq!(
        state(&c).applied_index(),
        applied,
        "nothing logged per chunk"
    );
    // At the tick, one batch: one append message per follower carrying all four.
    let now = c.at();
    let node = c.nodes.get_mut(&leader).unwrap();
    node.tick(now);
    let mut appends = Vec::new();
    let mut held = Vec::new();
    while let Some(effect) = node.poll_effect() {
        if let CoordinatorEffect::SendRaft(m) = &effect {
            if m.get_msg_type() == raft::eraftpb::MessageType::MsgAppend {
                appends.push((m.to, m.entries.len()));
            }
        }
        held.push(effect);
    }
    appends.sort_unstable();
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    assert_eq!(
        appends,
        followers.iter().map(|&f| (f, 4)).collect::<Vec<_>>()
    );
    c.replay(leader, held);
    c.tick();
    let after = state(&c);
    assert_eq!(
        after.applied_index(),
        applied + 4,
        "the four chunks, at the tick"
    );
    let r = after.request(&RequestKey::of_id(3)).unwrap();
    let covered: u64 = r.covered.iter().map(|(a, b)| b - a + 1).sum();
    assert_eq!(covered, searched);
    // The rest is answered without another tick: its chunks go to the log before the
    // answer, which the log takes only once they make the request answerable.
    c.mine(leader, &[100, 101], 1_000);
    let (hash, nonce) = scan("batch", 0, 99_999);
    assert_eq!(c.results_to(leader, 7), [Message::Result { hash, nonce }]);
}
