//! Simulated miner processes: the real miner logic ([`MinerCore`], one per connection, as
//! the multi-address miner starts afresh with each server) whose searches are scalar scans
//! finished after a modelled compute time. A miner connects to the replica it believes
//! leads and sends its Join (with `"Redirect": true` if its plan says it announces it);
//! when its connection ends it tries the next replica, or at once the one a NotLeader
//! names.

use bitcoin_core::message::{ext::encode_join, Message};
use bitcoin_core::miner::{Action, JobOrder, MinerCore};
use bitcoin_core::replica::redirect::{decode_not_leader, with_redirect};

use super::case::{MinerPlan, Sabotage, TICK_MS};
use super::conns::{ConnKey, Peer};
use super::world::{scan, ReplicaWorld};

/// A miner whose connection ended waits this long before connecting again.
const RECONNECT_MS: u64 = 20;

/// One miner process.
pub struct Miner {
    conn: Option<ConnKey>,
    target: u64,
    next_connect: u64,
    core: MinerCore,
    /// The running search: done at (ms), with its answer.
    search: Option<(u64, (u64, u64))>,
}

impl Miner {
    /// A miner that will first connect to `plan.first` at `plan.at_ms`.
    pub fn new(plan: &MinerPlan) -> Miner {
        Miner {
            conn: None,
            target: plan.first,
            next_connect: plan.at_ms,
            core: MinerCore::new(JobOrder::Arrival),
            search: None,
        }
    }
}

impl ReplicaWorld {
    /// Miners connect when due and finish searches that are done.
    pub(super) fn miners_step(&mut self) -> Result<(), String> {
        let drops = !self.healed() && self.now.is_multiple_of(TICK_MS);
        for i in 0..self.miners.len() {
            if let Some(k) = self.miners[i].conn {
                if drops && self.rng.chance(self.case.drop) {
                    self.conns.close_by_peer(self.now, k);
                    self.trace(&format!("miner {i} drops conn {k}"));
                    self.miner_gone(i, k);
                }
            }
            let m = &mut self.miners[i];
            if m.conn.is_none() && m.next_connect <= self.now {
                self.miner_connect(i)?;
            }
            let m = &mut self.miners[i];
            if let Some((done, (hash, nonce))) = m.search {
                if done <= self.now {
                    m.search = None;
                    m.core.handle_search_finished(hash, nonce);
                    self.miner_actions(i)?;
                }
            }
        }
        Ok(())
    }

    fn miner_connect(&mut self, i: usize) -> Result<(), String> {
        let target = self.miners[i].target;
        let up = self.coords.contains_key(&target);
        let latency = self.rng.range(1, self.case.conn_ms);
        let k = self
            .conns
            .open(self.now, Peer::Miner(i), target, up, latency);
        let m = &mut self.miners[i];
        m.conn = Some(k);
        m.search = None;
        m.core = MinerCore::new(if self.case.miners[i].newest_first {
            JobOrder::Newest
        } else {
            JobOrder::Arrival
        });
        m.core.handle_connected();
        self.trace(&format!(
            "miner {i} connects to replica {target} (conn {k})"
        ));
        self.miner_actions(i)
    }

    /// Carries out what miner `i`'s core asks for. A job must lie inside a request some
    /// client sent (same text, nonces within its range).
    fn miner_actions(&mut self, i: usize) -> Result<(), String> {
        let plan = self.case.miners[i].clone();
        let sloppy = self.case.sabotage == Sabotage::SloppyMiners;
        while let Some(action) = self.miners[i].core.poll_action() {
            let Some(k) = self.miners[i].conn else {
                return Ok(());
            };
            let payload = match action {
                Action::Send(Message::Join) if plan.redirect => {
                    with_redirect(Message::Join.encode())
                }
                Action::Send(message) => message.encode(),
                Action::Announce(caps) if plan.redirect => with_redirect(encode_join(caps)),
                Action::Announce(caps) => encode_join(caps),
                Action::SendTarget { job, hit } => job.encode_answer(hit),
                Action::Search(job) => {
                    let inside = self.case.requests.iter().any(|r| {
                        *r.message == *job.data && r.lower <= job.lower && job.upper <= r.upper
                    });
                    if !inside {
                        return Err(format!(
                            "miner {i} got a job outside every request: {job:?} on conn {k}"
                        ));
                    }
                    let upper = if sloppy && job.lower < job.upper {
                        job.lower + (job.upper - job.lower) / 2
                    } else {
                        job.upper
                    };
                    let answer = scan(&job.data, job.lower, upper);
                    let nonces = u64::try_from(job.nonces()).unwrap_or(u64::MAX);
                    let done = self.now + 1 + nonces / plan.speed.max(1);
                    self.miners[i].search = Some((done, answer));
                    self.outcome.searches += 1;
                    continue;
                }
                Action::Stop(_) => {
                    self.miners[i].search = None;
                    continue;
                }
                Action::Exit => {
                    self.conns.close_by_peer(self.now, k);
                    self.miners[i].conn = None;
                    return Ok(());
                }
            };
            self.conns.send_to_replica(self.now, k, payload);
        }
        Ok(())
    }

    /// A payload from the replica on connection `k` of miner `i`.
    pub(super) fn miner_payload(
        &mut self,
        i: usize,
        k: ConnKey,
        payload: &[u8],
    ) -> Result<(), String> {
        if self.miners[i].conn != Some(k) {
            return Ok(());
        }
        if let Some(leader) = decode_not_leader(payload) {
            if !self.case.miners[i].redirect {
                return Err(format!(
                    "miner {i} got a NotLeader it never announced it understands"
                ));
            }
            self.outcome.redirects += 1;
            self.conns.close_by_peer(self.now, k);
            let n = self.case.replicas;
            let m = &mut self.miners[i];
            m.conn = None;
            m.search = None;
            m.target = if (1..=n).contains(&leader) {
                leader
            } else {
                m.target % n + 1
            };
            m.next_connect = self.now;
            self.trace(&format!("miner {i} redirected to replica {leader}"));
            return Ok(());
        }
        self.miners[i].core.handle_payload(payload);
        self.miner_actions(i)
    }

    /// Miner `i` notices that its connection `k` ended: it tries the next replica.
    pub(super) fn miner_gone(&mut self, i: usize, k: ConnKey) {
        let n = self.case.replicas;
        let m = &mut self.miners[i];
        if m.conn != Some(k) {
            return;
        }
        m.conn = None;
        m.search = None;
        m.target = m.target % n + 1;
        m.next_connect = self.now + RECONNECT_MS;
        self.trace(&format!("miner {i} lost conn {k}"));
    }
}
