//! The network model: addresses, the fault plan of `docs/conformance.md`, partitions, the sniffer
//! and the middlebox.
//!
//! A datagram written by a node goes through, in this order: the writer's write drop, the
//! sniffer (which logs it with its dropped flag), the middlebox (if one is installed it may
//! drop or rewrite it, and shorten/lengthen/corrupt are off), otherwise shorten / lengthen /
//! corrupt (Data only), partitions, delay (or the base latency plus jitter) and duplication.
//! At its arrival time the reader's read drop applies, and a datagram to a node that is not
//! running is lost ("nobody listening").

use std::fmt;
use std::time::Duration;

use lsp_core::{Message, MsgType, Timestamp};

use crate::rng::{Prob, Rng};

/// A node's address in the simulation: the server is [`Addr::SERVER`], clients are 1, 2, ….
/// Used as the server endpoint's address type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr(pub u32);

impl Addr {
    /// The server's address.
    pub const SERVER: Addr = Addr(0);

    /// The address of client number `index` (0-based).
    pub fn client(index: usize) -> Addr {
        Addr(u32::try_from(index + 1).unwrap_or(u32::MAX))
    }

    /// The 0-based client index of a client address (`None` for the server).
    pub fn client_index(self) -> Option<usize> {
        (self.0 > 0).then(|| self.0 as usize - 1)
    }

    /// Which role the node at this address plays.
    pub fn role(self) -> Role {
        if self == Addr::SERVER {
            Role::Server
        } else {
            Role::Client
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.client_index() {
            None => write!(f, "server"),
            Some(i) => write!(f, "client{}", i + 1),
        }
    }
}

/// The two roles a fault can be scoped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every client node.
    Client = 0,
    /// The server node.
    Server = 1,
}

/// How long a delayed datagram is held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayBy {
    /// Always this long (the reference's 500 ms).
    Fixed(Duration),
    /// Uniform in `min..=max`.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
}

/// The faults in effect at one moment. All default to off; the base latency defaults to
/// 50 µs (a loopback round trip is ~100 µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Read drop, indexed by [`Role`]: a received datagram is discarded.
    pub read_drop: [Prob; 2],
    /// Write drop, indexed by [`Role`]: a sent datagram is discarded (the sender believes it
    /// was sent).
    pub write_drop: [Prob; 2],
    /// A sent datagram is delivered late by [`Faults::delay_by`] instead of the base latency.
    pub delay: Prob,
    /// How late a delayed datagram is.
    pub delay_by: DelayBy,
    /// A sent datagram is delivered twice (the copy with its own latency).
    pub duplicate: Prob,
    /// Data only: the payload is cut to its first half (`Size`/`Checksum` unchanged).
    pub shorten: Prob,
    /// Data only: bytes `02 03 04` are appended to the payload.
    pub lengthen: Prob,
    /// Data only: the first payload byte is inverted (an empty payload becomes `ff`).
    pub corrupt: Prob,
    /// Base one-way latency of every datagram.
    pub latency: Duration,
    /// Extra latency, uniform in `0..=jitter` per datagram (reorders datagrams).
    pub jitter: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            read_drop: [Prob::NEVER; 2],
            write_drop: [Prob::NEVER; 2],
            delay: Prob::NEVER,
            delay_by: DelayBy::Fixed(Duration::from_millis(500)),
            duplicate: Prob::NEVER,
            shorten: Prob::NEVER,
            lengthen: Prob::NEVER,
            corrupt: Prob::NEVER,
            latency: Duration::from_micros(50),
            jitter: Duration::ZERO,
        }
    }
}

/// The largest percentages of a random fault mix ([`Faults::draw`]).
#[derive(Clone, Copy, Debug)]
pub struct FaultMix {
    /// Read and write drop, each role.
    pub drop: u32,
    /// Delay.
    pub delay: u32,
    /// Duplication.
    pub duplicate: u32,
    /// Shortening, lengthening and corruption, each.
    pub mangle: u32,
}

