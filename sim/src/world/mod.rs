//! The discrete-event world: virtual time, the event queue, nodes owning `lsp-core`
//! endpoints with their application logic, and the invariant checks run after every step.
//!
//! One [`World`] is one simulation run. Everything random comes from the seed given to
//! [`World::new`]; events at the same instant run in the order they were scheduled, so the
//! same seed and the same calls always give the same trace and the same [`World::digest`].
//!
//! Drivers (conformance scenarios, the sweep) call the application operations
//! ([`World::client_write`], [`World::server_close_conn`], …) between
//! [`World::run_until`] / [`World::run_while`] calls, and read what the applications saw
//! through [`World::server`] and [`World::client`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use lsp_core::{
    ApiError, ClientEndpoint, ConnId, Limits, Message, Params, ParamsError, ServerEndpoint,
    Timestamp,
};

use crate::agenda::{Agenda, TimerSlot};
use crate::backoff::{ack_ids, data_ids, Schedule};
use crate::digest::Digest;
use crate::heartbeat::{keeps_alive, KeepAlive};
use crate::net::{Addr, Network};
use crate::rng::{Prob, Rng};
pub use crate::view::{ClientLife, ConnView, Echo, ServerView, Violation};

mod apply;
mod invariants;

struct ServerNode {
    ep: ServerEndpoint<Addr>,
    timer: TimerSlot,
    ticks: u64,
    echo: Echo,
    busy_until: Timestamp,
    view: ServerView,
    /// Per connection: when the server last heard from it (docs/protocol.md §6.1).
    last_heard: BTreeMap<ConnId, Timestamp>,
    /// Connections the endpoint may still keep (pruned lazily).
    kept: BTreeSet<ConnId>,
    /// The latest connection accepted from each address.
    by_addr: BTreeMap<Addr, ConnId>,
    last_id: i64,
    /// Whether the application takes its events; while it does not, they wait in the
    /// endpoint (back-pressure, `Limits::max_unread_messages`).
    reading: bool,
}

struct ClientNode {
    params: Params,
    ep: Option<ClientEndpoint>,
    timer: TimerSlot,
    ticks: u64,
    lives: Vec<ClientLife>,
}

enum Event {
    Deliver {
        from: Addr,
        to: Addr,
        bytes: Vec<u8>,
    },
    Timer {
        node: Addr,
        generation: u64,
    },
    Echo {
        conn: ConnId,
        payload: Vec<u8>,
    },
    ClientWrite {
        addr: Addr,
        life: usize,
        payload: Vec<u8>,
    },
    Crash {
        addr: Addr,
    },
    Restart {
        addr: Addr,
        isn: i64,
    },
}

/// One simulation run. See the [module documentation](self).
pub struct World {
    now: Timestamp,
    agenda: Agenda<Event>,
    /// The network; drivers change its faults, partitions, sniffer and middlebox.
    pub net: Network,
    /// A protocol-aware middlebox fault: an `Ack(n)` is rewritten into `CAck(n)` with this
    /// probability when its writer has received everything up to `n` in order (so the CAck
    /// acknowledges nothing that was not received). Exercises CAck handling under load.
    pub cack_rewrite: Prob,
    rng: Rng,
    server: Option<ServerNode>,
    clients: Vec<ClientNode>,
    digest: Digest,
    steps: u64,
    violation: Option<Violation>,
    verbose: bool,
    schedule: Schedule,
    keep_alive: KeepAlive,
    /// The node whose epoch tick is being handled, if any.
    ticking: Option<Addr>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("steps", &self.steps)
            .field("clients", &self.clients.len())
            .field("violation", &self.violation)
            .finish()
    }
}

