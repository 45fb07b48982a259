//! The I/O thread and the state it shares with the application threads.
//!
//! One [`Driver`] per endpoint owns a thread that sleeps in `mio::Poll` on the UDP socket and
//! a `mio::Waker`, with the core's [`poll_timeout`](Machine::poll_timeout) as the poll
//! timeout, so an idle endpoint costs nothing between epochs. The core sits behind a mutex
//! together with the application-side queues ([`Locked`]): the I/O thread takes the lock to
//! feed it every datagram that is ready (draining the socket until `WouldBlock` on each
//! wake-up) and the timer; application calls take it to call `write`/`close_conn`/`close`
//! directly, which gives them their `Result` synchronously and lets them send the datagrams
//! the call produced themselves, without a thread hand-off on the send path. The waker is
//! rung only when an application call needs the I/O thread: to stop it, to flush datagrams
//! the socket refused with `WouldBlock`, or when the core's next deadline moved earlier.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use lsp_core::Timestamp;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::clock::Clock;
use crate::socket::RECV_BUF_LEN;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Datagrams handled per lock hold, so application calls are not starved during a burst.
const RECV_BATCH: usize = 64;

/// Consecutive receive errors (other than `WouldBlock`) tolerated in one wake-up before the
/// thread goes back to sleep; "connection refused" notices land here and are ignored.
const MAX_RECV_ERRORS: usize = 16;

/// A sans-IO core plus its application-side state, as seen by the I/O thread.
pub(crate) trait Machine: Send + 'static {
    /// Feeds one datagram received from `from`.
    fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, datagram: &[u8]);
    /// Feeds the timer.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The core's next deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// Moves the core's datagrams into `outbox` and its events into the application-side
    /// state; returns whether a blocked application call may now make progress.
    fn drain(&mut self, outbox: &mut Outbox) -> bool;
}

/// Datagrams produced by the core and not yet accepted by the socket, in send order.
pub(crate) struct Outbox {
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// The socket is connected to its only peer: use `send`, which is cheaper than `send_to`.
    connected: bool,
}

impl Outbox {
    /// Queues `datagram` for `destination`.
    pub(crate) fn push(&mut self, destination: SocketAddr, datagram: Vec<u8>) {
        self.queue.push_back((destination, datagram));
    }

    /// Sends queued datagrams until the queue is empty or the socket would block.
    fn flush(&mut self, socket: &UdpSocket) {
        while let Some((destination, datagram)) = self.queue.front() {
            let sent = if self.connected {
                socket.send(datagram)
            } else {
                socket.send_to(datagram, *destination)
            };
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Sent, or refused (e.g. "connection refused" while the server is not up
                // yet): either way the datagram is gone, as UDP allows; LSP retransmits.
                _ => {
                    self.queue.pop_front();
                }
            }
        }
    }
}

/// What the mutex protects: the core, the outbox and the thread's bookkeeping.
pub(crate) struct Locked<M> {
    /// The core and its application-side queues.
    pub(crate) machine: M,
    outbox: Outbox,
    /// Application threads blocked in [`Shared::wait`].
    waiters: usize,
    /// The deadline the I/O thread is sleeping towards.
    armed: Option<Timestamp>,
    /// The I/O thread must exit.
    stop: bool,
    /// Set when the I/O thread died on a socket or poll error.
    pub(crate) failure: Option<Arc<io::Error>>,
}

impl<M> Locked<M> {
    /// Whether the endpoint was stopped (closed, aborted or dropped, or its I/O failed):
    /// every waiting or later application call must fail.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop
    }
}

/// The state shared by the I/O thread and the application's handle.
pub(crate) struct Shared<M> {
    locked: Mutex<Locked<M>>,
    changed: Condvar,
    socket: UdpSocket,
    waker: Waker,
    clock: Clock,
}

