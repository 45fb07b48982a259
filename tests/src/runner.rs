//! The conformance scenarios of [`sim::scenario`] over real UDP, through the [`Proxy`].
//!
//! [`run`] sets up a proxy, a server and the scenario's clients on the runtimes a
//! [`Pairing`] picks, drives the scenario's mode, checks what the applications observe, and
//! fails if the scenario as a whole took longer than its deadline in wall time. Every wait
//! is bounded by that deadline, so a broken runtime fails a scenario instead of hanging it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lsp_core::{ConnId, Params};
use sim::scenario::{IsnPolicy, Messages, Mode, Scenario};

use crate::endpoint::{ClientRead, Runtime, ServerRead, TestClient, TestServer};
use crate::proxy::{Direction, Proxy, Sniffed, Verdict};
use crate::rng::Rng;
use lsp_core::{Message, MsgType};

/// Which runtimes a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// mio server, mio clients.
    Mio,
    /// smol server, smol clients.
    Smol,
    /// One runtime's server with the other's clients: mio server and smol clients for
    /// scenarios at even positions of the table, the reverse at odd ones.
    Mixed,
}

impl Pairing {
    /// The server's runtime for the scenario at `index` in the table.
    pub fn server(self, index: usize) -> Runtime {
        match self {
            Pairing::Mio => Runtime::Mio,
            Pairing::Smol => Runtime::Smol,
            Pairing::Mixed if index & 1 == 0 => Runtime::Mio,
            Pairing::Mixed => Runtime::Smol,
        }
    }

    /// The clients' runtime for the scenario at `index` in the table.
    pub fn clients(self, index: usize) -> Runtime {
        match (self, self.server(index)) {
            (Pairing::Mixed, Runtime::Mio) => Runtime::Smol,
            (Pairing::Mixed, Runtime::Smol) => Runtime::Mio,
            (_, server) => server,
        }
    }
}

/// Why a scenario failed.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

type Outcome = Result<(), Failure>;

/// A running server and its connected clients.
type Ends = (Arc<TestServer>, Vec<Arc<TestClient>>);

macro_rules! fail {
    ($($arg:tt)*) => { return Err(Failure(format!($($arg)*))) };
}

/// Runs `scenario` (at position `index` of the table) on `pairing` with fault decisions and
/// random values from `seed`, and reports how long it took.
pub fn run(
    scenario: &Scenario,
    index: usize,
    pairing: Pairing,
    seed: u64,
) -> Result<Duration, Failure> {
    let started = Instant::now();
    let mut ctx = Ctx::new(scenario, index, pairing, seed, started)?;
    let outcome = match scenario.mode {
        Mode::Echo | Mode::EchoBeforeFirstEpoch | Mode::MessageOrder => ctx.echo(),
        Mode::MaxCapacity => ctx.max_capacity(),
        Mode::Scattered => ctx.scattered(),
        Mode::ServerSlowStart => ctx.server_slow_start(),
        Mode::ServerClose => ctx.server_close(),
        Mode::ServerCloseConns => ctx.server_close_conns(),
        Mode::ClientClose => ctx.client_close(),
        Mode::CorruptedToServer => ctx.integrity(true, Tamper::Corrupt),
        Mode::CorruptedToClient => ctx.integrity(false, Tamper::Corrupt),
        Mode::VariableLengthToServer => ctx.integrity(true, Tamper::Length),
        Mode::VariableLengthToClient => ctx.integrity(false, Tamper::Length),
        Mode::BasicIsn => ctx.basic_isn(),
        Mode::CAckServer => ctx.cack_server(),
        Mode::ExpBackoff => ctx.exp_backoff(),
        Mode::ServerFastClose => ctx.buffering(Buffering::ServerFastClose),
        Mode::ServerToClient => ctx.buffering(Buffering::ServerToClient),
        Mode::ClientToServer => ctx.buffering(Buffering::ClientToServer),
        Mode::RoundTrip => ctx.buffering(Buffering::RoundTrip),
        Mode::OutOfWindow => ctx.out_of_window(),
    };
    let elapsed = started.elapsed();
    outcome.map_err(|Failure(why)| Failure(format!("{why} (after {elapsed:?})")))?;
    if elapsed > scenario.deadline {
        fail!("took {elapsed:?}, deadline {:?}", scenario.deadline);
    }
    Ok(elapsed)
}

/// Which integrity fault an integrity scenario switches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tamper {
    Corrupt,
    Length,
}

/// The four scripts of the buffering family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Buffering {
    /// Clients→server, then server→clients with the server closing while the network is off.
    ServerFastClose,
    /// Server→clients; the server closes while off; clients read after the close returned.
    ServerToClient,
    /// Clients→server; the clients close while off.
    ClientToServer,
    /// Both directions; then the clients close, then the server.
    RoundTrip,
}

/// One scenario's world: proxy, server, clients, random source, deadline.
struct Ctx {
    scenario: Scenario,
    index: usize,
    pairing: Pairing,
    rng: Rng,
    deadline: Instant,
    proxy: Proxy,
    server: Option<Arc<TestServer>>,
    clients: Vec<Arc<TestClient>>,
}

