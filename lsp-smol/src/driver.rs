//! The driver task and the state it shares with the application's handles.
//!
//! One [`Driver`] per endpoint owns a task on smol's global executor that waits on the
//! socket (`Async<UdpSocket>`), a [`Timer`] at the core's next deadline and a doorbell, so an
//! idle endpoint costs nothing between epochs. The session ([`lsp_core::runtime`]) sits
//! behind a mutex (never held across an `.await`) inside a [`DriverState`]: the task takes
//! it to feed the session every datagram that is ready (in batches, until `WouldBlock`) and
//! the timer; application calls take it to act on the session directly and send the
//! datagrams the call produced themselves. A call waiting for a message drains the socket
//! itself when it becomes readable, so the reactor wakes the reader directly, without a hop
//! through the driver task (which is woken too: unlike lsp-mio, it keeps watching the socket
//! while a call waits, because handing the socket back costs a wake-up per `read`). The
//! doorbell is rung only when an application call needs the
//! task: to stop it, to flush datagrams the socket refused with `WouldBlock`, or when the
//! core's next deadline moved earlier.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_io::{Async, Timer};
use event_listener::Event;
use lsp_core::runtime::{DriverState, DriverStatus, Received, Session};
use smol::future::{self, FutureExt};
use smol::Task;

use crate::clock::Clock;
use crate::socket::EndpointSocket;

/// A session a driver task can drive.
pub(crate) trait DrivenSession: Session<Addr = SocketAddr> + Send + 'static {}

impl<S: Session<Addr = SocketAddr> + Send + 'static> DrivenSession for S {}

/// The state shared by the driver task and the application's handle.
struct Shared<S: DrivenSession> {
    state: Mutex<DriverState<S>>,
    /// Rung for application calls waiting in [`Driver::wait_until`].
    changed: Event,
    /// Rung for the driver task.
    doorbell: Event,
    socket: EndpointSocket,
    clock: Clock,
}

impl<S: DrivenSession> Shared<S> {
    /// Locks the shared state (a poisoned lock is still usable: the session has no invariant
    /// a panicking reader could have broken half-way).
    fn lock(&self) -> MutexGuard<'_, DriverState<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every application call waiting in [`Driver::wait_until`].
    fn notify(&self) {
        self.changed.notify(usize::MAX);
    }

    /// Feeds the session every datagram ready on the socket, releasing the lock between
    /// batches so application calls are not starved during a burst. Returns how long to
    /// pause before watching the socket again ([`DriverState::quiet_pause`]).
    ///
    /// If the socket refused some of what the session produced, the driver task is rung so
    /// that it waits for writability.
    fn receive_all(&self) -> Option<Duration> {
        loop {
            let mut state = self.lock();
            if state.is_stopped() {
                return None;
            }
            let (received, progress) = state.receive_batch(self.clock.now(), &self.socket);
            let pause = state.quiet_pause();
            let blocked_sends = state.has_blocked_sends();
            drop(state);
            if progress {
                self.notify();
            }
            if blocked_sends {
                self.doorbell.notify(1);
            }
            if received == Received::Drained {
                return pause;
            }
        }
    }

    fn signal_stop(&self) {
        self.lock().halt(DriverStatus::Stopped);
        self.doorbell.notify(usize::MAX);
        self.notify();
    }
}

/// An endpoint's driver task and the state it shares; dropping it cancels the task.
pub(crate) struct Driver<S: DrivenSession> {
    shared: Arc<Shared<S>>,
    task: Mutex<Option<Task<()>>>,
}

