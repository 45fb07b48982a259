//! A fault-injecting UDP proxy for loopback tests (the fault model of `docs/conformance.md`).
//!
//! Clients send to the proxy's front address; for each client address the proxy opens an
//! upstream socket of its own, so the server sees one distinct address per client, and
//! relays the server's answers back through the front socket. Every relayed datagram goes
//! through, in order: the sender's write drop; the sniffer log; the middlebox, or else the
//! shorten / lengthen / corrupt faults (Data only); the receiver's read drop; the 500 ms
//! delay. All settings can be changed while a scenario runs. Until
//! [`set_server`](Proxy::set_server) is called datagrams towards the server are lost, as if
//! nobody listened there.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lsp_core::{Message, MsgType};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::rng::Rng;

/// How late a delayed datagram is delivered.
pub const DELAY: Duration = Duration::from_millis(500);

const FRONT: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_LINK: usize = 2;

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a client to the server.
    ToServer,
    /// From the server to a client.
    ToClient,
}

/// The switchable faults, in percent unless stated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Datagrams written by clients that are lost.
    pub client_write_drop: u32,
    /// Datagrams to be received by clients that are lost.
    pub client_read_drop: u32,
    /// Datagrams written by the server that are lost.
    pub server_write_drop: u32,
    /// Datagrams to be received by the server that are lost.
    pub server_read_drop: u32,
    /// Datagrams delivered [`DELAY`] late.
    pub delay: u32,
    /// Data payloads cut to their first half (`Size`/`Checksum` unchanged).
    pub shorten: u32,
    /// Data payloads with bytes `02 03 04` appended (`Size`/`Checksum` unchanged).
    pub lengthen: u32,
    /// Whether every Data payload's first byte is inverted (`ff` for an empty payload).
    pub corrupt: bool,
}

impl Faults {
    /// Write drop of `percent` on both sides, nothing else.
    pub fn write_drop(percent: u32) -> Faults {
        Faults {
            client_write_drop: percent,
            server_write_drop: percent,
            ..Faults::default()
        }
    }
}

/// One datagram as the sniffer saw it.
#[derive(Clone, Debug)]
pub struct Sniffed {
    /// Which way it went.
    pub direction: Direction,
    /// Which client link (0, 1, … in order of first contact).
    pub link: usize,
    /// The decoded message, if it decoded.
    pub message: Option<Message>,
    /// Whether the writer's drop fault discarded it.
    pub dropped: bool,
}

/// What a middlebox does with a datagram.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Deliver it unchanged.
    Pass,
    /// Discard it.
    Drop,
    /// Deliver this message instead.
    Replace(Message),
}

/// A callback that sees every written datagram that decoded (after the sniffer) and decides
/// its fate.
pub type Middlebox = Box<dyn FnMut(&Sniffed) -> Verdict + Send>;

/// Where a relayed datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Hop {
    /// To the server, from this link's upstream socket.
    Server(usize),
    /// To this link's client, from the front socket.
    Client(usize),
}

