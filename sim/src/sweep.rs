//! Swarm testing: every seed draws its own [`Case`] — parameters, fault mix, partitions,
//! client crashes and restarts, workload — and [`run_case`] plays it to quiescence after the
//! network heals, with every invariant checked after every step and the liveness of the
//! whole system checked at the end. [`check_seed`] also runs the case a second time and
//! compares the trace digests.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use lsp_core::{Params, Timestamp};

use crate::net::{Addr, DelayBy, FaultMix, Faults, Partition, Role};
use crate::rng::{Prob, Rng};
use crate::world::{Echo, World};

/// One client's workload and fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPlan {
    /// When it starts connecting.
    pub start: Duration,
    /// Messages it writes (in its first life).
    pub messages: u32,
    /// When it writes the first one.
    pub first_write: Duration,
    /// Time between two writes.
    pub gap: Duration,
    /// Its first initial sequence number.
    pub isn: i64,
    /// It crashes at this time, if any.
    pub crash_at: Option<Duration>,
    /// It restarts this long after crashing, if at all.
    pub restart_after: Option<Duration>,
}

impl ClientPlan {
    /// Messages its second life (after a restart) writes.
    pub fn second_life_messages(&self) -> u32 {
        match self.restart_after {
            Some(_) => self.messages / 2,
            None => 0,
        }
    }
}

/// A link outage between the server and one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// The client (0-based).
    pub client: usize,
    /// When it starts.
    pub from: Duration,
    /// How long it lasts.
    pub len: Duration,
}

