//! The I/O thread and the state it shares with the application threads.
//!
//! One [`Driver`] per endpoint owns a thread that sleeps in `mio::Poll` on the UDP socket and
//! a `mio::Waker`, with the core's next deadline as the poll timeout, so an idle endpoint
//! costs nothing between epochs. The session ([`lsp_core::runtime`]) sits behind a mutex
//! inside a [`DriverState`]: the I/O thread takes the lock to feed it every datagram that is
//! ready (in batches, until `WouldBlock`) and the timer; application calls take it to act on
//! the session directly, which gives them their `Result` synchronously and lets them send the
//! datagrams the call produced themselves, without a thread hand-off on the send path. The
//! waker is rung only when an application call needs the I/O thread: to stop it, to flush
//! datagrams the socket refused with `WouldBlock`, or when the core's next deadline moved
//! earlier.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use lsp_core::runtime::{DriverState, DriverStatus, Received, Session};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::clock::Clock;
use crate::socket::EndpointSocket;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// A session an I/O thread can drive.
pub(crate) trait DrivenSession: Session<Addr = SocketAddr> + Send + 'static {}

impl<S: Session<Addr = SocketAddr> + Send + 'static> DrivenSession for S {}

/// What the mutex protects.
struct Locked<S: DrivenSession> {
    state: DriverState<S>,
    /// Application threads blocked on the condition variable in [`Driver::wait_until`].
    waiters: usize,
    /// An application thread waits in the reader poll (see [`ReaderPoll`]).
    reader_polling: bool,
    /// What the I/O thread's poll watches the socket for (`None`: nothing), kept in step
    /// with `reader_polling` and blocked sends by [`Shared::update_interest`].
    io_interest: Option<Interest>,
}

/// A second `mio::Poll` on the same socket, for an application thread waiting for a message:
/// it sleeps in the kernel on the socket itself and is woken by the datagram directly, not by
/// the I/O thread after it handled the datagram, which halves the thread wake-ups on the
/// request-reply path. One waiting thread at a time uses it; others use the condition
/// variable. Meanwhile the I/O thread stops watching the socket for reading (so a datagram
/// wakes one thread, not two) and keeps the timers.
struct ReaderPoll {
    poll: Poll,
    events: Events,
}

/// Which thread drains the socket ([`Shared::receive_all`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drainer {
    /// The I/O thread.
    IoThread,
    /// The application thread in the reader poll.
    Reader,
}

/// The state shared by the I/O thread and the application's handle.
struct Shared<S: DrivenSession> {
    locked: Mutex<Locked<S>>,
    changed: Condvar,
    socket: EndpointSocket,
    /// The I/O thread's registry, for changing what its poll watches from any thread.
    io_registry: Registry,
    waker: Waker,
    reader: Mutex<ReaderPoll>,
    /// Wakes the thread in the reader poll.
    reader_waker: Waker,
    clock: Clock,
}

impl<S: DrivenSession> Shared<S> {
    /// Locks the shared state (a poisoned lock is still usable: the session has no invariant
    /// a panicking reader could have broken half-way).
    fn lock(&self) -> MutexGuard<'_, Locked<S>> {
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every application thread blocked in [`Driver::wait_until`].
    fn notify(&self, locked: &Locked<S>) {
        self.notify_condvar(locked);
        if locked.reader_polling {
            // A failed wake (mio handles a full eventfd itself) leaves the reader asleep
            // until the next datagram.
            let _ = self.reader_waker.wake();
        }
    }

    /// Wakes the application threads blocked on the condition variable (not the reader
    /// poller).
    fn notify_condvar(&self, locked: &Locked<S>) {
        if locked.waiters > 0 {
            self.changed.notify_all();
        }
    }

    /// Makes the I/O thread's poll watch the socket for what it must: reading unless a
    /// reader polls it, writing while sends are blocked.
    fn update_interest(&self, locked: &mut Locked<S>) -> io::Result<()> {
        let readable = (!locked.reader_polling).then_some(Interest::READABLE);
        let writable = locked
            .state
            .has_blocked_sends()
            .then_some(Interest::WRITABLE);
        let wanted = match (readable, writable) {
            (Some(r), Some(w)) => Some(r | w),
            (r, w) => r.or(w),
        };
        if wanted == locked.io_interest {
            return Ok(());
        }
        let fd = self.socket.inner.as_raw_fd();
        let mut source = SourceFd(&fd);
        match (locked.io_interest, wanted) {
            (None, Some(interest)) => self.io_registry.register(&mut source, SOCKET, interest)?,
            (Some(_), Some(interest)) => {
                self.io_registry.reregister(&mut source, SOCKET, interest)?
            }
            (Some(_), None) => self.io_registry.deregister(&mut source)?,
            (None, None) => {}
        }
        locked.io_interest = wanted;
        Ok(())
    }

