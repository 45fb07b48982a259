//! The driver task and the state it shares with the application's handles.
//!
//! One [`Driver`] per endpoint owns a task on smol's global executor that waits on the
//! socket (`Async<UdpSocket>`), a [`Timer`] at the core's
//! [`poll_timeout`](Machine::poll_timeout) and a doorbell, so an idle endpoint costs nothing
//! between epochs. The core sits behind a mutex (never held across an `.await`) together with
//! the application-side queues ([`Locked`]): the task takes it to feed the core every
//! datagram that is ready (draining the socket until `WouldBlock` on each wake-up) and the
//! timer; application calls take it to call `write`/`close_conn`/`close` directly and send
//! the datagrams the call produced themselves. The doorbell is rung only when an application
//! call needs the task: to stop it, to flush datagrams the socket refused with `WouldBlock`,
//! or when the core's next deadline moved earlier.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_io::{Async, Timer};
use event_listener::Event;
use lsp_core::Timestamp;
use smol::future::{self, FutureExt};
use smol::Task;

use crate::clock::Clock;
use crate::socket::RECV_BUF_LEN;

/// Datagrams handled per lock hold, so application calls are not starved during a burst.
const RECV_BATCH: usize = 64;

/// Consecutive receive errors (other than `WouldBlock`) tolerated in one wake-up before the
/// task goes back to waiting; "connection refused" notices land here and are ignored.
const MAX_RECV_ERRORS: usize = 16;

/// A sans-IO core plus its application-side state, as seen by the driver task.
pub(crate) trait Machine: Send + 'static {
    /// Feeds one datagram received from `from`.
    fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, datagram: &[u8]);
    /// Feeds the timer.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The core's next deadline.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// Moves the core's datagrams into `outbox` and its events into the application-side
    /// state; returns whether a waiting application call may now make progress.
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

/// What the mutex protects: the core, the outbox and the task's bookkeeping.
pub(crate) struct Locked<M> {
    /// The core and its application-side queues.
    pub(crate) machine: M,
    outbox: Outbox,
    /// The deadline the task is waiting for.
    armed: Option<Timestamp>,
    /// The task must exit.
    stop: bool,
    /// Set when the task stopped on a socket error.
    pub(crate) failure: Option<Arc<io::Error>>,
}

impl<M> Locked<M> {
    /// Whether the endpoint was stopped (closed, aborted or dropped, or its I/O failed):
    /// every waiting or later application call must fail.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop
    }
}

/// The state shared by the driver task and the application's handle.
pub(crate) struct Shared<M> {
    locked: Mutex<Locked<M>>,
    /// Rung for application calls waiting in [`wait_for`](Self::wait_for).
    changed: Event,
    /// Rung for the driver task.
    doorbell: Event,
    socket: Async<UdpSocket>,
    /// The receive buffer, held by whoever is draining the socket.
    recv_buf: Mutex<Vec<u8>>,
    clock: Clock,
}

impl<M: Machine> Shared<M> {
    /// Locks the shared state (a poisoned lock is still usable: the core has no invariant a
    /// panicking reader could have broken half-way).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked<M>> {
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `check` returns a value. `check` runs under the lock whenever the driver
    /// or another call reports progress. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn wait_for<T>(
        &self,
        mut check: impl FnMut(&mut Locked<M>) -> Option<T>,
    ) -> T {
        loop {
            if let Some(value) = check(&mut self.lock()) {
                return value;
            }
            let listener = self.changed.listen();
            if let Some(value) = check(&mut self.lock()) {
                return value;
            }
            // Wait for progress, or drain the socket ourselves when it becomes readable:
            // this task is then woken by the reactor directly, without a hop through the
            // driver task on the receive path.
            let readable = async { self.socket.readable().await.is_ok() };
            let drain = async {
                listener.await;
                false
            }
            .or(readable)
            .await;
            if drain {
                self.receive();
            }
        }
    }

    /// Feeds the core every datagram ready on the socket and sends what it produced.
    fn receive(&self) {
        let mut buf = self.recv_buf.lock().unwrap_or_else(PoisonError::into_inner);
        let locked = self.lock();
        if locked.stop {
            return;
        }
        let mut locked = receive_all(self, locked, &mut buf);
        self.pump(&mut locked);
    }

    /// Called by an application call after it changed the core: sends what the call
    /// produced, hands events to readers, and rings the doorbell if the task must act.
    pub(crate) fn after_call(&self, locked: &mut Locked<M>) {
        self.pump(locked);
        let next = locked.machine.poll_timeout();
        let earlier = match (next, locked.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier || !locked.outbox.queue.is_empty() {
            self.doorbell.notify(1);
        }
    }

    /// Wakes every application call waiting in [`wait_for`](Self::wait_for).
    pub(crate) fn notify(&self) {
        self.changed.notify(usize::MAX);
    }

    /// Moves the core's output to the socket and to the readers.
    fn pump(&self, locked: &mut Locked<M>) {
        let progress = locked.machine.drain(&mut locked.outbox);
        locked.outbox.flush(self.socket.get_ref());
        if progress {
            self.notify();
        }
    }
}