impl Faults {
    /// Random faults for swarm testing: each kind off half of the time, else uniform up to
    /// its maximum in `mix` ([`Rng::maybe`]); latency, jitter and delays as by default.
    pub fn draw(rng: &mut Rng, mix: FaultMix) -> Faults {
        Faults {
            read_drop: [rng.maybe(mix.drop), rng.maybe(mix.drop)],
            write_drop: [rng.maybe(mix.drop), rng.maybe(mix.drop)],
            delay: rng.maybe(mix.delay),
            duplicate: rng.maybe(mix.duplicate),
            shorten: rng.maybe(mix.mangle),
            lengthen: rng.maybe(mix.mangle),
            corrupt: rng.maybe(mix.mangle),
            ..Faults::default()
        }
    }

    /// Sets the write drop of both roles.
    pub fn set_write_drop(&mut self, p: Prob) {
        self.write_drop = [p; 2];
    }

    /// Sets the read drop of both roles.
    pub fn set_read_drop(&mut self, p: Prob) {
        self.read_drop = [p; 2];
    }
}

/// The link between the server and one client is down in both directions during
/// `from..until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The cut-off client.
    pub client: Addr,
    /// Start of the outage.
    pub from: Timestamp,
    /// End of the outage (exclusive).
    pub until: Timestamp,
}

/// One sniffed datagram, in write order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sniffed {
    /// When it was written.
    pub time: Timestamp,
    /// The writer.
    pub from: Addr,
    /// The destination.
    pub to: Addr,
    /// The datagram as written, decoded (`None` if it does not decode).
    pub message: Option<Message>,
    /// Whether the writer's write drop discarded it.
    pub dropped: bool,
}

/// What a middlebox does with one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through unchanged.
    Pass,
    /// Discard it.
    Drop,
    /// Send these bytes instead.
    Rewrite(Vec<u8>),
}

/// A callback that sees every written datagram (after the sniffer) and may drop or rewrite
/// it. It gets the network's generator for any randomness it needs.
pub trait Middlebox {
    /// Decides the fate of `datagram`, written by `from` to `to`.
    fn inspect(&mut self, from: Addr, to: Addr, datagram: &[u8], rng: &mut Rng) -> Verdict;
}

impl<F: FnMut(Addr, Addr, &[u8], &mut Rng) -> Verdict> Middlebox for F {
    fn inspect(&mut self, from: Addr, to: Addr, datagram: &[u8], rng: &mut Rng) -> Verdict {
        self(from, to, datagram, rng)
    }
}

/// A datagram the network will deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Arrival time.
    pub at: Timestamp,
    /// The bytes that arrive.
    pub bytes: Vec<u8>,
}

/// The simulated network: current faults, partitions, sniffer and middlebox, with its own
/// generator (forked from the run's seed).
pub struct Network {
    /// Faults in effect now; scenarios and fault plans change them as time goes on.
    pub faults: Faults,
    /// Scheduled link outages.
    pub partitions: Vec<Partition>,
    /// The sniffer's log, when one is installed.
    pub sniffer: Option<Vec<Sniffed>>,
    /// The middlebox, when one is installed.
    pub middlebox: Option<Box<dyn Middlebox>>,
    rng: Rng,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("faults", &self.faults)
            .field("partitions", &self.partitions)
            .field("sniffing", &self.sniffer.is_some())
            .field("middlebox", &self.middlebox.is_some())
            .finish()
    }
}

/// Whether `bytes` is a Data message as our encoder writes them (the `Type` key first).
fn is_data(bytes: &[u8]) -> bool {
    bytes.starts_with(b"{\"Type\":1,")
}

impl Network {
    /// A perfect network (only the base latency) drawing from `rng`.
    pub fn new(rng: Rng) -> Network {
        Network {
            faults: Faults::default(),
            partitions: Vec::new(),
            sniffer: None,
            middlebox: None,
            rng,
        }
    }