    /// Waits in the reader poll, feeding the session whatever arrives, until `poll` returns
    /// a value. Gives `locked` back untouched if another thread holds the reader poll.
    fn wait_as_reader<'a, T>(
        &'a self,
        mut locked: MutexGuard<'a, Locked<S>>,
        poll: &mut impl FnMut(&mut S) -> Option<T>,
    ) -> Result<T, MutexGuard<'a, Locked<S>>> {
        if locked.reader_polling {
            return Err(locked);
        }
        let Ok(mut reader) = self.reader.try_lock() else {
            return Err(locked);
        };
        locked.reader_polling = true;
        if self.update_interest(&mut locked).is_err() {
            // The I/O thread keeps watching; the condition variable path still works.
            locked.reader_polling = false;
            return Err(locked);
        }
        let value = loop {
            drop(locked);
            let ReaderPoll {
                poll: reader_poll,
                events,
            } = &mut *reader;
            // An error (EINTR, or worse) just sends us round the loop once more.
            let _ = reader_poll.poll(events, None);
            let pause = self.receive_all(Drainer::Reader);
            locked = self.lock();
            if let Some(value) = poll(locked.state.session_mut()) {
                break value;
            }
            if let Some(pause) = pause {
                drop(locked);
                std::thread::sleep(pause);
                locked = self.lock();
            }
        };
        locked.reader_polling = false;
        if self.update_interest(&mut locked).is_err() {
            // Cannot happen short of running out of kernel memory; wake the I/O thread so
            // it retries on its own before sleeping.
            let _ = self.waker.wake();
        }
        Ok(value)
    }

    /// Feeds the session every datagram ready on the socket, releasing the lock between
    /// batches so application calls are not starved during a burst. Returns how long to
    /// pause before watching the socket again ([`DriverState::quiet_pause`]).
    ///
    /// `by` says who drains: the reader poller does not wake itself. If the socket refused
    /// some of what the session produced, the I/O thread is made to watch for writability.
    fn receive_all(&self, by: Drainer) -> Option<Duration> {
        loop {
            let mut locked = self.lock();
            if locked.state.is_stopped() {
                return None;
            }
            let (received, progress) = locked.state.receive_batch(self.clock.now(), &self.socket);
            if progress {
                match by {
                    Drainer::IoThread => self.notify(&locked),
                    Drainer::Reader => self.notify_condvar(&locked),
                }
            }
            if locked.state.has_blocked_sends() && self.update_interest(&mut locked).is_err() {
                let _ = self.waker.wake();
            }
            if received == Received::Drained {
                return locked.state.quiet_pause();
            }
        }
    }
}

