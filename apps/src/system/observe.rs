//! What a serving loop tells about the pool, in one place for the plain server
//! ([`super::serve`]) and the replicated one ([`super::replicated`]): each event goes to
//! the `-v` narration ([`super::narrate`]), the event log (`--events`, [`super::events`])
//! and the HTTP board (`--http`, [`super::http::board`]), none of which can block the loop.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin_core::accounting::{PoolEvent, PoolReport};
use lsp_core::{ConnId, Timestamp};
use lsp_mio::Server;

use super::events::EventLog;
use super::http::board::{Board, Publisher};
use super::http::replication::Replication;
use super::log::Log;
use super::narrate::{Departure, Narrator};
use super::replica_events::ReplicaEvent;

/// The loop's observers: narration, and the event log and board if asked for.
#[derive(Debug)]
pub struct Observers {
    log: Log,
    narrator: Narrator,
    events: Option<EventLog>,
    publisher: Option<Publisher>,
}

impl Observers {
    /// Observers narrating on `log`, writing events to `events` (from a thread of its own,
    /// [`EventLog`]) and publishing on `board`, if given. Fails if the event log's thread
    /// cannot be started.
    pub fn start(
        log: Log,
        events: Option<Box<dyn Write + Send>>,
        board: Option<Arc<Board>>,
    ) -> io::Result<Observers> {
        Ok(Observers {
            log,
            narrator: Narrator::new(),
            events: events.map(EventLog::start).transpose()?,
            publisher: board.map(Publisher::new),
        })
    }

    /// How long the loop may wait for its next input: `wait` (`None`: forever), capped
    /// while there is a board ([`Publisher::cap`]).
    pub fn cap(&self, wait: Option<Duration>) -> Option<Duration> {
        match &self.publisher {
            Some(p) => Some(p.cap(wait)),
            None => wait,
        }
    }

    /// Tells `event`; `departure` is the connection whose end the service was just told
    /// of, if any, `addr` the address of the event's subject ([`super::events::subject`]).
    /// Returns whether its narration told that connection's end.
    pub fn pool_event(
        &mut self,
        event: PoolEvent<ConnId>,
        departure: Option<Departure<'_>>,
        addr: Option<&str>,
    ) -> bool {
        let told = self.narrator.event(&self.log, &event, departure, addr);
        if let Some(publisher) = &self.publisher {
            publisher.record(&event, addr);
        }
        if let Some(events) = &self.events {
            events.record_from(event, addr.map(str::to_owned));
        }
        told
    }

    /// Tells a replica's `event`.
    pub fn replica_event(&mut self, event: ReplicaEvent) {
        event.narrate(&self.log);
        if let Some(publisher) = &self.publisher {
            publisher.record_json(event.to_json(publisher.unix_ms(event.at)));
        }
        if let Some(events) = &self.events {
            events.record_replica(event);
        }
    }

    /// `departure`'s connection is gone; `told` if an event's narration said so already
    /// ([`Narrator::gone`]).
    pub fn gone(&mut self, departure: Departure<'_>, told: bool) {
        self.narrator.gone(&self.log, departure, told);
    }

    /// Publishes the snapshot that `take` makes if one is due ([`Publisher::tick_with`]).
    pub fn publish(&mut self, take: impl FnOnce() -> (PoolReport<ConnId>, Option<Replication>)) {
        if let Some(publisher) = &mut self.publisher {
            publisher.tick_with(take);
        }
    }

    /// Whether there is a board to publish on.
    pub fn publishing(&self) -> bool {
        self.publisher.is_some()
    }

    /// Lets the event log write what it was handed; returns how many events it dropped.
    pub fn finish(self) -> u64 {
        self.events.map_or(0, EventLog::finish)
    }
}

/// `conn`'s peer address as the events and `/status` tell it (`ip:port`; an IPv4 peer of
/// a dual-stack socket as IPv4), if `server` knows it.
pub fn peer_address(server: &Server, conn: ConnId) -> Option<String> {
    let addr = server.peer_addr(conn)?;
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string())
}

/// A report of an empty pool at `now`: what a replica that does not lead serves.
pub fn empty_report(now: Timestamp) -> PoolReport<ConnId> {
    PoolReport {
        at: now,
        totals: Default::default(),
        history: Vec::new(),
        miners: Vec::new(),
        departed: Vec::new(),
        requests: Vec::new(),
    }
}
