//! The server endpoint: connections keyed by source address, one shared epoch timer.

use std::collections::{BTreeMap, VecDeque};

use crate::admission::Admission;
use crate::connection::{Connection, Output, TickOutcome};
use crate::epoch::EpochTimer;
use crate::integrity::{check_data, IntegrityError};
use crate::message::{Message, MsgType, MAX_DATAGRAM_LEN};
use crate::{ApiError, CloseError, ConnId, Limits, Params, ParamsError, Stats, Timestamp};

/// A datagram the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where to send it.
    pub destination: A,
    /// The datagram's bytes (at most 1500).
    pub payload: Vec<u8>,
}

/// What a [`ServerEndpoint`] tells its application, drained with
/// [`ServerEndpoint::poll_event`]. Events of one connection come in order: `Connected`, its
/// messages in sequence order, then at most one of `ConnectionLost` / `ConnectionClosed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent<A> {
    /// A new client connected from `addr` and was given id `conn`.
    Connected {
        /// The new connection's id.
        conn: ConnId,
        /// The client's address.
        addr: A,
    },
    /// The next in-order message from `conn`.
    Message {
        /// The sending connection.
        conn: ConnId,
        /// The payload.
        payload: Vec<u8>,
    },
    /// `conn` fell silent for `epoch_limit` epochs, or was evicted while half-open to admit
    /// a new connection (see [`Limits`]); comes after every message received from it
    /// before the loss. Its pending outgoing messages were discarded.
    ConnectionLost {
        /// The lost connection.
        conn: ConnId,
    },
    /// The application called [`ServerEndpoint::close_conn`] on `conn`: no event of `conn`
    /// follows, and its messages not yet drained were discarded.
    ConnectionClosed {
        /// The closed connection.
        conn: ConnId,
    },
    /// A [`ServerEndpoint::close`] completed: `Ok` once everything written to every client
    /// was acknowledged, `Err` naming the clients lost first. Always the last event.
    Closed(Result<(), CloseError>),
}

/// One connection as the server keeps it.
struct Peer<A> {
    addr: A,
    /// The initial sequence number of the Connect that created it.
    isn: i64,
    conn: Connection,
}

/// Whether the server accepts new connections.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Listening,
    /// `close` was called: no new connections; finishing once every connection is flushed.
    Closing {
        lost: Vec<ConnId>,
    },
    Closed,
}

/// The sans-IO LSP server (docs/protocol.md §3, §6, §7 "Server"), generic over the address type `A`
/// (a `SocketAddr` for real UDP, a node id in the simulator).
///
/// Construction starts the shared epoch timer (the reference's `listen`). Feed it every
/// received datagram with its source address and call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout); after
/// every call drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event).
pub struct ServerEndpoint<A> {
    params: Params,
    timer: EpochTimer,
    phase: Phase,
    next_id: i64,
    by_addr: BTreeMap<A, ConnId>,
    peers: BTreeMap<ConnId, Peer<A>>,
    transmits: VecDeque<Transmit<A>>,
    events: VecDeque<ServerEvent<A>>,
    stats: Stats,
    admission: Admission,
    scratch_datagrams: Vec<Vec<u8>>,
    scratch_delivered: Vec<Vec<u8>>,
    latest: Timestamp,
}

impl<A: Ord + Clone> ServerEndpoint<A> {
    /// A listening server whose epoch timer starts at `now`, with the default [`Limits`].
    pub fn new(params: Params, now: Timestamp) -> Result<ServerEndpoint<A>, ParamsError> {
        ServerEndpoint::with_limits(params, Limits::default(), now)
    }

    /// A listening server with these resource `limits` (admission control); fails if
    /// `params` or `limits` are invalid.
    pub fn with_limits(
        params: Params,
        limits: Limits,
        now: Timestamp,
    ) -> Result<ServerEndpoint<A>, ParamsError> {
        params.validate()?;
        limits.validate()?;
        Ok(ServerEndpoint {
            params,
            timer: EpochTimer::new(now, params.epoch()),
            phase: Phase::Listening,
            next_id: 1,
            by_addr: BTreeMap::new(),
            peers: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            admission: Admission::new(limits),
            scratch_datagrams: Vec::new(),
            scratch_delivered: Vec::new(),
            latest: now,
        })
    }

    /// The parameters this endpoint runs with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections the server still keeps (closing ones included).
    pub fn connection_count(&self) -> usize {
        self.peers.len()
    }

