//! The client's application-side semantics (docs/protocol.md §7 "Client").

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use super::errors::{ClientReadError, CloseError, StartError};
use super::lifecycle::Lifecycle;
use super::session::{DriverStatus, Session, INBOX_AHEAD};
use crate::{ApiError, ClientEndpoint, ClientEvent, ConnId, Params, ParamsError, Stats, Timestamp};

/// A [`ClientEndpoint`] talking to the server at an address of type `A`, plus what its
/// application has not yet read.
///
/// Every method is what the runtime's call of the same name does once it holds the lock;
/// a runtime's blocking or async `connect`, `read` and `close` wait until the `poll_*`
/// method returns something.
pub struct ClientSession<A> {
    endpoint: ClientEndpoint,
    server: A,
    /// Messages not yet returned by `read`, at most [`INBOX_AHEAD`] while open (the rest
    /// wait in the endpoint).
    inbox: VecDeque<Vec<u8>>,
    /// The id from the connect-ack, once connected.
    connected: Option<ConnId>,
    /// Connecting failed, or the connection was lost.
    ended: bool,
    lifecycle: Lifecycle,
}

impl<A: PartialEq + Clone> ClientSession<A> {
    /// A session connecting to `server` with initial sequence number `isn`, starting at
    /// `now`; fails if `params` are invalid.
    pub fn new(
        params: Params,
        server: A,
        isn: i64,
        now: Timestamp,
    ) -> Result<ClientSession<A>, ParamsError> {
        ClientSession::with_limits(params, crate::Limits::default(), server, isn, now)
    }

    /// Like [`new`](Self::new), with these resource limits (a client uses
    /// `max_unread_messages`); fails if they are invalid.
    pub fn with_limits(
        params: Params,
        limits: crate::Limits,
        server: A,
        isn: i64,
        now: Timestamp,
    ) -> Result<ClientSession<A>, ParamsError> {
        Ok(ClientSession {
            endpoint: ClientEndpoint::with_limits(params, limits, isn, now)?,
            server,
            inbox: VecDeque::new(),
            connected: None,
            ended: false,
            lifecycle: Lifecycle::default(),
        })
    }

    /// The endpoint, for its counters.
    pub fn endpoint(&self) -> &ClientEndpoint {
        &self.endpoint
    }

    /// How connecting ended, or `None` while it is in progress: the connection id; or
    /// [`StartError::NoAnswer`] if no connect-ack came within `epoch_limit` epochs; or the
    /// driver's failure.
    pub fn poll_connected(&self) -> Option<Result<ConnId, StartError>> {
        if let Some(id) = self.connected {
            return Some(Ok(id));
        }
        if self.ended {
            return Some(Err(StartError::NoAnswer));
        }
        match self.lifecycle.status() {
            DriverStatus::Running => None,
            DriverStatus::Stopped => Some(Err(StartError::Io(io::Error::other(
                "the client was stopped while connecting",
            )))),
            DriverStatus::Failed(e) => {
                Some(Err(StartError::Io(io::Error::new(e.kind(), e.to_string()))))
            }
        }
    }

    /// The next thing `read` returns, or `None` if it must wait: the driver's failure; then
    /// [`ClientReadError::Closed`] once `close` was called or the driver stopped; then the
    /// oldest unread message; then, once the connection was lost,
    /// [`ClientReadError::ConnectionLost`] (for good).
    pub fn poll_read(&mut self) -> Option<Result<Vec<u8>, ClientReadError>> {
        if let Some(refusal) = self
            .lifecycle
            .read_refusal(ClientReadError::Io, ClientReadError::Closed)
        {
            return Some(Err(refusal));
        }
        self.take_events();
        if let Some(payload) = self.inbox.pop_front() {
            self.take_events();
            return Some(Ok(payload));
        }
        self.ended.then_some(Err(ClientReadError::ConnectionLost))
    }

    /// Moves the endpoint's events into the session: up to [`INBOX_AHEAD`] messages while
    /// open (back-pressure, as for the server), everything once `close` was called. Returns
    /// whether anything moved.
    fn take_events(&mut self) -> bool {
        let mut progress = false;
        while self.lifecycle.is_closing() || self.inbox.len() < INBOX_AHEAD {
            let Some(event) = self.endpoint.poll_event() else {
                break;
            };
            progress = true;
            match event {
                ClientEvent::Connected(id) => self.connected = Some(id),
                ClientEvent::Message(payload) => self.inbox.push_back(payload),
                ClientEvent::ConnectFailed | ClientEvent::ConnectionLost => self.ended = true,
                ClientEvent::Closed(result) => self.lifecycle.closed(result),
            }
        }
        progress
    }

    /// Queues `payload` for the server. Fails if the client is closing or stopped, the
    /// connection was lost, or the payload does not fit in one datagram.
    pub fn write(&mut self, payload: Vec<u8>) -> Result<(), ApiError> {
        self.lifecycle.check_open()?;
        self.endpoint.write(payload)
    }

    /// Starts closing: reads fail from now on, the endpoint flushes what was written while
    /// still acknowledging and heartbeating. Fails if `close` was already called or the
    /// driver stopped.
    pub fn begin_close(&mut self) -> Result<(), CloseError> {
        self.lifecycle.begin_close()?;
        // Only refused when already closing, which the lifecycle rules out.
        let _ = self.endpoint.close();
        Ok(())
    }

    /// How the close ended, or `None` while it is in progress: `Ok` once everything written
    /// was acknowledged, `ConnectionsLost` if the connection was lost first; the driver's
    /// failure, or `Aborted` if the endpoint was stopped first.
    pub fn poll_closed(&mut self) -> Option<Result<(), CloseError>> {
        self.lifecycle.poll_closed()
    }
}

impl<A: PartialEq + Clone> Session for ClientSession<A> {
    type Addr = A;

    fn handle_datagram(&mut self, now: Timestamp, from: A, datagram: &[u8]) {
        // A connected socket already filters by source; this covers unconnected ones.
        if from == self.server {
            self.endpoint.handle_datagram(now, datagram);
        }
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.endpoint.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.endpoint.poll_timeout()
    }

    fn drain(&mut self, outbox: &mut VecDeque<(A, Vec<u8>)>) -> bool {
        while let Some(datagram) = self.endpoint.poll_transmit() {
            outbox.push_back((self.server.clone(), datagram));
        }
        self.take_events()
    }

    fn halt(&mut self, status: DriverStatus) {
        self.lifecycle.halt(status);
    }

    fn status(&self) -> &DriverStatus {
        self.lifecycle.status()
    }

    fn stats(&self) -> &Stats {
        self.endpoint.stats()
    }

    fn epoch(&self) -> Duration {
        self.endpoint.params().epoch()
    }
}
