//! Target mode through the replicated coordinator: accepted with its mode, chunks logged
//! with their first hit or none, and answered across a leader change with the bytes the
//! plain server writes.

use super::coordinator_tests::Cluster;
use super::*;
use crate::hash::{Algo, Zeros};
use crate::message::ext::{encode_join, encode_request, encode_target_result, with_job};
use crate::message::{Cap, Caps, Message, Mode as MessageMode};
use crate::scheduler::Config;
use crate::service::MinerService;

fn target(zeros: u32) -> MessageMode {
    MessageMode::Target {
        zeros: Zeros::new(zeros).unwrap(),
        algo: Algo::Sha256,
    }
}

/// A Request in `mode` carrying `"Id": id`.
fn request(data: &str, upper: u64, mode: MessageMode, id: u64) -> Vec<u8> {
    let mut bytes = encode_request(data, 0, upper, mode);
    bytes.pop();
    bytes.extend_from_slice(format!(",\"Id\":{id}}}").as_bytes());
    bytes
}

fn join() -> Vec<u8> {
    encode_join(Caps::NONE.with(Cap::Target))
}

/// An honest miner's answer to the job `bytes`: its first hit or `"Found": false` for a
/// target job, its least hash for a minimum one. `None` if `bytes` is not a job.
fn answer(bytes: &[u8]) -> Option<((u64, u64), Vec<u8>)> {
    let d = Message::decode_full(bytes).ok()?;
    let Message::Request { data, lower, upper } = d.message else {
        return None;
    };
    let reply = match d.ext.mode.ok()? {
        MessageMode::Target { zeros, algo } => {
            let hit = (lower..=upper)
                .map(|n| (algo.hash(&data, n), n))
                .find(|&(h, _)| zeros.accepts(h));
            encode_target_result(hit, (lower, upper))
        }
        _ => {
            let (hash, nonce) = (lower..=upper)
                .map(|n| (crate::hash::hash(&data, n), n))
                .min()?;
            Message::Result { hash, nonce }.encode()
        }
    };
    Some(((lower, upper), with_job(reply, d.ext.job)))
}

/// Answers up to `max` of the jobs `node` wrote to `miners`, the newest first (so higher
/// chunks finish before lower ones); returns their ranges.
fn mine(c: &mut Cluster, node: u64, miners: &[u32], max: usize) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    while ranges.len() < max {
        let job = c.raw.iter().rposition(|(n, conn, bytes)| {
            *n == node && miners.contains(conn) && answer(bytes).is_some()
        });
        let Some(i) = job else { break };
        let (_, miner, bytes) = c.raw.remove(i);
        let Some((range, reply)) = answer(&bytes) else {
            unreachable!()
        };
        ranges.push(range);
        c.send(node, miner, &reply);
    }
    ranges
}

/// Answers `node`'s jobs until none is left, at most 200 of them (a request restored
/// wrongly fails the test rather than running on); returns their ranges.
fn finish(c: &mut Cluster, node: u64, miners: &[u32]) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    while ranges.len() < 200 {
        let more = mine(c, node, miners, 200 - ranges.len());
        if more.is_empty() {
            break;
        }
        ranges.extend(more);
    }
    ranges
}

/// What the plain (non-replicated) server writes to the client for `request`.
fn plain_answer(request: &[u8]) -> Vec<u8> {
    let mut s = MinerService::<u32>::new(Config::default()).unwrap();
    let now = lsp_core::Timestamp::ZERO;
    s.handle_payload(now, 1, &join());
    s.handle_payload(now, 2, request);
    for _ in 0..10_000 {
        let Some((to, bytes)) = s.poll_write() else {
            break;
        };
        if to == 2 {
            return bytes;
        }
        if let Some((_, reply)) = answer(&bytes) {
            s.handle_payload(now, 1, &reply);
        }
    }
    panic!("the plain server did not answer");
}

fn key(id: u64) -> RequestKey {
    RequestKey::of_id(id)
}

/// The answer bytes written to `conn` by `node`.
fn answers_to(c: &Cluster, node: u64, conn: u32) -> Vec<Vec<u8>> {
    c.raw
        .iter()
        .filter(|(n, k, b)| *n == node && *k == conn && answer(b).is_none())
        .map(|(_, _, b)| b.clone())
        .collect()
}

