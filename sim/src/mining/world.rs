//! The whole-system event loop: one server node (an LSP [`ServerEndpoint`] driving a
//! [`MinerService`]), miner nodes and client nodes (each an LSP [`ClientEndpoint`] plus its
//! application), on the simulated [`Network`], with the system's invariants checked after
//! every step.
//!
//! Every node life has its own address, so a reconnecting miner is a new peer to the
//! server, as a restarted process on a new port would be.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bitcoin_core::hash::hash;
use bitcoin_core::message::ext::encode_request;
use bitcoin_core::message::{Cap, Caps, Message, Mode};
use bitcoin_core::miner::{JobOrder, MinerCore};
use bitcoin_core::scheduler::{Config, MAX_JOB_DURATION};
use bitcoin_core::service::MinerService;
use lsp_core::{ClientEndpoint, ClientEvent, ConnId, ServerEndpoint, ServerEvent, Timestamp};

use super::case::{Behaviour, MinerCase, Node, Sabotage};

mod accounting;
mod checks;
mod miners;
mod target;
use crate::agenda::{Agenda, TimerSlot};
use crate::digest::Digest;
use crate::net::{Addr, Network, Partition};
use crate::rng::Rng;
use target::first_hit;

/// Who owns an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Server,
    Miner(usize),
    Client(usize),
}

/// Which timer of a node fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// The node's LSP endpoint.
    Lsp,
    /// The server's miner service.
    Service,
}

enum Event {
    Deliver {
        to: Addr,
        from: Addr,
        bytes: Vec<u8>,
    },
    Timer {
        addr: Addr,
        clock: Clock,
        generation: u64,
    },
    MinerStart {
        miner: usize,
    },
    MinerDone {
        miner: usize,
        life: u32,
        /// The miner's search generation when it started (see `MinerNode::search`).
        search: u32,
    },

    MinerCrash {
        miner: usize,
    },
    ClientStart {
        client: usize,
    },
    ClientCrash {
        client: usize,
    },
    Outage {
        index: usize,
    },
}

/// One job as the server wrote it: the request's data, its range and its mode.
#[derive(Clone, Debug)]
struct Job {
    data: String,
    lower: u64,
    upper: u64,
    mode: Mode,
}

/// The server's record of one connection, kept by the simulator (not the service) to
/// check the service.
#[derive(Debug, Default)]
struct ConnRecord {
    /// The connection is gone (lost or closed) and the service was told.
    gone: bool,
    /// It sent Join.
    joined: bool,
    /// The caps its Join announced.
    caps: Caps,
    /// Jobs written to it and not yet answered (by a result verifying against them),
    /// oldest first.
    jobs: VecDeque<Job>,
}

/// A request the server accepted and has not answered.
#[derive(Debug)]
struct Pending {
    conn: ConnId,
    lower: u64,
    upper: u64,
    /// Ranges answered by a miner with a result that verifies (nonce in the range, hash
    /// its hash).
    answered: Vec<(u64, u64)>,
    /// What it asks for.
    mode: Mode,
    /// Target mode: the smallest qualifying nonce a verified result reported.
    hit: Option<u64>,
}

struct Server {
    ep: ServerEndpoint<Addr>,
    service: MinerService<ConnId>,
    lsp_timer: TimerSlot,
    service_timer: TimerSlot,
    conns: BTreeMap<ConnId, ConnRecord>,
    /// Accepted, unanswered requests by data (unique per client).
    pending: BTreeMap<String, Pending>,
    /// When the service was last called.
    last_call: Timestamp,
    /// The simulator's record of what the service's accounting should say.
    ledger: accounting::Ledger,
}

struct MinerNode {
    addr: Option<Addr>,
    ep: Option<ClientEndpoint>,
    timer: TimerSlot,
    life: u32,
    crashed: bool,
    /// The miner's logic (the real one, from `bitcoin-core`), fresh for each life.
    core: MinerCore,
    /// Jobs received over all its lives.
    received: u32,
    /// It hangs: never computes again, never reconnects.
    stalled: bool,
    /// Results an out-of-order miner holds back, to send newest first.
    held: Vec<Message>,
    /// Searches stopped by a Cancel: a search's end is ignored unless this is unchanged
    /// since it started.
    search: u32,
}

