//! Connections between clients or miners and replicas: reliable, ordered channels with a
//! latency (what LSP gives its users), that end when either side closes or the replica
//! crashes. Nothing says goodbye on LSP: the other side learns of an end by its loss
//! detection, [`Conns::loss_ms`] later.

use std::collections::BTreeMap;

/// A connection's key: unique in the run, never reused (the coordinator's `K`).
pub type ConnKey = u64;

/// Who holds the far end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// Miner `i` of the case.
    Miner(usize),
    /// The client of request `i` of the case.
    Client(usize),
}

/// One connection.
#[derive(Clone, Debug)]
pub struct Conn {
    /// The replica end.
    pub replica: u64,
    /// The peer end.
    pub peer: Peer,
    /// One-way latency, ms.
    pub latency: u64,
    /// Whether the replica end still reads it (false once it closed or crashed).
    pub replica_open: bool,
    /// Whether the peer end still reads it.
    pub peer_open: bool,
}

/// Something arriving at one end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A payload for the replica.
    ToReplica(ConnKey, Vec<u8>),
    /// A payload for the peer.
    ToPeer(ConnKey, Vec<u8>),
    /// The replica learns that the peer is gone.
    GoneAtReplica(ConnKey),
    /// The peer learns that the replica is gone.
    GoneAtPeer(ConnKey),
}

/// Every connection of a run, and what is on its way.
#[derive(Default)]
pub struct Conns {
    /// How long a side takes to notice that the other closed or died (LSP's loss
    /// detection: `epoch_limit` × the epoch).
    pub loss_ms: u64,
    next: ConnKey,
    seq: u64,
    /// Every connection ever opened.
    pub all: BTreeMap<ConnKey, Conn>,
    queue: BTreeMap<(u64, u64), Delivery>,
}

impl Conns {
    /// No connections yet; ends notice the other's end after `loss_ms`.
    pub fn new(loss_ms: u64) -> Conns {
        Conns {
            loss_ms,
            ..Conns::default()
        }
    }

    fn push(&mut self, at: u64, delivery: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), delivery);
    }

    /// `peer` connects to `replica` at `now` (`up`: whether that replica runs). A
    /// connection to a replica that is down fails after [`Conns::loss_ms`].
    pub fn open(&mut self, now: u64, peer: Peer, replica: u64, up: bool, latency: u64) -> ConnKey {
        self.next += 1;
        let key = self.next;
        self.all.insert(
            key,
            Conn {
                replica,
                peer,
                latency,
                replica_open: up,
                peer_open: true,
            },
        );
        if !up {
            self.push(now + self.loss_ms, Delivery::GoneAtPeer(key));
        }
        key
    }

    /// The peer writes `payload` on `key`.
    pub fn send_to_replica(&mut self, now: u64, key: ConnKey, payload: Vec<u8>) {
        if let Some(c) = self.all.get(&key).filter(|c| c.peer_open) {
            let at = now + c.latency;
            self.push(at, Delivery::ToReplica(key, payload));
        }
    }

    /// The replica writes `payload` on `key`.
    pub fn send_to_peer(&mut self, now: u64, key: ConnKey, payload: Vec<u8>) {
        if let Some(c) = self.all.get(&key).filter(|c| c.replica_open) {
            let at = now + c.latency;
            self.push(at, Delivery::ToPeer(key, payload));
        }
    }

    /// The replica closes `key`: the peer notices after what was written before arrives,
    /// and its loss detection.
    pub fn close_by_replica(&mut self, now: u64, key: ConnKey) {
        if let Some(c) = self.all.get_mut(&key).filter(|c| c.replica_open) {
            c.replica_open = false;
            let at = now + c.latency + self.loss_ms;
            self.push(at, Delivery::GoneAtPeer(key));
        }
    }

    /// The peer closes `key`: the replica notices by its loss detection.
    pub fn close_by_peer(&mut self, now: u64, key: ConnKey) {
        if let Some(c) = self.all.get_mut(&key).filter(|c| c.peer_open) {
            c.peer_open = false;
            let at = now + c.latency + self.loss_ms;
            self.push(at, Delivery::GoneAtReplica(key));
        }
    }

    /// Replica `replica` crashed: every connection to it ends; peers notice by their loss
    /// detection.
    pub fn replica_crashed(&mut self, now: u64, replica: u64) {
        let keys: Vec<ConnKey> = self
            .all
            .iter()
            .filter(|(_, c)| c.replica == replica && c.replica_open)
            .map(|(&k, _)| k)
            .collect();
        for key in keys {
            if let Some(c) = self.all.get_mut(&key) {
                c.replica_open = false;
            }
            self.push(now + self.loss_ms, Delivery::GoneAtPeer(key));
        }
    }

    /// The next delivery due at or before `now`, if the end it is for still reads: each
    /// end reads only while open (a gone notice marks it closed).
    pub fn pop_due(&mut self, now: u64) -> Option<Option<(Delivery, Conn)>> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let delivery = entry.remove();
        let key = match &delivery {
            Delivery::ToReplica(k, _)
            | Delivery::ToPeer(k, _)
            | Delivery::GoneAtReplica(k)
            | Delivery::GoneAtPeer(k) => *k,
        };
        let Some(conn) = self.all.get_mut(&key) else {
            return Some(None);
        };
        let live = match &delivery {
            Delivery::ToReplica(..) | Delivery::GoneAtReplica(_) => conn.replica_open,
            Delivery::ToPeer(..) | Delivery::GoneAtPeer(_) => conn.peer_open,
        };
        if !live {
            return Some(None);
        }
        match &delivery {
            Delivery::GoneAtReplica(_) => conn.replica_open = false,
            Delivery::GoneAtPeer(_) => conn.peer_open = false,
            _ => {}
        }
        Some(Some((delivery, conn.clone())))
    }
}
