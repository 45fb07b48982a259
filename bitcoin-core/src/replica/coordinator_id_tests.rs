//! A request `"Id"` names one request: a client that sends an id already naming another
//! request (another text, range or mode) is refused, never given that request's answer.

use super::coordinator_tests::{request_with_id, scan, Cluster};
use crate::hash::{Algo, Zeros};
use crate::message::ext::encode_request;
use crate::message::{Message, Mode};

#[test]
fn an_id_naming_another_request_is_refused_and_the_same_request_is_answered() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    c.send(leader, 100, &Message::Join.encode());
    c.send(leader, 7, &request_with_id("first", 0, 999, 5));
    // Another text, another range, another mode under the same id.
    c.send(leader, 8, &request_with_id("second", 0, 999, 5));
    c.send(leader, 9, &request_with_id("first", 0, 998, 5));
    let target = Mode::Target {
        zeros: Zeros::new(8).unwrap(),
        algo: Algo::Sha256,
    };
    let mut in_target_mode = encode_request("first", 0, 999, target);
    in_target_mode.pop();
    in_target_mode.extend_from_slice(br#","Id":5}"#);
    c.send(leader, 11, &in_target_mode);
    assert_eq!(c.nodes[&leader].stats().id_conflicts, 3);
    assert_eq!(c.closed, [(leader, 8), (leader, 9), (leader, 11)]);
    // The same request again is taken, and both its connections get the one answer.
    c.send(leader, 10, &request_with_id("first", 0, 999, 5));
    assert_eq!(c.mine(leader, &[100], 100), 1_000);
    let (hash, nonce) = scan("first", 0, 999);
    for conn in [7, 10] {
        assert_eq!(
            c.results_to(leader, conn),
            [Message::Result { hash, nonce }]
        );
    }
    for conn in [8, 9, 11] {
        assert!(c.results_to(leader, conn).is_empty(), "conn {conn}");
    }
    assert_eq!(c.nodes[&leader].stats().id_conflicts, 3);
}

#[test]
fn an_id_naming_a_request_not_yet_in_the_log_is_checked_too() {
    let mut c = Cluster::new(3);
    let leader = c.leader();
    // Both reach the leader before the first one's Accept is committed.
    let now = c.at();
    let node = c.nodes.get_mut(&leader).unwrap();
    node.handle_payload(now, 7, &request_with_id("early", 0, 99, 1));
    node.handle_payload(now, 8, &request_with_id("other", 0, 99, 1));
    node.handle_payload(now, 9, &request_with_id("early", 0, 99, 1));
    assert_eq!(node.stats().id_conflicts, 1);
    c.drain();
    assert_eq!(c.closed, [(leader, 8)]);
    let key = super::RequestKey::of_id(1);
    let logged = c.nodes[&leader].replica().state().request(&key).cloned();
    assert_eq!(logged.map(|r| r.message), Some("early".to_string()));
}

#[test]
fn an_id_two_leaders_each_proposed_for_another_request_refuses_the_later_ones_waiters() {
    use raft::eraftpb::MessageType;
    let mut c = Cluster::new(3);
    let old = c.leader();
    let (next, last) = match old {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    // The old leader proposes "x" under id 3; only `next` receives the entry, and no one
    // acknowledges it before the old leader dies: it is in `next`'s log, not committed.
    let now = c.at();
    let node = c.nodes.get_mut(&old).unwrap();
    node.handle_payload(now, 7, &request_with_id("x", 0, 99, 3));
    let effects: Vec<_> = std::iter::from_fn(|| node.poll_effect()).collect();
    c.nodes.remove(&old);
    c.lose = Box::new(move |m| m.to == last && m.from == old);
    c.replay(old, effects);
    // `next` leads (its log is the longer), but `last` gets no entries from it: nothing
    // commits, so "x" is not applied when "y" comes under the same id.
    c.lose = Box::new(move |m| {
        m.to == last
            && m.from == next
            && matches!(
                m.get_msg_type(),
                MessageType::MsgAppend | MessageType::MsgSnapshot
            )
    });
    assert_eq!(c.leader(), next);
    c.send(next, 8, &request_with_id("y", 0, 99, 3));
    let key = super::RequestKey::of_id(3);
    assert!(c.nodes[&next].replica().state().request(&key).is_none());
    assert_eq!(c.nodes[&next].stats().id_conflicts, 0, "not known yet");
    // The network heals: "x" commits first, so "y"'s client is refused, never answered
    // with "x"'s answer.
    c.lose = Box::new(|_| false);
    for _ in 0..20 {
        c.tick();
    }
    let logged = c.nodes[&next].replica().state().request(&key).cloned();
    assert_eq!(logged.map(|r| r.message), Some("x".to_string()));
    assert_eq!(c.closed, [(next, 8)]);
    assert_eq!(c.nodes[&next].stats().id_conflicts, 1);
    c.send(next, 100, &Message::Join.encode());
    c.mine(next, &[100], 100);
    assert!(c.results_to(next, 8).is_empty());
}