impl Ctx {
    fn new(
        scenario: &Scenario,
        index: usize,
        pairing: Pairing,
        seed: u64,
        started: Instant,
    ) -> Result<Ctx, Failure> {
        let proxy = Proxy::start(seed).map_err(|e| Failure(format!("proxy: {e}")))?;
        proxy.update_faults(|f| f.delay = scenario.faults.delay_percent);
        Ok(Ctx {
            scenario: *scenario,
            index,
            pairing,
            rng: Rng::new(seed.wrapping_add(1)),
            deadline: started + scenario.deadline,
            proxy,
            server: None,
            clients: Vec::new(),
        })
    }

    fn params(&self) -> Params {
        self.scenario.params
    }

    fn epoch(&self) -> Duration {
        Duration::from_millis(self.scenario.params.epoch_millis)
    }

    fn start_server(&mut self) -> Result<Arc<TestServer>, Failure> {
        let server = TestServer::start(self.pairing.server(self.index), self.params())
            .map_err(|e| Failure(format!("server: {e}")))?;
        self.proxy.set_server(server.addr());
        let server = Arc::new(server);
        self.server = Some(Arc::clone(&server));
        Ok(server)
    }

    fn client_isns(&mut self) -> Vec<i64> {
        (0..self.scenario.clients)
            .map(|_| match self.scenario.isn {
                IsnPolicy::Zero => 0,
                IsnPolicy::Random => self.rng.range(1, 256) as i64,
            })
            .collect()
    }

    fn connect_clients(&mut self) -> Result<Vec<Arc<TestClient>>, Failure> {
        let isns = self.client_isns();
        let runtime = self.pairing.clients(self.index);
        let clients = TestClient::connect_many(
            |_| runtime,
            self.proxy.addr(),
            isns.len(),
            |i| isns[i],
            self.params(),
        )
        .map_err(|e| Failure(format!("connect: {e}")))?;
        self.clients = clients.into_iter().map(Arc::new).collect();
        Ok(self.clients.clone())
    }

    /// Per-client message counts.
    fn counts(&mut self) -> Vec<usize> {
        (0..self.scenario.clients)
            .map(|_| match self.scenario.messages {
                Messages::Exactly(n) => n as usize,
                Messages::UpTo(n) => self.rng.range(1, u64::from(n)) as usize,
            })
            .collect()
    }

