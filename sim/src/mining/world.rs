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
mod clients;
mod miners;
mod outcome;
mod server;
mod target;
use crate::agenda::{Agenda, TimerSlot};
use crate::digest::Digest;
use crate::net::{Addr, Network, Partition};
use crate::rng::Rng;
pub use outcome::{ClientEnd, Outcome};
pub(crate) use target::first_hit;

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
    /// Its `"Job"` id (sent only to miners that announced `cancel`).
    id: Option<u64>,
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
    held: Vec<Vec<u8>>,
    /// Searches stopped by a Cancel: a search's end is ignored unless this is unchanged
    /// since it started.
    search: u32,
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
