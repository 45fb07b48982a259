//! The client endpoint: connect with retry, then one [`Connection`] to the server.

use std::collections::VecDeque;

use crate::connection::{Connection, Output, TickOutcome};
use crate::epoch::EpochTimer;
use crate::integrity::{check_data, IntegrityError};
use crate::message::{Message, MsgType, MAX_DATAGRAM_LEN};
use crate::{ApiError, CloseError, ConnId, Limits, Params, ParamsError, Stats, Timestamp};

/// What a [`ClientEndpoint`] tells its application, drained with
/// [`ClientEndpoint::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server acknowledged the Connect and assigned this id.
    Connected(ConnId),
    /// The next in-order message from the server.
    Message(Vec<u8>),
    /// No connect-ack within `epoch_limit` epochs; the endpoint is finished.
    ConnectFailed,
    /// The server fell silent for `epoch_limit` epochs; emitted after every message received
    /// before the loss. The endpoint is finished.
    ConnectionLost,
    /// A [`ClientEndpoint::close`] completed: `Ok` once everything written was acknowledged,
    /// `Err` if the connection was lost (or never made) first. Always the last event.
    Closed(Result<(), CloseError>),
}

/// Where the client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sending Connect at every tick, waiting for `Ack(_, isn)`.
    Connecting { ticks: u32 },
    /// Connected: the connection runs.
    Connected,
    /// Lost, failed to connect, or closed: sends nothing, accepts nothing.
    Finished,
}

/// The sans-IO LSP client (docs/protocol.md §3, §6.4, §7 "Client").
///
/// Construction sends the first Connect and starts the epoch timer. Feed it every datagram
/// from the server's address with [`handle_datagram`](Self::handle_datagram) (the driver
/// filters out other sources) and call [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout); after every call drain
/// [`poll_transmit`](Self::poll_transmit) (datagrams for the server) and
/// [`poll_event`](Self::poll_event).
pub struct ClientEndpoint {
    params: Params,
    isn: i64,
    phase: Phase,
    conn_id: Option<ConnId>,
    conn: Connection,
    timer: EpochTimer,
    close_requested: bool,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    stats: Stats,
    /// `max_unread_messages` is the one limit a client uses.
    limits: Limits,
    /// `Message` events queued and not yet taken by the application.
    unread: usize,
    scratch_datagrams: Vec<Vec<u8>>,
    scratch_delivered: Vec<Vec<u8>>,
    latest: Timestamp,
}

impl ClientEndpoint {
    /// Starts connecting at `now` with initial sequence number `isn`: the first Connect is
    /// ready in [`poll_transmit`](Self::poll_transmit).
    ///
    /// Fails if `params` are invalid, or with [`ParamsError::IsnOutOfRange`] if `isn` is
    /// outside [`ISN_DOMAIN`](crate::ISN_DOMAIN) (`0 ..= MAX_ISN`). Uses the default
    /// [`Limits`].
    pub fn new(params: Params, isn: i64, now: Timestamp) -> Result<ClientEndpoint, ParamsError> {
        ClientEndpoint::with_limits(params, Limits::default(), isn, now)
    }

    /// Like [`new`](Self::new), with these resource limits (a client uses
    /// [`Limits::max_unread_messages`]); fails if they are invalid.
    pub fn with_limits(
        params: Params,
        limits: Limits,
        isn: i64,
        now: Timestamp,
    ) -> Result<ClientEndpoint, ParamsError> {
        params.validate()?;
        limits.validate()?;
        if !crate::is_valid_isn(isn) {
            return Err(ParamsError::IsnOutOfRange(isn));
        }
        let mut client = ClientEndpoint {
            params,
            isn,
            phase: Phase::Connecting { ticks: 0 },
            conn_id: None,
            conn: Connection::new(params, 0, isn),
            timer: EpochTimer::new(now, params.epoch()),
            close_requested: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            limits,
            unread: 0,
            scratch_datagrams: Vec::new(),
            scratch_delivered: Vec::new(),
            latest: now,
        };
        client.send_connect();
        Ok(client)
    }