/// How a client's run ended, if it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEnd {
    /// It received its Result.
    Answered,
    /// It crashed.
    Crashed,
    /// Its connection was lost, or never made.
    Lost,
}

struct ClientNode {
    addr: Option<Addr>,
    ep: Option<ClientEndpoint>,
    timer: TimerSlot,
    end: Option<ClientEnd>,
}

/// Everything a miner's or client's endpoint produced since it was last drained.
struct Drained {
    addr: Addr,
    transmits: Vec<Vec<u8>>,
    events: Vec<ClientEvent>,
    /// The timer to schedule, if the endpoint's deadline moved.
    rearm: Option<(Timestamp, u64)>,
}

impl Drained {
    /// Drains a node's endpoint and re-arms its timer; `None` if the node is not running.
    fn take(
        addr: Option<Addr>,
        ep: &mut Option<ClientEndpoint>,
        timer: &mut TimerSlot,
    ) -> Option<Drained> {
        let (addr, ep) = (addr?, ep.as_mut()?);
        Some(Drained {
            addr,
            transmits: std::iter::from_fn(|| ep.poll_transmit()).collect(),
            events: std::iter::from_fn(|| ep.poll_event()).collect(),
            rearm: timer.rearm(ep.poll_timeout()),
        })
    }
}

/// What a finished run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Virtual time at the end.
    pub virtual_time: Duration,
    /// Steps executed.
    pub steps: u64,
    /// The trace digest.
    pub digest: u64,
    /// Clients answered (each with the true minimum).
    pub answered: u64,
    /// Clients that crashed before their answer.
    pub crashed: u64,
    /// Clients whose connection was lost or never made.
    pub lost: u64,
    /// Jobs the service sent, backups included.
    pub jobs: u64,
    /// Backup jobs.
    pub backups: u64,
    /// Jobs given back because their miner was lost.
    pub requeued: u64,
    /// Nonces in the jobs the service sent, backups and re-issues included.
    pub nonces_sent: u128,
    /// Nonces in the requests the service accepted.
    pub nonces_requested: u128,
    /// Lazy answers (a job's first nonce, not its minimum) miners sent.
    pub lazy_answers: u64,
    /// Verified answers that came while an older job of the same miner was unanswered.
    pub out_of_order_answers: u64,
    /// Of the lazy answers, how many the server caught (and disconnected their miner
    /// for).
    pub lazy_caught: u64,
    /// Clients answered wrongly because a lazy answer escaped the spot check (allowed:
    /// the check is probabilistic; every other wrong answer is a violation).
    pub lazy_escaped: u64,
    /// Lies (wrong hash, nonce out of range, caught lazy answers) the server caught.
    pub lies_caught: u64,
    /// Jobs whose lease ended, and jobs re-issued for it.
    pub expired_leases: u64,
    /// Jobs re-issued because their lease ended.
    pub reissued: u64,
    /// Nonces of the jobs answered by results the service verified and used (stale ones
    /// included): the pool's nonces in its accounting, checked equal at every step.
    pub nonces_credited: u128,
    /// Target-mode clients answered (each with the smallest qualifying nonce, or none).
    pub target_answered: u64,
    /// Cancels the service wrote.
    pub cancels: u64,
    /// Lazy `"Found": false` answers to target jobs that held a hit (not in
    /// `lazy_answers`), and how many the spot check caught: about 1 − (1 − 2⁻ᶻ)³² each.
    pub target_lazy_answers: u64,
    /// Of those, caught.
    pub target_lazy_caught: u64,
}

/// One whole-system run of a [`MinerCase`].
pub struct MiningWorld {
    case: MinerCase,
    now: Timestamp,
    agenda: Agenda<Event>,
    net: Network,
    owners: Vec<Owner>,
    server: Server,
    miners: Vec<MinerNode>,
    clients: Vec<ClientNode>,
    /// Each client's hashes over its range, computed once with [`hash`] (by data), which
    /// the miners read instead of hashing again.
    hashes: BTreeMap<String, (u64, Vec<u64>)>,
    /// Each client's true answer: the least (hash, nonce) of its table.
    truth: Vec<(u64, u64)>,
    /// Each target client's true answer, by a scalar scan: its smallest qualifying nonce
    /// and its hash, or none (`None` for minimum clients too).
    target_truth: Vec<Option<(u64, u64)>>,
    /// Requests (by data) a lazy answer that escaped the spot check was used for.
    tainted: BTreeSet<String>,
    /// Counters for the outcome kept by the world itself.
    tally: Outcome,
    digest: Digest,
    steps: u64,
    violation: Option<String>,
    verbose: bool,
}

