//! Simulated client processes, one request each, as the client given several addresses
//! behaves: it sends its Request with its `"Id"` to the replica it believes leads, and
//! when that connection ends (or brings no answer for [`NO_ANSWER_MS`]) resubmits the same
//! id to the next replica, or at once to the one a NotLeader names. Every Result it gets
//! is checked ([`ReplicaWorld::client_answered`]).

use bitcoin_core::message::ext::encode_request;
use bitcoin_core::message::Message;
use bitcoin_core::replica::redirect::decode_not_leader;
use bitcoin_core::replica::Outcome as Answer;

use super::case::{RequestPlan, TICK_MS};
use super::conns::{ConnKey, Peer};
use super::world::ReplicaWorld;

/// A client whose connection ended waits this long before resubmitting.
const RETRY_MS: u64 = 40;
/// A client that has had no answer for this long gives up on its replica.
const NO_ANSWER_MS: u64 = 3_000;

/// One client process.
pub struct Client {
    conn: Option<ConnKey>,
    target: u64,
    sent_at: u64,
    next_try: u64,
    /// The answer it got, if any.
    pub answer: Option<Answer>,
    /// A reference client (no `"Id"`) that lost its connection unanswered: it exited.
    pub disconnected: bool,
}

impl Client {
    /// A client that will first send to replica `first`.
    pub fn new(first: u64) -> Client {
        Client {
            conn: None,
            target: first,
            sent_at: 0,
            next_try: 0,
            answer: None,
            disconnected: false,
        }
    }

    /// Whether it is finished: answered, or a reference client that lost its connection
    /// (the reference prints `Disconnected` and exits).
    pub fn done(&self) -> bool {
        self.answer.is_some() || self.disconnected
    }
}

/// The client's Request as the real client writes it: the reference's bytes in minimum
/// mode, `"Zeros"` (and `"Algo"`) added in target mode ([`encode_request`]), and `"Id"`
/// added as the last key if the client sends it.
pub fn request_payload(plan: &RequestPlan) -> Vec<u8> {
    let mut payload = encode_request(&plan.message, plan.lower, plan.upper, plan.mode);
    if plan.with_id && payload.last() == Some(&b'}') {
        payload.pop();
        payload.extend_from_slice(format!(r#","Id":{}}}"#, plan.id).as_bytes());
    }
    payload
}

impl ReplicaWorld {
    /// Clients send (or resubmit) when due, and give up on a silent replica.
    pub(super) fn clients_step(&mut self) -> Result<(), String> {
        let n = self.case.replicas;
        let drops = !self.healed() && self.now.is_multiple_of(TICK_MS);
        for i in 0..self.clients.len() {
            let plan = &self.case.requests[i];
            let with_id = plan.with_id;
            let c = &mut self.clients[i];
            if c.done() || self.now < plan.at_ms {
                continue;
            }
            if let Some(k) = c.conn {
                let dropped = drops && self.rng.chance(self.case.drop);
                if dropped && !with_id {
                    c.conn = None;
                    c.disconnected = true;
                    self.outcome.disconnected += 1;
                    self.conns.close_by_peer(self.now, k);
                    self.trace(&format!("client {i} exits, dropping conn {k}"));
                    continue;
                }
                if with_id && (dropped || self.now >= c.sent_at + NO_ANSWER_MS) {
                    c.conn = None;
                    c.target = c.target % n + 1;
                    c.next_try = self.now;
                    self.conns.close_by_peer(self.now, k);
                    self.trace(&format!("client {i} drops conn {k}"));
                }
            }
            let c = &mut self.clients[i];
            if c.conn.is_none() && c.next_try <= self.now {
                if !with_id {
                    // The reference client is given the address of the replica leading
                    // when it starts (or any, if none leads).
                    c.target = self
                        .coords
                        .iter()
                        .find(|(_, co)| co.replica().is_leader())
                        .map_or(c.target, |(&id, _)| id);
                }
                let target = c.target;
                let up = self.coords.contains_key(&target);
                let latency = self.rng.range(1, self.case.conn_ms);
                let k = self
                    .conns
                    .open(self.now, Peer::Client(i), target, up, latency);
                let payload = request_payload(&self.case.requests[i]);
                self.conns.send_to_replica(self.now, k, payload);
                let c = &mut self.clients[i];
                c.conn = Some(k);
                c.sent_at = self.now;
                self.trace(&format!("client {i} sends to replica {target} (conn {k})"));
            }
        }
        Ok(())
    }

    /// A payload from the replica on connection `k` of client `i`.
    pub(super) fn client_payload(
        &mut self,
        i: usize,
        k: ConnKey,
        payload: &[u8],
    ) -> Result<(), String> {
        if self.clients[i].conn != Some(k) {
            return Ok(());
        }
        if let Some(leader) = decode_not_leader(payload) {
            if !self.case.requests[i].with_id {
                return Err(format!(
                    "client {i} got a NotLeader it never announced it understands"
                ));
            }
            self.outcome.redirects += 1;
            self.conns.close_by_peer(self.now, k);
            let n = self.case.replicas;
            let c = &mut self.clients[i];
            c.conn = None;
            c.target = if (1..=n).contains(&leader) {
                leader
            } else {
                c.target % n + 1
            };
            c.next_try = self.now;
            self.trace(&format!("client {i} redirected to replica {leader}"));
            return Ok(());
        }
        let decoded = Message::decode_full(payload).map(|d| (d.message, d.ext.found));
        match decoded {
            Ok((Message::Result { hash, nonce }, found)) => {
                let answer = if found {
                    Answer::Found { hash, nonce }
                } else {
                    Answer::NotFound
                };
                self.client_answered(i, k, answer)?;
                self.conns.close_by_peer(self.now, k);
                self.clients[i].conn = None;
                Ok(())
            }
            other => Err(format!("client {i} got {other:?} on conn {k}")),
        }
    }

    /// Client `i` notices that its connection `k` ended: it resubmits to the next replica
    /// (a reference client exits).
    pub(super) fn client_gone(&mut self, i: usize, k: ConnKey) {
        let n = self.case.replicas;
        let with_id = self.case.requests[i].with_id;
        let c = &mut self.clients[i];
        if c.conn != Some(k) || c.answer.is_some() {
            return;
        }
        c.conn = None;
        if !with_id {
            c.disconnected = true;
            self.outcome.disconnected += 1;
            self.trace(&format!("client {i} disconnected (conn {k})"));
            return;
        }
        c.target = c.target % n + 1;
        c.next_try = self.now + RETRY_MS;
        self.trace(&format!("client {i} lost conn {k}"));
    }
}
