//! The server's admission bookkeeping (see [`Limits`]): which connections are half-open,
//! how many events each connection has queued for the application, and how many
//! connections that are already forgotten still have queued events.

use std::collections::{BTreeMap, BTreeSet};

use crate::{ConnId, Limits};

/// Slot and half-open accounting for one server endpoint. The server tells it about every
/// connection made, heard from and forgotten, and every event queued and taken.
pub(crate) struct Admission {
    limits: Limits,
    /// Connections that have sent nothing but Connect; ids grow with age, so the first is
    /// the oldest.
    half_open: BTreeSet<ConnId>,
    /// Events queued for the application, per connection (entries with 0 are removed).
    queued: BTreeMap<ConnId, u32>,
    /// Forgotten connections that still have queued events (each holds a slot).
    lingering: usize,
}

impl Admission {
    /// No connections yet.
    pub(crate) fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            half_open: BTreeSet::new(),
            queued: BTreeMap::new(),
            lingering: 0,
        }
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connections that have sent nothing since their Connect.
    pub(crate) fn half_open(&self) -> usize {
        self.half_open.len()
    }

    /// Forgotten connections whose events the application has not all taken.
    pub(crate) fn lingering(&self) -> usize {
        self.lingering
    }

    /// Whether every half-open place is taken.
    pub(crate) fn half_open_full(&self) -> bool {
        self.half_open.len() >= self.limits.max_half_open as usize
    }

    /// Whether the connection table is full, given `live` kept connections.
    pub(crate) fn table_full(&self, live: usize) -> bool {
        live >= self.limits.max_connections as usize
    }

    /// Whether as many forgotten connections still have queued events as the table holds
    /// (an application that does not take its events).
    pub(crate) fn backlog_full(&self) -> bool {
        self.lingering >= self.limits.max_connections as usize
    }

    /// The oldest half-open connection, the next to evict.
    pub(crate) fn oldest_half_open(&self) -> Option<ConnId> {
        self.half_open.first().copied()
    }

    /// A connection was just made: it is half-open.
    pub(crate) fn opened(&mut self, conn: ConnId) {
        self.half_open.insert(conn);
    }

    /// A datagram other than Connect came from `conn`: it is established.
    pub(crate) fn heard(&mut self, conn: ConnId) {
        self.half_open.remove(&conn);
    }

    /// `conn` was forgotten by the server; it keeps its slot while it has queued events.
    pub(crate) fn forgotten(&mut self, conn: ConnId) {
        self.half_open.remove(&conn);
        if self.queued.contains_key(&conn) {
            self.lingering += 1;
        }
    }

    /// An event of `conn` was queued; `live` says whether the server still keeps `conn`.
    pub(crate) fn event_queued(&mut self, conn: ConnId, live: bool) {
        let count = self.queued.entry(conn).or_insert(0);
        if *count == 0 && !live {
            self.lingering += 1;
        }
        *count += 1;
    }

    /// `n` queued events of `conn` were taken or discarded; `live` as above.
    pub(crate) fn events_taken(&mut self, conn: ConnId, n: u32, live: bool) {
        let Some(count) = self.queued.get_mut(&conn) else {
            return;
        };
        *count = count.saturating_sub(n);
        if *count == 0 {
            self.queued.remove(&conn);
            if !live {
                self.lingering = self.lingering.saturating_sub(1);
            }
        }
    }
}