/// Settings and log, shared with the proxy thread.
struct State {
    faults: Faults,
    server: Option<SocketAddr>,
    middlebox: Option<Middlebox>,
    sniffing: bool,
    log: Vec<Sniffed>,
    /// Distinct Data messages (link, sequence number) written so far, towards the server
    /// and towards clients (dropped or not; retransmissions not counted again), for
    /// [`Proxy::wait_for_data`].
    data_written: [u64; 2],
    data_seen: std::collections::BTreeSet<(usize, usize, i64)>,
    rng: Rng,
    stop: bool,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// A running proxy; dropping it stops its thread.
pub struct Proxy {
    front: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Notified whenever a datagram went through the fault pipeline.
    relayed: Arc<Condvar>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` whose random fault decisions come from `seed`.
    pub fn start(seed: u64) -> io::Result<Proxy> {
        let poll = Poll::new()?;
        let mut front = bind_loopback()?;
        poll.registry()
            .register(&mut front, FRONT, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let addr = front.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            faults: Faults::default(),
            server: None,
            middlebox: None,
            sniffing: false,
            log: Vec::new(),
            data_written: [0; 2],
            data_seen: Default::default(),
            rng: Rng::new(seed),
            stop: false,
        }));
        let relayed = Arc::new(Condvar::new());
        let relay = Relay {
            poll,
            front,
            links: Vec::new(),
            by_client: BTreeMap::new(),
            delayed: BinaryHeap::new(),
            sequence: 0,
            state: Arc::clone(&state),
            relayed: Arc::clone(&relayed),
        };
        let thread = std::thread::Builder::new()
            .name("udp-proxy".into())
            .spawn(move || relay.run())?;
        Ok(Proxy {
            front: addr,
            state,
            relayed,
            waker,
            thread: Some(thread),
        })
    }

    /// The address clients must send to.
    pub fn addr(&self) -> SocketAddr {
        self.front
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where datagrams towards the server go from now on.
    pub fn set_server(&self, server: SocketAddr) {
        self.lock().server = Some(server);
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock().faults);
    }

    /// Installs or removes the middlebox; while one is installed, shorten, lengthen and
    /// corrupt are off.
    pub fn set_middlebox(&self, middlebox: Option<Middlebox>) {
        self.lock().middlebox = middlebox;
    }

    /// Starts or stops logging every written datagram.
    pub fn set_sniffing(&self, on: bool) {
        self.lock().sniffing = on;
    }

    /// Takes the sniffer's log so far.
    pub fn take_log(&self) -> Vec<Sniffed> {
        std::mem::take(&mut self.lock().log)
    }

    /// Distinct Data messages (by link and sequence number) written so far in `direction`,
    /// whatever the faults did with them; retransmissions are not counted again.
    pub fn data_written(&self, direction: Direction) -> u64 {
        self.lock().data_written[direction.index()]
    }

    /// Waits until at least `count` distinct Data messages were written in `direction`
    /// (counting from the proxy's start, as [`data_written`](Self::data_written)), or
    /// `deadline` passes; returns whether the count was reached. Tests wait on this event
    /// instead of sleeping "long enough" for datagrams to pass.
    pub fn wait_for_data(&self, direction: Direction, count: u64, deadline: Instant) -> bool {
        let mut state = self.lock();
        loop {
            if state.data_written[direction.index()] >= count {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .relayed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.lock().stop = true;
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A non-blocking socket on `127.0.0.1:0` with 4 MiB kernel buffers: the proxy relays
/// bursts from many endpoints at once, and a loss it did not decide on would make a
/// scenario's outcome depend on the machine's load.
fn bind_loopback() -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(4 << 20)?;
    socket.set_send_buffer_size(4 << 20)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket.into()))
}

/// One client as the proxy knows it.
struct Link {
    client: SocketAddr,
    upstream: UdpSocket,
}

/// A datagram waiting out its delay.
type Delayed = Reverse<(Instant, u64, Hop, Vec<u8>)>;

/// The proxy thread's state.
struct Relay {
    poll: Poll,
    front: UdpSocket,
    links: Vec<Link>,
    by_client: BTreeMap<SocketAddr, usize>,
    delayed: BinaryHeap<Delayed>,
    sequence: u64,
    state: Arc<Mutex<State>>,
    relayed: Arc<Condvar>,
}

impl Relay {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; 65_536];
        loop {
            let timeout = self
                .delayed
                .peek()
                .map(|Reverse((at, ..))| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if self.lock().stop {
                return;
            }
            for event in events.iter() {
                match event.token() {
                    FRONT => self.relay_from_clients(&mut buf),
                    WAKER => {}
                    Token(t) => self.relay_from_server(t - FIRST_LINK, &mut buf),
                }
            }
            self.release_due();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn relay_from_clients(&mut self, buf: &mut [u8]) {
        loop {
            let (len, client) = match self.front.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let Some(link) = self.link_for(client) else {
                continue;
            };
            self.relay(Direction::ToServer, link, &buf[..len]);
        }
    }

    fn relay_from_server(&mut self, link: usize, buf: &mut [u8]) {
        loop {
            let Some(l) = self.links.get(link) else {
                return;
            };
            let (len, from) = match l.upstream.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            if Some(from) != self.lock().server {
                continue;
            }
            self.relay(Direction::ToClient, link, &buf[..len]);
        }
    }

    fn link_for(&mut self, client: SocketAddr) -> Option<usize> {
        if let Some(&link) = self.by_client.get(&client) {
            return Some(link);
        }
        let link = self.links.len();
        let mut upstream = bind_loopback().ok()?;
        self.poll
            .registry()
            .register(&mut upstream, Token(FIRST_LINK + link), Interest::READABLE)
            .ok()?;
        self.links.push(Link { client, upstream });
        self.by_client.insert(client, link);
        Some(link)
    }

    /// Applies the faults to one datagram and sends or schedules what survives.
    fn relay(&mut self, direction: Direction, link: usize, bytes: &[u8]) {
        let decision = {
            let mut state = self.lock();
            apply_faults(&mut state, direction, link, bytes)
        };
        self.relayed.notify_all();
        let Some((datagram, delayed)) = decision else {
            return;
        };
        let hop = match direction {
            Direction::ToServer => Hop::Server(link),
            Direction::ToClient => Hop::Client(link),
        };
        if delayed {
            self.sequence += 1;
            self.delayed.push(Reverse((
                Instant::now() + DELAY,
                self.sequence,
                hop,
                datagram,
            )));
        } else {
            self.send(hop, &datagram);
        }
    }

    fn release_due(&mut self) {
        let now = Instant::now();
        while self
            .delayed
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= now)
        {
            if let Some(Reverse((_, _, hop, datagram))) = self.delayed.pop() {
                self.send(hop, &datagram);
            }
        }
    }

    fn send(&self, hop: Hop, datagram: &[u8]) {
        // Send errors (nobody listening, a full buffer) lose the datagram, as UDP may.
        match hop {
            Hop::Server(link) => {
                let server = self.lock().server;
                if let (Some(server), Some(l)) = (server, self.links.get(link)) {
                    let _ = l.upstream.send_to(datagram, server);
                }
            }
            Hop::Client(link) => {
                if let Some(l) = self.links.get(link) {
                    let _ = self.front.send_to(datagram, l.client);
                }
            }
        }
    }
}

/// The fault pipeline for one written datagram: `None` if it is lost, else the bytes to
/// deliver and whether to delay them.
fn apply_faults(
    state: &mut State,
    direction: Direction,
    link: usize,
    bytes: &[u8],
) -> Option<(Vec<u8>, bool)> {
    let faults = state.faults;
    let (write_drop, read_drop) = match direction {
        Direction::ToServer => (faults.client_write_drop, faults.server_read_drop),
        Direction::ToClient => (faults.server_write_drop, faults.client_read_drop),
    };
    let dropped = state.rng.chance(write_drop);
    let message = Message::decode(bytes).ok();
    if let Some(m) = message.as_ref().filter(|m| m.kind == MsgType::Data) {
        if state.data_seen.insert((direction.index(), link, m.seq_num)) {
            state.data_written[direction.index()] += 1;
        }
    }
    let sniffed = Sniffed {
        direction,
        link,
        message,
        dropped,
    };
    let mut datagram = bytes.to_vec();
    if let Some(middlebox) = state.middlebox.as_mut() {
        if !dropped && sniffed.message.is_some() {
            match middlebox(&sniffed) {
                Verdict::Pass => {}
                Verdict::Drop => return log_and(state, sniffed, None),
                Verdict::Replace(m) => datagram = m.encode(),
            }
        }
    } else if let Some(mut m) = sniffed.message.clone().filter(|m| m.kind == MsgType::Data) {
        let mut changed = false;
        if state.rng.chance(faults.shorten) {
            let half = m.payload.len() / 2;
            m.payload.truncate(half);
            changed = true;
        } else if state.rng.chance(faults.lengthen) {
            m.payload.extend_from_slice(&[2, 3, 4]);
            changed = true;
        }
        if faults.corrupt {
            match m.payload.first_mut() {
                Some(b) => *b = !*b,
                None => m.payload.push(0xff),
            }
            changed = true;
        }
        if changed {
            datagram = m.encode();
        }
    }
    if dropped || state.rng.chance(read_drop) {
        return log_and(state, sniffed, None);
    }
    let delayed = state.rng.chance(faults.delay);
    log_and(state, sniffed, Some((datagram, delayed)))
}

fn log_and<T>(state: &mut State, sniffed: Sniffed, result: T) -> T {
    if state.sniffing {
        state.log.push(sniffed);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(faults: Faults) -> State {
        State {
            faults,
            server: None,
            middlebox: None,
            sniffing: true,
            log: Vec::new(),
            data_written: [0; 2],
            data_seen: Default::default(),
            rng: Rng::new(7),
            stop: false,
        }
    }

    fn data(payload: &[u8]) -> Vec<u8> {
        Message::data(3, 9, payload.to_vec()).encode()
    }

    fn through(state: &mut State, bytes: &[u8]) -> Option<Message> {
        let (out, delayed) = apply_faults(state, Direction::ToServer, 0, bytes)?;
        assert!(!delayed);
        Some(Message::decode(&out).unwrap())
    }

    #[test]
    fn clean_datagrams_pass_unchanged_and_are_sniffed() {
        let mut s = state(Faults::default());
        let m = through(&mut s, &data(b"12345")).unwrap();
        assert_eq!(m, Message::data(3, 9, b"12345".to_vec()));
        assert_eq!(s.log.len(), 1);
        assert!(!s.log[0].dropped);
    }

    #[test]
    fn payload_faults_keep_size_and_checksum() {
        let original = Message::data(3, 9, b"123456".to_vec());
        let mut s = state(Faults {
            shorten: 100,
            ..Faults::default()
        });
        let m = through(&mut s, &data(b"123456")).unwrap();
        assert_eq!(m.payload, b"123");
        assert_eq!((m.size, m.checksum), (original.size, original.checksum));
        let mut s = state(Faults {
            lengthen: 100,
            ..Faults::default()
        });
        assert_eq!(
            through(&mut s, &data(b"12")).unwrap().payload,
            [b'1', b'2', 2, 3, 4]
        );
        let mut s = state(Faults {
            corrupt: true,
            ..Faults::default()
        });
        assert_eq!(
            through(&mut s, &data(b"12")).unwrap().payload,
            [!b'1', b'2']
        );
        assert_eq!(through(&mut s, &data(b"")).unwrap().payload, [0xff]);
        // Only Data is touched.
        let ack = Message::ack(3, 9);
        assert_eq!(through(&mut s, &ack.encode()), Some(ack));
    }

    #[test]
    fn drops_are_per_role_and_logged() {
        let mut s = state(Faults {
            client_write_drop: 100,
            ..Faults::default()
        });
        assert!(through(&mut s, &data(b"1")).is_none());
        assert!(s.log[0].dropped);
        assert!(apply_faults(&mut s, Direction::ToClient, 0, &data(b"1")).is_some());
        let mut s = state(Faults {
            server_read_drop: 100,
            ..Faults::default()
        });
        assert!(through(&mut s, &data(b"1")).is_none());
        assert!(!s.log[0].dropped, "a read drop is not the writer's drop");
    }

    #[test]
    fn a_middlebox_rewrites_and_switches_payload_faults_off() {
        let mut s = state(Faults {
            corrupt: true,
            ..Faults::default()
        });
        s.middlebox = Some(Box::new(|d: &Sniffed| match &d.message {
            Some(m) if m.kind == MsgType::Ack => {
                Verdict::Replace(Message::cack(m.conn_id, m.seq_num))
            }
            Some(m) if m.seq_num == 1 => Verdict::Drop,
            _ => Verdict::Pass,
        }));
        assert_eq!(
            through(&mut s, &Message::ack(3, 4).encode()),
            Some(Message::cack(3, 4))
        );
        assert!(through(&mut s, &Message::data(3, 1, b"x".to_vec()).encode()).is_none());
        assert_eq!(through(&mut s, &data(b"12")).unwrap().payload, b"12");
    }

    #[test]
    fn relays_both_ways_and_delays_by_half_a_second() {
        let proxy = Proxy::start(1).unwrap();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        proxy.set_server(server.local_addr().unwrap());
        let mut buf = [0u8; 2048];
        client.send_to(b"ping", proxy.addr()).unwrap();
        let (n, upstream) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_ne!(upstream, client.local_addr().unwrap());
        proxy.update_faults(|f| f.delay = 100);
        let sent = Instant::now();
        server.send_to(b"pong", upstream).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], proxy.addr()));
        assert!(sent.elapsed() >= DELAY);
    }
}