fn at(d: Duration) -> Timestamp {
    Timestamp::ZERO + d
}

/// The order in which a miner of `behaviour` searches its jobs.
fn job_order(behaviour: Behaviour) -> JobOrder {
    match behaviour {
        Behaviour::OutOfOrder => JobOrder::Newest,
        _ => JobOrder::Arrival,
    }
}

/// The true answer over `lower ..= upper`: least hash, least nonce on ties.
fn scan(data: &str, lower: u64, upper: u64) -> (u64, u64) {
    let mut best = (hash(data, lower), lower);
    let mut nonce = lower;
    while nonce < upper {
        nonce += 1;
        best = best.min((hash(data, nonce), nonce));
    }
    best
}

/// How many nonces of `lower ..= upper` the union of `ranges` covers.
fn covered(lower: u64, upper: u64, ranges: &mut [(u64, u64)]) -> u128 {
    ranges.sort_unstable();
    let mut total = 0u128;
    let mut next = u128::from(lower); // first nonce not yet counted
    for &(lo, hi) in ranges.iter() {
        let (lo, hi) = (u128::from(lo.max(lower)), u128::from(hi.min(upper)));
        if hi < lo || hi < next {
            continue;
        }
        let from = lo.max(next);
        total += hi - from + 1;
        next = hi + 1;
    }
    total
}

impl MiningWorld {
    /// A world ready to run `case`: every node's start and crash scheduled.
    pub fn new(case: MinerCase, verbose: bool) -> Result<MiningWorld, String> {
        let mut rng = Rng::new(case.seed);
        let mut net = Network::new(rng.fork());
        net.faults = case.faults;
        let ep = ServerEndpoint::new(case.params, Timestamp::ZERO)
            .map_err(|e| format!("server params: {e:?}"))?;
        let recovery = case.sabotage != Some(Sabotage::NoRecovery);
        let config = Config {
            backup_jobs: recovery,
            // Two epochs of the run's LSP parameters, as the lease policy asks.
            lease_slack: if recovery {
                Duration::from_millis(2 * case.params.epoch_millis)
            } else {
                MAX_JOB_DURATION
            },
            ..Config::default()
        };
        // The wrong-answers sabotage is a server that trusts them: it verifies with the
        // miners' off-by-one hash.
        let service = if case.sabotage == Some(Sabotage::WrongAnswers) {
            MinerService::with_hash(config, |msg, nonce| hash(msg, nonce).wrapping_add(1))
        } else {
            MinerService::new(config)
        }
        .map_err(|e| format!("service: {e}"))?;
        let mut world = MiningWorld {
            now: Timestamp::ZERO,
            agenda: Agenda::new(),
            net,
            owners: vec![Owner::Server],
            server: Server {
                ep,
                service,
                lsp_timer: TimerSlot::default(),
                service_timer: TimerSlot::default(),
                conns: BTreeMap::new(),
                pending: BTreeMap::new(),
                last_call: Timestamp::ZERO,
                ledger: accounting::Ledger::default(),
            },
            miners: Vec::new(),
            clients: Vec::new(),
            hashes: BTreeMap::new(),
            truth: Vec::new(),
            target_truth: Vec::new(),
            tainted: BTreeSet::new(),
            tally: Outcome::default(),
            digest: Digest::default(),
            steps: 0,
            violation: None,
            verbose,
            case,
        };
        for (miner, plan) in world.case.miners.clone().into_iter().enumerate() {
            world.miners.push(MinerNode {
                addr: None,
                ep: None,
                timer: TimerSlot::default(),
                life: 0,
                crashed: false,
                core: MinerCore::new(job_order(plan.behaviour)).with_caps(plan.caps),
                received: 0,
                stalled: false,
                held: Vec::new(),
                search: 0,
            });
            world.schedule(at(plan.start), Event::MinerStart { miner });
            if let Some(crash) = plan.crash_at {
                world.schedule(at(crash), Event::MinerCrash { miner });
            }
        }
        for (client, plan) in world.case.clients.clone().into_iter().enumerate() {
            let table: Vec<u64> = (plan.lower..=plan.upper)
                .map(|n| hash(&plan.data, n))
                .collect();
            let truth = (plan.lower..=plan.upper)
                .zip(&table)
                .map(|(n, h)| (*h, n))
                .min()
                .unwrap_or((u64::MAX, plan.lower));
            world.truth.push(truth);
            world
                .target_truth
                .push(first_hit(&plan.data, plan.lower, plan.upper, plan.mode));
            world.hashes.insert(plan.data.clone(), (plan.lower, table));
            world.clients.push(ClientNode {
                addr: None,
                ep: None,
                timer: TimerSlot::default(),
                end: None,
            });
            world.schedule(at(plan.start), Event::ClientStart { client });
            if let Some(crash) = plan.crash_at {
                world.schedule(at(crash), Event::ClientCrash { client });
            }
        }
        for (index, outage) in world.case.outages.clone().into_iter().enumerate() {
            world.schedule(at(outage.from), Event::Outage { index });
        }
        world.drain_server();
        Ok(world)
    }

