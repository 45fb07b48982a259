//! What every runtime (`lsp-mio`, `lsp-smol`) shares, with no IO of its own.
//!
//! A runtime is a thin driver: it owns a socket, a clock and a way to sleep and wake up, and
//! nothing else. Everything it would otherwise repeat lives here, once:
//!
//! - [`ServerSession`] and [`ClientSession`]: an endpoint plus the application-side state of
//!   docs/protocol.md §7 — the queue of messages and per-connection errors `read` hands out, what
//!   `close_conn`, `close` and a stopped driver do to it, and which error each call reports
//!   in which state. A runtime's `read` is "wait until [`ServerSession::poll_read`] gives
//!   something"; its `write` is [`ServerSession::write`] followed by
//!   [`DriverState::after_call`].
//! - [`DriverState`]: a session plus the driver's bookkeeping — the datagrams the socket
//!   refused for now, the deadline the driver sleeps towards, the receive buffer — and the
//!   loop bodies every driver runs: feed ready datagrams in batches, fire the timer when
//!   due, send what the core produced. The socket is reached through the
//!   [`DatagramSocket`] trait, so the runtime decides how to wait and this module only ever
//!   calls non-blocking operations.
//! - The errors of the application API ([`StartError`], [`ServerReadError`],
//!   [`ClientReadError`], [`CloseError`]).
//!
//! A runtime keeps its [`DriverState`] behind one lock, taken by its driver (an I/O thread
//! or a task) and by application calls alike.

mod client;
mod driver;
mod errors;
mod lifecycle;
mod server;
mod session;

pub use client::ClientSession;
pub use driver::{AfterCall, DatagramSocket, DriverState, Received, RECV_BUF_LEN};
pub use errors::{ClientReadError, CloseError, ServerReadError, StartError};
pub use server::{ServerReadItem, ServerSession};
pub use session::{DriverStatus, Session};

#[cfg(test)]
mod tests;