impl<M: Machine> Shared<M> {
    /// Locks the shared state (a poisoned lock is still usable: the core has no invariant a
    /// panicking reader could have broken half-way).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked<M>> {
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the I/O thread or another call reports progress.
    pub(crate) fn wait<'a>(
        &self,
        mut guard: MutexGuard<'a, Locked<M>>,
    ) -> MutexGuard<'a, Locked<M>> {
        guard.waiters += 1;
        let mut guard = self
            .changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner);
        guard.waiters -= 1;
        guard
    }

    /// Called by an application thread after it changed the core: sends what the call
    /// produced, hands events to readers, and rings the waker if the I/O thread must act.
    pub(crate) fn after_call(&self, locked: &mut Locked<M>) {
        self.pump(locked);
        let next = locked.machine.poll_timeout();
        let earlier = match (next, locked.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier || !locked.outbox.queue.is_empty() {
            // A failed wake means the thread is gone; `failure`/`stop` already say so.
            let _ = self.waker.wake();
        }
    }

    /// Moves the core's output to the socket and to the readers.
    fn pump(&self, locked: &mut Locked<M>) {
        let progress = locked.machine.drain(&mut locked.outbox);
        locked.outbox.flush(&self.socket);
        if progress {
            self.notify(locked);
        }
    }

    /// Wakes every application thread blocked in [`wait`](Self::wait).
    pub(crate) fn notify(&self, locked: &Locked<M>) {
        if locked.waiters > 0 {
            self.changed.notify_all();
        }
    }
}

/// An endpoint's I/O thread and the state it shares; dropping it stops the thread.
pub(crate) struct Driver<M: Machine> {
    shared: Arc<Shared<M>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<M: Machine> Driver<M> {
    /// Starts the I/O thread for `machine` on `socket` (already bound, non-blocking; set
    /// `connected` if it is connected to its only peer). The core's first datagrams are sent
    /// before this returns.
    pub(crate) fn start(
        name: &str,
        machine: M,
        socket: std::net::UdpSocket,
        connected: bool,
        clock: Clock,
    ) -> io::Result<Driver<M>> {
        let poll = Poll::new()?;
        let mut socket = UdpSocket::from_std(socket);
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE | Interest::WRITABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            locked: Mutex::new(Locked {
                machine,
                outbox: Outbox {
                    queue: VecDeque::new(),
                    connected,
                },
                waiters: 0,
                armed: None,
                stop: false,
                failure: None,
            }),
            changed: Condvar::new(),
            socket,
            waker,
            clock,
        });
        {
            let mut locked = shared.lock();
            shared.pump(&mut locked);
        }
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || run(&shared, poll))?
        };
        Ok(Driver {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The shared state.
    pub(crate) fn shared(&self) -> &Shared<M> {
        &self.shared
    }

    /// The socket's local address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    /// Stops the I/O thread and waits for it to exit. Idempotent.
    pub(crate) fn stop(&self) {
        {
            let mut locked = self.shared.lock();
            locked.stop = true;
            self.shared.notify(&locked);
        }
        let _ = self.shared.waker.wake();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // A panic on the I/O thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl<M: Machine> Drop for Driver<M> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The I/O thread's loop: sleep until a datagram, a wake-up or the core's deadline; feed the
/// core; send what it produced; repeat until told to stop.
fn run<M: Machine>(shared: &Shared<M>, mut poll: Poll) {
    let mut events = Events::with_capacity(8);
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let failure = loop {
        let sleep = {
            let mut locked = shared.lock();
            if locked.stop {
                break None;
            }
            locked.armed = locked.machine.poll_timeout();
            locked.armed.map(|deadline| shared.clock.until(deadline))
        };
        match poll.poll(&mut events, sleep) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        }
        let mut locked = shared.lock();
        if locked.stop {
            break None;
        }
        locked = receive_all(shared, locked, &mut buf);
        if locked.stop {
            break None;
        }
        let now = shared.clock.now();
        if locked.machine.poll_timeout().is_some_and(|t| t <= now) {
            locked.machine.handle_timeout(now);
        }
        shared.pump(&mut locked);
    };
    let mut locked = shared.lock();
    locked.failure = failure.map(Arc::new);
    locked.stop = true;
    shared.changed.notify_all();
}

/// Feeds the core every datagram ready on the socket, releasing the lock between batches.
fn receive_all<'a, M: Machine>(
    shared: &'a Shared<M>,
    mut locked: MutexGuard<'a, Locked<M>>,
    buf: &mut [u8],
) -> MutexGuard<'a, Locked<M>> {
    let mut errors = 0;
    loop {
        let now = shared.clock.now();
        let mut handled = 0;
        while handled < RECV_BATCH {
            match shared.socket.recv_from(buf) {
                Ok((len, from)) => {
                    locked.machine.handle_datagram(now, from, &buf[..len]);
                    handled += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return locked,
                Err(_) => {
                    // "Connection refused" and similar notices: nothing was received.
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        return locked;
                    }
                }
            }
        }
        shared.pump(&mut locked);
        drop(locked);
        locked = shared.lock();
        if locked.stop {
            return locked;
        }
    }
}