    /// Runs until every client's run has ended and the server has no request left (each
    /// answered or dropped with its connection), a violation, or the liveness limit.
    pub fn run(mut self) -> Result<Outcome, String> {
        let limit = at(self.case.liveness_limit());
        while self.violation.is_none()
            && (self.clients.iter().any(|c| c.end.is_none())
                || !self.server.pending.is_empty()
                || self.server.service.scheduler().request_count() > 0)
        {
            let Some((time, event)) = self.agenda.pop() else {
                self.fail("the event queue ran dry with clients unanswered");
                break;
            };
            if time > limit {
                let waiting: Vec<usize> = (0..self.clients.len())
                    .filter(|&j| self.clients[j].end.is_none())
                    .collect();
                let pending: Vec<&String> = self.server.pending.keys().collect();
                let what = format!(
                    "liveness: at {limit}, clients {waiting:?} unanswered, requests {pending:?} pending at the server"
                );
                self.fail(what);
                break;
            }
            self.now = time;
            self.steps += 1;
            self.digest.u64(time.as_micros());
            self.apply(event);
            self.check_no_idle_miner();
            self.check_leases();
            self.check_accounting();
        }
        if let Some(v) = self.violation {
            return Err(format!("{}: {v}", self.now));
        }
        let count = |end| self.clients.iter().filter(|c| c.end == Some(end)).count() as u64;
        let stats = self.server.service.scheduler_stats();
        Ok(Outcome {
            virtual_time: self.now.saturating_duration_since(Timestamp::ZERO),
            steps: self.steps,
            digest: self.digest.value(),
            answered: count(ClientEnd::Answered),
            crashed: count(ClientEnd::Crashed),
            lost: count(ClientEnd::Lost),
            jobs: stats.jobs_sent,
            backups: stats.backup_jobs,
            requeued: stats.requeued_jobs,
            lies_caught: stats.invalid_results,
            expired_leases: stats.expired_leases,
            reissued: stats.reissued_jobs,
            nonces_credited: self.server.ledger.total(),
            ..self.tally
        })
    }

    fn fail(&mut self, what: impl Into<String>) {
        if self.violation.is_none() {
            let what = what.into();
            self.trace(|| format!("VIOLATION {what}"));
            self.violation = Some(what);
        }
    }

    fn trace(&self, line: impl FnOnce() -> String) {
        if self.verbose {
            println!("{} {}", self.now, line());
        }
    }

    fn schedule(&mut self, time: Timestamp, event: Event) {
        self.agenda.schedule(time, event);
    }

    fn new_addr(&mut self, owner: Owner) -> Addr {
        self.owners.push(owner);
        Addr(u32::try_from(self.owners.len() - 1).unwrap_or(u32::MAX))
    }

    fn name(&self, addr: Addr) -> String {
        match self.owners.get(addr.0 as usize) {
            Some(Owner::Server) => "server".into(),
            Some(Owner::Miner(i)) => format!("miner{i}@{}", addr.0),
            Some(Owner::Client(j)) => format!("client{j}@{}", addr.0),
            None => format!("?{}", addr.0),
        }
    }