/// Everything one sweep run does, drawn from a seed by [`Case::generate`] (or made smaller
/// by [`crate::shrink`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Seeds the world: network draws, payload values, echo sleeps.
    pub seed: u64,
    /// Parameters of the clients.
    pub params: Params,
    /// Parameters of the server: the clients' `K` and `δ`, and often their `ω`, `M` and
    /// back-off cap too, but not always (docs/protocol.md §8: the two ends may differ).
    pub server_params: Params,
    /// The server sleeps up to this long before each echo.
    pub echo_sleep: Duration,
    /// The clients.
    pub clients: Vec<ClientPlan>,
    /// Faults in effect until [`Case::heal_at`].
    pub faults: Faults,
    /// Acks rewritten into CAcks (when that acknowledges nothing unreceived) until
    /// [`Case::heal_at`]; see [`World::cack_rewrite`].
    pub cack_rewrite: Prob,
    /// When the faults stop (the network is perfect afterwards).
    pub heal_at: Duration,
    /// Link outages.
    pub outages: Vec<Outage>,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Case {
    /// The case of sweep seed `seed`.
    pub fn generate(seed: u64) -> Case {
        let mut rng = Rng::new(seed ^ 0x5EED_CA5E_0000_0000);
        let epoch_millis = [20, 50, 100, 200, 500, 1000, 2000][rng.below(7) as usize];
        let params = Params {
            epoch_limit: rng.range(2, 8) as u32,
            epoch_millis,
            window_size: rng.range(1, 8) as u32,
            max_backoff_interval: rng.range(0, 4) as u32,
            max_unacked_messages: rng.range(1, 8) as u32,
        };
        let server_params = if rng.chance(Prob::percent(30)) {
            Params {
                window_size: rng.range(1, 8) as u32,
                max_backoff_interval: rng.range(0, 4) as u32,
                max_unacked_messages: rng.range(1, 8) as u32,
                ..params
            }
        } else {
            params
        };
        let epoch = ms(epoch_millis);
        let heal_at = epoch * rng.range(0, 8) as u32 + ms(rng.below(epoch_millis));
        let mut faults = Faults::draw(
            &mut rng,
            FaultMix {
                drop: 30,
                delay: 30,
                duplicate: 20,
                mangle: 10,
            },
        );
        // The protocol assumes no datagram outlives the loss timeout (TCP's MSL): a Connect
        // delayed past the server's loss of its connection opens a second connection for a
        // live client (see `Case::max_lifetime`). Delays and jitter stay below that bound.
        let lifetime = Case::max_lifetime(&params);
        if rng.chance(Prob::percent(50)) {
            faults.jitter = ms(rng.range(0, epoch_millis / 4)).min(lifetime / 2);
        }
        let longest = lifetime.saturating_sub(faults.jitter);
        faults.delay_by = if rng.chance(Prob::percent(50)) {
            DelayBy::Uniform {
                min: Duration::ZERO,
                max: longest,
            }
        } else {
            DelayBy::Fixed(ms(500).min(longest))
        };
        let span = heal_at.as_millis().max(1) as u64;
        let client_count = rng.range(1, 4) as usize;
        let clients = (0..client_count)
            .map(|_| {
                let start = if rng.chance(Prob::percent(50)) {
                    Duration::ZERO
                } else {
                    Duration::from_micros(rng.range(0, 2 * epoch_millis * 1000))
                };
                let crash_at = rng
                    .chance(Prob::percent(15))
                    .then(|| start + ms(rng.range(0, span + epoch_millis * 4)));
                let restart_after = (crash_at.is_some() && rng.chance(Prob::percent(50)))
                    .then(|| epoch * rng.range(0, 3 * u64::from(params.epoch_limit)) as u32);
                ClientPlan {
                    start,
                    messages: rng.range(0, 20) as u32,
                    first_write: start + ms(rng.range(0, span)),
                    gap: ms(rng.range(0, epoch_millis / 2)),
                    isn: rng.isn(),
                    crash_at,
                    restart_after,
                }
            })
            .collect();
        let outages = (0..rng.range(0, 2))
            .map(|_| Outage {
                client: rng.below(client_count as u64) as usize,
                from: ms(rng.range(0, span)),
                len: ms(rng.range(
                    epoch_millis / 2,
                    epoch_millis * (u64::from(params.epoch_limit) + 2),
                )),
            })
            .collect();
        let cack_rewrite = rng.maybe(50);
        let echo_sleep = if rng.chance(Prob::percent(25)) {
            ms(rng.range(1, epoch_millis / 4 + 1))
        } else {
            Duration::ZERO
        };
        Case {
            seed,
            params,
            server_params,
            echo_sleep,
            clients,
            faults,
            cack_rewrite,
            heal_at,
            outages,
        }
    }

    /// The isn of life `life` of a client whose first isn is `isn`: 2⁴⁰ apart modulo the
    /// valid domain `0 ..= MAX_ISN`, so that it stays valid and a stale datagram of an
    /// earlier life never lands in a later life's window.
    pub fn life_isn(isn: i64, life: usize) -> i64 {
        let domain = i128::from(lsp_core::MAX_ISN) + 1;
        let isn = (i128::from(isn) + (life as i128) * (1 << 40)).rem_euclid(domain);
        // In 0..=MAX_ISN by construction.
        i64::try_from(isn).unwrap_or(0)
    }

    /// The longest a datagram may live in the network with these parameters:
    /// `(K−1)·δ/2`. A Connect that arrives after the server declared its connection lost
    /// (at least `(K−1)·δ` after it was created, while the connect-ack took at most this
    /// long) would open a second connection for a client that is still alive, which the
    /// protocol cannot tell apart from a new client; with this bound it cannot happen.
    pub fn max_lifetime(params: &Params) -> Duration {
        params.epoch() * params.epoch_limit.saturating_sub(1) / 2
    }

    /// Clamps delays and jitter to [`Case::max_lifetime`] (after a change of parameters).
    pub fn clamp_to_lifetime(&mut self) {
        let lifetime = Case::max_lifetime(&self.params);
        self.faults.jitter = self.faults.jitter.min(lifetime / 2);
        let longest = lifetime.saturating_sub(self.faults.jitter);
        self.faults.delay_by = match self.faults.delay_by {
            DelayBy::Fixed(d) => DelayBy::Fixed(d.min(longest)),
            DelayBy::Uniform { min, max } => DelayBy::Uniform {
                min: min.min(longest),
                max: max.min(longest),
            },
        };
    }

    /// How long after healing the whole system must have finished.
    pub fn liveness_limit(&self) -> Duration {
        let epochs = 10 * self.params.epoch_limit + 40;
        self.params.epoch() * epochs
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(
            f,
            "  params: K={} δ={}ms ω={} M={} bo={}; echo sleep ≤ {:?}",
            p.epoch_limit,
            p.epoch_millis,
            p.window_size,
            p.max_unacked_messages,
            p.max_backoff_interval,
            self.echo_sleep
        )?;
        if self.server_params != self.params {
            let s = &self.server_params;
            writeln!(
                f,
                "  server params: ω={} M={} bo={}",
                s.window_size, s.max_unacked_messages, s.max_backoff_interval
            )?;
        }
        let x = &self.faults;
        writeln!(
            f,
            "  faults until {:?}: cack rewrite {}, read drop c/s {}/{}, write drop c/s {}/{}, delay {} by {:?}, dup {}, shorten {}, lengthen {}, corrupt {}, latency {:?} + jitter ≤ {:?}",
            self.heal_at,
            self.cack_rewrite,
            x.read_drop[Role::Client as usize],
            x.read_drop[Role::Server as usize],
            x.write_drop[Role::Client as usize],
            x.write_drop[Role::Server as usize],
            x.delay,
            x.delay_by,
            x.duplicate,
            x.shorten,
            x.lengthen,
            x.corrupt,
            x.latency,
            x.jitter
        )?;
        for o in &self.outages {
            writeln!(
                f,
                "  outage: client{} cut off from {:?} for {:?}",
                o.client + 1,
                o.from,
                o.len
            )?;
        }
        for (i, c) in self.clients.iter().enumerate() {
            write!(
                f,
                "  client{}: starts at {:?}, isn {}, {} messages from {:?} every {:?}",
                i + 1,
                c.start,
                c.isn,
                c.messages,
                c.first_write,
                c.gap
            )?;
            if let Some(at) = c.crash_at {
                write!(f, ", crashes at {at:?}")?;
                if let Some(after) = c.restart_after {
                    write!(f, ", restarts {after:?} later")?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A passing run's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunStats {
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Steps executed.
    pub steps: u64,
    /// Trace digest.
    pub digest: u64,
}

/// Why a case failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFailure {
    /// Virtual time of the failure.
    pub at: Timestamp,
    /// What went wrong.
    pub what: String,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.at, self.what)
    }
}

/// Runs `case` once (panics included as failures); `verbose` prints the trace.
pub fn run_case(case: &Case, verbose: bool) -> Result<RunStats, CaseFailure> {
    match catch_unwind(AssertUnwindSafe(|| play(case, verbose))) {
        Ok(r) => r,
        Err(panic) => Err(CaseFailure {
            at: Timestamp::ZERO,
            what: format!("panic: {}", crate::twice::panic_message(&*panic)),
        }),
    }
}

/// Runs sweep seed `seed` twice: fails if either run fails or the digests differ.
pub fn check_seed(seed: u64) -> Result<RunStats, CaseFailure> {
    let case = Case::generate(seed);
    crate::twice::twice(
        || run_case(&case, false),
        |o| o.digest,
        |what| CaseFailure {
            at: Timestamp::ZERO,
            what,
        },
    )
}

fn fail(world: &World, what: String) -> CaseFailure {
    CaseFailure {
        at: world.now(),
        what,
    }
}

fn play(case: &Case, verbose: bool) -> Result<RunStats, CaseFailure> {
    let mut world = World::new(case.seed);
    world.set_verbose(verbose);
    let zero = Timestamp::ZERO;
    let echo = if case.echo_sleep.is_zero() {
        Echo::Immediate
    } else {
        Echo::Sleep {
            max: case.echo_sleep,
        }
    };
    world.net.faults = case.faults;
    world.cack_rewrite = case.cack_rewrite;
    for o in &case.outages {
        world.net.partitions.push(Partition {
            client: Addr::client(o.client),
            from: zero + o.from,
            until: zero + o.from + o.len,
        });
    }
    world
        .start_server(case.server_params, echo)
        .map_err(|e| fail(&world, e.to_string()))?;
    let mut addrs = Vec::new();
    let mut last_write = Vec::new();
    for c in &case.clients {
        let addr = world
            .add_client_at(zero + c.start, case.params, Case::life_isn(c.isn, 0))
            .map_err(|e| fail(&world, e.to_string()))?;
        addrs.push(addr);
        let mut at = zero + c.first_write;
        for _ in 0..c.messages {
            let v = world.rng().range(0, 1 << 40).to_string().into_bytes();
            world.schedule_client_write(at, addr, v);
            at = at + c.gap;
        }
        if let Some(crash) = c.crash_at {
            world.schedule_crash(zero + crash, addr);
            if let Some(after) = c.restart_after {
                let restart = zero + crash + after;
                world.schedule_restart(restart, addr, Case::life_isn(c.isn, 1));
                // The second life writes the second half of the workload again.
                at = at.max(restart) + c.gap + Duration::from_millis(1);
                for _ in 0..c.second_life_messages() {
                    let v = world.rng().range(0, 1 << 40).to_string().into_bytes();
                    world.schedule_life_write(at, addr, 1, v);
                    at = at + c.gap;
                }
            }
        }
        last_write.push(at);
    }
    world.run_until(zero + case.heal_at);
    world
        .check()
        .map_err(|v| fail(&world, format!("invariant broken {v}")))?;
    world.net.faults = Faults::default();
    world.net.partitions.clear();
    world.cack_rewrite = Prob::NEVER;

    let pending_until: Vec<Timestamp> = case
        .clients
        .iter()
        .zip(&last_write)
        .map(|(c, &w)| {
            let crash = c.crash_at.map(|t| zero + t);
            let restart = c.crash_at.zip(c.restart_after).map(|(t, a)| zero + t + a);
            w.max(crash.unwrap_or(zero)).max(restart.unwrap_or(zero))
        })
        .collect();
    let limit = world
        .now()
        .max(*pending_until.iter().max().unwrap_or(&zero))
        + case.liveness_limit();
    let tick = case.params.epoch() / 2;
    let mut closing: Vec<usize> = vec![usize::MAX; addrs.len()];
    let mut server_closing = false;
    loop {
        let now = world.now();
        let mut all_done = true;
        for (i, &a) in addrs.iter().enumerate() {
            let lives = world.client_lives(a).len();
            let Some(life) = world.client(a) else {
                all_done = false; // not started yet
                continue;
            };
            let planned = match lives {
                1 => case.clients[i].messages,
                _ => case.clients[i].second_life_messages(),
            };
            let writes_done = now >= pending_until[i]
                && (life.written.len() == planned as usize || life.is_over());
            if !life.is_over() {
                all_done = false;
                let echoed = life.reads.len() >= life.written.len();
                if life.conn.is_some() && writes_done && echoed && closing[i] != lives {
                    closing[i] = lives;
                    world
                        .client_close(a)
                        .map_err(|e| fail(&world, format!("{a}: close refused: {e}")))?;
                }
            } else if now < pending_until[i] {
                all_done = false;
            }
        }
        let server_done = world.server().is_some_and(|s| s.closed.is_some());
        if all_done && !server_closing {
            server_closing = true;
            world
                .server_close()
                .map_err(|e| fail(&world, format!("server: close refused: {e}")))?;
            continue;
        }
        if all_done && server_done {
            break;
        }
        if now >= limit {
            return Err(fail(
                &world,
                format!(
                    "no progress: not finished {:?} after healing\n{}",
                    case.liveness_limit(),
                    summary(&world, &addrs)
                ),
            ));
        }
        world.run_until((now + tick).min(limit));
        world
            .check()
            .map_err(|v| fail(&world, format!("invariant broken {v}")))?;
    }
    // Everything finished: drain what is still in flight.
    world.run_while(limit, |w| !w.is_quiescent());
    world
        .check()
        .map_err(|v| fail(&world, format!("invariant broken {v}")))?;
    if !world.is_quiescent() {
        return Err(fail(
            &world,
            "events still pending after every endpoint finished".into(),
        ));
    }
    final_checks(&world, &addrs)?;
    Ok(RunStats {
        virtual_time: world.now().saturating_duration_since(zero),
        steps: world.steps(),
        digest: world.digest(),
    })
}

/// End-of-run checks: every life ended for a legitimate reason, and a cleanly closed life
/// had everything it wrote read by the server (unless the server lost it first).
fn final_checks(world: &World, addrs: &[Addr]) -> Result<(), CaseFailure> {
    let server = world
        .server()
        .ok_or_else(|| fail(world, "no server".into()))?;
    for &a in addrs {
        for (n, life) in world.client_lives(a).iter().enumerate() {
            let ended_ok =
                life.crashed || life.lost || life.connect_failed || life.closed == Some(Ok(()));
            if !ended_ok {
                return Err(fail(
                    world,
                    format!("{a} life {n} ended without a reason: {life:?}"),
                ));
            }
            if life.closed == Some(Ok(())) {
                if let Some(view) = life.conn.and_then(|c| server.conns.get(&c)) {
                    if !view.lost && view.reads.len() != life.written.len() {
                        return Err(fail(
                            world,
                            format!(
                                "{a} life {n} closed cleanly but the server read {} of {}",
                                view.reads.len(),
                                life.written.len()
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn summary(world: &World, addrs: &[Addr]) -> String {
    let mut out = String::new();
    for &a in addrs {
        if let Some(l) = world.client(a) {
            out.push_str(&format!(
                "  {a}: conn {:?}, wrote {}, read {}, lost {}, failed {}, closed {:?}, crashed {}\n",
                l.conn, l.written.len(), l.reads.len(), l.lost, l.connect_failed, l.closed, l.crashed
            ));
        }
    }
    if let Some(s) = world.server() {
        out.push_str(&format!(
            "  server: {} connections, closed {:?}",
            s.conns.len(),
            s.closed
        ));
    }
    out
}
