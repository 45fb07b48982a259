//! The server's admission bookkeeping (see [`Limits`]): which connections are half-open,
//! how many events each connection has queued for the application, and how many
//! connections that are already forgotten still have queued events.

use std::collections::{BTreeMap, BTreeSet};

use crate::{ConnId, Limits};

/// Events of one connection queued for the application.
#[derive(Clone, Copy, Debug, Default)]
struct Queued {
    /// Every kind of event.
    events: u32,
    /// `Message` events: the connection's unread messages.
    messages: u32,
}

/// Slot and half-open accounting for one server endpoint. The server tells it about every
/// connection made, heard from and forgotten, and every event queued and taken.
pub(crate) struct Admission {
    limits: Limits,
    /// Connections that have sent nothing but Connect; ids grow with age, so the first is
    /// the oldest.
    half_open: BTreeSet<ConnId>,
    /// Events queued for the application, per connection (entries with none are removed).
    queued: BTreeMap<ConnId, Queued>,
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

    /// Messages of `conn` queued and not yet taken by the application.
    pub(crate) fn unread(&self, conn: ConnId) -> usize {
        self.queued.get(&conn).map_or(0, |q| q.messages as usize)
    }

    /// Whether `conn` has room for another unread message.
    pub(crate) fn has_room(&self, conn: ConnId) -> bool {
        self.unread(conn) < self.limits.max_unread_messages as usize
    }

    /// An event of `conn` was queued (`message`: a `Message` event); `live` says whether
    /// the server still keeps `conn`.
    pub(crate) fn event_queued(&mut self, conn: ConnId, message: bool, live: bool) {
        let q = self.queued.entry(conn).or_default();
        if q.events == 0 && !live {
            self.lingering += 1;
        }
        q.events += 1;
        q.messages += u32::from(message);
    }

    /// `events` queued events of `conn`, `messages` of them `Message`s, were taken or
    /// discarded; `live` as above.
    pub(crate) fn events_taken(&mut self, conn: ConnId, events: u32, messages: u32, live: bool) {
        let Some(q) = self.queued.get_mut(&conn) else {
            return;
        };
        q.events = q.events.saturating_sub(events);
        q.messages = q.messages.saturating_sub(messages);
        if q.events == 0 {
            self.queued.remove(&conn);
            if !live {
                self.lingering = self.lingering.saturating_sub(1);
            }
        }
    }
}
