//! The miner nodes: each an LSP client endpoint driving the real miner logic
//! ([`MinerCore`]), with a modelled search time and the case's behaviour (crash, hang,
//! lies, answer order).

use std::time::Duration;

use bitcoin_core::message::ext::encode_join;
use bitcoin_core::message::Message;
use bitcoin_core::miner::{self, Action, JobOrder, MinerCore};
use lsp_core::ClientEndpoint;

use super::*;

impl MiningWorld {
    pub(super) fn start_miner(&mut self, miner: usize) {
        self.digest.u64(0x5747 ^ miner as u64);
        if self.miners[miner].crashed {
            return;
        }
        let addr = self.new_addr(Owner::Miner(miner));
        let isn = self.net_isn();
        let behaviour = self.case.miners[miner].behaviour;
        match ClientEndpoint::new(self.case.params, isn, self.now) {
            Ok(ep) => {
                let node = &mut self.miners[miner];
                node.addr = Some(addr);
                node.ep = Some(ep);
                node.timer = TimerSlot::default();
                node.life += 1;
                node.core =
                    MinerCore::new(job_order(behaviour)).with_caps(self.case.miners[miner].caps);
                node.held.clear();
                self.trace(|| format!("miner{miner} starts at {}", addr.0));
                self.drain_miner(miner);
            }
            Err(e) => self.fail(format!("miner params: {e:?}")),
        }
    }

    /// A fresh initial sequence number (deterministic: from the address count).
    pub(super) fn net_isn(&self) -> i64 {
        (self.owners.len() as i64) * 1000
    }

    pub(super) fn drain_miner(&mut self, miner: usize) {
        let node = &mut self.miners[miner];
        let drained = Drained::take(node.addr, &mut node.ep, &mut node.timer);
        for event in self.emit(drained) {
            self.on_miner_event(miner, event);
        }
    }

    /// Sends what a miner's or client's endpoint produced and schedules its timer; returns
    /// its events for the node's application.
    pub(super) fn emit(&mut self, drained: Option<Drained>) -> Vec<ClientEvent> {
        let Some(drained) = drained else {
            return Vec::new();
        };
        for t in drained.transmits {
            self.send(drained.addr, Addr::SERVER, t);
        }
        if let Some((time, generation)) = drained.rearm {
            self.schedule(
                time,
                Event::Timer {
                    addr: drained.addr,
                    clock: Clock::Lsp,
                    generation,
                },
            );
        }
        drained.events
    }

    pub(super) fn on_miner_event(&mut self, miner: usize, event: ClientEvent) {
        match event {
            ClientEvent::Connected(_) => {
                self.miners[miner].core.handle_connected();
                self.miner_act(miner);
            }
            ClientEvent::Message(payload)
                if matches!(Message::decode(&payload), Ok(Message::Cancel { .. })) =>
            {
                self.miners[miner].core.handle_payload(&payload);
                self.miner_act(miner);
            }
            ClientEvent::Message(payload) => {
                if let Ok(Message::Request { .. }) = Message::decode(&payload) {
                    let node = &mut self.miners[miner];
                    node.received += 1;
                    if self.case.miners[miner].crash_on_job == Some(node.received) {
                        self.crash_miner(miner);
                        return;
                    }
                    if self.case.miners[miner].stall_on_job == Some(node.received) {
                        node.stalled = true;
                        self.trace(|| format!("miner{miner} hangs"));
                    }
                } else {
                    self.fail(format!(
                        "miner{miner} received {:?}",
                        Message::decode(&payload)
                    ));
                }
                self.miners[miner].core.handle_payload(&payload);
                self.miner_act(miner);
            }
            ClientEvent::ConnectionLost | ClientEvent::ConnectFailed | ClientEvent::Closed(_) => {
                self.trace(|| format!("miner{miner} lost its connection"));
                self.miners[miner].core.handle_server_lost();
                self.miner_act(miner);
            }
        }
    }

    /// Carries out what miner `miner`'s core asks for.
    pub(super) fn miner_act(&mut self, miner: usize) {
        while let Some(action) = self.miners[miner].core.poll_action() {
            match action {
                Action::Send(message @ Message::Result { .. })
                    if self.case.miners[miner].behaviour == Behaviour::OutOfOrder =>
                {
                    self.miner_hold(miner, message.encode());
                }
                Action::SendTarget { job, hit }
                    if self.case.miners[miner].behaviour == Behaviour::OutOfOrder =>
                {
                    self.miner_hold(miner, job.encode_answer(hit));
                }
                Action::Send(message) => self.miner_write(miner, message),
                Action::Announce(caps) => self.miner_write_bytes(miner, encode_join(caps)),
                Action::SendTarget { job, hit } => {
                    self.miner_write_bytes(miner, job.encode_answer(hit));
                }
                // The search's MinerDone event is told apart by its generation.
                Action::Stop(_) => self.miners[miner].search += 1,
                Action::Search(job) => self.miner_search(miner, &job),
                Action::Exit => {
                    let node = &mut self.miners[miner];
                    node.ep = None;
                    node.addr = None;
                    node.held.clear();
                    if !node.stalled && !node.crashed {
                        let after = self.case.miners[miner].reconnect_after;
                        self.schedule(self.now + after, Event::MinerStart { miner });
                    }
                }
            }
        }
    }

