//! The server node: its LSP endpoint driving the real [`MinerService`], and the
//! simulator's own record of every payload it received and every message it wrote, each
//! checked as it goes.
//!
//! [`MinerService`]: bitcoin_core::service::MinerService

use super::*;

impl MiningWorld {
    // ----- the server --------------------------------------------------------------------

    /// Sends the endpoint's datagrams, feeds its events to the service, writes the
    /// service's messages (checking each), and re-arms both timers.
    pub(super) fn drain_server(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.server.ep.poll_transmit() {
                progressed = true;
                self.send(Addr::SERVER, t.destination, t.payload);
            }
            // The service's writes after each of its calls, as its contract asks.
            while let Some((conn, bytes)) = self.server.service.poll_write() {
                progressed = true;
                self.on_service_write(conn, bytes);
            }
            while let Some(event) = self.server.service.poll_event() {
                progressed = true;
                self.on_pool_event(event);
            }
            while let Some((conn, reason)) = self.server.service.poll_close() {
                progressed = true;
                self.digest.u64(0xC105 ^ conn.0 as u64);
                self.trace(|| format!("server closes {conn}: {reason}"));
                // Failure means the endpoint already knows the connection is gone.
                let _ = self.server.ep.close_conn(conn);
            }
            if let Some(event) = self.server.ep.poll_event() {
                progressed = true;
                self.on_server_event(event);
            }
            if !progressed {
                break;
            }
        }
        if let Some((time, generation)) = self.server.lsp_timer.rearm(self.server.ep.poll_timeout())
        {
            self.schedule(
                time,
                Event::Timer {
                    addr: Addr::SERVER,
                    clock: Clock::Lsp,
                    generation,
                },
            );
        }
        let deadline = self.server.service.poll_timeout();
        if let Some(d) = deadline {
            if d <= self.server.last_call {
                let what = format!(
                    "service timeout {d} not after its latest call at {}",
                    self.server.last_call
                );
                self.fail(what);
            }
        }
        if let Some((time, generation)) = self.server.service_timer.rearm(deadline) {
            self.schedule(
                time,
                Event::Timer {
                    addr: Addr::SERVER,
                    clock: Clock::Service,
                    generation,
                },
            );
        }
    }

    pub(super) fn on_server_event(&mut self, event: ServerEvent<Addr>) {
        let now = self.now;
        match event {
            ServerEvent::Connected { conn, addr } => {
                self.digest.u64(0xC0 ^ conn.0 as u64);
                self.trace(|| format!("server: {} connected as {conn}", self.name(addr)));
                self.server.conns.insert(conn, ConnRecord::default());
                let name = self.name(addr);
                self.server.service.describe(conn, name.clone());
                self.server.ledger.names.insert(conn, name);
            }
            ServerEvent::Message { conn, payload } => {
                self.digest.u64(0x3E5 ^ conn.0 as u64);
                self.digest.bytes(&payload);
                let (join, lazy, verified) = self.record_payload(conn, &payload);
                if !(join && self.case.sabotage == Some(Sabotage::DropJoins)) {
                    let caught = self.server.service.scheduler_stats().lazy_results;
                    let heard = |s: &MinerService<ConnId>| {
                        (s.stats().from_closed, s.scheduler_stats().invalid_results)
                    };
                    let before = heard(&self.server.service);
                    self.server.service.handle_payload(now, conn, &payload);
                    self.server.last_call = now;
                    // Used unless the connection was closed or the answer was a lie.
                    if let Some(nonces) = verified {
                        if heard(&self.server.service) == before {
                            self.server.ledger.credit(conn, nonces);
                        }
                    }
                    if let Some(data) = lazy {
                        let caught_now =
                            self.server.service.scheduler_stats().lazy_results > caught;
                        let target = self
                            .case
                            .clients
                            .iter()
                            .any(|c| c.data == data && c.mode.is_target());
                        let (answers, caught) = if target {
                            (
                                &mut self.tally.target_lazy_answers,
                                &mut self.tally.target_lazy_caught,
                            )
                        } else {
                            (&mut self.tally.lazy_answers, &mut self.tally.lazy_caught)
                        };
                        *answers += 1;
                        if caught_now {
                            *caught += 1;
                        } else {
                            self.trace(|| format!("a lazy answer for {data:?} escaped"));
                            self.tainted.insert(data);
                        }
                    }
                }
            }
            ServerEvent::ConnectionLost { conn } | ServerEvent::ConnectionClosed { conn } => {
                self.digest.u64(0x1057 ^ conn.0 as u64);
                self.trace(|| format!("server: {conn} gone"));
                if let Some(record) = self.server.conns.get_mut(&conn) {
                    record.gone = true;
                    record.jobs.clear();
                }
                self.server.pending.retain(|_, p| p.conn != conn);
                self.server.ledger.names.remove(&conn);
                if self.case.sabotage != Some(Sabotage::ForgetLosses) {
                    self.server.service.handle_connection_gone(now, conn);
                    self.server.last_call = now;
                }
            }
            ServerEvent::Closed(_) => self.fail("server closed unexpectedly"),
        }
    }

    /// Updates the simulator's record with a payload the service is about to handle;
    /// whether it is a Join, the request's data if it is a Result that verifies but
    /// is not its job's minimum (a lazy answer), and the size of the job a Result
    /// verifies against.
    pub(super) fn record_payload(
        &mut self,
        conn: ConnId,
        payload: &[u8],
    ) -> (bool, Option<String>, Option<u128>) {
        let Ok(d) = Message::decode_full(payload) else {
            return self.record_by_content(conn, payload);
        };
        let (Message::Result { hash: h, nonce }, Some(id)) = (d.message, d.ext.job) else {
            return self.record_by_content(conn, payload);
        };
        let Some(record) = self.server.conns.get_mut(&conn) else {
            return self.record_by_content(conn, payload);
        };
        if !record.caps.has(Cap::Cancel) {
            return self.record_by_content(conn, payload);
        }
        // Matched by its job id only, as the service does.
        let Some(index) = record.jobs.iter().position(|j| j.id == Some(id)) else {
            let misleading = record.jobs.iter().any(|j| match (d.ext.found, j.mode) {
                (false, mode) => mode.is_target() && (j.lower, j.upper) == d.range,
                (true, Mode::Minimum) => {
                    (j.lower..=j.upper).contains(&nonce) && hash(&j.data, nonce) == h
                }
                (true, Mode::Target { zeros, algo }) => {
                    (j.lower..=j.upper).contains(&nonce)
                        && algo.hash(&j.data, nonce) == h
                        && zeros.accepts(h)
                }
            });
            self.trace(|| format!("server <- {conn}: answer to withdrawn job {id} (stale)"));
            self.tally.crossed_answers += 1;
            self.tally.crossed_misleading += u64::from(misleading);
            return (false, None, None);
        };
        // The content checks below, against that job alone.
        let all = std::mem::take(&mut record.jobs);
        record.jobs.push_back(all[index].clone());
        let out = self.record_by_content(conn, payload);
        if let Some(record) = self.server.conns.get_mut(&conn) {
            let answered = record.jobs.is_empty();
            record.jobs = all;
            if answered {
                record.jobs.remove(index);
                self.tally.out_of_order_answers += u64::from(index > 0);
            }
        }
        out
    }

    /// [`Self::record_payload`] for a payload matched by content (no job id).
    fn record_by_content(
        &mut self,
        conn: ConnId,
        payload: &[u8],
    ) -> (bool, Option<String>, Option<u128>) {
        let decoded = Message::decode_full(payload);
        let ext = decoded.as_ref().map(|d| d.ext.clone()).unwrap_or_default();
        let hint = decoded.as_ref().map_or((0, 0), |d| d.range);
        let message = decoded.map(|d| d.message);
        self.trace(|| format!("server <- {conn}: {message:?} {ext:?}"));
        let Some(record) = self.server.conns.get_mut(&conn) else {
            self.fail(format!("payload from unknown connection {conn}"));
            return (false, None, None);
        };
        match message {
            Ok(Message::Join) => {
                record.joined = true;
                record.caps = ext.caps;
                return (true, None, None);
            }
            Ok(Message::Result { .. }) if !ext.found => {
                // Target mode's "Found": false, matched by the echoed range.
                let named = record
                    .jobs
                    .iter()
                    .position(|j| j.mode.is_target() && (j.lower, j.upper) == hint);
                if let Some(job) = named.and_then(|i| record.jobs.remove(i)) {
                    if let Some(p) = self.server.pending.get_mut(&job.data) {
                        p.answered.push((job.lower, job.upper));
                    }
                    let nonces = Some(u128::from(job.upper - job.lower) + 1);
                    // A lazy miner's: the job holds a hit it did not search for.
                    if first_hit(&job.data, job.lower, job.upper, job.mode).is_some() {
                        return (false, Some(job.data), nonces);
                    }
                    return (false, None, nonces);
                }
            }
            Ok(Message::Request { data, lower, upper }) => {
                let mode = ext.mode.unwrap_or_default();
                self.tally.nonces_requested += u128::from(upper.saturating_sub(lower)) + 1;
                let fresh = Pending {
                    conn,
                    lower,
                    upper,
                    answered: Vec::new(),
                    mode,
                    hit: None,
                };
                if self.server.pending.insert(data.clone(), fresh).is_some() {
                    self.fail(format!("request {data:?} received twice"));
                }
            }
            Ok(Message::Result { hash: h, nonce }) => {
                // Matched by content, as the service does: the job it verifies against.
                // An answer that verifies nowhere is a lie; it answers nothing.
                let verified = record.jobs.iter().position(|j| {
                    (j.lower..=j.upper).contains(&nonce)
                        && match j.mode {
                            Mode::Minimum => hash(&j.data, nonce) == h,
                            Mode::Target { zeros, algo } => {
                                algo.hash(&j.data, nonce) == h && zeros.accepts(h)
                            }
                        }
                });
                if verified.is_some_and(|i| i > 0) {
                    self.tally.out_of_order_answers += 1;
                }
                if let Some(job) = verified.and_then(|i| record.jobs.remove(i)) {
                    if let Some(p) = self.server.pending.get_mut(&job.data) {
                        p.answered.push((job.lower, job.upper));
                        if job.mode.is_target() {
                            p.hit = Some(p.hit.map_or(nonce, |n| n.min(nonce)));
                        }
                    }
                    let nonces = Some(u128::from(job.upper - job.lower) + 1);
                    if job.mode.is_target() {
                        // The first hit: checked against the scan when the client is told.
                        // The search stopped there, and the miner is credited that far.
                        return (false, None, Some(u128::from(nonce - job.lower) + 1));
                    }
                    if (h, nonce) != self.compute(&job) {
                        return (false, Some(job.data), nonces);
                    }
                    return (false, None, nonces);
                }
            }
            Ok(other) => self.fail(format!("{conn} sent the server {other:?}")),
            Err(e) => self.fail(format!("undecodable payload from {conn}: {e}")),
        }
        (false, None, None)
    }

    /// Checks and writes one message of the service.
    pub(super) fn on_service_write(&mut self, conn: ConnId, bytes: Vec<u8>) {
        self.digest.u64(0x5E4D ^ conn.0 as u64);
        let decoded = Message::decode_full(&bytes);
        let ext = decoded.as_ref().map(|d| d.ext.clone()).unwrap_or_default();
        let message = decoded.map(|d| d.message);
        self.trace(|| format!("server -> {conn}: {message:?}"));
        let Some(&ConnRecord {
            gone, joined, caps, ..
        }) = self.server.conns.get(&conn)
        else {
            self.fail(format!("service wrote to unknown connection {conn}"));
            return;
        };
        if gone {
            self.fail(format!(
                "service wrote to {conn} after its loss: {message:?}"
            ));
            return;
        }
        match message {
            Ok(Message::Request { data, lower, upper }) => {
                let mode = ext.mode.unwrap_or_default();
                if !joined {
                    self.fail(format!("job sent to {conn}, which never joined"));
                }
                if !caps.covers(mode.needs()) {
                    self.fail(format!("{mode} job sent to {conn}, whose caps are {caps}"));
                }
                match self.server.pending.get(&data) {
                    Some(p)
                        if p.lower <= lower
                            && lower <= upper
                            && upper <= p.upper
                            && p.mode == mode
                            && p.hit.is_none_or(|n| lower <= n) => {}
                    _ => self.fail(format!(
                        "job {data:?} {lower}..={upper} ({mode}) is not part of a pending \
                         request, or lies above its hit"
                    )),
                }
                if ext.job.is_some() != caps.has(Cap::Cancel) {
                    self.fail(format!(
                        "job id {:?} sent to {conn}, whose caps are {caps}",
                        ext.job
                    ));
                }
                self.tally.nonces_sent += u128::from(upper.saturating_sub(lower)) + 1;
                if let Some(record) = self.server.conns.get_mut(&conn) {
                    record.jobs.push_back(Job {
                        data,
                        lower,
                        upper,
                        mode,
                        id: ext.job,
                    });
                }
            }
            Ok(Message::Cancel { data, lower, upper }) => {
                self.on_cancel_written(conn, caps, &data, lower, upper, ext.job);
            }
            Ok(Message::Result { hash, nonce }) => {
                let found = ext.found;
                let request = self
                    .server
                    .pending
                    .iter_mut()
                    .find(|(_, p)| p.conn == conn)
                    .map(|(d, p)| {
                        // In target mode the answer may come once every nonce below the
                        // hit is answered: then it is provably the smallest.
                        let last = match (p.mode, found) {
                            (Mode::Target { .. }, true) => nonce.checked_sub(1),
                            _ => Some(p.upper),
                        };
                        let done = last.filter(|l| *l >= p.lower).is_none_or(|l| {
                            covered(p.lower, l, &mut p.answered) == u128::from(l - p.lower) + 1
                        });
                        (d.clone(), done)
                    });
                self.server.ledger.result_written();
                match request {
                    Some((data, verified)) => {
                        if !verified {
                            self.fail(format!(
                                "result for {data:?} sent before its every nonce was answered \
                                 by a verified result"
                            ));
                        }
                        // No job of an answered request runs on a miner that can be told
                        // to stop: its Cancel went out before the answer.
                        let running = self.server.conns.iter().find(|(_, r)| {
                            !r.gone
                                && r.caps.has(Cap::Cancel)
                                && r.jobs.iter().any(|j| j.data == data)
                        });
                        if let Some((miner, _)) = running {
                            self.fail(format!(
                                "{data:?} answered while {miner}, which obeys Cancel, still runs \
                                 one of its jobs"
                            ));
                        }
                        self.server.pending.remove(&data);
                    }
                    None => self.fail(format!(
                        "result {hash} {nonce} sent to {conn}, which has no pending request"
                    )),
                }
            }
            other => self.fail(format!("service wrote {other:?} to {conn}")),
        }
        // Failure means the endpoint already knows the connection is lost; its event
        // follows in this drain.
        let _ = self.server.ep.write(conn, bytes);
    }
}