    /// Whether the link between `a` and `b` is cut at `now`.
    pub fn partitioned(&self, a: Addr, b: Addr, now: Timestamp) -> bool {
        self.partitions
            .iter()
            .any(|p| (p.client == a || p.client == b) && p.from <= now && now < p.until)
    }

    /// Sends `bytes` from `from` to `to` at `now`: returns the copies that will arrive
    /// (none, one, or two when duplicated).
    pub fn send(&mut self, now: Timestamp, from: Addr, to: Addr, bytes: Vec<u8>) -> Vec<InFlight> {
        let faults = self.faults;
        let dropped = self.rng.chance(faults.write_drop[from.role() as usize]);
        if let Some(log) = &mut self.sniffer {
            log.push(Sniffed {
                time: now,
                from,
                to,
                message: Message::decode(&bytes).ok(),
                dropped,
            });
        }
        if dropped {
            return Vec::new();
        }
        let mut bytes = bytes;
        if let Some(middlebox) = &mut self.middlebox {
            match middlebox.inspect(from, to, &bytes, &mut self.rng) {
                Verdict::Pass => {}
                Verdict::Drop => return Vec::new(),
                Verdict::Rewrite(new) => bytes = new,
            }
        } else if is_data(&bytes) {
            bytes = self.mangle(bytes, &faults);
        }
        if self.partitioned(from, to, now) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(1);
        let copies = if self.rng.chance(faults.duplicate) {
            2
        } else {
            1
        };
        for copy in 0..copies {
            let at = now + self.latency(&faults);
            if copy + 1 == copies {
                out.push(InFlight { at, bytes });
                break;
            }
            out.push(InFlight {
                at,
                bytes: bytes.clone(),
            });
        }
        out
    }

    /// Whether a datagram arriving at `to` now is discarded by the reader's read drop.
    pub fn read_dropped(&mut self, to: Addr) -> bool {
        let p = self.faults.read_drop[to.role() as usize];
        self.rng.chance(p)
    }

    fn latency(&mut self, faults: &Faults) -> Duration {
        if self.rng.chance(faults.delay) {
            return match faults.delay_by {
                DelayBy::Fixed(d) => d,
                DelayBy::Uniform { min, max } => {
                    let lo = min.as_micros() as u64;
                    let hi = max.as_micros() as u64;
                    Duration::from_micros(self.rng.range(lo, hi))
                }
            };
        }
        let jitter = faults.jitter.as_micros() as u64;
        faults.latency + Duration::from_micros(self.rng.range(0, jitter))
    }