    /// The parameters this endpoint runs with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The id the server assigned, once connected.
    pub fn conn_id(&self) -> Option<ConnId> {
        self.conn_id
    }

    /// Whether the endpoint is done: lost, failed to connect, or closed. A finished endpoint
    /// sends nothing and has no timeout.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Messages written but not yet acknowledged by the server.
    pub fn unacknowledged(&self) -> usize {
        self.conn.unacknowledged()
    }

    /// Out-of-order messages buffered (bounded by `window_size - 1`).
    pub fn buffered_out_of_order(&self) -> usize {
        self.conn.buffered_out_of_order()
    }

    /// Messages transmitted and awaiting acknowledgement (bounded by `max_unacked_messages`).
    pub fn in_flight(&self) -> usize {
        self.conn.in_flight()
    }

    /// Messages received and queued as events the application has not taken yet (below
    /// [`Limits::max_unread_messages`] + `window_size`).
    pub fn unread(&self) -> usize {
        self.unread
    }

    /// Queues `payload` for the server; never blocks. Messages written before the connect-ack
    /// are sent once connected.
    ///
    /// Fails if the connection was lost or never made, if `close` was called, or if the
    /// payload cannot fit in one datagram (payloads up to
    /// [`MAX_GUARANTEED_PAYLOAD`](crate::MAX_GUARANTEED_PAYLOAD) bytes always fit).
    pub fn write(&mut self, payload: Vec<u8>) -> Result<(), ApiError> {
        if self.close_requested {
            return Err(ApiError::Closed);
        }
        let id_known = match self.phase {
            Phase::Connecting { .. } => false,
            Phase::Connected => true,
            Phase::Finished => return Err(self.finished_error()),
        };
        let mut out = Output {
            datagrams: &mut self.scratch_datagrams,
            delivered: &mut self.scratch_delivered,
            stats: &mut self.stats,
        };
        let result = self.conn.write(payload, id_known, &mut out);
        self.flush_scratch();
        result
    }

    /// Starts a graceful close: the endpoint keeps acknowledging, heartbeating and detecting
    /// loss until everything written is acknowledged, then emits
    /// [`ClientEvent::Closed`] and finishes. Fails if already closing or closed.
    pub fn close(&mut self) -> Result<(), ApiError> {
        if self.close_requested {
            return Err(ApiError::Closed);
        }
        self.close_requested = true;
        self.conn.start_closing();
        match self.phase {
            Phase::Finished => {
                let lost = CloseError::ConnectionsLost(self.conn_id.into_iter().collect());
                self.events.push_back(ClientEvent::Closed(Err(lost)));
            }
            Phase::Connecting { .. } => {
                if self.conn.is_flushed() {
                    self.finish_closed();
                }
            }
            Phase::Connected => self.finish_if_flushed(),
        }
        Ok(())
    }

    /// Handles one datagram received from the server's address at `now`.
    pub fn handle_datagram(&mut self, now: Timestamp, datagram: &[u8]) {
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
        match self.phase {
            Phase::Finished => self.stats.dropped.unexpected += 1,
            Phase::Connecting { .. } => {
                if message.kind == MsgType::Ack && message.seq_num == self.isn {
                    self.on_connect_ack(message.conn_id);
                } else {
                    self.stats.dropped.unexpected += 1;
                }
            }
            Phase::Connected => {
                let integrity = if message.kind == MsgType::Data {
                    check_data(&mut message)
                } else {
                    Ok(())
                };
                match integrity {
                    Err(IntegrityError::ShortPayload) => self.stats.dropped.short_payload += 1,
                    Err(IntegrityError::BadChecksum) => {
                        self.conn.heard_from_peer();
                        self.stats.dropped.bad_checksum += 1;
                    }
                    Ok(()) => {
                        self.conn.heard_from_peer();
                        self.on_connected_message(message);
                    }
                }
            }
        }
    }

