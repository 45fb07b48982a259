//! What one whole-system run does, drawn from a seed: LSP parameters, the fault mix, the
//! miners (speed, arrival, crash) and the clients (range, arrival, crash).

use std::fmt;
use std::time::Duration;

use bitcoin_core::hash::{Algo, Zeros};
use bitcoin_core::message::{Caps, Mode};
use lsp_core::Params;

use crate::net::{DelayBy, FaultMix, Faults};
use crate::rng::{Prob, Rng};
use crate::sweep::Case;

/// One miner: when it first connects, how fast it computes, and whether it crashes. A miner
/// whose connection is lost or fails reconnects (as a new connection) after
/// [`MinerPlan::reconnect_after`] unless it has crashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinerPlan {
    /// When it starts connecting.
    pub start: Duration,
    /// Nonces it hashes per second of virtual time (at least 1).
    pub rate: u64,
    /// When it crashes for good, if ever.
    pub crash_at: Option<Duration>,
    /// It crashes for good on receiving its job number `n` (1-based), before answering it.
    pub crash_on_job: Option<u32>,
    /// It hangs on receiving its job number `n` (1-based): its connection stays up (the
    /// transport keeps acknowledging and sending heartbeats) but it never answers again.
    /// Only backup jobs get its work done.
    pub stall_on_job: Option<u32>,
    /// How long it waits before reconnecting after losing its connection.
    pub reconnect_after: Duration,
    /// How it answers (miner 0 is always honest, so every request can finish).
    pub behaviour: Behaviour,
    /// The extensions its Join announces (miner 0 announces all of them whenever a client
    /// asks for target mode, so every request can finish).
    pub caps: Caps,
}

/// How a miner answers its jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Truly, in the order the jobs arrived.
    #[default]
    Honest,
    /// Truly, newest job first, and each result held back while the next job runs, then
    /// sent after that job's: out of order on the wire.
    OutOfOrder,
    /// With a hash one above the true minimum's.
    WrongHash,
    /// With a nonce just outside the job, and that nonce's true hash.
    OutOfRange,
    /// With the job's first nonce and its true hash, without searching: a lie whenever
    /// that is not the job's minimum, caught by the server's spot check with probability
    /// 32/33 (always for jobs of at most 32 nonces).
    Lazy,
}

/// One client: a single Request for `data` over `lower ..= upper`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPlan {
    /// When it starts connecting; it sends its Request once connected.
    pub start: Duration,
    /// The message to hash (unique per client in a run).
    pub data: String,
    /// First nonce.
    pub lower: u64,
    /// Last nonce (inclusive, at least `lower`).
    pub upper: u64,
    /// When it crashes, if ever.
    pub crash_at: Option<Duration>,
    /// What it asks for: the minimum, or target mode with a small difficulty (so that the
    /// simulator's scalar scans stay cheap).
    pub mode: Mode,
}

impl ClientPlan {
    /// How many nonces it asks about.
    pub fn nonces(&self) -> u64 {
        self.upper - self.lower + 1
    }
}

/// A node of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// Miner `i`.
    Miner(usize),
    /// Client `j`.
    Client(usize),
}

/// The link between the server and a node's address at `from` is down for `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// The node cut off (its current address then).
    pub node: Node,
    /// When the outage starts.
    pub from: Duration,
    /// How long it lasts.
    pub len: Duration,
}

/// A deliberate defect, for testing that the invariants catch it (never drawn by
/// [`MinerCase::generate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Every miner answers with a hash one above the true one, and the server verifies
    /// answers with that same wrong hash, so it trusts them.
    WrongAnswers,
    /// The server's glue records Joins but never passes them to the service.
    DropJoins,
    /// The server's glue never tells the service that a connection is gone.
    ForgetLosses,
    /// The scheduler runs without backup jobs and with leases too long to end within a
    /// run, so a hung miner's jobs are never done.
    NoRecovery,
}