impl World {
    /// An empty world at time zero whose every random draw derives from `seed`.
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let net = Network::new(rng.fork());
        World {
            now: Timestamp::ZERO,
            agenda: Agenda::new(),
            net,
            cack_rewrite: Prob::NEVER,
            rng,
            server: None,
            clients: Vec::new(),
            digest: Digest::default(),
            steps: 0,
            violation: None,
            verbose: false,
            schedule: Schedule::default(),
            keep_alive: KeepAlive::default(),
            ticking: None,
        }
    }

    /// Prints every step to standard output from now on.
    pub fn set_verbose(&mut self, verbose: bool) {
        self.verbose = verbose;
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Steps executed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The digest of every step so far.
    pub fn digest(&self) -> u64 {
        self.digest.value()
    }

    /// The application generator (payload values, sleeps), separate from the network's.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The first broken invariant, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// `Ok` unless an invariant was broken.
    pub fn check(&self) -> Result<(), Violation> {
        match &self.violation {
            None => Ok(()),
            Some(v) => Err(v.clone()),
        }
    }

    /// Records a broken invariant found by a driver (the first one wins).
    pub fn fail(&mut self, what: impl Into<String>) {
        if self.violation.is_none() {
            let what = what.into();
            if self.verbose {
                println!("{} VIOLATION {what}", self.now);
            }
            self.violation = Some(Violation {
                time: self.now,
                what,
            });
        }
    }

    // ----- nodes -----------------------------------------------------------------------

    /// Starts the server now (the reference's `listen`).
    pub fn start_server(&mut self, params: Params, echo: Echo) -> Result<(), ParamsError> {
        self.start_server_with_limits(params, Limits::default(), echo)
    }

    /// Starts the server now with these resource limits.
    pub fn start_server_with_limits(
        &mut self,
        params: Params,
        limits: Limits,
        echo: Echo,
    ) -> Result<(), ParamsError> {
        let ep = ServerEndpoint::with_limits(params, limits, self.now)?;
        self.server = Some(ServerNode {
            ep,
            timer: TimerSlot::default(),
            ticks: 0,
            echo,
            busy_until: Timestamp::ZERO,
            view: ServerView::default(),
            last_heard: BTreeMap::new(),
            kept: BTreeSet::new(),
            by_addr: BTreeMap::new(),
            last_id: 0,
            reading: true,
        });
        self.trace(|| "server starts".to_string());
        self.after_server();
        Ok(())
    }

    /// The server's application stops (`false`) or resumes (`true`) taking its events;
    /// resuming takes those that waited at once.
    pub fn set_server_reading(&mut self, reading: bool) {
        if let Some(server) = self.server.as_mut() {
            server.reading = reading;
        }
        self.trace(|| format!("server application reading: {reading}"));
        if reading {
            self.after_server();
        }
    }

    /// Adds a client node that starts connecting now with `isn`; returns its address.
    pub fn add_client(&mut self, params: Params, isn: i64) -> Result<Addr, ParamsError> {
        let addr = Addr::client(self.clients.len());
        self.clients.push(ClientNode {
            params,
            ep: None,
            timer: TimerSlot::default(),
            ticks: 0,
            lives: Vec::new(),
        });
        self.start_client_life(addr, isn)?;
        Ok(addr)
    }

    /// Adds a client node that starts connecting at `at` with `isn`; returns its address.
    /// Until then it has no life and nothing is delivered to it.
    pub fn add_client_at(
        &mut self,
        at: Timestamp,
        params: Params,
        isn: i64,
    ) -> Result<Addr, ParamsError> {
        params.validate()?;
        let addr = Addr::client(self.clients.len());
        self.clients.push(ClientNode {
            params,
            ep: None,
            timer: TimerSlot::default(),
            ticks: 0,
            lives: Vec::new(),
        });
        self.schedule(at, Event::Restart { addr, isn });
        Ok(addr)
    }

    fn start_client_life(&mut self, addr: Addr, isn: i64) -> Result<(), ParamsError> {
        let now = self.now;
        let Some(node) = addr.client_index().and_then(|i| self.clients.get_mut(i)) else {
            return Ok(());
        };
        node.ep = Some(ClientEndpoint::new(node.params, isn, now)?);
        node.lives.push(ClientLife {
            isn,
            started: now,
            conn: None,
            connected_at: None,
            reads: Vec::new(),
            written: Vec::new(),
            connect_failed: false,
            lost: false,
            closed: None,
            crashed: false,
            ended_at: None,
            last_heard: now,
        });
        self.trace(|| format!("{addr} starts, isn {isn}"));
        self.after_client(addr);
        Ok(())
    }

    /// The server application's view (`None` before [`start_server`](Self::start_server)).
    pub fn server(&self) -> Option<&ServerView> {
        self.server.as_ref().map(|s| &s.view)
    }

    /// The server endpoint, for introspection.
    pub fn server_endpoint(&self) -> Option<&ServerEndpoint<Addr>> {
        self.server.as_ref().map(|s| &s.ep)
    }

    /// The current life of the client at `addr`.
    pub fn client(&self, addr: Addr) -> Option<&ClientLife> {
        self.client_node(addr).and_then(|n| n.lives.last())
    }

    /// Every life of the client at `addr`.
    pub fn client_lives(&self, addr: Addr) -> &[ClientLife] {
        self.client_node(addr).map_or(&[], |n| n.lives.as_slice())
    }

    /// The running endpoint of the client at `addr`, for introspection.
    pub fn client_endpoint(&self, addr: Addr) -> Option<&ClientEndpoint> {
        self.client_node(addr).and_then(|n| n.ep.as_ref())
    }

    /// Addresses of all client nodes, in order.
    pub fn client_addrs(&self) -> Vec<Addr> {
        (0..self.clients.len()).map(Addr::client).collect()
    }

    fn client_node(&self, addr: Addr) -> Option<&ClientNode> {
        addr.client_index().and_then(|i| self.clients.get(i))
    }

    // ----- application operations ------------------------------------------------------

    /// The client application at `addr` writes `payload`. A crashed client's write fails
    /// with [`ApiError::Closed`].
    pub fn client_write(&mut self, addr: Addr, payload: Vec<u8>) -> Result<(), ApiError> {
        let Some(node) = addr.client_index().and_then(|i| self.clients.get_mut(i)) else {
            return Err(ApiError::Closed);
        };
        let Some(ep) = node.ep.as_mut() else {
            return Err(ApiError::Closed);
        };
        let was_finished = ep.is_finished();
        let result = ep.write(payload.clone());
        if result.is_ok() {
            if let Some(life) = node.lives.last_mut() {
                life.written.push(payload);
            }
            if was_finished {
                self.fail(format!("{addr}: write accepted by a finished client"));
            }
        }
        self.after_client(addr);
        result
    }

    /// The client application at `addr` calls `close`.
    pub fn client_close(&mut self, addr: Addr) -> Result<(), ApiError> {
        let Some(ep) = addr
            .client_index()
            .and_then(|i| self.clients.get_mut(i))
            .and_then(|n| n.ep.as_mut())
        else {
            return Err(ApiError::Closed);
        };
        let result = ep.close();
        self.trace(|| format!("{addr} close -> {result:?}"));
        self.after_client(addr);
        result
    }

    /// The server application writes `payload` to `conn`.
    pub fn server_write(&mut self, conn: ConnId, payload: Vec<u8>) -> Result<(), ApiError> {
        let Some(server) = self.server.as_mut() else {
            return Err(ApiError::Closed);
        };
        let result = server.ep.write(conn, payload.clone());
        if result.is_ok() {
            match server.view.conns.get_mut(&conn) {
                Some(view) if !view.closed && !view.lost => view.written.push(payload),
                _ => self.fail(format!("server: write to ended connection {conn} accepted")),
            }
        }
        self.after_server();
        result
    }

    /// The server application calls `close_conn(conn)`.
    pub fn server_close_conn(&mut self, conn: ConnId) -> Result<(), ApiError> {
        let Some(server) = self.server.as_mut() else {
            return Err(ApiError::Closed);
        };
        let result = server.ep.close_conn(conn);
        if result.is_ok() {
            if let Some(view) = server.view.conns.get_mut(&conn) {
                view.closed = true;
            }
        }
        self.trace(|| format!("server close_conn {conn} -> {result:?}"));
        self.after_server();
        result
    }

    /// The server application calls `close`.
    pub fn server_close(&mut self) -> Result<(), ApiError> {
        let Some(server) = self.server.as_mut() else {
            return Err(ApiError::Closed);
        };
        let result = server.ep.close();
        self.trace(|| format!("server close -> {result:?}"));
        self.after_server();
        result
    }

    /// The client node at `addr` crashes now: its endpoint is dropped, it sends and
    /// receives nothing more.
    pub fn crash_client(&mut self, addr: Addr) {
        let now = self.now;
        let Some(node) = addr.client_index().and_then(|i| self.clients.get_mut(i)) else {
            return;
        };
        if node.ep.take().is_none() {
            return;
        }
        node.timer.disarm();
        if let Some(life) = node.lives.last_mut() {
            life.crashed = true;
            life.ended_at.get_or_insert(now);
        }
        self.trace(|| format!("{addr} crashes"));
    }

    /// The client node at `addr` restarts now with a fresh endpoint and `isn` (a no-op
    /// unless it crashed or has not started yet).
    pub fn restart_client(&mut self, addr: Addr, isn: i64) -> Result<(), ParamsError> {
        match self.client_node(addr) {
            Some(node) if node.ep.is_none() => self.start_client_life(addr, isn),
            _ => Ok(()),
        }
    }

    /// Schedules a client write at `at` (by the life current then; skipped if it has
    /// ended or crashed).
    pub fn schedule_client_write(&mut self, at: Timestamp, addr: Addr, payload: Vec<u8>) {
        let life = self.client_lives(addr).len().saturating_sub(1);
        self.schedule_life_write(at, addr, life, payload);
    }

    /// Schedules a write at `at` by life number `life` (0-based) of the client at `addr`;
    /// skipped unless that life is the current one then and still running.
    pub fn schedule_life_write(
        &mut self,
        at: Timestamp,
        addr: Addr,
        life: usize,
        payload: Vec<u8>,
    ) {
        self.schedule(
            at,
            Event::ClientWrite {
                addr,
                life,
                payload,
            },
        );
    }

    /// Schedules a crash of the client at `addr`.
    pub fn schedule_crash(&mut self, at: Timestamp, addr: Addr) {
        self.schedule(at, Event::Crash { addr });
    }

    /// Schedules a restart of the client at `addr` with `isn`.
    pub fn schedule_restart(&mut self, at: Timestamp, addr: Addr, isn: i64) {
        self.schedule(at, Event::Restart { addr, isn });
    }

    // ----- running ---------------------------------------------------------------------

    /// Runs every event due at or before `until`, then sets the clock to `until`. Stops
    /// early at the first violation.
    pub fn run_until(&mut self, until: Timestamp) {
        while self.violation.is_none() {
            if self.agenda.next_time().is_none_or(|t| t > until) {
                break;
            }
            self.step();
        }
        if self.violation.is_none() {
            self.now = self.now.max(until);
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs while `keep_going` holds (checked before every step) and no later than
    /// `limit`. Returns `true` if `keep_going` became false, `false` on reaching the limit,
    /// an empty queue or a violation.
    pub fn run_while(
        &mut self,
        limit: Timestamp,
        mut keep_going: impl FnMut(&World) -> bool,
    ) -> bool {
        loop {
            if !keep_going(self) {
                return true;
            }
            if self.violation.is_some() {
                return false;
            }
            if self.agenda.next_time().is_none_or(|t| t > limit) {
                self.now = self.now.max(limit);
                return !keep_going(self);
            }
            self.step();
        }
    }

    /// Whether no event is pending at all (every endpoint finished, nothing in flight).
    pub fn is_quiescent(&self) -> bool {
        self.agenda.is_empty()
    }

    /// Executes the next event. Returns `false` if the queue was empty.
    pub fn step(&mut self) -> bool {
        let Some((time, event)) = self.agenda.pop() else {
            return false;
        };
        self.now = time;
        self.steps += 1;
        self.digest.u64(time.as_micros());
        match event {
            Event::Deliver { from, to, bytes } => self.deliver(from, to, bytes),
            Event::Timer { node, generation } => self.fire_timer(node, generation),
            Event::Echo { conn, payload } => {
                self.digest.u64(0xEC);
                self.trace(|| format!("server echoes to {conn}"));
                // The connection may have ended while the application slept.
                let _ = self.server_write(conn, payload);
            }
            Event::ClientWrite {
                addr,
                life,
                payload,
            } => {
                let current = self.client_lives(addr).len().saturating_sub(1);
                let running = self.client_endpoint(addr).is_some();
                if life == current && running {
                    self.digest.u64(0x3717E);
                    // A write after loss fails; the driver sees it in the life's record.
                    let _ = self.client_write(addr, payload);
                }
            }
            Event::Crash { addr } => {
                self.digest.u64(0xC4A5);
                self.crash_client(addr);
            }
            Event::Restart { addr, isn } => {
                self.digest.u64(0x4E57);
                if let Err(e) = self.restart_client(addr, isn) {
                    self.fail(format!("{addr}: restart rejected: {e}"));
                }
            }
        }
        true
    }

    fn schedule(&mut self, time: Timestamp, event: Event) {
        self.agenda.schedule(time, event);
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if self.verbose {
            println!("{} {}", self.now, line());
        }
    }

    fn trace_datagram(&self, what: &str, from: Addr, to: Addr, bytes: &[u8]) {
        if self.verbose {
            let text = match Message::decode(bytes) {
                Ok(m) => describe(&m),
                Err(e) => format!("undecodable ({e})"),
            };
            println!("{} {what} {from} -> {to}: {text}", self.now);
        }
    }

    // ----- delivery and timers ---------------------------------------------------------

    fn send(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
        let bytes = self.maybe_cack(from, bytes);
        self.digest.u64(u64::from(from.0) << 32 | u64::from(to.0));
        self.digest.bytes(&bytes);
        self.trace_datagram("send", from, to, &bytes);
        let sender = if from == Addr::SERVER {
            self.server.as_ref().map(|s| (s.ticks, *s.ep.params()))
        } else {
            self.client_node(from).map(|n| (n.ticks, n.params))
        };
        let at_tick = self.ticking == Some(from);
        if let Some((ticks, params)) = sender {
            if keeps_alive(&bytes) {
                self.keep_alive.on_send(from, to, ticks, at_tick);
            }
            if let Some(ids) = data_ids(&bytes) {
                if let Some(p) = self
                    .schedule
                    .on_data(from, to, ids, ticks, at_tick, &params)
                {
                    self.fail(p);
                }
            }
        }
        for copy in self.net.send(self.now, from, to, bytes) {
            self.schedule(
                copy.at,
                Event::Deliver {
                    from,
                    to,
                    bytes: copy.bytes,
                },
            );
        }
    }

    /// Applies [`World::cack_rewrite`] to an Ack written by `from`.
    fn maybe_cack(&mut self, from: Addr, bytes: Vec<u8>) -> Vec<u8> {
        if self.cack_rewrite.is_never() {
            return bytes;
        }
        let Some((conn, seq)) = ack_ids(&bytes) else {
            return bytes;
        };
        if seq == 0 || !self.rng.chance(self.cack_rewrite) {
            return bytes;
        }
        // The writer's isn and stream position (isn + 1 + messages delivered in order).
        let position = if from == Addr::SERVER {
            self.server
                .as_ref()
                .and_then(|s| s.view.conns.get(&ConnId(conn)))
                .and_then(|v| {
                    let life = self.client_lives(v.addr).get(v.incarnation as usize)?;
                    Some((life.isn, life.isn + 1 + v.reads.len() as i64))
                })
        } else {
            self.client(from)
                .filter(|l| l.conn == Some(ConnId(conn)))
                .map(|l| (l.isn, l.isn + 1 + l.reads.len() as i64))
        };
        match position {
            // Not the connect-ack `Ack(isn)`: only Acks of Data.
            Some((isn, next)) if isn < seq && seq < next => Message::cack(conn, seq).encode(),
            _ => bytes,
        }
    }

    fn deliver(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
        self.digest.u64(0xDE11);
        if self.net.read_dropped(to) {
            self.trace_datagram("read-drop", from, to, &bytes);
            return;
        }
        let listening = if to == Addr::SERVER {
            self.server.is_some()
        } else {
            self.client_endpoint(to).is_some()
        };
        if !listening {
            self.trace_datagram("lost (nobody listening)", from, to, &bytes);
            return;
        }
        self.trace_datagram("recv", from, to, &bytes);
        if to == Addr::SERVER {
            self.deliver_to_server(from, &bytes);
        } else if from == Addr::SERVER {
            self.deliver_to_client(to, &bytes);
        }
    }

    fn deliver_to_server(&mut self, from: Addr, bytes: &[u8]) {
        let now = self.now;
        let Some(server) = self.server.as_mut() else {
            return; // nobody listening
        };
        let before = server.ep.stats().dropped;
        let known = server.by_addr.get(&from).copied();
        server.ep.handle_datagram(now, from, bytes);
        let after = server.ep.stats().dropped;
        let heard = before.oversized == after.oversized
            && before.malformed == after.malformed
            && before.short_payload == after.short_payload
            && before.unknown_peer == after.unknown_peer
            && before.unexpected == after.unexpected;
        if let Some(conn) = known {
            if heard && server.ep.peer_addr(conn) == Some(&from) {
                server.last_heard.insert(conn, now);
            }
            self.check_server_conn_bounds(conn);
        }
        let isn = Message::decode(bytes).map(|m| m.seq_num).ok();
        self.drain_server(isn);
    }

    fn deliver_to_client(&mut self, to: Addr, bytes: &[u8]) {
        let now = self.now;
        let Some(node) = to.client_index().and_then(|i| self.clients.get_mut(i)) else {
            return;
        };
        let Some(ep) = node.ep.as_mut() else {
            return; // crashed: nobody listening
        };
        let before = ep.stats().dropped;
        let was_connected = ep.conn_id().is_some() && !ep.is_finished();
        ep.handle_datagram(now, bytes);
        let after = ep.stats().dropped;
        let heard = was_connected
            && before.oversized == after.oversized
            && before.malformed == after.malformed
            && before.short_payload == after.short_payload
            && before.unexpected == after.unexpected;
        if heard {
            if let Some(life) = node.lives.last_mut() {
                life.last_heard = now;
            }
        }
        self.after_client(to);
    }

    fn fire_timer(&mut self, node: Addr, generation: u64) {
        let now = self.now;
        if node == Addr::SERVER {
            let Some(server) = self.server.as_mut() else {
                return;
            };
            if !server.timer.fire(generation) {
                return;
            }
            server.ticks += 1;
            self.digest.u64(0x71C0);
            server.ep.handle_timeout(now);
            self.ticking = Some(node);
            self.drain_server(None);
            self.ticking = None;
            self.check_server_after_tick();
        } else {
            let Some(client) = node.client_index().and_then(|i| self.clients.get_mut(i)) else {
                return;
            };
            if !client.timer.fire(generation) {
                return;
            }
            let Some(ep) = client.ep.as_mut() else {
                return;
            };
            self.digest.u64(0x71C1);
            ep.handle_timeout(now);
            client.ticks += 1;
            self.ticking = Some(node);
            self.after_client(node);
            self.ticking = None;
            self.check_client_after_tick(node);
        }
    }
}

/// A short rendering of a payload for messages.
fn show(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if s.len() <= 24 => format!("{s:?}"),
        _ => format!("<{} bytes>", payload.len()),
    }
}

/// A one-line rendering of a message for traces.
pub fn describe(m: &Message) -> String {
    format!(
        "{:?} conn {} seq {} size {} {}",
        m.kind,
        m.conn_id,
        m.seq_num,
        m.size,
        show(&m.payload)
    )
}