#[test]
fn a_target_request_is_answered_across_a_leader_change_without_searching_above_a_known_hit() {
    let (data, upper, mode) = ("tgt", 59_999, target(8));
    let first = (0..=upper)
        .map(|n| (crate::hash::hash(data, n), n))
        .find(|&(h, _)| h.leading_zeros() >= 8)
        .unwrap();
    let plain = plain_answer(&request(data, upper, mode, 9));
    assert_eq!(
        plain,
        Message::Result {
            hash: first.0,
            nonce: first.1
        }
        .encode()
    );

    let mut c = Cluster::new(3);
    let old = c.leader();
    c.send(old, 100, &join());
    c.send(old, 101, &join());
    c.send(old, 7, &request(data, upper, mode, 9));
    let logged = c.nodes[&old].replica().state().request(&key(9)).cloned();
    assert_eq!(
        logged.map(|r| r.mode),
        Some(Mode::from(mode)),
        "the mode is logged"
    );
    // The highest job answers first, with a hit: the log knows a hit above a gap.
    mine(&mut c, old, &[100, 101], 1);
    c.tick(); // The leader logs the chunks verified since its last tick.
    let r = c.nodes[&old]
        .replica()
        .state()
        .request(&key(9))
        .unwrap()
        .clone();
    let known = r.best.expect("the highest job holds a hit").1;
    assert!(known > first.1 && r.answerable().is_none());
    assert!(!r.gaps().is_empty() && r.gaps().iter().all(|&(_, end)| end < known));

    // The leader dies mid-request; another takes over and restores it from the log.
    c.nodes.remove(&old);
    c.writes.clear();
    c.raw.clear();
    let new = c.leader();
    assert_ne!(new, old);
    assert_eq!(c.nodes[&new].stats().restored, 1);
    c.send(new, 200, &join());
    c.send(new, 8, &request(data, upper, mode, 9));
    let searched = finish(&mut c, new, &[200]);
    assert!(!searched.is_empty());
    assert!(
        searched.iter().all(|&(_, end)| end < known),
        "nothing above the known hit {known} is searched: {searched:?}"
    );
    assert_eq!(
        answers_to(&c, new, 8),
        std::slice::from_ref(&plain),
        "the plain server's bytes"
    );
    let outcome = c.nodes[&new]
        .replica()
        .state()
        .request(&key(9))
        .and_then(|r| r.outcome());
    assert_eq!(
        outcome,
        Some(Outcome::Found {
            hash: first.0,
            nonce: first.1
        })
    );
    // A resubmission is answered from the log, the same bytes, no new work.
    c.send(new, 9, &request(data, upper, mode, 9));
    assert_eq!(answers_to(&c, new, 9), [plain]);
    assert!(mine(&mut c, new, &[200], 10).is_empty());
}

#[test]
fn a_target_request_without_a_hit_is_answered_not_found_across_a_leader_change() {
    let (data, upper, mode) = ("none", 39_999, target(60));
    let plain = plain_answer(&request(data, upper, mode, 3));
    assert_eq!(plain, encode_target_result(None, (0, 0)));

    let mut c = Cluster::new(3);
    let old = c.leader();
    c.send(old, 100, &join());
    // A bad Zeros is refused as the plain server refuses it.
    let mut bad = request(data, upper, mode, 4);
    let at = bad.windows(9).position(|w| w == b"\"Zeros\":6").unwrap();
    bad[at + 8] = b'0';
    bad.remove(at + 9);
    c.send(old, 6, &bad);
    assert_eq!(c.closed, [(old, 6)]);
    assert_eq!(c.nodes[&old].stats().unsupported_mode, 1);

    c.send(old, 7, &request(data, upper, mode, 3));
    let before = mine(&mut c, old, &[100], 1);
    assert_eq!(before.len(), 1);
    c.tick(); // The leader logs the chunks verified since its last tick.
    c.nodes.remove(&old);
    c.raw.clear();
    let new = c.leader();
    c.send(new, 200, &join());
    c.send(new, 8, &request(data, upper, mode, 3));
    let after = finish(&mut c, new, &[200]);
    let nonces = |r: &[(u64, u64)]| r.iter().map(|(a, b)| b - a + 1).sum::<u64>();
    assert_eq!(
        nonces(&before) + nonces(&after),
        upper + 1,
        "what the old leader logged is not searched again"
    );
    assert_eq!(answers_to(&c, new, 8), [plain]);
    let outcome = c.nodes[&new]
        .replica()
        .state()
        .request(&key(3))
        .and_then(|r| r.outcome());
    assert_eq!(outcome, Some(Outcome::NotFound));
}