    /// Events queued for the application and not yet taken with
    /// [`poll_event`](Self::poll_event). With [`Limits`], at most `(max_unread_messages +
    /// window_size + 1)` per connection kept or forgotten-with-events, plus the final
    /// `Closed`.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The resource limits this endpoint runs with.
    pub fn limits(&self) -> &Limits {
        self.admission.limits()
    }

    /// Connections that have sent nothing since their Connect (at most
    /// [`Limits::max_half_open`]).
    pub fn half_open_count(&self) -> usize {
        self.admission.half_open()
    }

    /// Connections already forgotten (lost, closed, evicted) whose events the application
    /// has not all taken with [`poll_event`](Self::poll_event) yet.
    pub fn forgotten_with_events(&self) -> usize {
        self.admission.lingering()
    }

    /// The address of a connection the server still keeps.
    pub fn peer_addr(&self, conn: ConnId) -> Option<&A> {
        self.peers.get(&conn).map(|p| &p.addr)
    }

    /// Messages written to `conn` and not yet acknowledged.
    pub fn unacknowledged(&self, conn: ConnId) -> Option<usize> {
        self.peers.get(&conn).map(|p| p.conn.unacknowledged())
    }

    /// Out-of-order messages buffered for `conn` (bounded by `window_size - 1`).
    pub fn buffered_out_of_order(&self, conn: ConnId) -> Option<usize> {
        self.peers
            .get(&conn)
            .map(|p| p.conn.buffered_out_of_order())
    }

    /// Messages received from `conn` and queued as events the application has not taken
    /// yet (below [`Limits::max_unread_messages`] + `window_size`; 0 for an unknown
    /// connection).
    pub fn unread(&self, conn: ConnId) -> usize {
        self.admission.unread(conn)
    }

    /// Messages in flight to `conn` (bounded by `max_unacked_messages`).
    pub fn in_flight(&self, conn: ConnId) -> Option<usize> {
        self.peers.get(&conn).map(|p| p.conn.in_flight())
    }

    /// Whether [`close`](Self::close) has completed. A closed endpoint sends nothing and has
    /// no timeout.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Queues `payload` for `conn`; never blocks. Fails if `conn` is unknown, lost or closed
    /// (by `close_conn` or `close`), or if the payload cannot fit in one datagram.
    pub fn write(&mut self, conn: ConnId, payload: Vec<u8>) -> Result<(), ApiError> {
        if self.phase != Phase::Listening {
            return Err(ApiError::Closed);
        }
        let peer = self
            .peers
            .get_mut(&conn)
            .ok_or(ApiError::UnknownConnection(conn))?;
        if peer.conn.is_closing() {
            return Err(ApiError::UnknownConnection(conn));
        }
        let mut out = Output {
            datagrams: &mut self.scratch_datagrams,
            delivered: &mut self.scratch_delivered,
            stats: &mut self.stats,
        };
        let result = peer.conn.write(payload, true, &mut out);
        let addr = peer.addr.clone();
        self.flush_scratch(conn, &addr);
        result
    }

    /// Closes one connection without blocking: its undelivered messages are discarded, a
    /// [`ServerEvent::ConnectionClosed`] is queued, what was written to it is still sent and
    /// acknowledged (ended early by loss), and then the server forgets the address and sends
    /// it nothing more. Fails if `conn` is unknown or already closed.
    pub fn close_conn(&mut self, conn: ConnId) -> Result<(), ApiError> {
        let peer = self
            .peers
            .get_mut(&conn)
            .ok_or(ApiError::UnknownConnection(conn))?;
        if peer.conn.is_closing() {
            return Err(ApiError::UnknownConnection(conn));
        }
        peer.conn.start_closing();
        let before = self.events.len();
        self.events
            .retain(|event| !matches!(event, ServerEvent::Message { conn: c, .. } if *c == conn));
        let discarded = (before - self.events.len()) as u32;
        self.admission
            .events_taken(conn, discarded, discarded, true);
        self.push_event(ServerEvent::ConnectionClosed { conn });
        self.forget_if_flushed(conn);
        self.finish_close_if_done();
        Ok(())
    }