impl<S: DrivenSession> Driver<S> {
    /// Starts the driver task for `session` on `socket` (already bound; set `connected` if
    /// it is connected to its only peer). The session's first datagrams are sent before
    /// this returns.
    pub(crate) fn start(
        session: S,
        socket: UdpSocket,
        connected: bool,
        clock: Clock,
    ) -> io::Result<Driver<S>> {
        let inner = Async::new(socket)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(DriverState::new(session)),
            changed: Event::new(),
            doorbell: Event::new(),
            socket: EndpointSocket { inner, connected },
            clock,
        });
        {
            let mut state = shared.lock();
            let _ = state.pump(&shared.socket);
        }
        let task = smol::spawn(run(Arc::clone(&shared)));
        Ok(Driver {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The socket's local address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.inner.get_ref().local_addr()
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
        let mut state = shared.lock();
        let result = call(state.session_mut());
        let after = state.after_call(&shared.socket);
        drop(state);
        if after.wake_waiters || wake_all {
            shared.notify();
        }
        if after.wake_driver {
            shared.doorbell.notify(1);
        }
        result
    }

    /// Waits until `poll` returns a value; `poll` runs under the lock now and whenever the
    /// driver or another call reports progress. While waiting, drains the socket itself when
    /// it becomes readable. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn wait_until<T>(&self, mut poll: impl FnMut(&mut S) -> Option<T>) -> T {
        let shared = &*self.shared;
        loop {
            if let Some(value) = poll(shared.lock().session_mut()) {
                return value;
            }
            let listener = shared.changed.listen();
            if let Some(value) = poll(shared.lock().session_mut()) {
                return value;
            }
            let readable = async { shared.socket.inner.readable().await.is_ok() };
            let drain = async {
                listener.await;
                false
            }
            .or(readable)
            .await;
            if drain {
                if let Some(pause) = shared.receive_all() {
                    Timer::after(pause).await;
                }
            }
        }
    }

    /// Runs `inspect` on the session under the lock.
    pub(crate) fn inspect<R>(&self, inspect: impl FnOnce(&S) -> R) -> R {
        inspect(self.shared.lock().session())
    }

    /// Tells the task to stop and, in the first caller, waits until it has; waiting and
    /// later calls fail. Idempotent.
    pub(crate) async fn stop(&self) {
        self.shared.signal_stop();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.await;
        }
    }
}

impl<S: DrivenSession> Drop for Driver<S> {
    fn drop(&mut self) {
        // Dropping the task cancels it; the socket closes with the last reference.
        self.shared.signal_stop();
    }
}

/// The driver task: wait for a datagram, the deadline or the doorbell; feed the session;
/// send what it produced; repeat until told to stop.
async fn run<S: DrivenSession>(shared: Arc<Shared<S>>) {
    let _halt_on_panic = HaltOnPanic(&shared);
    let failure = loop {
        let doorbell = shared.doorbell.listen();
        let (deadline, blocked_sends) = {
            let mut state = shared.lock();
            if state.is_stopped() {
                break None;
            }
            (state.arm(), state.has_blocked_sends())
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
                shared.socket.inner.writable().await
            } else {
                future::pending().await
            }
        };
        let woken = shared
            .socket
            .inner
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
        let pause = shared.receive_all();
        let progress = {
            let mut state = shared.lock();
            if state.is_stopped() {
                break None;
            }
            state.handle_timeout_if_due(shared.clock.now());
            state.pump(&shared.socket)
        };
        if progress {
            shared.notify();
        }
        if let Some(pause) = pause {
            Timer::after(pause).await;
        }
    };
    shared.lock().halt(match failure {
        Some(e) => DriverStatus::Failed(Arc::new(e)),
        None => DriverStatus::Stopped,
    });
    shared.notify();
}

/// Fails every waiting and later call if the driver task panics, instead of leaving them
/// waiting for a task that is gone. (Declared first in [`run`], so it drops after any lock
/// guard of the loop body.)
struct HaltOnPanic<'a, S: DrivenSession>(&'a Shared<S>);

impl<S: DrivenSession> Drop for HaltOnPanic<'_, S> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .lock()
                .halt(DriverStatus::Failed(Arc::new(io::Error::other(
                    "the driver task panicked",
                ))));
            self.0.notify();
        }
    }
}
