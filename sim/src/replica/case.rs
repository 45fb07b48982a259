//! One replicated-coordinator run's parameters, all drawn from its seed.

use std::fmt;

use bitcoin_core::hash::{Algo, Zeros};
use bitcoin_core::message::{Cap, Caps, Mode};
use bitcoin_core::scheduler::Config;

use crate::rng::{Prob, Rng};

/// Milliseconds between two ticks of every replica (the epoch).
pub const TICK_MS: u64 = 10;

/// A deliberate bug, to show that the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sabotage {
    /// None: the real system.
    #[default]
    None,
    /// Every miner searches only the first half of each job and reports that half's
    /// minimum as the job's (of a target job, only the second half, and reports that
    /// half's first hit or none): the spot checks of the real scheduler catch some of
    /// these lies, and the true-answer checks must catch those that escape.
    SloppyMiners,
    /// Every miner's Join announces every capability, whatever its plan says: the
    /// replicas then send target jobs, job ids and Cancels to miners the checks know
    /// cannot take them, which the caps check must catch.
    OverclaimingMiners,
    /// A restarted replica forgets its disk (votes and log), breaking Raft's durability
    /// assumption.
    ForgetDisk,
    /// The driver acts on effects before the `Persist` ahead of them is durable: a
    /// crashing replica loses its last batch of writes, though it already sent what
    /// followed them (votes, acknowledgements).
    ActBeforePersist,
}

/// A minority of replicas cut off from the rest between two instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPlan {
    /// When it starts, in ms.
    pub from_ms: u64,
    /// When it heals, in ms.
    pub until_ms: u64,
    /// The replicas on the cut-off side.
    pub cut: Vec<u64>,
}

/// One simulated miner process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinerPlan {
    /// When it first connects, in ms.
    pub at_ms: u64,
    /// The replica it tries first.
    pub first: u64,
    /// Its search speed, in nonces per virtual ms (a slow one outlives its leases).
    pub speed: u64,
    /// Whether it searches its newest job first (answers out of order).
    pub newest_first: bool,
    /// Whether its Join announces that it understands a NotLeader (`"Redirect": true`).
    pub redirect: bool,
    /// The capabilities its Join announces (`"Caps"`): target jobs go only to a miner
    /// whose caps cover their mode; with `cancel`, its jobs carry ids and may be
    /// cancelled.
    pub caps: Caps,
}

/// One client request (each client process sends one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPlan {
    /// The client's name.
    pub client: String,
    /// The request's `"Id"` (the coordinator names requests by it alone, whichever client
    /// sends it): unique in the run, except that in one seed in four a client reuses
    /// another's for a different request (`share_an_id`).
    pub id: u64,
    /// Whether the client sends the `"Id"` (one given several addresses). One that does
    /// not is the reference client: it sends once, to the replica leading when it starts,
    /// is answered on that connection or not at all, and exits when it loses it.
    pub with_id: bool,
    /// The text.
    pub message: String,
    /// First nonce.
    pub lower: u64,
    /// Last nonce.
    pub upper: u64,
    /// When the client first sends it, in ms.
    pub at_ms: u64,
    /// What it asks for: the minimum, or (one request in three) the first nonce with a
    /// few leading zero bits, which a small range may lack (`"Found": false`).
    pub mode: Mode,
}

/// A run's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaCase {
    /// The seed everything was drawn from (and the run's own randomness).
    pub seed: u64,
    /// Replicas in the group (3 or 5).
    pub replicas: u64,
    /// Each replica's election timeout in ticks: distinct, drawn from the seed (see
    /// `bitcoin_core::replica::ReplicaConfig::election_tick`).
    pub election_ticks: Vec<usize>,
    /// Snapshot and compaction interval, in applied entries (the fewest, with a size
    /// trigger).
    pub snapshot_every: u64,
    /// The size trigger (`ReplicaConfig::snapshot_log_percent`): 0 in two seeds in three
    /// (a snapshot every `snapshot_every` entries, many snapshots), else 25 or 100.
    pub snapshot_log_percent: u64,
    /// Answered requests each replicated state remembers (few, in one seed in four: a
    /// resubmission may then find its answer forgotten and be searched again).
    pub max_answered: usize,
    /// Chance that a raft message is lost.
    pub loss: Prob,
    /// Extra delay of a raft message, uniform in `0..=jitter_ms` (reordering).
    pub jitter_ms: u64,
    /// Chance per tick that a running replica crashes (before the heal), and per `Persist`
    /// that it dies before that write.
    pub crash: Prob,
    /// Chance per tick that a miner or client drops its connection (before the heal): a
    /// miner leaves with its jobs and rejoins elsewhere; a client resubmits elsewhere.
    pub drop: Prob,
    /// How long a crashed replica stays down, in ms (at most).
    pub down_ms: u64,
    /// Partitions before the heal.
    pub partitions: Vec<PartitionPlan>,
    /// The requests.
    pub requests: Vec<RequestPlan>,
    /// The miners.
    pub miners: Vec<MinerPlan>,
    /// One-way latency of a client's or miner's connection, uniform in `1..=conn_ms` per
    /// connection (the connection itself is reliable and ordered: LSP's job).
    pub conn_ms: u64,
    /// How long a client, miner or replica takes to notice that the other end of a
    /// connection closed or died (LSP's loss detection), in ms.
    pub loss_ms: u64,
    /// When the network heals and crashed replicas return (all but `stay_down`).
    pub heal_ms: u64,
    /// A replica that stays down after the heal (a minority).
    pub stay_down: Option<u64>,
    /// Requests the leader's scheduler holds at most (`Config::max_requests`; the log
    /// holds as many unanswered ones): 1 to 3 in one seed in four, so that requests are
    /// refused, and Accepts race for the last places; the default otherwise.
    pub max_requests: usize,
    /// Planted bug.
    pub sabotage: Sabotage,
}

