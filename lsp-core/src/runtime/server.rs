//! The server's application-side semantics (docs/protocol.md §7 "Server").

use std::collections::VecDeque;
use std::time::Duration;

use super::errors::{CloseError, ServerReadError};
use super::lifecycle::Lifecycle;
use super::session::{DriverStatus, Session, INBOX_AHEAD};
use crate::{
    ApiError, ConnId, Limits, Params, ParamsError, ServerEndpoint, ServerEvent, Stats, Timestamp,
};

/// What [`ServerSession::poll_read`] hands out, in order.
pub type ServerReadItem = Result<(ConnId, Vec<u8>), ServerReadError>;

/// A [`ServerEndpoint`] plus what its application has not yet read.
///
/// Every method is what the runtime's call of the same name does once it holds the lock;
/// a runtime's blocking or async `read` and `close` wait until the `poll_*` method returns
/// something.
pub struct ServerSession<A> {
    endpoint: ServerEndpoint<A>,
    /// Messages and per-connection errors not yet returned by `read`, at most
    /// [`INBOX_AHEAD`] while open (the rest wait in the endpoint).
    inbox: VecDeque<ServerReadItem>,
    lifecycle: Lifecycle,
}

impl<A: Ord + Clone> ServerSession<A> {
    /// A session whose endpoint starts at `now`; fails if `params` are invalid.
    pub fn new(params: Params, now: Timestamp) -> Result<ServerSession<A>, ParamsError> {
        ServerSession::with_limits(params, Limits::default(), now)
    }

    /// A session whose endpoint has these resource `limits`; fails if `params` or `limits`
    /// are invalid.
    pub fn with_limits(
        params: Params,
        limits: Limits,
        now: Timestamp,
    ) -> Result<ServerSession<A>, ParamsError> {
        Ok(ServerSession {
            endpoint: ServerEndpoint::with_limits(params, limits, now)?,
            inbox: VecDeque::new(),
            lifecycle: Lifecycle::default(),
        })
    }

    /// The endpoint, for its counters and connection table.
    pub fn endpoint(&self) -> &ServerEndpoint<A> {
        &self.endpoint
    }

    /// The next thing `read` returns, or `None` if it must wait: the driver's failure; then
    /// [`ServerReadError::Closed`] once `close` was called or the driver stopped; then the
    /// oldest unread message or per-connection error.
    pub fn poll_read(&mut self) -> Option<ServerReadItem> {
        if let Some(refusal) = self
            .lifecycle
            .read_refusal(ServerReadError::Io, ServerReadError::Closed)
        {
            return Some(Err(refusal));
        }
        self.take_events();
        let item = self.inbox.pop_front();
        self.take_events();
        item
    }

    /// Moves the endpoint's events into the inbox: up to [`INBOX_AHEAD`] items while open
    /// (back-pressure: the endpoint's unread messages stay bounded and its peers are slowed
    /// down), everything once `close` was called (reads are refused then, and the close
    /// result must come through). Returns whether anything moved.
    fn take_events(&mut self) -> bool {
        let mut progress = false;
        while self.lifecycle.is_closing() || self.inbox.len() < INBOX_AHEAD {
            let Some(event) = self.endpoint.poll_event() else {
                break;
            };
            let item = match event {
                ServerEvent::Connected { .. } => continue,
                ServerEvent::Message { conn, payload } => Ok((conn, payload)),
                ServerEvent::ConnectionLost { conn } => Err(ServerReadError::ConnectionLost(conn)),
                ServerEvent::ConnectionClosed { conn } => {
                    Err(ServerReadError::ConnectionClosed(conn))
                }
                ServerEvent::Closed(result) => {
                    self.lifecycle.closed(result);
                    progress = true;
                    continue;
                }
            };
            self.inbox.push_back(item);
            progress = true;
        }
        progress
    }

    /// Queues `payload` for `conn`. Fails if the server is closing or stopped, `conn` is
    /// unknown, lost or closed, or the payload does not fit in one datagram.
    pub fn write(&mut self, conn: ConnId, payload: Vec<u8>) -> Result<(), ApiError> {
        self.lifecycle.check_open()?;
        self.endpoint.write(conn, payload)
    }

    /// Closes `conn`: its unread messages are discarded (`read` reports the closure once
    /// instead), what was written to it is still delivered. Fails if the server is closing
    /// or stopped, or `conn` is unknown or already closed.
    pub fn close_conn(&mut self, conn: ConnId) -> Result<(), ApiError> {
        self.lifecycle.check_open()?;
        self.endpoint.close_conn(conn)?;
        self.inbox
            .retain(|item| !matches!(item, Ok((c, _)) if *c == conn));
        Ok(())
    }

    /// Starts closing: reads fail from now on, the endpoint flushes what was written.
    /// Fails if `close` was already called or the driver stopped.
    pub fn begin_close(&mut self) -> Result<(), CloseError> {
        self.lifecycle.begin_close()?;
        // Only refused when already closing, which the lifecycle rules out.
        let _ = self.endpoint.close();
        Ok(())
    }

    /// How the close ended, or `None` while it is in progress: `Ok` once everything written
    /// was acknowledged, the lost connections otherwise; the driver's failure, or `Aborted`
    /// if the endpoint was stopped first.
    pub fn poll_closed(&mut self) -> Option<Result<(), CloseError>> {
        self.lifecycle.poll_closed()
    }
}

impl<A: Ord + Clone> Session for ServerSession<A> {
    type Addr = A;

    fn handle_datagram(&mut self, now: Timestamp, from: A, datagram: &[u8]) {
        self.endpoint.handle_datagram(now, from, datagram);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.endpoint.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.endpoint.poll_timeout()
    }

    fn drain(&mut self, outbox: &mut VecDeque<(A, Vec<u8>)>) -> bool {
        while let Some(t) = self.endpoint.poll_transmit() {
            outbox.push_back((t.destination, t.payload));
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
