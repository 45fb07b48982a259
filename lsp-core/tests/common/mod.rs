//! A two-endpoint test harness: one server, any number of clients, a virtual clock and a
//! scripted network that can drop, delay (reorder) and duplicate datagrams.
#![allow(dead_code)] // each test binary uses a different part of it

use std::time::Duration;

use lsp_core::{
    ClientEndpoint, ClientEvent, Limits, Message, Params, ServerEndpoint, ServerEvent, Timestamp,
};

/// The server's address; client `i` has address `i + 1`.
pub const SERVER: u32 = 0;

/// What the network does with one datagram.
#[derive(Clone, Copy, Debug)]
pub enum Fate {
    /// Deliver after this delay.
    Deliver(Duration),
    /// Lose it.
    Drop,
    /// Deliver two copies after these delays.
    Duplicate(Duration, Duration),
}

/// A datagram on the wire.
#[derive(Clone, Debug)]
pub struct Packet {
    pub from: u32,
    pub to: u32,
    pub bytes: Vec<u8>,
    pub deliver_at: Timestamp,
    order: u64,
}

/// Decides each datagram's fate: `(now, from, to, bytes) -> Fate`.
pub type FaultFn = Box<dyn FnMut(Timestamp, u32, u32, &[u8]) -> Fate>;

/// The world: endpoints, wire, clock and everything the endpoints said.
pub struct World {
    pub now: Timestamp,
    pub server: ServerEndpoint<u32>,
    pub clients: Vec<ClientEndpoint>,
    pub wire: Vec<Packet>,
    pub faults: FaultFn,
    pub server_events: Vec<ServerEvent<u32>>,
    pub client_events: Vec<Vec<ClientEvent>>,
    /// Every datagram sent, in send order, with the time it was sent (a sniffer).
    pub sent: Vec<(Timestamp, u32, u32, Message)>,
    /// Whether the server's application takes its events (`false`: it stops reading, and
    /// its endpoint's events wait there).
    pub server_reading: bool,
    next_order: u64,
}

/// A perfect network.
pub fn perfect() -> FaultFn {
    Box::new(|_, _, _, _| Fate::Deliver(Duration::from_millis(1)))
}

impl World {
    /// A server with `server_params` and `n` clients with `client_params`, client `i` using
    /// initial sequence number `isn(i)`, all started at time 0.
    pub fn new(
        server_params: Params,
        client_params: Params,
        n: usize,
        isn: impl Fn(usize) -> i64,
    ) -> World {
        World::with_limits(server_params, client_params, Limits::default(), n, isn)
    }

    /// Like [`World::new`], the server and the clients with resource limits `limits`.
    pub fn with_limits(
        server_params: Params,
        client_params: Params,
        limits: Limits,
        n: usize,
        isn: impl Fn(usize) -> i64,
    ) -> World {
        let now = Timestamp::ZERO;
        let server = ServerEndpoint::with_limits(server_params, limits, now).expect("valid params");
        let clients = (0..n)
            .map(|i| {
                ClientEndpoint::with_limits(client_params, limits, isn(i), now)
                    .expect("valid params")
            })
            .collect();
        let mut world = World {
            now,
            server,
            clients,
            wire: Vec::new(),
            faults: perfect(),
            server_events: Vec::new(),
            client_events: vec![Vec::new(); n],
            sent: Vec::new(),
            server_reading: true,
            next_order: 0,
        };
        world.collect();
        world
    }

    fn send(&mut self, from: u32, to: u32, bytes: Vec<u8>) {
        if let Ok(m) = Message::decode(&bytes) {
            self.sent.push((self.now, from, to, m));
        }
        match (self.faults)(self.now, from, to, &bytes) {
            Fate::Drop => {}
            Fate::Deliver(d) => self.enqueue(from, to, bytes, d),
            Fate::Duplicate(a, b) => {
                self.enqueue(from, to, bytes.clone(), a);
                self.enqueue(from, to, bytes, b);
            }
        }
    }