    /// `n` random JSON integers, as the scenarios write them.
    fn values(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| self.rng.range(0, 1 << 40).to_string().into_bytes())
            .collect()
    }

    /// [`setup`](Self::setup), then one round of echoes with every client; also returns
    /// the connections the echo server saw end meanwhile.
    fn setup_and_echo(&mut self) -> Result<(Ends, Vec<ConnId>), Failure> {
        let (server, clients) = self.setup()?;
        let echo = EchoServer::start(Arc::clone(&server), 0, 0);
        self.exchange_echoes(&clients)?;
        let gone = echo.stop();
        Ok(((server, clients), gone))
    }

    /// Standard setup: server up, clients connected, the scenario's write drop switched on.
    fn setup(&mut self) -> Result<Ends, Failure> {
        let server = self.start_server()?;
        let clients = self.connect_clients()?;
        let drop = self.scenario.faults.write_drop_after_connect;
        if drop > 0 {
            self.proxy.update_faults(|f| {
                f.client_write_drop = drop;
                f.server_write_drop = drop;
            });
        }
        Ok((server, clients))
    }

    /// Echo: every client writes its messages; the server echoes (optionally sleeping before
    /// each echo); every client must read its own messages back, in order.
    fn echo(&mut self) -> Outcome {
        let (server, clients) = self.setup()?;
        let echo = EchoServer::start(
            Arc::clone(&server),
            self.scenario.faults.server_sleep_ms,
            self.rng.next_u64(),
        );
        let result = self.exchange_echoes(&clients);
        echo.stop();
        result
    }

    /// Writes and checks one round of echoes for every client concurrently.
    fn exchange_echoes(&mut self, clients: &[Arc<TestClient>]) -> Outcome {
        let counts = self.counts();
        let streams: Vec<Vec<Vec<u8>>> = counts.iter().map(|&n| self.values(n)).collect();
        let deadline = self.deadline;
        let workers: Vec<_> = clients
            .iter()
            .zip(streams)
            .map(|(client, stream)| {
                let client = Arc::clone(client);
                thread::spawn(move || -> Outcome {
                    for m in &stream {
                        if let Err(e) = client.write(m.clone()) {
                            fail!("client {}: write: {e}", client.conn_id());
                        }
                    }
                    expect_client_stream(&client, &stream, deadline)
                })
            })
            .collect();
        join_all(workers)
    }

    /// Max-capacity: with the receiver's Acks blocked, exactly `min(ω, M)` messages per
    /// stream get through; unblocked, all do. Clients→server, then server→clients.
    fn max_capacity(&mut self) -> Outcome {
        let (server, clients) = self.setup()?;
        let p = self.params();
        let n = self.counts()[0];
        let cap = (p.window_size.min(p.max_unacked_messages) as usize).min(n);
        let beyond = (cap * clients.len()) as u64 + 1;
        // A sender that wrongly went beyond the capacity would have sent the extra message
        // together with the first ones: if none reaches the proxy within this long after
        // them, there is none (an absence can only be checked over some time; the wait ends
        // at once if one comes).
        let grace = Duration::from_millis(100);
        // Clients → server; the server's writes (its Acks) are lost.
        self.proxy.update_faults(|f| f.server_write_drop = 100);
        let before = self.proxy.data_written(Direction::ToServer);
        let streams: Vec<_> = clients.iter().map(|_| self.values(n)).collect();
        for (client, stream) in clients.iter().zip(&streams) {
            for m in stream {
                client
                    .write(m.clone())
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        let mut got = read_server_until(&server, self.deadline, |got| {
            clients
                .iter()
                .all(|c| got.get(&c.conn_id()).map_or(0, Vec::len) >= cap)
        });
        if self
            .proxy
            .wait_for_data(Direction::ToServer, before + beyond, Instant::now() + grace)
        {
            fail!("blocked acks: a client sent beyond the capacity of {cap}");
        }
        merge(
            &mut got,
            read_server_until(&server, Instant::now(), |_| false),
        );
        for client in &clients {
            let have = got.get(&client.conn_id()).map_or(0, Vec::len);
            if have != cap {
                fail!(
                    "blocked acks: server read {have} from {}, expected {cap}",
                    client.conn_id()
                );
            }
        }
        self.proxy.update_faults(|f| f.server_write_drop = 0);
        let want: BTreeMap<ConnId, Vec<Vec<u8>>> =
            clients.iter().map(|c| c.conn_id()).zip(streams).collect();
        let rest = read_server_until(&server, self.deadline, |got| {
            complete(got, &want, &got_prefix(&want, cap))
        });
        merge(&mut got, rest);
        check_streams(&got, &want)?;
        // Server → clients; the clients' writes (their Acks) are lost.
        self.proxy.update_faults(|f| f.client_write_drop = 100);
        let before = self.proxy.data_written(Direction::ToClient);
        let streams: Vec<_> = clients.iter().map(|_| self.values(n)).collect();
        for (client, stream) in clients.iter().zip(&streams) {
            for m in stream {
                server
                    .write(client.conn_id(), m.clone())
                    .map_err(|e| Failure(format!("server write: {e}")))?;
            }
        }
        let mut firsts = Vec::new();
        let mut haves = Vec::new();
        for client in &clients {
            let mut have = Vec::new();
            while have.len() < cap {
                match client.next_by(self.deadline) {
                    Some(ClientRead::Message(m)) => have.push(m),
                    _ => break,
                }
            }
            haves.push(have);
        }
        if self
            .proxy
            .wait_for_data(Direction::ToClient, before + beyond, Instant::now() + grace)
        {
            fail!("blocked acks: the server sent beyond the capacity of {cap}");
        }
        for (client, mut have) in clients.iter().zip(haves) {
            // Nothing beyond the capacity may have been sent.
            if let Some(ClientRead::Message(m)) = client.next(Duration::ZERO) {
                have.push(m);
            }
            if have.len() != cap {
                fail!(
                    "blocked acks: client {} read {}, expected {cap}",
                    client.conn_id(),
                    have.len()
                );
            }
            firsts.push(have);
        }
        self.proxy.update_faults(|f| f.client_write_drop = 0);
        let deadline = self.deadline;
        for ((client, stream), first) in clients.iter().zip(&streams).zip(firsts) {
            if first[..] != stream[..cap] {
                fail!("client {}: wrong first messages", client.conn_id());
            }
            expect_client_stream(client, &stream[cap..], deadline)?;
        }
        Ok(())
    }

    /// Scattered: the first half of each stream is lost, the second half delivered; after
    /// retransmission every message is read in order. Both directions.
    fn scattered(&mut self) -> Outcome {
        let (server, clients) = self.setup()?;
        let n = self.counts()[0];
        let half = n / 2;
        // What the window lets each sender transmit at once of the first half.
        let p = self.params();
        let at_once = (p.window_size.min(p.max_unacked_messages) as usize).min(half);
        let first_half = (at_once * clients.len()) as u64;
        // Clients → server.
        let streams: Vec<_> = clients.iter().map(|_| self.values(n)).collect();
        self.proxy.update_faults(|f| f.client_write_drop = 100);
        let before = self.proxy.data_written(Direction::ToServer);
        for (client, stream) in clients.iter().zip(&streams) {
            for m in &stream[..half] {
                client
                    .write(m.clone())
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        // Wait until the proxy has seen (and lost) the first half.
        if !self
            .proxy
            .wait_for_data(Direction::ToServer, before + first_half, self.deadline)
        {
            fail!("the clients' first half never reached the proxy");
        }
        self.proxy.update_faults(|f| f.client_write_drop = 0);
        for (client, stream) in clients.iter().zip(&streams) {
            for m in &stream[half..] {
                client
                    .write(m.clone())
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        let want: BTreeMap<ConnId, Vec<Vec<u8>>> =
            clients.iter().map(|c| c.conn_id()).zip(streams).collect();
        let got = read_server_until(&server, self.deadline, |got| {
            complete(got, &want, &BTreeMap::new())
        });
        check_streams(&got, &want)?;
        // Server → clients.
        let streams: Vec<_> = clients.iter().map(|_| self.values(n)).collect();
        self.proxy.update_faults(|f| f.server_write_drop = 100);
        let before = self.proxy.data_written(Direction::ToClient);
        for (client, stream) in clients.iter().zip(&streams) {
            for m in &stream[..half] {
                server
                    .write(client.conn_id(), m.clone())
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        if !self
            .proxy
            .wait_for_data(Direction::ToClient, before + first_half, self.deadline)
        {
            fail!("the server's first half never reached the proxy");
        }
        self.proxy.update_faults(|f| f.server_write_drop = 0);
        for (client, stream) in clients.iter().zip(&streams) {
            for m in &stream[half..] {
                server
                    .write(client.conn_id(), m.clone())
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        for (client, stream) in clients.iter().zip(&streams) {
            expect_client_stream(client, stream, self.deadline)?;
        }
        Ok(())
    }

    /// The server starts three epochs after the clients begin connecting; then echo.
    fn server_slow_start(&mut self) -> Outcome {
        let isns = self.client_isns();
        let runtime = self.pairing.clients(self.index);
        let (addr, params) = (self.proxy.addr(), self.params());
        let connecting = thread::spawn(move || {
            TestClient::connect_many(|_| runtime, addr, isns.len(), |i| isns[i], params)
        });
        thread::sleep(self.epoch() * 3);
        let server = self.start_server()?;
        let clients = connecting
            .join()
            .map_err(|_| Failure("connect panicked".into()))?
            .map_err(|e| Failure(format!("connect: {e}")))?;
        self.clients = clients.into_iter().map(Arc::new).collect();
        let clients = self.clients.clone();
        let echo = EchoServer::start(server, 0, 0);
        let result = self.exchange_echoes(&clients);
        echo.stop();
        result
    }

    /// Echo, then the server closes: every client's next read fails; the server's reads and
    /// writes fail.
    fn server_close(&mut self) -> Outcome {
        let ((server, clients), _) = self.setup_and_echo()?;
        if let Err(e) = server.close() {
            fail!("server close: {e}");
        }
        for client in &clients {
            match client.next_by(self.deadline) {
                Some(ClientRead::Failed) => {}
                other => fail!("client {} after server close: {other:?}", client.conn_id()),
            }
        }
        match server.next(Duration::ZERO) {
            Some(ServerRead::Closed) | None => {}
            Some(other) => fail!("server read after close: {other:?}"),
        }
        if server.write(clients[0].conn_id(), b"1".to_vec()).is_ok() {
            fail!("server write after close succeeded");
        }
        Ok(())
    }

    /// Echo, then `close_conn` on every client: each client's next read fails, and the
    /// server reports each closed connection exactly once.
    fn server_close_conns(&mut self) -> Outcome {
        let ((server, clients), gone) = self.setup_and_echo()?;
        if !gone.is_empty() {
            fail!("connections gone during the echo: {gone:?}");
        }
        for client in &clients {
            if let Err(e) = server.close_conn(client.conn_id()) {
                fail!("close_conn {}: {e}", client.conn_id());
            }
        }
        for client in &clients {
            match client.next_by(self.deadline) {
                Some(ClientRead::Failed) => {}
                other => fail!("client {} after close_conn: {other:?}", client.conn_id()),
            }
        }
        let mut reported = Vec::new();
        while let Some(read) = server.next(Duration::from_millis(20)) {
            match read {
                ServerRead::Gone(c) => reported.push(c),
                other => fail!("server read after close_conn: {other:?}"),
            }
        }
        reported.sort();
        let mut want: Vec<ConnId> = clients.iter().map(|c| c.conn_id()).collect();
        want.sort();
        if reported != want {
            fail!("closed connections reported {reported:?}, expected {want:?}");
        }
        Ok(())
    }

    /// Echo, then the clients close: the server reports an error per client; then it closes
    /// and later calls fail.
    fn client_close(&mut self) -> Outcome {
        let ((server, clients), mut gone) = self.setup_and_echo()?;
        for client in &clients {
            if let Err(e) = client.close() {
                fail!("client {} close: {e}", client.conn_id());
            }
            if client.write(b"1".to_vec()).is_ok() {
                fail!("client write after close succeeded");
            }
        }
        while gone.len() < clients.len() {
            match server.next_by(self.deadline) {
                Some(ServerRead::Gone(c)) => gone.push(c),
                other => fail!("server read while clients close: {other:?}"),
            }
        }
        gone.sort();
        let mut want: Vec<ConnId> = clients.iter().map(|c| c.conn_id()).collect();
        want.sort();
        if gone != want {
            fail!("lost connections reported {gone:?}, expected {want:?}");
        }
        if let Err(e) = server.close() {
            fail!("server close: {e}");
        }
        if server.write(clients[0].conn_id(), b"1".to_vec()).is_ok() {
            fail!("server write after close succeeded");
        }
        match server.next(Duration::from_millis(100)) {
            Some(ServerRead::Closed) => Ok(()),
            other => fail!("server read after close: {other:?}"),
        }
    }

    /// Integrity: a clean message arrives; then, for `Corrupt`, a corrupted one never
    /// arrives within 2 s; for `Length`, a lengthened one arrives at its original length
    /// and a shortened one never arrives within 2 s. Towards the server or the client.
    fn integrity(&mut self, to_server: bool, tamper: Tamper) -> Outcome {
        let (server, clients) = self.setup()?;
        let client = Arc::clone(&clients[0]);
        let phase = Duration::from_secs(2);
        let send = |m: &[u8]| -> Outcome {
            let sent = if to_server {
                client.write(m.to_vec())
            } else {
                server.write(client.conn_id(), m.to_vec())
            };
            sent.map_err(|e| Failure(format!("write: {e}")))
        };
        let receive = |within: Duration| -> Option<Vec<u8>> {
            if to_server {
                match server.next(within) {
                    Some(ServerRead::Message(_, m)) => Some(m),
                    _ => None,
                }
            } else {
                match client.next(within) {
                    Some(ClientRead::Message(m)) => Some(m),
                    _ => None,
                }
            }
        };
        let values = self.values(3);
        send(&values[0])?;
        if receive(phase).as_deref() != Some(&values[0][..]) {
            fail!("the clean message did not arrive intact");
        }
        if tamper == Tamper::Length {
            self.proxy.update_faults(|f| f.lengthen = 100);
            send(&values[1])?;
            if receive(phase).as_deref() != Some(&values[1][..]) {
                fail!("the lengthened message did not arrive at its original length");
            }
            self.proxy.update_faults(|f| {
                f.lengthen = 0;
                f.shorten = 100;
            });
        } else {
            self.proxy.update_faults(|f| f.corrupt = true);
        }
        send(&values[2])?;
        if let Some(m) = receive(phase) {
            fail!(
                "a tampered message arrived: {:?}",
                String::from_utf8_lossy(&m)
            );
        }
        Ok(())
    }
}

impl Ctx {
    /// basic-isn: every client writes one message; per connection the non-heartbeat
    /// datagrams carrying its id start `Ack(isn)`, `Data(isn+1)`, `Ack(isn+1)`; the ids are
    /// distinct and non-zero.
    fn basic_isn(&mut self) -> Outcome {
        self.proxy.set_sniffing(true);
        let (server, clients) = self.setup()?;
        for client in &clients {
            client
                .write(self.rng.range(0, 1 << 40).to_string().into_bytes())
                .map_err(|e| Failure(format!("write: {e}")))?;
        }
        let got = read_server_until(&server, self.deadline, |got| {
            got.len() == clients.len() && got.values().all(|m| !m.is_empty())
        });
        if got.len() != clients.len() {
            fail!(
                "server read from {} of {} clients",
                got.len(),
                clients.len()
            );
        }
        // Let the last Acks through the proxy before reading the log.
        thread::sleep(Duration::from_millis(100));
        let log = self.proxy.take_log();
        let mut links: BTreeMap<usize, Vec<Message>> = BTreeMap::new();
        for Sniffed { link, message, .. } in log {
            if let Some(m) = message {
                links.entry(link).or_default().push(m);
            }
        }
        let mut ids = Vec::new();
        for (link, messages) in &links {
            let Some(isn) = messages
                .iter()
                .find(|m| m.kind == MsgType::Connect)
                .map(|m| m.seq_num)
            else {
                fail!("link {link}: no Connect seen");
            };
            let Some(id) = messages
                .iter()
                .find(|m| m.kind == MsgType::Ack && m.seq_num == isn)
                .map(|m| m.conn_id)
            else {
                fail!("link {link}: no connect-ack seen");
            };
            let shape: Vec<(MsgType, i64)> = messages
                .iter()
                .filter(|m| m.conn_id == id && !(m.kind == MsgType::Ack && m.seq_num == 0))
                .map(|m| (m.kind, m.seq_num))
                .take(3)
                .collect();
            let want = [
                (MsgType::Ack, isn),
                (MsgType::Data, isn + 1),
                (MsgType::Ack, isn + 1),
            ];
            if shape != want {
                fail!("link {link} (id {id}, isn {isn}): datagrams {shape:?}, expected {want:?}");
            }
            ids.push(id);
        }
        ids.sort();
        ids.dedup();
        if ids.len() != clients.len() || ids.contains(&0) {
            fail!(
                "{} distinct ids for {} clients: {ids:?}",
                ids.len(),
                clients.len()
            );
        }
        Ok(())
    }

    /// cack-server: a middlebox drops the server's Acks below each connection's last
    /// sequence number (with the scenario's probability) and turns the last one into a
    /// CAck; after it has stayed two epochs, twelve epochs of sniffing show no Data at all.
    fn cack_server(&mut self) -> Outcome {
        let (_server, clients) = self.setup()?;
        let counts = self.counts();
        let writes: BTreeMap<i64, i64> = clients
            .iter()
            .zip(&counts)
            .map(|(client, &n)| (client.conn_id().0, n as i64))
            .collect();
        let drop_percent = self.scenario.faults.middlebox_ack_drop;
        let mut rng = Rng::new(self.rng.next_u64());
        let firsts: Arc<std::sync::Mutex<BTreeMap<i64, i64>>> = Arc::default();
        let seen = Arc::clone(&firsts);
        self.proxy.set_middlebox(Some(Box::new(move |d: &Sniffed| {
            let Some(m) = &d.message else {
                return Verdict::Pass;
            };
            let mut firsts = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if d.direction == Direction::ToServer && m.kind == MsgType::Data {
                firsts.entry(m.conn_id).or_insert(m.seq_num);
                return Verdict::Pass;
            }
            if d.direction != Direction::ToClient || m.kind != MsgType::Ack || m.seq_num == 0 {
                return Verdict::Pass;
            }
            let (Some(&first), Some(&count)) = (firsts.get(&m.conn_id), writes.get(&m.conn_id))
            else {
                return Verdict::Pass;
            };
            let final_seq = first + count - 1;
            if m.seq_num == final_seq {
                Verdict::Replace(Message::cack(m.conn_id, m.seq_num))
            } else if m.seq_num < final_seq && rng.chance(drop_percent) {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        })));
        for (client, &n) in clients.iter().zip(&counts) {
            for v in self.values(n) {
                client
                    .write(v)
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        thread::sleep(self.epoch() * 2);
        self.proxy.set_middlebox(None);
        self.proxy.set_sniffing(true);
        thread::sleep(self.epoch() * 12);
        let data = self
            .proxy
            .take_log()
            .iter()
            .filter(|d| d.message.as_ref().is_some_and(|m| m.kind == MsgType::Data))
            .count();
        if data != 0 {
            fail!("{data} Data datagrams sent after the CAck");
        }
        Ok(())
    }

    /// exp-backoff: the server drops all its writes while the clients stream; over 14
    /// epochs the clients' Data transmissions number `[4, 6] × ω × clients`.
    fn exp_backoff(&mut self) -> Outcome {
        let (_server, clients) = self.setup()?;
        let n = self.counts()[0];
        self.proxy.update_faults(|f| f.server_write_drop = 100);
        self.proxy.set_sniffing(true);
        for client in &clients {
            for v in self.values(n) {
                client
                    .write(v)
                    .map_err(|e| Failure(format!("write: {e}")))?;
            }
        }
        // 14 epochs and a half: retransmissions at epochs 1, 3, 6 and 11 are in, the one
        // at 16 is not.
        thread::sleep(self.epoch() * 29 / 2);
        let data = self
            .proxy
            .take_log()
            .iter()
            .filter(|d| {
                d.direction == Direction::ToServer
                    && d.message.as_ref().is_some_and(|m| m.kind == MsgType::Data)
            })
            .count();
        let unit = (self.params().window_size as usize).min(n) * clients.len();
        if data < 4 * unit || data > 6 * unit {
            fail!(
                "{data} Data transmissions, expected {}..={}",
                4 * unit,
                6 * unit
            );
        }
        Ok(())
    }
}

/// Streams per connection, as written.
type Streams = BTreeMap<ConnId, Vec<Vec<u8>>>;

impl Ctx {
    /// Network off: every datagram written on either side is lost.
    fn network_off(&self) {
        self.proxy.update_faults(|f| {
            f.client_write_drop = 100;
            f.server_write_drop = 100;
        });
    }

    fn network_on(&self) {
        self.proxy.update_faults(|f| {
            f.client_write_drop = 0;
            f.server_write_drop = 0;
        });
    }

    /// The network comes on for two epochs, then goes off again.
    fn network_pulse(&self) {
        thread::sleep(Duration::from_millis(20));
        self.network_on();
        thread::sleep(self.epoch() * 2);
        self.network_off();
    }

    fn clients_write(&mut self, clients: &[Arc<TestClient>]) -> Result<Streams, Failure> {
        let n = self.counts()[0];
        let mut streams = Streams::new();
        for client in clients {
            let stream = self.values(n);
            for m in &stream {
                client
                    .write(m.clone())
                    .map_err(|e| Failure(format!("client write: {e}")))?;
            }
            streams.insert(client.conn_id(), stream);
        }
        Ok(streams)
    }

    fn server_writes(
        &mut self,
        server: &TestServer,
        clients: &[Arc<TestClient>],
    ) -> Result<Streams, Failure> {
        let n = self.counts()[0];
        let mut streams = Streams::new();
        for client in clients {
            let stream = self.values(n);
            for m in &stream {
                server
                    .write(client.conn_id(), m.clone())
                    .map_err(|e| Failure(format!("server write: {e}")))?;
            }
            streams.insert(client.conn_id(), stream);
        }
        Ok(streams)
    }

    fn server_reads(&self, server: &TestServer, want: &Streams) -> Outcome {
        let got = read_server_until(server, self.deadline, |got| {
            complete(got, want, &BTreeMap::new())
        });
        check_streams(&got, want)
    }

    fn clients_read(&self, clients: &[Arc<TestClient>], want: &Streams) -> Outcome {
        for client in clients {
            let stream = want.get(&client.conn_id()).map_or(&[][..], Vec::as_slice);
            expect_client_stream(client, stream, self.deadline)?;
        }
        Ok(())
    }

    /// The buffering family: writers write while the network is off; it comes on for two
    /// epochs and goes off again; readers then find every message, in order. "Fast" closes
    /// are called while the network is off and must wait for it.
    fn buffering(&mut self, script: Buffering) -> Outcome {
        let (server, clients) = self.setup()?;
        match script {
            Buffering::ServerFastClose => {
                self.network_off();
                let up = self.clients_write(&clients)?;
                self.network_pulse();
                self.server_reads(&server, &up)?;
                let down = self.server_writes(&server, &clients)?;
                let closing = server.close_in_background();
                self.network_pulse();
                self.network_on();
                expect_closed(&closing, self.deadline, "server")?;
                self.clients_read(&clients, &down)
            }
            Buffering::ServerToClient => {
                self.network_off();
                let down = self.server_writes(&server, &clients)?;
                let closing = server.close_in_background();
                self.network_pulse();
                self.network_on();
                expect_closed(&closing, self.deadline, "server")?;
                self.clients_read(&clients, &down)
            }
            Buffering::ClientToServer => {
                self.network_off();
                let up = self.clients_write(&clients)?;
                let closing: Vec<_> = clients.iter().map(|c| c.close_in_background()).collect();
                self.network_pulse();
                self.network_on();
                for c in &closing {
                    expect_closed(c, self.deadline, "client")?;
                }
                self.server_reads(&server, &up)
            }
            Buffering::RoundTrip => {
                self.network_off();
                let up = self.clients_write(&clients)?;
                let down = self.server_writes(&server, &clients)?;
                self.network_pulse();
                self.server_reads(&server, &up)?;
                self.clients_read(&clients, &down)?;
                self.network_on();
                for client in &clients {
                    if let Err(e) = client.close() {
                        fail!("client {} close: {e}", client.conn_id());
                    }
                }
                if let Err(e) = server.close() {
                    fail!("server close: {e}");
                }
                Ok(())
            }
        }
    }
}

impl Ctx {
    /// Waits until the sniffer has seen `count` more datagrams matching `wanted` (the log is
    /// consumed); false if the deadline passed first.
    fn wait_sniffed(&self, count: usize, wanted: impl Fn(&Sniffed) -> bool) -> bool {
        let mut seen = 0;
        loop {
            seen += self.proxy.take_log().iter().filter(|d| wanted(d)).count();
            if seen >= count {
                return true;
            }
            if Instant::now() >= self.deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// out-of-window, clients→server and then mirrored.
    fn out_of_window(&mut self) -> Outcome {
        let (server, clients) = self.setup()?;
        self.proxy.set_sniffing(true);
        self.out_of_window_one_way(&server, &clients, true)?;
        self.out_of_window_one_way(&server, &clients, false)
    }

    /// The first quarter is written while the writer drops everything; once it has been
    /// retransmitted (and dropped) once, so its back-off has grown, the second quarter is
    /// delivered and acknowledged; then the receiver's Acks are blocked and the rest is
    /// written: the receiver gets exactly three quarters and the last quarter is never sent
    /// (the first and third fill `M`). Acks unblocked, the rest arrives.
    fn out_of_window_one_way(
        &mut self,
        server: &TestServer,
        clients: &[Arc<TestClient>],
        to_server: bool,
    ) -> Outcome {
        let n = self.counts()[0];
        let q = n / 4;
        let k = clients.len();
        let streams: Streams = clients
            .iter()
            .map(|c| (c.conn_id(), self.values(n)))
            .collect();
        let data_dir = if to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let ack_dir = if to_server {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        let is = move |d: &Sniffed, dir: Direction, kind: MsgType| {
            d.direction == dir
                && d.message
                    .as_ref()
                    .is_some_and(|m| m.kind == kind && m.seq_num != 0)
        };
        let set_writer_drop = |p: u32| {
            self.proxy.update_faults(|f| {
                if to_server {
                    f.client_write_drop = p
                } else {
                    f.server_write_drop = p
                }
            })
        };
        let set_ack_drop = |p: u32| {
            self.proxy.update_faults(|f| {
                if to_server {
                    f.server_write_drop = p
                } else {
                    f.client_write_drop = p
                }
            })
        };
        let write = |range: std::ops::Range<usize>| -> Outcome {
            for client in clients {
                for m in &streams[&client.conn_id()][range.clone()] {
                    let r = if to_server {
                        client.write(m.clone())
                    } else {
                        server.write(client.conn_id(), m.clone())
                    };
                    r.map_err(|e| Failure(format!("write: {e}")))?;
                }
            }
            Ok(())
        };
        let _ = self.proxy.take_log();
        set_writer_drop(100);
        write(0..q)?;
        // First sends and first retransmissions, all dropped.
        if !self.wait_sniffed(2 * q * k, |d| is(d, data_dir, MsgType::Data)) {
            fail!("the first quarter was not retransmitted");
        }
        set_writer_drop(0);
        write(q..2 * q)?;
        if !self.wait_sniffed(q * k, |d| is(d, ack_dir, MsgType::Ack)) {
            fail!("the second quarter was not acknowledged");
        }
        set_ack_drop(100);
        write(2 * q..n)?;
        // The first quarter's next retransmission delivers it: three quarters readable.
        let first_three = self.read_each(server, clients, to_server, 3 * q)?;
        for client in clients {
            if first_three[&client.conn_id()][..] != streams[&client.conn_id()][..3 * q] {
                fail!("{}: the first three quarters differ", client.conn_id());
            }
        }
        let early = self
            .proxy
            .take_log()
            .iter()
            .filter(|d| {
                is(d, data_dir, MsgType::Data)
                    && d.message.as_ref().is_some_and(|m| m.seq_num > 3 * q as i64)
            })
            .count();
        if early > 0 {
            fail!("{early} datagrams of the last quarter were sent while M messages were unacknowledged");
        }
        set_ack_drop(0);
        let rest = self.read_each(server, clients, to_server, n - 3 * q)?;
        for client in clients {
            if rest[&client.conn_id()][..] != streams[&client.conn_id()][3 * q..] {
                fail!("{}: the last quarter differs", client.conn_id());
            }
        }
        Ok(())
    }

    /// Reads `count` messages per connection on the receiving side.
    fn read_each(
        &self,
        server: &TestServer,
        clients: &[Arc<TestClient>],
        at_server: bool,
        count: usize,
    ) -> Result<Streams, Failure> {
        if at_server {
            let want: Streams = clients
                .iter()
                .map(|c| (c.conn_id(), vec![Vec::new(); count]))
                .collect();
            let got = read_server_until(server, self.deadline, |got| {
                complete(got, &want, &BTreeMap::new())
            });
            for client in clients {
                let have = got.get(&client.conn_id()).map_or(0, Vec::len);
                if have != count {
                    fail!("server read {have} of {count} from {}", client.conn_id());
                }
            }
            return Ok(got);
        }
        let mut got = Streams::new();
        for client in clients {
            let mut have = Vec::new();
            while have.len() < count {
                match client.next_by(self.deadline) {
                    Some(ClientRead::Message(m)) => have.push(m),
                    other => fail!(
                        "client {} read {other:?} after {} of {count}",
                        client.conn_id(),
                        have.len()
                    ),
                }
            }
            got.insert(client.conn_id(), have);
        }
        Ok(got)
    }
}

/// A background close returned `Ok` before `deadline`.
fn expect_closed(
    closing: &std::sync::mpsc::Receiver<Result<(), String>>,
    deadline: Instant,
    who: &str,
) -> Outcome {
    match closing.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => fail!("{who} close: {e}"),
        Err(_) => fail!("{who} close did not return by the deadline"),
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for client in &self.clients {
            client.abort();
        }
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

/// A thread that echoes every message back to its sender, optionally sleeping a random
/// `0..=sleep_ms` before each echo; remembers connections reported gone.
struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Vec<ConnId>>,
}

impl EchoServer {
    fn start(server: Arc<TestServer>, sleep_ms: u32, seed: u64) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let mut gone = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match server.next(Duration::from_millis(20)) {
                    Some(ServerRead::Message(conn, payload)) => {
                        if sleep_ms > 0 {
                            let ms = rng.range(0, u64::from(sleep_ms));
                            thread::sleep(Duration::from_millis(ms));
                        }
                        let _ = server.write(conn, payload);
                    }
                    Some(ServerRead::Gone(conn)) => gone.push(conn),
                    Some(ServerRead::Closed) => break,
                    None => {}
                }
            }
            gone
        });
        EchoServer { stop, thread }
    }

    /// Stops echoing; returns the connections reported gone meanwhile.
    fn stop(self) -> Vec<ConnId> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Reads `stream` from `client`, in order, before `deadline`.
fn expect_client_stream(client: &TestClient, stream: &[Vec<u8>], deadline: Instant) -> Outcome {
    for (i, want) in stream.iter().enumerate() {
        match client.next_by(deadline) {
            Some(ClientRead::Message(m)) if m == *want => {}
            Some(ClientRead::Message(m)) => fail!(
                "client {}: message {i} is {:?}, expected {:?}",
                client.conn_id(),
                String::from_utf8_lossy(&m),
                String::from_utf8_lossy(want)
            ),
            Some(ClientRead::Failed) => {
                fail!("client {}: read failed at message {i}", client.conn_id())
            }
            None => fail!(
                "client {}: message {i} of {} not read by the deadline",
                client.conn_id(),
                stream.len()
            ),
        }
    }
    Ok(())
}

fn join_all(workers: Vec<thread::JoinHandle<Outcome>>) -> Outcome {
    let mut first_error = Ok(());
    for worker in workers {
        let result = worker
            .join()
            .unwrap_or_else(|_| Err(Failure("worker panicked".into())));
        if first_error.is_ok() {
            first_error = result;
        }
    }
    first_error
}

/// Collects server messages per connection until `done` says so or `deadline` passes.
fn read_server_until(
    server: &TestServer,
    deadline: Instant,
    done: impl Fn(&BTreeMap<ConnId, Vec<Vec<u8>>>) -> bool,
) -> BTreeMap<ConnId, Vec<Vec<u8>>> {
    let mut got: BTreeMap<ConnId, Vec<Vec<u8>>> = BTreeMap::new();
    while !done(&got) {
        match server.next_by(deadline) {
            Some(ServerRead::Message(conn, m)) => got.entry(conn).or_default().push(m),
            Some(_) => {}
            None => break,
        }
    }
    got
}

/// How many messages of each stream were already read before the current collection.
fn got_prefix(want: &BTreeMap<ConnId, Vec<Vec<u8>>>, already: usize) -> BTreeMap<ConnId, usize> {
    want.keys().map(|&c| (c, already)).collect()
}

/// Whether `got` (plus `already` earlier messages per connection) completes every stream.
fn complete(
    got: &BTreeMap<ConnId, Vec<Vec<u8>>>,
    want: &BTreeMap<ConnId, Vec<Vec<u8>>>,
    already: &BTreeMap<ConnId, usize>,
) -> bool {
    want.iter().all(|(c, stream)| {
        got.get(c).map_or(0, Vec::len) + already.get(c).copied().unwrap_or(0) >= stream.len()
    })
}

fn merge(into: &mut BTreeMap<ConnId, Vec<Vec<u8>>>, more: BTreeMap<ConnId, Vec<Vec<u8>>>) {
    for (c, ms) in more {
        into.entry(c).or_default().extend(ms);
    }
}

/// Every stream arrived exactly, in order.
fn check_streams(
    got: &BTreeMap<ConnId, Vec<Vec<u8>>>,
    want: &BTreeMap<ConnId, Vec<Vec<u8>>>,
) -> Outcome {
    for (conn, stream) in want {
        let have = got.get(conn).map_or(&[][..], Vec::as_slice);
        if have != stream.as_slice() {
            fail!(
                "server read {} of {} messages from {conn}, or out of order",
                have.len(),
                stream.len()
            );
        }
    }
    if let Some(extra) = got.keys().find(|c| !want.contains_key(c)) {
        fail!("messages from unexpected connection {extra}");
    }
    Ok(())
}