    /// An out-of-order miner's answer: results go out in pairs, newest first (one is held
    /// back while the next job runs).
    fn miner_hold(&mut self, miner: usize, bytes: Vec<u8>) {
        let node = &mut self.miners[miner];
        node.held.push(bytes);
        if node.held.len() >= 2 || node.core.running().is_none() {
            self.miner_flush(miner);
        }
    }

    /// Sends the results an out-of-order miner holds, newest first.
    pub(super) fn miner_flush(&mut self, miner: usize) {
        let held = std::mem::take(&mut self.miners[miner].held);
        for bytes in held.into_iter().rev() {
            self.miner_write_bytes(miner, bytes);
        }
    }

    pub(super) fn crash_miner(&mut self, miner: usize) {
        self.digest.u64(0xC4A5);
        let node = &mut self.miners[miner];
        node.crashed = true;
        node.ep = None;
        node.core = MinerCore::new(JobOrder::Arrival);
        self.trace(|| format!("miner{miner} crashes"));
    }

    pub(super) fn miner_write(&mut self, miner: usize, message: Message) {
        self.miner_write_bytes(miner, message.encode());
    }

    pub(super) fn miner_write_bytes(&mut self, miner: usize, bytes: Vec<u8>) {
        if let Some(ep) = self.miners[miner].ep.as_mut() {
            if ep.write(bytes).is_ok() {
                self.drain_miner(miner);
            }
        }
    }

    /// Starts computing `job`: its answer is ready after its nonces at the miner's rate,
    /// unless the miner hangs.
    pub(super) fn miner_search(&mut self, miner: usize, job: &miner::Job) {
        let rate = self.case.miners[miner].rate.max(1);
        let node = &self.miners[miner];
        if node.stalled {
            return;
        }
        let micros = (job.nonces() * 1_000_000 / u128::from(rate)).max(1);
        let (life, search) = (node.life, node.search);
        let done = self.now + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX));
        self.schedule(
            done,
            Event::MinerDone {
                miner,
                life,
                search,
            },
        );
    }

    pub(super) fn miner_done(&mut self, miner: usize, life: u32, search: u32) {
        let node = &self.miners[miner];
        if node.life != life || node.search != search || node.ep.is_none() {
            return;
        }
        let Some(job) = node.core.running() else {
            return;
        };
        let job = Job {
            data: job.data.to_string(),
            lower: job.lower,
            upper: job.upper,
            mode: job.mode,
            id: job.id,
        };
        self.digest.u64(0xD0E ^ miner as u64);
        if job.mode.is_target() {
            // Target jobs: honest, except that a wrong-hash miner adds one to its hit's hash
            // and a lazy one says "Found": false without searching.
            let mut hit = first_hit(&job.data, job.lower, job.upper, job.mode);
            match self.case.miners[miner].behaviour {
                Behaviour::WrongHash => hit = hit.map(|(h, n)| (h.wrapping_add(1), n)),
                Behaviour::Lazy => hit = None,
                _ => {}
            }
            self.miners[miner].core.handle_target_finished(hit);
            self.miner_act(miner);
            return;
        }
        let (mut hash, mut nonce) = self.compute(&job);
        if self.case.sabotage == Some(Sabotage::WrongAnswers) {
            hash = hash.wrapping_add(1);
        }
        match self.case.miners[miner].behaviour {
            Behaviour::Honest | Behaviour::OutOfOrder => {}
            Behaviour::WrongHash => hash = hash.wrapping_add(1),
            Behaviour::OutOfRange => {
                nonce = match job.upper.checked_add(1) {
                    Some(after) => after,
                    None => job.lower.wrapping_sub(1),
                };
                hash = bitcoin_core::hash::hash(&job.data, nonce);
            }
            Behaviour::Lazy => {
                nonce = job.lower;
                hash = bitcoin_core::hash::hash(&job.data, nonce);
            }
        }
        self.miners[miner].core.handle_search_finished(hash, nonce);
        self.miner_act(miner);
    }

    /// The true answer of `job`: from the client's table, or a scan if it has none.
    pub(super) fn compute(&self, job: &Job) -> (u64, u64) {
        let Some((lower, table)) = self.hashes.get(&job.data) else {
            return scan(&job.data, job.lower, job.upper);
        };
        let from = job.lower.checked_sub(*lower).map(|i| i as usize);
        let to = job.upper.checked_sub(*lower).map(|i| i as usize);
        match (from, to) {
            (Some(from), Some(to)) if to < table.len() && from <= to => (job.lower..=job.upper)
                .zip(&table[from..=to])
                .map(|(n, h)| (*h, n))
                .min()
                .unwrap_or((u64::MAX, job.lower)),
            _ => scan(&job.data, job.lower, job.upper),
        }
    }
}
