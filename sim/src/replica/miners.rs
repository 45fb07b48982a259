//! Simulated miner processes: the real miner logic ([`MinerCore`], one per connection, as
//! the multi-address miner starts afresh with each server) whose searches are scalar scans
//! finished after a modelled compute time. A miner connects to the replica it believes
//! leads and sends its Join (with `"Redirect": true` if its plan says it announces it);
//! when its connection ends it tries the next replica, or at once the one a NotLeader
//! names. Its Join announces its plan's capabilities: a target job is answered with the
//! scalar scan's first hit (or none), a Cancel stops or drops a job, as the real miner
//! does. A miner must never be given a job its capabilities do not cover, nor a job id or
//! a Cancel unless it announced `cancel`.

use bitcoin_core::message::{ext::encode_join, Cap, Caps, Message};
use bitcoin_core::miner::{Action, Job, JobOrder, MinerCore};
use bitcoin_core::replica::redirect::{decode_not_leader, with_redirect};

use super::case::{MinerPlan, Sabotage, TICK_MS};
use super::conns::{ConnKey, Peer};
use super::world::{scan, ReplicaWorld};
use crate::mining::first_hit;

/// A miner whose connection ended waits this long before connecting again.
const RECONNECT_MS: u64 = 20;

/// One miner process.
pub struct Miner {
    conn: Option<ConnKey>,
    target: u64,
    next_connect: u64,
    core: MinerCore,
    /// The running search: done at (ms), with its answer.
    search: Option<(u64, Found)>,
}

/// A finished search's answer.
#[derive(Clone, Copy)]
enum Found {
    /// A minimum-mode job's least (hash, nonce).
    Minimum(u64, u64),
    /// A target job's first hit, if any.
    Target(Option<(u64, u64)>),
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
            if let Some((done, found)) = m.search {
                if done <= self.now {
                    m.search = None;
                    match found {
                        Found::Minimum(hash, nonce) => m.core.handle_search_finished(hash, nonce),
                        Found::Target(hit) => m.core.handle_target_finished(hit),
                    }
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
        })
        .with_caps(if self.case.sabotage == Sabotage::OverclaimingMiners {
            Caps::ALL
        } else {
            self.case.miners[i].caps
        });
        m.core.handle_connected();
        self.trace(&format!(
            "miner {i} connects to replica {target} (conn {k})"
        ));
        self.miner_actions(i)
    }

    /// Carries out what miner `i`'s core asks for. A job must lie inside a request some
    /// client sent (same text and mode, nonces within its range).
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
                        *r.message == *job.data
                            && r.mode == job.mode
                            && r.lower <= job.lower
                            && job.upper <= r.upper
                    });
                    if !inside {
                        return Err(format!(
                            "miner {i} got a job outside every request: {job:?} on conn {k}"
                        ));
                    }
                    let (done, found) = search(&job, sloppy, plan.speed);
                    self.miners[i].search = Some((self.now + done, found));
                    self.outcome.searches += 1;
                    self.outcome.target_searches += u64::from(job.mode.is_target());
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
        self.check_job(i, k, payload)?;
        self.miners[i].core.handle_payload(payload);
        self.miner_actions(i)
    }

    /// A Request or Cancel the replica sent miner `i` on connection `k`: its mode must be
    /// one the miner's Join announced, and it carries a job id (a Cancel is sent at all)
    /// only if the miner announced `cancel`.
    fn check_job(&mut self, i: usize, k: ConnKey, payload: &[u8]) -> Result<(), String> {
        let caps = self.case.miners[i].caps;
        let Ok(decoded) = Message::decode_full(payload) else {
            return Err(format!("miner {i} got an undecodable payload on conn {k}"));
        };
        let id = decoded.ext.job;
        match decoded.message {
            Message::Request { .. } => {
                let mode = decoded
                    .ext
                    .mode
                    .map_err(|e| format!("miner {i} got a job with a bad mode: {e:?}"))?;
                if !caps.covers(mode.needs()) {
                    return Err(format!(
                        "miner {i} (caps {caps}) got a {mode} job on conn {k}"
                    ));
                }
                if id.is_some() != caps.has(Cap::Cancel) {
                    return Err(format!(
                        "miner {i} (caps {caps}) got a job with id {id:?} on conn {k}"
                    ));
                }
            }
            Message::Cancel { .. } if caps.has(Cap::Cancel) && id.is_some() => {
                self.outcome.cancels += 1;
            }
            other => {
                return Err(format!(
                    "miner {i} (caps {caps}) got {other:?} (job id {id:?}) on conn {k}"
                ))
            }
        }
        Ok(())
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

/// Searches `job` by a scalar scan: how long it takes at `speed` nonces per ms (at least
/// 1 ms; a target search stops at its hit), and what it finds. A `sloppy` miner searches
/// only the first half of a minimum-mode job, and only the second half of a target job
/// (whose first half most often holds the hit).
fn search(job: &Job, sloppy: bool, speed: u64) -> (u64, Found) {
    let half = sloppy && job.lower < job.upper;
    let middle = job.lower + (job.upper - job.lower) / 2;
    let upper = if half { middle } else { job.upper };
    let (last, found) = if job.mode.is_target() {
        let from = if half { middle + 1 } else { job.lower };
        let hit = first_hit(&job.data, from, job.upper, job.mode);
        (hit.map_or(job.upper, |(_, n)| n), Found::Target(hit))
    } else {
        let (hash, nonce) = scan(&job.data, job.lower, upper);
        (job.upper, Found::Minimum(hash, nonce))
    };
    let nonces = last.saturating_sub(job.lower).saturating_add(1);
    (1 + nonces / speed.max(1), found)
}
