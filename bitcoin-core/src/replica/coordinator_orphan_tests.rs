//! A leader that steps down without knowing who leads next keeps the connections that
//! understand a NotLeader, for a bounded time, and tells them the leader once one is known;
//! a leader that leaves on purpose hands its leadership over first, and names the new
//! leader to them.

use super::coordinator_tests::{request_with_id, Cluster};
use super::redirect;
use crate::message::Message;

/// Three replicas; on the leader a miner that announced NotLeader (100), a reference miner
/// (101) and a client sending an `"Id"` (7). Both followers then die: the leader loses its
/// quorum and steps down. Returns the cluster, the old leader and the followers.
fn a_leader_alone() -> (Cluster, u64, Vec<u64>) {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    c.send(
        leader,
        100,
        &redirect::with_redirect(Message::Join.encode()),
    );
    c.send(leader, 101, &Message::Join.encode());
    c.send(leader, 7, &request_with_id("alone", 0, 59_999, 5));
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    for f in &followers {
        c.nodes.remove(f);
    }
    let mut ticks = 0;
    while c.nodes[&leader].replica().is_leader() {
        c.tick();
        ticks += 1;
        assert!(ticks < 200, "the leader never noticed it lost its quorum");
    }
    (c, leader, followers)
}

/// The (connection, leader named) of every NotLeader `node` wrote, in connection order.
fn hinted_by(c: &Cluster, node: u64) -> Vec<(u32, u64)> {
    let mut hinted: Vec<(u32, u64)> = c
        .hints
        .iter()
        .filter(|(n, _, _)| *n == node)
        .map(|(_, conn, l)| (*conn, *l))
        .collect();
    hinted.sort_unstable();
    hinted
}

/// Every connection closed, in order.
fn closed(c: &Cluster) -> Vec<u32> {
    let mut closed: Vec<u32> = c.closed.iter().map(|(_, k)| *k).collect();
    closed.sort_unstable();
    closed
}

#[test]
fn a_leader_without_quorum_tells_its_peers_the_next_leader_when_it_is_known() {
    let (mut c, old, followers) = a_leader_alone();
    assert_eq!(
        c.closed,
        [(old, 101)],
        "the reference miner is closed at once"
    );
    assert!(c.hints.is_empty(), "no leader known yet");
    // What a kept miner sends meanwhile (an answer) is dropped; the miner stays kept.
    let answer = Message::Result { hash: 1, nonce: 2 }.encode();
    c.send(old, 100, &answer);
    assert_eq!(c.closed.len(), 1, "still kept");
    // A follower returns: a leader is elected, and the two kept are told who it is.
    c.start(followers[0]);
    let leader = c.leader();
    c.tick();
    let hinted = hinted_by(&c, old);
    assert_eq!(hinted, [(7, leader), (100, leader)]);
    assert_eq!(closed(&c), [7, 100, 101]);
}

#[test]
fn with_no_leader_in_time_they_are_closed_without_a_hint() {
    let (mut c, old, _) = a_leader_alone();
    for _ in 0..100 {
        c.tick();
    }
    assert!(c.hints.is_empty());
    assert_eq!(closed(&c), [7, 100, 101]);
    assert!(c.closed.iter().all(|(n, _)| *n == old));
}

#[test]
fn a_leader_that_leaves_hands_over_and_names_the_new_leader() {
    let mut c = Cluster::new(3);
    let old = c.leader();
    c.send(old, 100, &redirect::with_redirect(Message::Join.encode()));
    c.send(old, 101, &Message::Join.encode());
    c.send(old, 7, &request_with_id("leaving", 0, 59_999, 5));
    let now = c.at();
    let to = c.nodes.get_mut(&old).unwrap().hand_over(now);
    let to = to.expect("a leader with followers hands over");
    assert_ne!(to, old);
    c.drain();
    // No tick passed: the follower campaigned at once, and the old leader named it to
    // its peers as soon as it heard from it.
    assert!(
        c.nodes[&to].replica().is_leader(),
        "leads without an election timeout"
    );
    assert!(!c.nodes[&old].replica().is_leader());
    assert_eq!(hinted_by(&c, old), [(7, to), (100, to)]);
    assert_eq!(closed(&c), [7, 100, 101]);
    // A follower has nothing to hand over.
    let now = c.at();
    assert_eq!(c.nodes.get_mut(&old).unwrap().hand_over(now), None);
}

#[test]
fn a_request_arriving_while_a_hand_over_stalls_is_closed_not_stranded() {
    let mut c = Cluster::new(3);
    let old = c.leader();
    // The hand-over cannot complete: nothing reaches the chosen follower.
    let now = c.at();
    let node = c.nodes.get_mut(&old).unwrap();
    let to = node.hand_over(now).expect("a follower to hand over to");
    c.lose = Box::new(move |m| m.to == to);
    c.drain();
    assert!(c.nodes[&old].replica().transferring());
    // raft-rs drops proposals meanwhile: the request is closed (its client resubmits),
    // not left waiting for an Accept that was never proposed.
    c.send(old, 8, &request_with_id("stalled", 0, 99, 9));
    assert_eq!(c.closed, [(old, 8)]);
    assert!(c.nodes[&old].stats().proposals_dropped >= 1);
}