/// An endpoint's I/O thread and the state it shares; dropping it stops the thread.
pub(crate) struct Driver<S: DrivenSession> {
    shared: Arc<Shared<S>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: DrivenSession> Driver<S> {
    /// Starts the I/O thread for `session` on `socket` (already bound, non-blocking; set
    /// `connected` if it is connected to its only peer). The session's first datagrams are
    /// sent before this returns.
    pub(crate) fn start(
        name: &str,
        session: S,
        socket: std::net::UdpSocket,
        connected: bool,
        clock: Clock,
    ) -> io::Result<Driver<S>> {
        let poll = Poll::new()?;
        let inner = mio::net::UdpSocket::from_std(socket);
        // Writable interest only while sends are blocked (see `update_interest`): on Linux
        // every datagram the kernel frees signals "writable", which would wake the thread
        // after each send.
        poll.registry().register(
            &mut SourceFd(&inner.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        let io_registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let reader_poll = Poll::new()?;
        reader_poll.registry().register(
            &mut SourceFd(&inner.as_raw_fd()),
            SOCKET,
            Interest::READABLE,
        )?;
        let reader_waker = Waker::new(reader_poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            locked: Mutex::new(Locked {
                state: DriverState::new(session),
                waiters: 0,
                reader_polling: false,
                io_interest: Some(Interest::READABLE),
            }),
            changed: Condvar::new(),
            socket: EndpointSocket { inner, connected },
            io_registry,
            waker,
            reader: Mutex::new(ReaderPoll {
                poll: reader_poll,
                events: Events::with_capacity(4),
            }),
            reader_waker,
            clock,
        });
        {
            let mut locked = shared.lock();
            let _ = locked.state.pump(&shared.socket);
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

    /// The socket's local address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.inner.local_addr()
    }

    /// Applies an application call to the session, sends what it produced, and wakes whoever
    /// must act on it.
    pub(crate) fn call<R>(&self, call: impl FnOnce(&mut S) -> R) -> R {
        self.call_inner(call, false)
    }

    /// Like [`call`](Self::call), and wakes every waiting call so it re-checks the session
    /// (for a call that makes them fail, like `close`).
    pub(crate) fn call_then_wake_all<R>(&self, call: impl FnOnce(&mut S) -> R) -> R {
        self.call_inner(call, true)
    }

    fn call_inner<R>(&self, call: impl FnOnce(&mut S) -> R, wake_all: bool) -> R {
        let shared = &*self.shared;
        let mut locked = shared.lock();
        let result = call(locked.state.session_mut());
        let after = locked.state.after_call(&shared.socket);
        if after.wake_waiters || wake_all {
            shared.notify(&locked);
        }
        if after.wake_driver {
            // A failed wake means the thread is gone; the session already says so.
            let _ = shared.waker.wake();
        }
        result
    }

    /// Blocks until `poll` returns a value; `poll` runs under the lock now and whenever the
    /// I/O thread or another call reports progress. While waiting, drains the socket itself
    /// when it becomes readable (one waiting thread at a time).
    pub(crate) fn wait_until<T>(&self, mut poll: impl FnMut(&mut S) -> Option<T>) -> T {
        let shared = &*self.shared;
        let mut locked = shared.lock();
        loop {
            if let Some(value) = poll(locked.state.session_mut()) {
                return value;
            }
            locked = match shared.wait_as_reader(locked, &mut poll) {
                Ok(value) => return value,
                Err(unchanged) => unchanged,
            };
            locked.waiters += 1;
            locked = shared
                .changed
                .wait(locked)
                .unwrap_or_else(PoisonError::into_inner);
            locked.waiters -= 1;
        }
    }

    /// Runs `inspect` on the session under the lock.
    pub(crate) fn inspect<R>(&self, inspect: impl FnOnce(&S) -> R) -> R {
        inspect(self.shared.lock().state.session())
    }

    /// Stops the I/O thread and, in the first caller, waits for it to exit; waiting and
    /// later calls fail. Idempotent.
    pub(crate) fn stop(&self) {
        {
            let mut locked = self.shared.lock();
            locked.state.halt(DriverStatus::Stopped);
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

impl<S: DrivenSession> Drop for Driver<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The I/O thread's loop: sleep until a datagram, a wake-up or the core's deadline; feed the
/// session; send what it produced; repeat until told to stop.
fn run<S: DrivenSession>(shared: &Shared<S>, mut poll: Poll) {
    let _halt_on_panic = HaltOnPanic(shared);
    let mut events = Events::with_capacity(8);
    let failure = loop {
        let sleep = {
            let mut locked = shared.lock();
            if locked.state.is_stopped() {
                break None;
            }
            if let Err(e) = shared.update_interest(&mut locked) {
                break Some(e);
            }
            locked
                .state
                .arm()
                .map(|deadline| shared.clock.until(deadline))
        };
        match poll.poll(&mut events, sleep) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        }
        let pause = shared.receive_all(Drainer::IoThread);
        let mut locked = shared.lock();
        if locked.state.is_stopped() {
            break None;
        }
        locked.state.handle_timeout_if_due(shared.clock.now());
        if locked.state.pump(&shared.socket) {
            shared.notify(&locked);
        }
        drop(locked);
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
    };
    let mut locked = shared.lock();
    locked.state.halt(match failure {
        Some(e) => DriverStatus::Failed(Arc::new(e)),
        None => DriverStatus::Stopped,
    });
    shared.notify(&locked);
}

/// Fails every waiting and later call if the I/O thread unwinds, instead of leaving them
/// waiting for a thread that is gone. (Declared first in [`run`], so it drops after any
/// lock guard of the loop body.)
struct HaltOnPanic<'a, S: DrivenSession>(&'a Shared<S>);

impl<S: DrivenSession> Drop for HaltOnPanic<'_, S> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut locked = self.0.lock();
            locked
                .state
                .halt(DriverStatus::Failed(Arc::new(io::Error::other(
                    "the I/O thread panicked",
                ))));
            self.0.notify(&locked);
        }
    }
}