    fn on_connect_ack(&mut self, conn_id: i64) {
        self.phase = Phase::Connected;
        self.conn_id = Some(ConnId(conn_id));
        self.conn.set_id(conn_id);
        self.conn.heard_from_peer();
        self.events
            .push_back(ClientEvent::Connected(ConnId(conn_id)));
        let mut out = Output {
            datagrams: &mut self.scratch_datagrams,
            delivered: &mut self.scratch_delivered,
            stats: &mut self.stats,
        };
        self.conn.send_admitted(&mut out);
        self.flush_scratch();
    }

    fn on_connected_message(&mut self, message: Message) {
        let mut out = Output {
            datagrams: &mut self.scratch_datagrams,
            delivered: &mut self.scratch_delivered,
            stats: &mut self.stats,
        };
        match message.kind {
            MsgType::Data => {
                let room = self.unread < self.limits.max_unread_messages as usize;
                self.conn
                    .handle_data(message.seq_num, message.payload, room, &mut out)
            }
            MsgType::Ack => self.conn.handle_ack(message.seq_num, &mut out),
            MsgType::CAck => self.conn.handle_cack(message.seq_num, &mut out),
            MsgType::Connect => out.stats.dropped.unexpected += 1,
        }
        self.flush_scratch();
        self.finish_if_flushed();
    }

    /// Handles the epoch timer at `now` (call it at [`poll_timeout`](Self::poll_timeout);
    /// calling it early or with time going backwards does nothing).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.latest = self.latest.max(now);
        if self.phase == Phase::Finished || !self.timer.poll_tick(self.latest) {
            return;
        }
        match self.phase {
            Phase::Connecting { ticks } => {
                let ticks = ticks + 1;
                if ticks >= self.params.epoch_limit {
                    self.phase = Phase::Finished;
                    self.events.push_back(ClientEvent::ConnectFailed);
                    if self.close_requested {
                        let lost = CloseError::ConnectionsLost(vec![]);
                        self.events.push_back(ClientEvent::Closed(Err(lost)));
                    }
                } else {
                    self.phase = Phase::Connecting { ticks };
                    self.stats.connect_retries += 1;
                    self.send_connect();
                }
            }
            Phase::Connected => {
                let mut out = Output {
                    datagrams: &mut self.scratch_datagrams,
                    delivered: &mut self.scratch_delivered,
                    stats: &mut self.stats,
                };
                let outcome = self.conn.tick(&mut out);
                self.flush_scratch();
                if outcome == TickOutcome::Lost {
                    self.phase = Phase::Finished;
                    self.events.push_back(ClientEvent::ConnectionLost);
                    if self.close_requested {
                        let lost = CloseError::ConnectionsLost(vec![ConnId(self.conn.id())]);
                        self.events.push_back(ClientEvent::Closed(Err(lost)));
                    }
                }
            }
            Phase::Finished => {}
        }
    }

    /// The next datagram for the server, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event for the application, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        let event = self.events.pop_front()?;
        if matches!(event, ClientEvent::Message(_)) {
            self.unread = self.unread.saturating_sub(1);
        }
        Some(event)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` once
    /// finished.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        (self.phase != Phase::Finished).then(|| self.timer.deadline())
    }

    fn send_connect(&mut self) {
        self.transmits
            .push_back(Message::connect(self.isn).encode());
        self.stats.datagrams_sent += 1;
    }

    fn flush_scratch(&mut self) {
        self.transmits.extend(self.scratch_datagrams.drain(..));
        self.unread += self.scratch_delivered.len();
        self.events
            .extend(self.scratch_delivered.drain(..).map(ClientEvent::Message));
    }

    fn finish_if_flushed(&mut self) {
        if self.close_requested && self.phase == Phase::Connected && self.conn.is_flushed() {
            self.finish_closed();
        }
    }

    fn finish_closed(&mut self) {
        self.phase = Phase::Finished;
        self.events.push_back(ClientEvent::Closed(Ok(())));
    }

    fn finished_error(&self) -> ApiError {
        match self.conn_id {
            None => ApiError::ConnectFailed,
            Some(_) => ApiError::ConnectionLost,
        }
    }
}