impl ReplicaCase {
    /// The case of seed `seed`.
    #[must_use]
    pub fn generate(seed: u64) -> ReplicaCase {
        let mut rng = Rng::new(seed ^ 0x0052_af70_5eed);
        let replicas = if rng.below(3) == 0 { 5 } else { 3 };
        // Distinct election ticks: a shuffled sample of 8..=8+3n in steps of 2+.
        let mut election_ticks: Vec<usize> = Vec::new();
        while election_ticks.len() < replicas as usize {
            let t = rng.range(6, 30) as usize;
            if !election_ticks.contains(&t) {
                election_ticks.push(t);
            }
        }
        let heal_ms = rng.range(1_000, 6_000);
        let mut partitions = Vec::new();
        for _ in 0..rng.below(4) {
            let from_ms = rng.below(heal_ms);
            let until_ms = (from_ms + rng.range(100, 2_000)).min(heal_ms);
            let size = rng.range(1, (replicas - 1) / 2);
            let mut cut = Vec::new();
            while (cut.len() as u64) < size {
                let r = rng.range(1, replicas);
                if !cut.contains(&r) {
                    cut.push(r);
                }
            }
            cut.sort_unstable();
            partitions.push(PartitionPlan {
                from_ms,
                until_ms,
                cut,
            });
        }
        let mut requests = Vec::new();
        for c in 0..rng.range(1, 6) {
            let lower = rng.below(1_000);
            requests.push(RequestPlan {
                client: format!("client{c}"),
                // Distinct low bits: unique in the run.
                id: (rng.below(1 << 40) << 3) | c,
                with_id: rng.below(5) != 0,
                message: format!("raft-{seed}-{c}"),
                lower,
                upper: lower + rng.below(1_500),
                at_ms: rng.below(heal_ms),
                mode: Mode::Minimum,
            });
        }
        let mut miners: Vec<MinerPlan> = (0..rng.range(1, 3))
            .map(|_| MinerPlan {
                at_ms: rng.below(heal_ms / 2),
                first: rng.range(1, replicas),
                speed: if rng.below(5) == 0 {
                    1
                } else {
                    rng.range(5, 60)
                },
                newest_first: rng.below(3) == 0,
                redirect: rng.below(4) != 0,
                caps: Caps::NONE,
            })
            .collect();
        draw_modes(seed, &mut requests, &mut miners);
        let mut case = ReplicaCase {
            seed,
            replicas,
            election_ticks,
            snapshot_every: rng.range(2, 20),
            loss: rng.maybe(20),
            jitter_ms: rng.below(3) * rng.range(1, 15),
            crash: rng.maybe(2),
            down_ms: rng.range(50, 1_500),
            partitions,
            requests,
            miners,
            conn_ms: rng.range(1, 10),
            max_answered: if rng.below(4) == 0 {
                rng.range(1, 3) as usize
            } else {
                100_000
            },
            drop: rng.maybe(2),
            loss_ms: rng.range(60, 600),
            heal_ms,
            stay_down: (rng.below(3) == 0).then(|| rng.range(1, replicas)),
            // Drawn last, so that the draws above stay what they were before it existed.
            max_requests: if rng.below(4) == 0 {
                rng.range(1, 3) as usize
            } else {
                Config::default().max_requests
            },
            sabotage: Sabotage::None,
            // Drawn last, so the other fields are what they were before it existed.
            snapshot_log_percent: match rng.below(6) {
                0 => 25,
                1 => 100,
                _ => 0,
            },
        };
        // Drawn after everything else, for the same reason.
        share_an_id(&mut rng, &mut case.requests);
        case
    }