    fn send(&mut self, from: Addr, to: Addr, bytes: Vec<u8>) {
        self.digest.u64(u64::from(from.0) << 32 | u64::from(to.0));
        self.digest.bytes(&bytes);
        for copy in self.net.send(self.now, from, to, bytes) {
            self.schedule(
                copy.at,
                Event::Deliver {
                    to,
                    from,
                    bytes: copy.bytes,
                },
            );
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, bytes } => {
                self.digest.u64(0xDE11);
                if self.net.read_dropped(to) {
                    return;
                }
                match self.owners.get(to.0 as usize).copied() {
                    Some(Owner::Server) => {
                        self.server.ep.handle_datagram(self.now, from, &bytes);
                        self.drain_server();
                    }
                    Some(Owner::Miner(i)) if self.miners[i].addr == Some(to) => {
                        if let Some(ep) = self.miners[i].ep.as_mut() {
                            ep.handle_datagram(self.now, &bytes);
                            self.drain_miner(i);
                        }
                    }
                    Some(Owner::Client(j)) if self.clients[j].addr == Some(to) => {
                        if let Some(ep) = self.clients[j].ep.as_mut() {
                            ep.handle_datagram(self.now, &bytes);
                            self.drain_client(j);
                        }
                    }
                    _ => {} // nobody listening
                }
            }
            Event::Timer {
                addr,
                clock,
                generation,
            } => self.fire(addr, clock, generation),
            Event::MinerStart { miner } => self.start_miner(miner),
            Event::MinerDone {
                miner,
                life,
                search,
            } => self.miner_done(miner, life, search),

            Event::MinerCrash { miner } => self.crash_miner(miner),
            Event::Outage { index } => {
                self.digest.u64(0x0C7A);
                let outage = self.case.outages[index];
                let addr = match outage.node {
                    Node::Miner(i) => self.miners.get(i).and_then(|m| m.addr),
                    Node::Client(j) => self.clients.get(j).and_then(|c| c.addr),
                };
                if let Some(addr) = addr {
                    self.trace(|| format!("outage of {} for {:?}", self.name(addr), outage.len));
                    self.net.partitions.push(Partition {
                        client: addr,
                        from: self.now,
                        until: self.now + outage.len,
                    });
                }
            }
            Event::ClientStart { client } => self.start_client(client),
            Event::ClientCrash { client } => {
                self.digest.u64(0xC4A6);
                let node = &mut self.clients[client];
                if node.end.is_none() {
                    node.end = Some(ClientEnd::Crashed);
                    node.ep = None;
                    self.trace(|| format!("client{client} crashes"));
                }
            }
        }
    }

    fn fire(&mut self, addr: Addr, clock: Clock, generation: u64) {
        let now = self.now;
        match (self.owners.get(addr.0 as usize).copied(), clock) {
            (Some(Owner::Server), Clock::Lsp) if self.server.lsp_timer.fire(generation) => {
                self.digest.u64(0x71C0);
                self.server.ep.handle_timeout(now);
                self.drain_server();
            }
            (Some(Owner::Server), Clock::Service) if self.server.service_timer.fire(generation) => {
                self.digest.u64(0x71C5);
                self.server.service.handle_timeout(now);
                self.server.last_call = now;
                self.drain_server();
            }
            (Some(Owner::Miner(i)), _) => {
                let node = &mut self.miners[i];
                if node.addr == Some(addr) && node.timer.fire(generation) {
                    if let Some(ep) = node.ep.as_mut() {
                        self.digest.u64(0x71C1);
                        ep.handle_timeout(now);
                        self.drain_miner(i);
                    }
                }
            }
            (Some(Owner::Client(j)), _) => {
                let node = &mut self.clients[j];
                if node.addr == Some(addr) && node.timer.fire(generation) {
                    if let Some(ep) = node.ep.as_mut() {
                        self.digest.u64(0x71C2);
                        ep.handle_timeout(now);
                        self.drain_client(j);
                    }
                }
            }
            _ => {}
        }
    }

    // ----- the server --------------------------------------------------------------------

    /// Sends the endpoint's datagrams, feeds its events to the service, writes the
    /// service's messages (checking each), and re-arms both timers.
    fn drain_server(&mut self) {
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

    fn on_server_event(&mut self, event: ServerEvent<Addr>) {
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
    fn record_payload(
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
    fn on_service_write(&mut self, conn: ConnId, bytes: Vec<u8>) {
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
                self.tally.nonces_sent += u128::from(upper.saturating_sub(lower)) + 1;
                if let Some(record) = self.server.conns.get_mut(&conn) {
                    record.jobs.push_back(Job {
                        data,
                        lower,
                        upper,
                        mode,
                    });
                }
            }
            Ok(Message::Cancel { data, lower, upper }) => {
                self.on_cancel_written(conn, caps, &data, lower, upper);
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

    // ----- clients -----------------------------------------------------------------------

    fn start_client(&mut self, client: usize) {
        self.digest.u64(0xC11E ^ client as u64);
        if self.clients[client].end.is_some() {
            return;
        }
        let addr = self.new_addr(Owner::Client(client));
        let isn = self.net_isn();
        match ClientEndpoint::new(self.case.params, isn, self.now) {
            Ok(ep) => {
                let node = &mut self.clients[client];
                node.addr = Some(addr);
                node.ep = Some(ep);
                self.trace(|| format!("client{client} starts at {}", addr.0));
                self.drain_client(client);
            }
            Err(e) => self.fail(format!("client params: {e:?}")),
        }
    }

    fn drain_client(&mut self, client: usize) {
        let node = &mut self.clients[client];
        let drained = Drained::take(node.addr, &mut node.ep, &mut node.timer);
        for event in self.emit(drained) {
            self.on_client_event(client, event);
        }
    }

    fn on_client_event(&mut self, client: usize, event: ClientEvent) {
        if self.clients[client].end.is_some() {
            return;
        }
        match event {
            ClientEvent::Connected(_) => {
                let plan = &self.case.clients[client];
                let request = encode_request(&plan.data, plan.lower, plan.upper, plan.mode);
                if let Some(ep) = self.clients[client].ep.as_mut() {
                    if ep.write(request).is_ok() {
                        self.drain_client(client);
                    }
                }
            }
            ClientEvent::Message(payload) if self.case.clients[client].mode.is_target() => {
                self.on_target_answer(client, &payload);
            }
            ClientEvent::Message(payload) => match Message::decode(&payload) {
                Ok(Message::Result { hash, nonce }) => {
                    let truth = self.truth[client];
                    self.trace(|| format!("client{client} answered {hash} {nonce}"));
                    let escaped = self.tainted.contains(&self.case.clients[client].data);
                    if (hash, nonce) != truth && escaped {
                        self.tally.lazy_escaped += 1;
                    } else if (hash, nonce) != truth {
                        self.fail(format!(
                            "client{client} got {hash} at {nonce}, the minimum is {} at {}",
                            truth.0, truth.1
                        ));
                    }
                    // The client exits with its answer; the server will lose it.
                    let node = &mut self.clients[client];
                    node.end = Some(ClientEnd::Answered);
                    node.ep = None;
                }
                other => self.fail(format!("client{client} received {other:?}")),
            },
            ClientEvent::ConnectionLost | ClientEvent::ConnectFailed | ClientEvent::Closed(_) => {
                self.trace(|| format!("client{client} lost its connection"));
                let node = &mut self.clients[client];
                node.end = Some(ClientEnd::Lost);
                node.ep = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_the_union_within_the_range() {
        assert_eq!(covered(0, 9, &mut []), 0);
        assert_eq!(covered(0, 9, &mut [(0, 4), (3, 6)]), 7);
        assert_eq!(covered(0, 9, &mut [(5, 9), (0, 4)]), 10);
        assert_eq!(covered(5, 9, &mut [(0, 6), (9, 20)]), 3);
        assert_eq!(covered(0, u64::MAX, &mut [(0, u64::MAX)]), 1 << 64);
    }

    #[test]
    fn scan_finds_the_least_hash_and_nonce() {
        let (h, n) = scan("x", 10, 200);
        assert!((10..=200).all(|k| (hash("x", k), k) >= (h, n)));
        assert_eq!(scan("x", 7, 7), (hash("x", 7), 7));
    }
}