    fn enqueue(&mut self, from: u32, to: u32, bytes: Vec<u8>, delay: Duration) {
        let order = self.next_order;
        self.next_order += 1;
        self.wire.push(Packet {
            from,
            to,
            bytes,
            deliver_at: self.now + delay,
            order,
        });
    }

    /// Moves every queued transmit onto the wire and every event into the logs.
    pub fn collect(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            self.send(SERVER, t.destination, t.payload);
        }
        while self.server_reading {
            let Some(e) = self.server.poll_event() else {
                break;
            };
            self.server_events.push(e);
        }
        for i in 0..self.clients.len() {
            while let Some(d) = self.clients[i].poll_transmit() {
                self.send(i as u32 + 1, SERVER, d);
            }
            while let Some(e) = self.clients[i].poll_event() {
                self.client_events[i].push(e);
            }
        }
    }

    /// The next instant something happens, if anything is scheduled.
    fn next_instant(&self) -> Option<Timestamp> {
        let packet = self.wire.iter().map(|p| p.deliver_at).min();
        let timers = std::iter::once(self.server.poll_timeout())
            .chain(self.clients.iter().map(|c| c.poll_timeout()))
            .flatten();
        packet.into_iter().chain(timers).min()
    }

    /// Runs one instant: delivers due datagrams (in order) and fires due timers.
    /// Returns false if nothing is scheduled at or before `limit`.
    pub fn step(&mut self, limit: Timestamp) -> bool {
        let Some(at) = self.next_instant() else {
            return false;
        };
        if at > limit {
            return false;
        }
        self.now = self.now.max(at);
        loop {
            let due = self
                .wire
                .iter()
                .enumerate()
                .filter(|(_, p)| p.deliver_at <= self.now)
                .min_by_key(|(_, p)| (p.deliver_at, p.order))
                .map(|(i, _)| i);
            let Some(i) = due else { break };
            let p = self.wire.remove(i);
            if p.to == SERVER {
                self.server.handle_datagram(self.now, p.from, &p.bytes);
            } else if let Some(c) = self.clients.get_mut(p.to as usize - 1) {
                c.handle_datagram(self.now, &p.bytes);
            }
            self.collect();
        }
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        for c in &mut self.clients {
            if c.poll_timeout().is_some_and(|t| t <= self.now) {
                c.handle_timeout(self.now);
            }
        }
        self.collect();
        true
    }

    /// Runs until virtual time `t` (or until nothing is scheduled).
    pub fn run_until(&mut self, t: Timestamp) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `done` holds (checked after every step) or `limit` passes; returns whether
    /// it held.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> bool {
        let until = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(until) {
                return done(self);
            }
        }
    }

    /// Messages the server delivered from `conn`, in order.
    pub fn server_messages(&self, conn: lsp_core::ConnId) -> Vec<Vec<u8>> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Message { conn: c, payload } if *c == conn => Some(payload.clone()),
                _ => None,
            })
            .collect()
    }

    /// Messages client `i` delivered, in order.
    pub fn client_messages(&self, i: usize) -> Vec<Vec<u8>> {
        self.client_events[i]
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Client `i`'s connection id, once connected.
    pub fn conn_of(&self, i: usize) -> Option<lsp_core::ConnId> {
        self.clients[i].conn_id()
    }

    /// Whether every client is connected.
    pub fn all_connected(&self) -> bool {
        self.clients.iter().all(|c| c.conn_id().is_some())
    }
}

/// Parameters `(K, δ, ω, M)` with back-off cap `bo`.
pub fn params(k: u32, ms: u64, w: u32, m: u32, bo: u32) -> Params {
    Params {
        epoch_limit: k,
        epoch_millis: ms,
        window_size: w,
        max_unacked_messages: m,
        max_backoff_interval: bo,
    }
}

/// A small deterministic PRNG (SplitMix64) for fault scripts.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