    /// The same case with room for only `max` requests in the leader's scheduler (at
    /// least 1).
    #[must_use]
    pub fn with_max_requests(mut self, max: usize) -> ReplicaCase {
        self.max_requests = max.max(1);
        self
    }

    /// The same case with a planted bug.
    #[must_use]
    pub fn with_sabotage(mut self, sabotage: Sabotage) -> ReplicaCase {
        self.sabotage = sabotage;
        self
    }
}

/// Target mode and the miners' capabilities, from an Rng of their own: the other draws
/// stay what they were before target mode existed. One request in three is a target
/// request (2 to 10 zero bits, either algorithm). The first miner announces every
/// capability (so that every request can be searched); the others most, some only
/// `target` or none (such a miner must never be given a job it cannot take).
/// In one seed in four with two clients that send an `"Id"`: the last of them reuses an
/// earlier one's id for its own (other) request, as a buggy or hostile client would. The
/// group must then answer one of the two, the one whose Accept the log took, and refuse
/// the other for good (`CoordinatorStats::id_conflicts`), never answering it with the
/// other's answer.
fn share_an_id(rng: &mut Rng, requests: &mut [RequestPlan]) {
    let with_id: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].with_id)
        .collect();
    if with_id.len() < 2 || rng.below(4) != 0 {
        return;
    }
    let [earlier @ .., last] = with_id.as_slice() else {
        return;
    };
    let from = earlier[rng.below(earlier.len() as u64) as usize];
    let last = *last;
    requests[last].id = requests[from].id;
}

fn draw_modes(seed: u64, requests: &mut [RequestPlan], miners: &mut [MinerPlan]) {
    let mut rng = Rng::new(seed ^ 0x007a_26e7_cab5);
    for r in requests {
        if rng.below(3) == 0 {
            let zeros = Zeros::try_from(rng.range(2, 10));
            let algo = Algo::ALL[rng.below(2) as usize];
            if let Ok(zeros) = zeros {
                r.mode = Mode::Target { zeros, algo };
            }
        }
    }
    let no_cancel = Caps::NONE.with(Cap::Target).with(Cap::Sha256d);
    let sha256_only = Caps::NONE.with(Cap::Target);
    for (i, m) in miners.iter_mut().enumerate() {
        m.caps = if i == 0 {
            Caps::ALL
        } else {
            [Caps::ALL, Caps::ALL, no_cancel, sha256_only, Caps::NONE][rng.below(5) as usize]
        };
    }
}

impl fmt::Display for ReplicaCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {} replicas, election ticks {:?} ({TICK_MS} ms each), snapshot every {} entries (size trigger {} %), {} answers remembered",
            self.replicas, self.election_ticks, self.snapshot_every, self.snapshot_log_percent, self.max_answered
        )?;
        writeln!(
            f,
            "  loss {}, jitter {} ms, crash {} per tick, down up to {} ms, heal at {} ms, stay down {:?}",
            self.loss, self.jitter_ms, self.crash, self.down_ms, self.heal_ms, self.stay_down
        )?;
        for p in &self.partitions {
            writeln!(
                f,
                "  partition {:?} from {} to {} ms",
                p.cut, p.from_ms, p.until_ms
            )?;
        }
        writeln!(
            f,
            "  connections: latency 1..={} ms, loss detected in {} ms, dropped by their peer {} per tick",
            self.conn_ms, self.loss_ms, self.drop
        )?;
        for m in &self.miners {
            writeln!(
                f,
                "  miner from {} ms, first to replica {}, {} nonces/ms, newest first {}, redirect {}, caps {}",
                m.at_ms, m.first, m.speed, m.newest_first, m.redirect, m.caps
            )?;
        }
        for r in &self.requests {
            writeln!(
                f,
                "  request {}#{}{} {:?} {}..={} {} at {} ms",
                r.client,
                r.id,
                if r.with_id { "" } else { " (no Id)" },
                r.message,
                r.lower,
                r.upper,
                r.mode,
                r.at_ms
            )?;
        }
        if self.max_requests != Config::default().max_requests {
            writeln!(f, "  max requests {}", self.max_requests)?;
        }
        if self.sabotage != Sabotage::None {
            writeln!(f, "  sabotage {:?}", self.sabotage)?;
        }
        Ok(())
    }
}