/// An endpoint's driver task and the state it shares; dropping it cancels the task.
pub(crate) struct Driver<M: Machine> {
    shared: Arc<Shared<M>>,
    task: Mutex<Option<Task<()>>>,
}

impl<M: Machine> Driver<M> {
    /// Starts the driver task for `machine` on `socket` (already bound; set `connected` if
    /// it is connected to its only peer). The core's first datagrams are sent before this
    /// returns.
    pub(crate) fn start(
        machine: M,
        socket: UdpSocket,
        connected: bool,
        clock: Clock,
    ) -> io::Result<Driver<M>> {
        let socket = Async::new(socket)?;
        let shared = Arc::new(Shared {
            locked: Mutex::new(Locked {
                machine,
                outbox: Outbox {
                    queue: VecDeque::new(),
                    connected,
                },
                armed: None,
                stop: false,
                failure: None,
            }),
            changed: Event::new(),
            doorbell: Event::new(),
            socket,
            recv_buf: Mutex::new(vec![0u8; RECV_BUF_LEN]),
            clock,
        });
        {
            let mut locked = shared.lock();
            shared.pump(&mut locked);
        }
        let task = smol::spawn(run(Arc::clone(&shared)));
        Ok(Driver {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The shared state.
    pub(crate) fn shared(&self) -> &Shared<M> {
        &self.shared
    }

    /// The socket's local address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.get_ref().local_addr()
    }

    /// Tells the task to stop and waits until it has. Idempotent.
    pub(crate) async fn stop(&self) {
        self.signal_stop();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.await;
        }
    }

    fn signal_stop(&self) {
        self.shared.lock().stop = true;
        self.shared.doorbell.notify(usize::MAX);
        self.shared.notify();
    }
}

impl<M: Machine> Drop for Driver<M> {
    fn drop(&mut self) {
        // Dropping the task cancels it; the socket closes with the last reference.
        self.signal_stop();
    }
}

/// The driver task: wait for a datagram, the deadline or the doorbell; feed the core; send
/// what it produced; repeat until told to stop.
async fn run<M: Machine>(shared: Arc<Shared<M>>) {
    let failure = loop {
        let doorbell = shared.doorbell.listen();
        let (deadline, blocked_sends) = {
            let mut locked = shared.lock();
            if locked.stop {
                break None;
            }
            locked.armed = locked.machine.poll_timeout();
            (locked.armed, !locked.outbox.queue.is_empty())
        };
        let timer = async {
            match deadline.and_then(|t| shared.clock.instant(t)) {
                Some(at) => {
                    Timer::at(at).await;
                }
                None => future::pending::<()>().await,
            }
            Ok(())
        };
        let writable = async {
            if blocked_sends {
                shared.socket.writable().await
            } else {
                future::pending().await
            }
        };
        let woken = shared
            .socket
            .readable()
            .or(timer)
            .or(async {
                doorbell.await;
                Ok(())
            })
            .or(writable)
            .await;
        if let Err(e) = woken {
            break Some(e);
        }
        shared.receive();
        let mut locked = shared.lock();
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
    drop(locked);
    shared.notify();
}

/// Feeds the core every datagram ready on the socket, releasing the lock between batches.
fn receive_all<'a, M: Machine>(
    shared: &'a Shared<M>,
    mut locked: MutexGuard<'a, Locked<M>>,
    buf: &mut [u8],
) -> MutexGuard<'a, Locked<M>> {
    let socket = shared.socket.get_ref();
    let mut errors = 0;
    loop {
        let now = shared.clock.now();
        let mut handled = 0;
        while handled < RECV_BATCH {
            match socket.recv_from(buf) {
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
