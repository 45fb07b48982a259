//! A driver's state and loop bodies, generic over the session and the socket.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use super::session::{DriverStatus, Session};
use crate::Timestamp;

/// Receive buffer length: any UDP datagram fits whole, so an oversized one is seen at its
/// true length and dropped by the core instead of being truncated into something that
/// decodes (docs/protocol.md §1).
pub const RECV_BUF_LEN: usize = 65_536;

/// Datagrams fed per [`DriverState::receive_batch`], so that a runtime can release its lock
/// between batches and application calls are not starved during a burst.
const RECV_BATCH: usize = 64;

/// The longest [`DriverState::quiet_pause`]; it is also at most a twentieth of an epoch.
const MAX_QUIET_PAUSE: Duration = Duration::from_millis(1);

/// Consecutive receive errors (other than `WouldBlock`) tolerated in one batch before the
/// driver goes back to sleep; "connection refused" notices from ICMP land here.
const MAX_RECV_ERRORS: usize = 16;

/// The non-blocking datagram operations a driver needs from its socket.
pub trait DatagramSocket {
    /// The peer address type.
    type Addr;

    /// Sends one datagram to `to` without blocking (`WouldBlock` if the socket is full).
    fn send_to(&self, to: &Self::Addr, datagram: &[u8]) -> io::Result<()>;

    /// Receives one datagram into `buf` without blocking (`WouldBlock` if none is ready):
    /// its length and source.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)>;
}

/// What [`DriverState::receive_batch`] found on the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The socket is drained (or kept failing): sleep until it is readable again.
    Drained,
    /// The batch is full and more may be ready: release the lock, then call again.
    More,
}

/// A session plus the bookkeeping of the driver that runs it.
pub struct DriverState<S: Session> {
    session: S,
    /// Datagrams produced by the core and not yet accepted by the socket, in send order.
    outbox: VecDeque<(S::Addr, Vec<u8>)>,
    /// The deadline the driver is sleeping towards.
    armed: Option<Timestamp>,
    recv_buf: Box<[u8]>,
    /// The last receive batch held datagrams, and every one was a heartbeat.
    only_heartbeats: bool,
}

impl<S: Session> DriverState<S> {
    /// Wraps `session`, whose first datagrams go out with the first [`pump`](Self::pump).
    pub fn new(session: S) -> DriverState<S> {
        DriverState {
            session,
            outbox: VecDeque::new(),
            armed: None,
            recv_buf: vec![0; RECV_BUF_LEN].into_boxed_slice(),
            only_heartbeats: false,
        }
    }

    /// The session.
    pub fn session(&self) -> &S {
        &self.session
    }

    /// The session, for an application call.
    pub fn session_mut(&mut self) -> &mut S {
        &mut self.session
    }

    /// Moves the core's output to `socket` and to the application-side state; returns
    /// whether waiting application calls must be woken.
    pub fn pump(&mut self, socket: &impl DatagramSocket<Addr = S::Addr>) -> bool {
        let progress = self.session.drain(&mut self.outbox);
        self.flush(socket);
        progress
    }

    /// Called after an application call changed the session: [`pump`](Self::pump)s, and
    /// tells whether the driver must be woken — because the core's next deadline moved
    /// earlier than the one it sleeps towards, or the socket refused datagrams it must send
    /// once writable.
    pub fn after_call(&mut self, socket: &impl DatagramSocket<Addr = S::Addr>) -> AfterCall {
        let wake_waiters = self.pump(socket);
        let earlier = match (self.session.poll_timeout(), self.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        AfterCall {
            wake_waiters,
            wake_driver: earlier || self.has_blocked_sends(),
        }
    }

    /// The driver is about to sleep: records and returns the deadline it must wake at.
    pub fn arm(&mut self) -> Option<Timestamp> {
        self.armed = self.session.poll_timeout();
        self.armed
    }

    /// Whether the socket refused datagrams that wait to be sent once it is writable.
    pub fn has_blocked_sends(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Fires the core's timer if its deadline has come.
    pub fn handle_timeout_if_due(&mut self, now: Timestamp) {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
    }

    /// Feeds the session up to one batch of the datagrams ready on `socket`, all stamped
    /// `now`, then [`pump`](Self::pump)s. Returns whether the socket may hold more, and
    /// whether waiting application calls must be woken.
    pub fn receive_batch(
        &mut self,
        now: Timestamp,
        socket: &impl DatagramSocket<Addr = S::Addr>,
    ) -> (Received, bool) {
        let mut errors = 0;
        let mut handled = 0;
        let heartbeats_before = self.session.stats().heartbeats_received;
        let received = loop {
            if handled == RECV_BATCH {
                break Received::More;
            }
            match socket.recv_from(&mut self.recv_buf) {
                Ok((len, from)) => {
                    errors = 0;
                    let len = len.min(self.recv_buf.len());
                    self.session
                        .handle_datagram(now, from, &self.recv_buf[..len]);
                    handled += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Received::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // "Connection refused" and similar notices: nothing was received.
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        break Received::Drained;
                    }
                }
            }
        };
        let heartbeats = self.session.stats().heartbeats_received - heartbeats_before;
        self.only_heartbeats = handled > 0 && heartbeats == handled as u64;
        (received, self.pump(socket))
    }

    /// How long the driver should wait before it next watches the socket, if the last
    /// receive batch held nothing but heartbeats (interrupt moderation).
    ///
    /// Heartbeats from many idle peers arrive one at a time, each a thread wake-up that
    /// achieves nothing but "this peer is alive", which only matters at the next epoch tick.
    /// Pausing for at most 1 ms (and a twentieth of an epoch) after such a wake-up lets the
    /// next ones be handled together: 10,000 idle clients at 2 s epochs cost hundreds of
    /// wake-ups a second instead of 5,000. The price is at most that pause of extra latency
    /// for a message arriving just after a heartbeat; a wake-up that received anything else
    /// (Data, a useful Ack, a Connect) never pauses, so request-reply and streaming traffic
    /// are unaffected.
    pub fn quiet_pause(&self) -> Option<Duration> {
        self.only_heartbeats
            .then(|| (self.session.epoch() / 20).min(MAX_QUIET_PAUSE))
    }

    /// Records that the driver stopped, with the reason application calls will report.
    pub fn halt(&mut self, status: DriverStatus) {
        if !self.session.status().is_stopped() {
            self.session.halt(status);
        }
    }

    /// Whether the driver has stopped (or must stop).
    pub fn is_stopped(&self) -> bool {
        self.session.status().is_stopped()
    }

    /// Sends queued datagrams until the queue is empty or the socket would block.
    fn flush(&mut self, socket: &impl DatagramSocket<Addr = S::Addr>) {
        while let Some((destination, datagram)) = self.outbox.front() {
            match socket.send_to(destination, datagram) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Sent, or refused (e.g. "connection refused" while the server is not up
                // yet): either way the datagram is gone, as UDP allows; LSP retransmits.
                _ => {
                    self.outbox.pop_front();
                }
            }
        }
    }
}

/// Who must be woken after an application call ([`DriverState::after_call`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct AfterCall {
    /// Application calls waiting for progress.
    pub wake_waiters: bool,
    /// The driver.
    pub wake_driver: bool,
}
