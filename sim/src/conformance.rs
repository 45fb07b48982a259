//! The runner of the 64 conformance scenarios ([`crate::scenario`]) in virtual time.
//!
//! [`run`] drives one scenario with one seed in a fresh [`World`]: it sets up the server and
//! clients, plays the mode's script (fault toggles, writes, closes), and checks the mode's
//! expected outcome — on top of the world's invariants, which hold after every step. Every
//! wait is bounded by the scenario's deadline in virtual time, so a scenario that does not
//! finish in time fails.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use lsp_core::{ConnId, Message, MsgType, Params, Timestamp};

use crate::net::{Addr, Role, Verdict};
use crate::rng::{Prob, Rng};
use crate::scenario::{IsnPolicy, Messages, Mode, Scenario};
use crate::world::{Echo, World};

/// What a passing run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passed {
    /// Virtual time the scenario took.
    pub elapsed: Duration,
    /// Simulation steps executed.
    pub steps: u64,
    /// The run's trace digest.
    pub digest: u64,
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// Virtual time since the scenario started.
    pub at: Duration,
    /// What went wrong.
    pub what: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {:?}: {}", self.at, self.what)
    }
}

impl std::error::Error for Failed {}

/// Runs `scenario` with `seed`; `verbose` prints the event trace.
pub fn run(scenario: &Scenario, seed: u64, verbose: bool) -> Result<Passed, Failed> {
    let mut world = World::new(seed);
    world.set_verbose(verbose);
    let mut driver = Driver::new(scenario, world);
    let result = driver.play();
    let at = driver.elapsed();
    let result = match (result, driver.world.check()) {
        (_, Err(v)) => Err(format!("invariant broken {v}")),
        (r, Ok(())) => r,
    };
    match result {
        Ok(()) if at > scenario.deadline => Err(Failed {
            at,
            what: format!("finished after the deadline of {:?}", scenario.deadline),
        }),
        Ok(()) => Ok(Passed {
            elapsed: at,
            steps: driver.world.steps(),
            digest: driver.world.digest(),
        }),
        Err(what) => Err(Failed { at, what }),
    }
}

type Step = Result<(), String>;

/// Fails with `what` unless `cond`.
fn ensure(cond: bool, what: impl FnOnce() -> String) -> Step {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// Scripted driving of one scenario.
struct Driver<'a> {
    s: &'a Scenario,
    world: World,
    app: Rng,
    clients: Vec<Addr>,
    counts: Vec<usize>,
    start: Timestamp,
    deadline: Timestamp,
}