    /// Starts a graceful shutdown: no more Connects are accepted, incoming Data is acked but
    /// no longer delivered, and once every message written to every client is acknowledged
    /// (or its client lost) a [`ServerEvent::Closed`] is queued and the endpoint stops.
    /// Fails if already closing or closed.
    pub fn close(&mut self) -> Result<(), ApiError> {
        if self.phase != Phase::Listening {
            return Err(ApiError::Closed);
        }
        self.phase = Phase::Closing { lost: Vec::new() };
        let ids: Vec<ConnId> = self.peers.keys().copied().collect();
        for id in ids {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.conn.start_closing();
            }
            self.forget_if_flushed(id);
        }
        self.finish_close_if_done();
        Ok(())
    }

    /// Handles one datagram received from `from` at `now`.
    pub fn handle_datagram(&mut self, now: Timestamp, from: A, datagram: &[u8]) {
        self.latest = self.latest.max(now);
        self.stats.datagrams_received += 1;
        if datagram.len() > MAX_DATAGRAM_LEN {
            self.stats.dropped.oversized += 1;
            return;
        }
        let Ok(mut message) = Message::decode(datagram) else {
            self.stats.dropped.malformed += 1;
            return;
        };
        if self.phase == Phase::Closed {
            self.stats.dropped.unexpected += 1;
            return;
        }
        let Some(&conn) = self.by_addr.get(&from) else {
            if message.kind == MsgType::Connect {
                self.accept(from, message.seq_num);
            } else {
                self.stats.dropped.unknown_peer += 1;
            }
            return;
        };
        let Some(peer) = self.peers.get_mut(&conn) else {
            return;
        };
        let integrity = if message.kind == MsgType::Data {
            check_data(&mut message)
        } else {
            Ok(())
        };
        if integrity == Err(IntegrityError::ShortPayload) {
            self.stats.dropped.short_payload += 1;
            return;
        }
        peer.conn.heard_from_peer();
        if message.kind != MsgType::Connect {
            self.admission.heard(conn);
        }
        let mut out = Output {
            datagrams: &mut self.scratch_datagrams,
            delivered: &mut self.scratch_delivered,
            stats: &mut self.stats,
        };
        match (message.kind, integrity) {
            (MsgType::Data, Err(_)) => out.stats.dropped.bad_checksum += 1,
            (MsgType::Data, Ok(())) => {
                let room = self.admission.has_room(conn);
                peer.conn
                    .handle_data(message.seq_num, message.payload, room, &mut out)
            }
            (MsgType::Ack, _) => peer.conn.handle_ack(message.seq_num, &mut out),
            (MsgType::CAck, _) => peer.conn.handle_cack(message.seq_num, &mut out),
            (MsgType::Connect, _) => {
                // The connect-ack may have been lost: answer a retry of the same Connect with
                // the same id (docs/protocol.md §3 allows it; the reference stays silent, which strands
                // a client whose connect-ack was dropped). A Connect with another isn is some
                // other client on the same address and gets nothing while this one lives.
                out.stats.dropped.duplicate_connect += 1;
                if message.seq_num == peer.isn && !peer.conn.is_closing() {
                    out.datagrams.push(Message::ack(conn.0, peer.isn).encode());
                    out.stats.datagrams_sent += 1;
                }
            }
        }
        let addr = peer.addr.clone();
        self.flush_scratch(conn, &addr);
        self.forget_if_flushed(conn);
        self.finish_close_if_done();
    }

    fn accept(&mut self, from: A, isn: i64) {
        if self.phase != Phase::Listening {
            self.stats.dropped.unexpected += 1;
            return;
        }
        if !crate::is_valid_isn(isn) {
            self.stats.dropped.invalid_isn += 1;
            return;
        }
        // Admission control, in the order `Limits` documents.
        if self.admission.backlog_full() {
            self.stats.dropped.connection_limit += 1;
            return;
        }
        if self.admission.half_open_full() {
            self.evict_oldest_half_open();
        }
        if self.admission.table_full(self.peers.len()) {
            self.evict_oldest_half_open();
        }
        if self.admission.table_full(self.peers.len()) {
            self.stats.dropped.connection_limit += 1;
            return;
        }
        let conn = ConnId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        self.by_addr.insert(from.clone(), conn);
        self.peers.insert(
            conn,
            Peer {
                addr: from.clone(),
                isn,
                conn: Connection::new(self.params, conn.0, isn),
            },
        );
        self.transmits.push_back(Transmit {
            destination: from.clone(),
            payload: Message::ack(conn.0, isn).encode(),
        });
        self.stats.datagrams_sent += 1;
        self.admission.opened(conn);
        self.push_event(ServerEvent::Connected { conn, addr: from });
    }

    /// Forgets the oldest half-open connection, if any, telling the application it was lost.
    fn evict_oldest_half_open(&mut self) {
        if let Some(conn) = self.admission.oldest_half_open() {
            // A connection the application closed had its end reported by `close_conn`:
            // no second one (as for a loss while closing, in `handle_timeout`).
            let closing = self.peers.get(&conn).is_some_and(|p| p.conn.is_closing());
            self.forget(conn);
            self.stats.half_open_evicted += 1;
            if !closing {
                self.push_event(ServerEvent::ConnectionLost { conn });
            }
        }
    }

    /// Queues an event, keeping the admission bookkeeping of its connection.
    fn push_event(&mut self, event: ServerEvent<A>) {
        if let Some(conn) = event_conn(&event) {
            let live = self.peers.contains_key(&conn);
            let message = matches!(event, ServerEvent::Message { .. });
            self.admission.event_queued(conn, message, live);
        }
        self.events.push_back(event);
    }

    /// Handles the epoch timer at `now` (call it at [`poll_timeout`](Self::poll_timeout);
    /// calling it early or with time going backwards does nothing).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.latest = self.latest.max(now);
        if self.phase == Phase::Closed || !self.timer.poll_tick(self.latest) {
            return;
        }
        let ids: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in ids {
            let Some(peer) = self.peers.get_mut(&conn) else {
                continue;
            };
            let mut out = Output {
                datagrams: &mut self.scratch_datagrams,
                delivered: &mut self.scratch_delivered,
                stats: &mut self.stats,
            };
            let outcome = peer.conn.tick(&mut out);
            let addr = peer.addr.clone();
            let closing = peer.conn.is_closing();
            self.flush_scratch(conn, &addr);
            if outcome == TickOutcome::Lost {
                self.forget(conn);
                if let Phase::Closing { lost } = &mut self.phase {
                    lost.push(conn);
                }
                if !closing {
                    self.push_event(ServerEvent::ConnectionLost { conn });
                }
            }
        }
        self.finish_close_if_done();
    }

    /// The next datagram to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.transmits.pop_front()
    }

    /// The next event for the application, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent<A>> {
        let event = self.events.pop_front()?;
        if let Some(conn) = event_conn(&event) {
            let live = self.peers.contains_key(&conn);
            let message = matches!(event, ServerEvent::Message { .. });
            self.admission
                .events_taken(conn, 1, u32::from(message), live);
        }
        Some(event)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` once closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        (self.phase != Phase::Closed).then(|| self.timer.deadline())
    }

    fn flush_scratch(&mut self, conn: ConnId, addr: &A) {
        for payload in self.scratch_datagrams.drain(..) {
            self.transmits.push_back(Transmit {
                destination: addr.clone(),
                payload,
            });
        }
        let mut delivered = std::mem::take(&mut self.scratch_delivered);
        for payload in delivered.drain(..) {
            self.push_event(ServerEvent::Message { conn, payload });
        }
        self.scratch_delivered = delivered;
    }

    /// Drops a closing connection once everything written to it is acknowledged.
    fn forget_if_flushed(&mut self, conn: ConnId) {
        if let Some(peer) = self.peers.get(&conn) {
            if peer.conn.is_closing() && peer.conn.is_flushed() {
                self.forget(conn);
            }
        }
    }

    fn forget(&mut self, conn: ConnId) {
        if let Some(peer) = self.peers.remove(&conn) {
            self.by_addr.remove(&peer.addr);
            self.admission.forgotten(conn);
        }
    }

    fn finish_close_if_done(&mut self) {
        if let Phase::Closing { lost } = &mut self.phase {
            if self.peers.is_empty() {
                let lost = std::mem::take(lost);
                let result = if lost.is_empty() {
                    Ok(())
                } else {
                    Err(CloseError::ConnectionsLost(lost))
                };
                self.phase = Phase::Closed;
                self.events.push_back(ServerEvent::Closed(result));
            }
        }
    }
}

/// The connection an event is about, if any.
fn event_conn<A>(event: &ServerEvent<A>) -> Option<ConnId> {
    match event {
        ServerEvent::Connected { conn, .. }
        | ServerEvent::Message { conn, .. }
        | ServerEvent::ConnectionLost { conn }
        | ServerEvent::ConnectionClosed { conn } => Some(*conn),
        ServerEvent::Closed(_) => None,
    }
}