/// Everything one whole-system run does; [`MinerCase::generate`] draws it from a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinerCase {
    /// Seeds the run's network draws.
    pub seed: u64,
    /// LSP parameters of every node.
    pub params: Params,
    /// Faults of the network for the whole run (delays bounded by
    /// [`Case::max_lifetime`]).
    pub faults: Faults,
    /// The miners; miner 0 never crashes, so every request can finish.
    pub miners: Vec<MinerPlan>,
    /// The clients.
    pub clients: Vec<ClientPlan>,
    /// Link outages.
    pub outages: Vec<Outage>,
    /// A deliberate defect (tests of the checker only).
    pub sabotage: Option<Sabotage>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The largest range a client asks about.
pub const MAX_NONCES: u64 = 20_000;

impl MinerCase {
    /// The case of `sweep-miner` seed `seed`.
    pub fn generate(seed: u64) -> MinerCase {
        let mut rng = Rng::new(seed ^ 0x3141_4E45_5200_0000);
        let epoch_millis = [10, 20, 50, 100, 200][rng.below(5) as usize];
        let params = Params {
            epoch_limit: rng.range(4, 8) as u32,
            epoch_millis,
            window_size: rng.range(1, 8) as u32,
            max_backoff_interval: rng.range(0, 3) as u32,
            max_unacked_messages: rng.range(1, 8) as u32,
        };
        let mut faults = Faults::draw(
            &mut rng,
            FaultMix {
                drop: 15,
                delay: 20,
                duplicate: 20,
                mangle: 5,
            },
        );
        let lifetime = Case::max_lifetime(&params);
        if rng.chance(Prob::percent(50)) {
            faults.jitter = ms(rng.range(0, epoch_millis / 2)).min(lifetime / 2);
        }
        faults.delay_by = DelayBy::Uniform {
            min: Duration::ZERO,
            max: lifetime.saturating_sub(faults.jitter),
        };
        let horizon = epoch_millis * 20;
        let miners: Vec<MinerPlan> = (0..rng.range(1, 5))
            .map(|i| {
                let start = if i == 0 {
                    Duration::ZERO
                } else {
                    ms(rng.range(0, horizon))
                };
                let mortal = i > 0 && rng.chance(Prob::percent(60));
                let on_job = mortal && rng.chance(Prob::percent(50));
                let crash_at = (mortal && !on_job).then(|| start + ms(rng.range(0, horizon)));
                let crash_on_job = on_job.then(|| rng.range(1, 4) as u32);
                MinerPlan {
                    start,
                    // 10 000 nonces take between 5 ms and 500 ms.
                    rate: rng.range(20_000, 2_000_000),
                    crash_at,
                    crash_on_job,
                    stall_on_job: None,
                    reconnect_after: ms(rng.range(0, 2 * epoch_millis)),
                    behaviour: Behaviour::Honest,
                    caps: Caps::NONE,
                }
            })
            .collect();
        let mut clients: Vec<ClientPlan> = (0..rng.range(1, 8))
            .map(|j| {
                let start = ms(rng.range(0, horizon));
                let nonces = if rng.chance(Prob::percent(10)) {
                    rng.range(1, 3)
                } else {
                    rng.range(1, MAX_NONCES)
                };
                let lower = if rng.chance(Prob::percent(20)) {
                    u64::MAX - rng.range(nonces - 1, 3 * MAX_NONCES)
                } else {
                    rng.range(0, 1 << 40)
                };
                let crash_at = rng
                    .chance(Prob::percent(30))
                    .then(|| start + ms(rng.range(0, 10 * epoch_millis)));
                ClientPlan {
                    start,
                    data: format!("sim {seed} client {j}"),
                    lower,
                    upper: lower + (nonces - 1),
                    crash_at,
                    mode: Mode::Minimum,
                }
            })
            .collect();
        let mut miners: Vec<MinerPlan> = miners;
        // At most one miner hangs (two could hang a job and its only backup).
        if rng.chance(Prob::percent(20)) {
            let i = rng.below(miners.len() as u64) as usize;
            let m = &mut miners[i];
            if i > 0 && m.crash_at.is_none() && m.crash_on_job.is_none() {
                m.stall_on_job = Some(rng.range(1, 4) as u32);
            }
        }
        let epoch = u64::from(params.epoch_limit) * epoch_millis;
        let outages = (0..rng.range(0, 2))
            .map(|_| {
                let node = if rng.chance(Prob::percent(50)) {
                    Node::Miner(rng.below(miners.len() as u64) as usize)
                } else {
                    Node::Client(rng.below(clients.len() as u64) as usize)
                };
                Outage {
                    node,
                    from: ms(rng.range(0, horizon)),
                    // From well under the loss timeout to twice it.
                    len: ms(rng.range(epoch_millis, 2 * epoch)),
                }
            })
            .collect();
        // Drawn last, so that everything else a seed drew before behaviours existed stays.
        for m in miners.iter_mut().skip(1) {
            if rng.chance(Prob::percent(40)) {
                m.behaviour = [
                    Behaviour::OutOfOrder,
                    Behaviour::WrongHash,
                    Behaviour::OutOfRange,
                    Behaviour::Lazy,
                ][rng.below(4) as usize];
            }
        }
        // Target mode, drawn after everything else for the same reason; a seed without a
        // target client draws nothing more, so it runs as it did before target mode.
        for c in &mut clients {
            if rng.chance(Prob::percent(25)) {
                // 2 to 12 zero bits: always a valid difficulty.
                let zeros = Zeros::try_from(rng.range(2, 12));
                let algo = [Algo::Sha256, Algo::Sha256d][rng.below(2) as usize];
                if let Ok(zeros) = zeros {
                    c.mode = Mode::Target { zeros, algo };
                }
            }
        }
        if clients.iter().any(|c| c.mode.is_target()) {
            let some = Caps::ALL;
            let no_cancel = Caps::NONE
                .with(bitcoin_core::message::Cap::Target)
                .with(bitcoin_core::message::Cap::Sha256d);
            for (i, m) in miners.iter_mut().enumerate() {
                m.caps = if i == 0 {
                    some
                } else {
                    [some, some, no_cancel, Caps::NONE][rng.below(4) as usize]
                };
            }
        }
        MinerCase {
            seed,
            params,
            faults,
            miners,
            clients,
            outages,
            sabotage: None,
        }
    }