impl<'a> Driver<'a> {
    fn new(s: &'a Scenario, mut world: World) -> Driver<'a> {
        let mut app = world.rng().fork();
        let counts = (0..s.clients)
            .map(|_| match s.messages {
                Messages::Exactly(n) => n as usize,
                Messages::UpTo(n) => app.range(1, u64::from(n)) as usize,
            })
            .collect();
        Driver {
            s,
            world,
            app,
            clients: Vec::new(),
            counts,
            start: Timestamp::ZERO,
            deadline: Timestamp::ZERO + s.deadline,
        }
    }

    fn params(&self) -> Params {
        self.s.params
    }

    fn epoch(&self) -> Duration {
        self.s.params.epoch()
    }

    fn elapsed(&self) -> Duration {
        self.world.now().saturating_duration_since(self.start)
    }

    /// A random JSON integer, as the reference tests send.
    fn value(&mut self) -> Vec<u8> {
        self.app.range(1000, 99_999_999).to_string().into_bytes()
    }

    fn play(&mut self) -> Step {
        match self.s.mode {
            Mode::Echo | Mode::EchoBeforeFirstEpoch | Mode::ServerSlowStart => self.echo(),
            Mode::MaxCapacity => self.max_capacity(),
            Mode::Scattered => self.scattered(),
            Mode::OutOfWindow => self.out_of_window(),
            Mode::MessageOrder => self.message_order(),
            Mode::ExpBackoff => self.exp_backoff(),
            Mode::ServerClose | Mode::ServerCloseConns | Mode::ClientClose => self.close(),
            Mode::ServerFastClose
            | Mode::ServerToClient
            | Mode::ClientToServer
            | Mode::RoundTrip => self.buffering(),
            Mode::BasicIsn => self.basic_isn(),
            Mode::CAckServer => self.cack_server(),
            Mode::CorruptedToServer
            | Mode::CorruptedToClient
            | Mode::VariableLengthToServer
            | Mode::VariableLengthToClient => self.integrity(),
        }
    }

    // ----- building blocks -------------------------------------------------------------

    fn start_server(&mut self, echo: Echo) -> Step {
        self.world
            .start_server(self.params(), echo)
            .map_err(|e| e.to_string())
    }

    fn add_clients(&mut self) -> Step {
        for _ in 0..self.s.clients {
            let isn = match self.s.isn {
                IsnPolicy::Zero => 0,
                IsnPolicy::Random => self.app.range(1, 256) as i64,
            };
            let addr = self
                .world
                .add_client(self.params(), isn)
                .map_err(|e| e.to_string())?;
            self.clients.push(addr);
        }
        Ok(())
    }

    /// Server (with `echo`) and clients, all connected.
    fn setup(&mut self, echo: Echo) -> Step {
        self.start_server(echo)?;
        self.add_clients()?;
        self.wait("every client connected", |w, d| {
            d.iter()
                .all(|&a| w.client(a).is_some_and(|l| l.conn.is_some()))
        })
    }

    /// Runs until `done` holds; fails at the deadline.
    /// `done` gets the world and the client addresses.
    fn wait(&mut self, what: &str, done: impl Fn(&World, &[Addr]) -> bool) -> Step {
        let limit = self.deadline;
        let clients = &self.clients;
        let reached = self.world.run_while(limit, |w| !done(w, clients));
        self.world
            .check()
            .map_err(|v| format!("invariant broken {v}"))?;
        ensure(reached, || format!("deadline passed before {what}"))
    }

    /// Runs for `d` (not past the deadline).
    fn pause(&mut self, d: Duration) -> Step {
        let until = (self.world.now() + d).min(self.deadline);
        self.world.run_until(until);
        self.world
            .check()
            .map_err(|v| format!("invariant broken {v}"))
    }

    fn conn(&self, client: Addr) -> Result<ConnId, String> {
        self.world
            .client(client)
            .and_then(|l| l.conn)
            .ok_or_else(|| format!("{client} is not connected"))
    }

    fn conns(&self) -> Result<Vec<ConnId>, String> {
        self.clients.iter().map(|&a| self.conn(a)).collect()
    }

    fn server_reads(w: &World, conn: ConnId) -> usize {
        w.server()
            .and_then(|s| s.conns.get(&conn))
            .map_or(0, |c| c.reads.len())
    }

    fn client_reads(w: &World, client: Addr) -> usize {
        w.client(client).map_or(0, |l| l.reads.len())
    }

    /// Each client writes `n` values (its own count when `None`).
    fn clients_write(&mut self, n: Option<usize>) -> Step {
        for i in 0..self.clients.len() {
            self.client_writes(i, n.unwrap_or(self.counts[i]))?;
        }
        Ok(())
    }

    /// Client `i` writes `count` fresh values.
    fn client_writes(&mut self, i: usize, count: usize) -> Step {
        for _ in 0..count {
            let v = self.value();
            self.world
                .client_write(self.clients[i], v)
                .map_err(|e| format!("{}: write failed: {e}", self.clients[i]))?;
        }
        Ok(())
    }

    /// The server writes `count` fresh values to `conn`.
    fn server_writes_to(&mut self, conn: ConnId, count: usize) -> Step {
        for _ in 0..count {
            let v = self.value();
            self.world
                .server_write(conn, v)
                .map_err(|e| format!("server: write to {conn} failed: {e}"))?;
        }
        Ok(())
    }

    /// The server writes `n` values to every client (each client's count when `None`).
    fn server_writes(&mut self, n: Option<usize>) -> Step {
        for i in 0..self.clients.len() {
            let conn = self.conn(self.clients[i])?;
            self.server_writes_to(conn, n.unwrap_or(self.counts[i]))?;
        }
        Ok(())
    }

    /// Waits until the server read `n(i)` from every client `i`.
    fn wait_server_reads(&mut self, what: &str, n: impl Fn(usize) -> usize) -> Step {
        let conns = self.conns()?;
        let want: Vec<usize> = (0..conns.len()).map(&n).collect();
        self.wait(what, |w, _| {
            conns
                .iter()
                .zip(&want)
                .all(|(&c, &k)| Driver::server_reads(w, c) >= k)
        })
    }

    /// Waits until every client `i` read `n(i)`.
    fn wait_client_reads(&mut self, what: &str, n: impl Fn(usize) -> usize) -> Step {
        let want: Vec<usize> = (0..self.clients.len()).map(&n).collect();
        self.wait(what, |w, d| {
            d.iter()
                .zip(&want)
                .all(|(&a, &k)| Driver::client_reads(w, a) >= k)
        })
    }

    /// Checks the server read exactly `n(i)` from every client `i`.
    fn expect_server_reads(&self, when: &str, n: impl Fn(usize) -> usize) -> Step {
        for (i, &a) in self.clients.iter().enumerate() {
            let got = Driver::server_reads(&self.world, self.conn(a)?);
            ensure(got == n(i), || {
                format!("{when}: server read {got} from {a}, expected {}", n(i))
            })?;
        }
        Ok(())
    }

    /// Checks every client `i` read exactly `n(i)`.
    fn expect_client_reads(&self, when: &str, n: impl Fn(usize) -> usize) -> Step {
        for (i, &a) in self.clients.iter().enumerate() {
            let got = Driver::client_reads(&self.world, a);
            ensure(got == n(i), || {
                format!("{when}: {a} read {got}, expected {}", n(i))
            })?;
        }
        Ok(())
    }

    fn write_drop(&mut self, role: Role, p: Prob) {
        self.world.net.faults.write_drop[role as usize] = p;
    }

    // ----- §1 echo, slow start ---------------------------------------------------------

    fn echo(&mut self) -> Step {
        let echo = match self.s.faults.server_sleep_ms {
            0 => Echo::Immediate,
            ms => Echo::Sleep {
                max: Duration::from_millis(u64::from(ms)),
            },
        };
        self.world.net.faults.delay = Prob::percent(self.s.faults.delay_percent);
        if self.s.mode == Mode::ServerSlowStart {
            self.add_clients()?;
            self.pause(self.epoch() * 3)?;
            self.start_server(echo)?;
            self.wait("every client connected", |w, d| {
                d.iter()
                    .all(|&a| w.client(a).is_some_and(|l| l.conn.is_some()))
            })?;
        } else {
            self.setup(echo)?;
        }
        let drop = Prob::percent(self.s.faults.write_drop_after_connect);
        self.world.net.faults.set_write_drop(drop);
        self.clients_write(None)?;
        let counts = self.counts.clone();
        self.wait("every echo read", |w, d| {
            d.iter()
                .zip(&counts)
                .all(|(&a, &n)| Driver::client_reads(w, a) >= n)
        })?;
        for &a in &self.clients {
            let life = self.world.client(a).ok_or("client vanished")?;
            ensure(life.reads == life.written, || {
                format!("{a}: echoes differ from writes")
            })?;
        }
        if self.s.mode == Mode::EchoBeforeFirstEpoch {
            let first_epoch = self.start + self.epoch();
            ensure(self.world.now() < first_epoch, || {
                format!("finished at {}, after the first epoch", self.world.now())
            })?;
        }
        Ok(())
    }

    // ----- §2 windows, back-off, ordering ----------------------------------------------

    fn max_capacity(&mut self) -> Step {
        self.setup(Echo::Off)?;
        let p = self.params();
        let cap = (p.window_size.min(p.max_unacked_messages)) as usize;
        let counts = self.counts.clone();
        // Clients stream; the server's Acks are all dropped.
        self.write_drop(Role::Server, Prob::ALWAYS);
        self.clients_write(None)?;
        self.pause(Duration::from_millis(50))?;
        self.expect_server_reads("acks blocked", |i| cap.min(counts[i]))?;
        self.write_drop(Role::Server, Prob::NEVER);
        self.wait_server_reads("every message read after unblocking", |i| counts[i])?;
        self.expect_server_reads("unblocked", |i| counts[i])?;
        // The mirror image: the server streams; the clients' Acks are dropped.
        self.write_drop(Role::Client, Prob::ALWAYS);
        self.server_writes(None)?;
        self.pause(Duration::from_millis(50))?;
        self.expect_client_reads("acks blocked", |i| cap.min(counts[i]))?;
        self.write_drop(Role::Client, Prob::NEVER);
        self.wait_client_reads("every message read after unblocking", |i| counts[i])?;
        self.expect_client_reads("unblocked", |i| counts[i])
    }

    fn scattered(&mut self) -> Step {
        self.setup(Echo::Off)?;
        let counts = self.counts.clone();
        let halves: Vec<usize> = counts.iter().map(|n| n / 2).collect();
        // Clients → server.
        self.write_drop(Role::Client, Prob::ALWAYS);
        for (i, &h) in halves.iter().enumerate() {
            self.client_writes(i, h)?;
        }
        self.pause(Duration::from_millis(100))?;
        self.write_drop(Role::Client, Prob::NEVER);
        for (i, &h) in halves.iter().enumerate() {
            self.client_writes(i, counts[i].saturating_sub(h))?;
        }
        self.pause(Duration::from_millis(10))?;
        self.expect_server_reads("first half missing", |i| {
            if halves[i] > 0 {
                0
            } else {
                counts[i]
            }
        })?;
        self.wait_server_reads("every message read", |i| counts[i])?;
        // Server → clients.
        let conns = self.conns()?;
        self.write_drop(Role::Server, Prob::ALWAYS);
        for (i, &h) in halves.iter().enumerate() {
            self.server_writes_to(conns[i], h)?;
        }
        self.pause(Duration::from_millis(100))?;
        self.write_drop(Role::Server, Prob::NEVER);
        for (i, &h) in halves.iter().enumerate() {
            self.server_writes_to(conns[i], counts[i].saturating_sub(h))?;
        }
        self.pause(Duration::from_millis(10))?;
        self.expect_client_reads("first half missing", |i| {
            if halves[i] > 0 {
                0
            } else {
                counts[i]
            }
        })?;
        self.wait_client_reads("every message read", |i| counts[i])
    }

    fn out_of_window(&mut self) -> Step {
        self.setup(Echo::Off)?;
        self.world.net.sniffer = Some(Vec::new());
        let n = self.counts[0];
        let q = n / 4;
        for (writer, reader) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let conns = self.conns()?;
            let write = |d: &mut Driver<'_>, count: usize| -> Step {
                let clients = d.clients.clone();
                for (&client, &conn) in clients.iter().zip(&conns) {
                    for _ in 0..count {
                        let v = d.value();
                        let r = match writer {
                            Role::Client => d.world.client_write(client, v),
                            Role::Server => d.world.server_write(conn, v),
                        };
                        r.map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            };
            let reads = |w: &World, d: &[Addr], i: usize| match reader {
                Role::Server => Driver::server_reads(w, conns[i]),
                Role::Client => Driver::client_reads(w, d[i]),
            };
            // First quarter lost; back-off grows for 2 s.
            self.write_drop(writer, Prob::ALWAYS);
            write(self, q)?;
            self.pause(Duration::from_secs(2))?;
            self.write_drop(writer, Prob::NEVER);
            // Second quarter delivered (held out of order).
            write(self, q)?;
            self.pause(Duration::from_millis(10))?;
            for i in 0..self.clients.len() {
                let got = reads(&self.world, &self.clients, i);
                ensure(got == 0, || {
                    format!("{writer:?}→{reader:?}: {got} read with the first quarter missing")
                })?;
            }
            // Acks blocked; the rest written: only the third quarter may go out.
            self.write_drop(reader, Prob::ALWAYS);
            let sniff_from = self.world.net.sniffer.as_ref().map_or(0, Vec::len);
            write(self, n - 2 * q)?;
            self.wait("three quarters read", |w, d| {
                (0..d.len()).all(|i| reads(w, d, i) >= 3 * q)
            })?;
            self.pause(self.epoch())?;
            for i in 0..self.clients.len() {
                let got = reads(&self.world, &self.clients, i);
                ensure(got == 3 * q, || {
                    format!(
                        "{writer:?}→{reader:?}: {got} read with acks blocked, expected {}",
                        3 * q
                    )
                })?;
            }
            let last_quarter_sent = self.world.net.sniffer.as_ref().map_or(0, |log| {
                log[sniff_from..]
                    .iter()
                    .filter(|r| r.from.role() == writer)
                    .filter_map(|r| r.message.as_ref())
                    .filter(|m| m.kind == MsgType::Data && m.seq_num > (3 * q) as i64)
                    .count()
            });
            ensure(last_quarter_sent == 0, || {
                format!("{writer:?}: {last_quarter_sent} transmissions of the last quarter with M messages unacknowledged")
            })?;
            self.write_drop(reader, Prob::NEVER);
            self.wait("every message read after unblocking", |w, d| {
                (0..d.len()).all(|i| reads(w, d, i) >= n)
            })?;
        }
        Ok(())
    }

    fn message_order(&mut self) -> Step {
        self.world.net.faults.delay = Prob::percent(self.s.faults.delay_percent);
        self.setup(Echo::Off)?;
        self.clients_write(None)?;
        let counts = self.counts.clone();
        self.wait_server_reads("every stream read", |i| counts[i])
    }

    fn exp_backoff(&mut self) -> Step {
        self.setup(Echo::Off)?;
        self.write_drop(Role::Server, Prob::ALWAYS);
        self.world.net.sniffer = Some(Vec::new());
        self.clients_write(None)?;
        self.pause(self.epoch() * 14)?;
        let sent = self.world.net.sniffer.as_ref().map_or(0, |log| {
            log.iter()
                .filter(|r| r.from.role() == Role::Client)
                .filter(|r| r.message.as_ref().is_some_and(|m| m.kind == MsgType::Data))
                .count()
        });
        let unit = self.params().window_size as usize * self.clients.len();
        ensure((4 * unit..=6 * unit).contains(&sent), || {
            format!(
                "{sent} Data transmissions in 14 epochs, expected {}..={} (ideal {})",
                4 * unit,
                6 * unit,
                5 * unit
            )
        })
    }

    // ----- §3 close ---------------------------------------------------------------------

    fn close(&mut self) -> Step {
        self.setup(Echo::Immediate)?;
        self.clients_write(None)?;
        let counts = self.counts.clone();
        self.wait_client_reads("every echo read", |i| counts[i])?;
        let conns = self.conns()?;
        match self.s.mode {
            Mode::ServerClose => {
                self.world
                    .server_close()
                    .map_err(|e| format!("server close: {e}"))?;
                self.wait("server close returned", |w, _| {
                    w.server().is_some_and(|s| s.closed.is_some())
                })?;
                let result = self.world.server().and_then(|s| s.closed.clone());
                ensure(result == Some(Ok(())), || {
                    format!("server close returned {result:?}")
                })?;
                for &c in &conns {
                    let v = b"1".to_vec();
                    ensure(self.world.server_write(c, v).is_err(), || {
                        "server write after close succeeded".into()
                    })?;
                }
                self.wait("every client's read failed", |w, d| {
                    d.iter().all(|&a| w.client(a).is_some_and(|l| l.lost))
                })?;
            }
            Mode::ServerCloseConns => {
                for &c in &conns {
                    self.world
                        .server_close_conn(c)
                        .map_err(|e| format!("close_conn({c}): {e}"))?;
                    ensure(self.world.server_close_conn(c).is_err(), || {
                        "second close_conn succeeded".into()
                    })?;
                    ensure(self.world.server_write(c, b"1".to_vec()).is_err(), || {
                        "write after close_conn succeeded".into()
                    })?;
                }
                self.wait("every client's read failed", |w, d| {
                    d.iter().all(|&a| w.client(a).is_some_and(|l| l.lost))
                })?;
            }
            _ => {
                for &a in &self.clients.clone() {
                    self.world
                        .client_close(a)
                        .map_err(|e| format!("{a} close: {e}"))?;
                }
                self.wait("every client closed", |w, d| {
                    d.iter()
                        .all(|&a| w.client(a).is_some_and(|l| l.closed.is_some()))
                })?;
                for &a in &self.clients.clone() {
                    let r = self.world.client(a).and_then(|l| l.closed.clone());
                    ensure(r == Some(Ok(())), || format!("{a} close returned {r:?}"))?;
                    ensure(self.world.client_write(a, b"1".to_vec()).is_err(), || {
                        format!("{a}: write after close succeeded")
                    })?;
                    ensure(self.world.client_close(a).is_err(), || {
                        format!("{a}: second close succeeded")
                    })?;
                }
                self.wait("a read error per client at the server", |w, _| {
                    conns.iter().all(|c| {
                        w.server()
                            .and_then(|s| s.conns.get(c))
                            .is_some_and(|v| v.lost)
                    })
                })?;
                self.world
                    .server_close()
                    .map_err(|e| format!("server close: {e}"))?;
                self.wait("server close returned", |w, _| {
                    w.server().is_some_and(|s| s.closed.is_some())
                })?;
                let v = b"1".to_vec();
                ensure(self.world.server_write(conns[0], v).is_err(), || {
                    "server write after close succeeded".into()
                })?;
                ensure(self.world.server_close().is_err(), || {
                    "second server close succeeded".into()
                })?;
            }
        }
        Ok(())
    }

    // ----- §4 buffering -----------------------------------------------------------------

    fn network(&mut self, on: bool) {
        let p = if on { Prob::NEVER } else { Prob::ALWAYS };
        self.world.net.faults.set_write_drop(p);
    }

    /// Turns the network on for at most 2 epochs, until `done`; then off again.
    fn on_until(&mut self, what: &str, done: impl Fn(&World, &[Addr]) -> bool) -> Step {
        self.network(true);
        let saved = self.deadline;
        self.deadline = saved.min(self.world.now() + self.epoch() * 2);
        let r = self.wait(what, done);
        self.deadline = saved;
        self.network(false);
        r.map_err(|e| format!("{e} (network on for 2 epochs)"))
    }

    fn buffering(&mut self) -> Step {
        self.setup(Echo::Off)?;
        let counts = self.counts.clone();
        let half_epoch = self.epoch() / 2;
        let conns = self.conns()?;
        let server_closed = |w: &World| w.server().is_some_and(|s| s.closed.is_some());
        let mode = self.s.mode;
        self.network(false);
        match mode {
            Mode::ServerFastClose | Mode::RoundTrip => {
                // Round 1, both directions while off; everything gets through when on.
                self.clients_write(None)?;
                self.server_writes(None)?;
                self.pause(half_epoch)?;
                self.on_until("both directions delivered", |w, d| {
                    d.iter().enumerate().all(|(i, &a)| {
                        Driver::client_reads(w, a) >= counts[i]
                            && Driver::server_reads(w, conns[i]) >= counts[i]
                    })
                })?;
                // Round 2: one side writes again and closes while off.
                if mode == Mode::ServerFastClose {
                    self.server_writes(None)?;
                    self.world.server_close().map_err(|e| e.to_string())?;
                    self.pause(half_epoch)?;
                    ensure(!server_closed(&self.world), || {
                        "server close returned while the network was off".into()
                    })?;
                    self.on_until("server close returned", |w, d| {
                        server_closed(w)
                            && d.iter()
                                .enumerate()
                                .all(|(i, &a)| Driver::client_reads(w, a) >= 2 * counts[i])
                    })?;
                } else {
                    self.clients_write(None)?;
                    for &a in &self.clients.clone() {
                        self.world.client_close(a).map_err(|e| e.to_string())?;
                    }
                    self.pause(half_epoch)?;
                    self.expect_no_client_closed()?;
                    self.on_until("every client close returned", |w, d| {
                        d.iter().enumerate().all(|(i, &a)| {
                            w.client(a).is_some_and(|l| l.closed.is_some())
                                && Driver::server_reads(w, conns[i]) >= 2 * counts[i]
                        })
                    })?;
                    self.world.server_close().map_err(|e| e.to_string())?;
                    ensure(server_closed(&self.world), || {
                        "server close with nothing pending did not return".into()
                    })?;
                }
            }
            Mode::ServerToClient => {
                self.server_writes(None)?;
                self.world.server_close().map_err(|e| e.to_string())?;
                self.pause(half_epoch)?;
                ensure(!server_closed(&self.world), || {
                    "server close returned while the network was off".into()
                })?;
                self.on_until("server close returned", |w, _| server_closed(w))?;
                self.expect_client_reads("after the server's close returned", |i| counts[i])?;
            }
            _ => {
                self.clients_write(None)?;
                for &a in &self.clients.clone() {
                    self.world.client_close(a).map_err(|e| e.to_string())?;
                }
                self.pause(half_epoch)?;
                self.expect_no_client_closed()?;
                self.on_until("every client close returned", |w, d| {
                    d.iter()
                        .all(|&a| w.client(a).is_some_and(|l| l.closed.is_some()))
                })?;
                self.expect_server_reads("after the clients' close returned", |i| counts[i])?;
            }
        }
        if let Some(Err(e)) = self.world.server().and_then(|s| s.closed.clone()) {
            return Err(format!("server close failed: {e}"));
        }
        for &a in &self.clients {
            if let Some(Some(Err(e))) = self.world.client(a).map(|l| l.closed.clone()) {
                return Err(format!("{a} close failed: {e}"));
            }
        }
        Ok(())
    }

    fn expect_no_client_closed(&self) -> Step {
        for &a in &self.clients {
            let closed = self.world.client(a).is_some_and(|l| l.closed.is_some());
            ensure(!closed, || {
                format!("{a}: close returned while the network was off")
            })?;
        }
        Ok(())
    }

    // ----- §5 sequence numbers and CAck -------------------------------------------------

    fn basic_isn(&mut self) -> Step {
        self.world.net.sniffer = Some(Vec::new());
        self.setup(Echo::Off)?;
        let now = self.world.now();
        for &a in &self.clients.clone() {
            let at = now + Duration::from_micros(self.app.below(1_000_000));
            let v = self.value();
            self.world.schedule_client_write(at, a, v);
        }
        let counts = self.counts.clone();
        self.wait_server_reads("every message read", |i| counts[i])?;
        self.pause(self.epoch())?;
        let log = self.world.net.sniffer.take().unwrap_or_default();
        let mut ids = std::collections::BTreeSet::new();
        for &a in &self.clients {
            let life = self.world.client(a).ok_or("client vanished")?;
            let (isn, id) = (life.isn, self.conn(a)?);
            ids.insert(id);
            let seen: Vec<(Addr, MsgType, i64, i64)> = log
                .iter()
                .filter(|r| r.from == a || r.to == a)
                .filter_map(|r| r.message.as_ref().map(|m| (r.from, m)))
                .filter(|(_, m)| {
                    m.kind != MsgType::Connect && !(m.kind == MsgType::Ack && m.seq_num == 0)
                })
                .take(3)
                .map(|(from, m)| (from, m.kind, m.conn_id, m.seq_num))
                .collect();
            let want = vec![
                (Addr::SERVER, MsgType::Ack, id.0, isn),
                (a, MsgType::Data, id.0, isn + 1),
                (Addr::SERVER, MsgType::Ack, id.0, isn + 1),
            ];
            ensure(seen == want, || {
                format!("{a}: datagrams {seen:?}, expected {want:?}")
            })?;
        }
        ensure(
            ids.len() == self.clients.len() && !ids.contains(&ConnId(0)),
            || {
                format!(
                    "{} distinct ids for {} clients",
                    ids.len(),
                    self.clients.len()
                )
            },
        )
    }

    fn cack_server(&mut self) -> Step {
        self.setup(Echo::Off)?;
        let mut last: BTreeMap<Addr, i64> = BTreeMap::new();
        for (i, &a) in self.clients.iter().enumerate() {
            let isn = self.world.client(a).map_or(0, |l| l.isn);
            last.insert(a, isn + self.counts[i] as i64);
        }
        let drop = Prob::percent(self.s.faults.middlebox_ack_drop);
        self.world.net.middlebox = Some(Box::new(
            move |from: Addr, to: Addr, d: &[u8], rng: &mut Rng| {
                if from != Addr::SERVER {
                    return Verdict::Pass;
                }
                let (Ok(m), Some(&last)) = (Message::decode(d), last.get(&to)) else {
                    return Verdict::Pass;
                };
                if m.kind != MsgType::Ack || m.seq_num == 0 {
                    Verdict::Pass
                } else if m.seq_num == last {
                    Verdict::Rewrite(Message::cack(m.conn_id, m.seq_num).encode())
                } else if m.seq_num < last && rng.chance(drop) {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                }
            },
        ));
        let now = self.world.now();
        for i in 0..self.clients.len() {
            let mut times: Vec<u64> = (0..self.counts[i])
                .map(|_| self.app.below(1_000_000))
                .collect();
            times.sort_unstable();
            for t in times {
                let v = self.value();
                self.world.schedule_client_write(
                    now + Duration::from_micros(t),
                    self.clients[i],
                    v,
                );
            }
        }
        self.pause(Duration::from_secs(1))?;
        self.pause(self.epoch() * 2)?;
        self.world.net.middlebox = None;
        self.world.net.sniffer = Some(Vec::new());
        self.pause(self.epoch() * 12)?;
        let data = self.world.net.sniffer.as_ref().map_or(0, |log| {
            log.iter()
                .filter(|r| r.message.as_ref().is_some_and(|m| m.kind == MsgType::Data))
                .count()
        });
        ensure(data == 0, || {
            format!("{data} Data datagrams sent in the 12 epochs after the CAck")
        })?;
        let counts = self.counts.clone();
        self.expect_server_reads("after sniffing", |i| counts[i])
    }

    // ----- §6 integrity -----------------------------------------------------------------

    fn integrity(&mut self) -> Step {
        self.setup(Echo::Off)?;
        let client = self.clients[0];
        let conn = self.conn(client)?;
        let to_server = matches!(
            self.s.mode,
            Mode::CorruptedToServer | Mode::VariableLengthToServer
        );
        let send = |d: &mut Driver<'_>| -> Step {
            let v = d.value();
            let r = if to_server {
                d.world.client_write(client, v)
            } else {
                d.world.server_write(conn, v)
            };
            r.map_err(|e| e.to_string())
        };
        let reads = move |w: &World| {
            if to_server {
                Driver::server_reads(w, conn)
            } else {
                Driver::client_reads(w, client)
            }
        };
        let phase = Duration::from_secs(2);
        send(self)?;
        self.wait("a clean message read", |w, _| reads(w) >= 1)?;
        let corrupted = matches!(
            self.s.mode,
            Mode::CorruptedToServer | Mode::CorruptedToClient
        );
        if corrupted {
            self.world.net.faults.corrupt = Prob::ALWAYS;
        } else {
            self.world.net.faults.lengthen = Prob::ALWAYS;
            send(self)?;
            self.wait("a lengthened message read", |w, _| reads(w) >= 2)?;
            self.world.net.faults.lengthen = Prob::NEVER;
            self.world.net.faults.shorten = Prob::ALWAYS;
        }
        let before = reads(&self.world);
        send(self)?;
        self.pause(phase)?;
        let after = reads(&self.world);
        ensure(after == before, || {
            format!(
                "a {} message was read",
                if corrupted { "corrupted" } else { "shortened" }
            )
        })
    }
}