    /// Applies shorten / lengthen / corrupt to a Data datagram, keeping `Size` and
    /// `Checksum` as written.
    fn mangle(&mut self, bytes: Vec<u8>, faults: &Faults) -> Vec<u8> {
        let shorten = self.rng.chance(faults.shorten);
        let lengthen = self.rng.chance(faults.lengthen);
        let corrupt = self.rng.chance(faults.corrupt);
        if !(shorten || lengthen || corrupt) {
            return bytes;
        }
        let Ok(mut message) = Message::decode(&bytes) else {
            return bytes;
        };
        if message.kind != MsgType::Data {
            return bytes;
        }
        if shorten {
            let half = message.payload.len() / 2;
            message.payload.truncate(half);
        }
        if lengthen {
            message.payload.extend_from_slice(&[2, 3, 4]);
        }
        if corrupt {
            match message.payload.first_mut() {
                Some(first) => *first = !*first,
                None => message.payload.push(0xff),
            }
        }
        message.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(payload: &[u8]) -> Vec<u8> {
        Message::data(3, 4, payload.to_vec()).encode()
    }

    fn arrived(net: &mut Network, bytes: Vec<u8>) -> Vec<Message> {
        net.send(Timestamp::ZERO, Addr(1), Addr::SERVER, bytes)
            .into_iter()
            .map(|f| Message::decode(&f.bytes).unwrap())
            .collect()
    }

    #[test]
    fn a_perfect_network_delivers_once_after_the_latency() {
        let mut net = Network::new(Rng::new(1));
        let out = net.send(Timestamp::ZERO, Addr(1), Addr::SERVER, data(b"42"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].at, Timestamp::from_micros(50));
        assert_eq!(out[0].bytes, data(b"42"));
    }

    #[test]
    fn mangling_keeps_size_and_checksum_and_touches_only_data() {
        let mut net = Network::new(Rng::new(1));
        net.faults.shorten = Prob::ALWAYS;
        let m = &arrived(&mut net, data(b"1234"))[0];
        assert_eq!((m.payload.as_slice(), m.size), (&b"12"[..], 4));
        net.faults.shorten = Prob::NEVER;
        net.faults.lengthen = Prob::ALWAYS;
        let m = &arrived(&mut net, data(b"1234"))[0];
        assert_eq!(m.payload, b"1234\x02\x03\x04");
        assert_eq!(m.checksum, Message::data(3, 4, b"1234".to_vec()).checksum);
        net.faults.lengthen = Prob::NEVER;
        net.faults.corrupt = Prob::ALWAYS;
        assert_eq!(arrived(&mut net, data(b""))[0].payload, [0xff]);
        assert_eq!(arrived(&mut net, data(b"1"))[0].payload, [!b'1']);
        let ack = Message::ack(3, 4).encode();
        assert_eq!(arrived(&mut net, ack.clone())[0].encode(), ack);
    }

    #[test]
    fn drops_partitions_duplicates_and_the_sniffer() {
        let mut net = Network::new(Rng::new(1));
        net.sniffer = Some(Vec::new());
        net.faults.write_drop[Role::Client as usize] = Prob::ALWAYS;
        assert!(net
            .send(Timestamp::ZERO, Addr(1), Addr::SERVER, data(b"1"))
            .is_empty());
        assert_eq!(
            net.send(Timestamp::ZERO, Addr::SERVER, Addr(1), data(b"1"))
                .len(),
            1
        );
        let log = net.sniffer.take().unwrap();
        assert_eq!(
            log.iter().map(|s| s.dropped).collect::<Vec<_>>(),
            [true, false]
        );
        net.faults = Faults::default();
        net.faults.duplicate = Prob::ALWAYS;
        assert_eq!(
            net.send(Timestamp::ZERO, Addr(1), Addr::SERVER, data(b"1"))
                .len(),
            2
        );
        net.partitions.push(Partition {
            client: Addr(1),
            from: Timestamp::from_millis(10),
            until: Timestamp::from_millis(20),
        });
        let t = Timestamp::from_millis(15);
        assert!(net.send(t, Addr::SERVER, Addr(1), data(b"1")).is_empty());
        assert!(!net.send(t, Addr::SERVER, Addr(2), data(b"1")).is_empty());
        let later = Timestamp::from_millis(20);
        assert!(!net
            .send(later, Addr::SERVER, Addr(1), data(b"1"))
            .is_empty());
    }

    #[test]
    fn a_middlebox_sees_writes_and_turns_mangling_off() {
        let mut net = Network::new(Rng::new(1));
        net.faults.corrupt = Prob::ALWAYS;
        net.middlebox = Some(Box::new(|_: Addr, _: Addr, d: &[u8], _: &mut Rng| {
            if is_data(d) {
                Verdict::Pass
            } else {
                Verdict::Rewrite(Message::cack(1, 9).encode())
            }
        }));
        assert_eq!(arrived(&mut net, data(b"7"))[0].payload, b"7");
        assert_eq!(
            arrived(&mut net, Message::ack(1, 9).encode())[0].kind,
            MsgType::CAck
        );
    }
}