    /// The virtual time by which every surviving client must have its answer (runs take
    /// a few seconds).
    pub fn liveness_limit(&self) -> Duration {
        ms(120_000)
    }
}

impl fmt::Display for MinerCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        let x = &self.faults;
        writeln!(
            f,
            "  lsp: K {} δ {} ms ω {} M {} backoff cap {}",
            p.epoch_limit,
            p.epoch_millis,
            p.window_size,
            p.max_unacked_messages,
            p.max_backoff_interval
        )?;
        writeln!(
            f,
            "  faults: read drop c {} s {}, write drop c {} s {}, delay {} ({:?}), dup {}, \
             shorten {} lengthen {} corrupt {}, jitter {:?}",
            x.read_drop[0],
            x.read_drop[1],
            x.write_drop[0],
            x.write_drop[1],
            x.delay,
            x.delay_by,
            x.duplicate,
            x.shorten,
            x.lengthen,
            x.corrupt,
            x.jitter
        )?;
        for (i, m) in self.miners.iter().enumerate() {
            writeln!(
                f,
                "  miner {i}: start {:?}, {} nonces/s, crash at {:?} / on job {:?}, stall on job {:?}, reconnect after {:?}, {:?}, caps {}",
                m.start, m.rate, m.crash_at, m.crash_on_job, m.stall_on_job, m.reconnect_after, m.behaviour, m.caps
            )?;
        }
        for (j, c) in self.clients.iter().enumerate() {
            writeln!(
                f,
                "  client {j}: start {:?}, {:?} {}..={} ({} nonces), crash {:?}, {}",
                c.start,
                c.data,
                c.lower,
                c.upper,
                c.nonces(),
                c.crash_at,
                c.mode
            )?;
        }
        for o in &self.outages {
            writeln!(
                f,
                "  outage: {:?} from {:?} for {:?}",
                o.node, o.from, o.len
            )?;
        }
        if let Some(s) = self.sabotage {
            writeln!(f, "  sabotage: {s:?}")?;
        }
        Ok(())
    }
}
