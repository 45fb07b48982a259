//! LSP on a mio event loop: a blocking [`Server`] and [`Client`] with the reference API
//! (docs/protocol.md §7), each a thin driver of the sans-IO endpoints of [`lsp_core`].
//!
//! Every endpoint runs one I/O thread that sleeps in `mio::Poll` on its non-blocking UDP
//! socket and a `mio::Waker`, with the core's next deadline as the poll timeout: an idle
//! endpoint uses no CPU between epochs. On each wake-up the thread drains every datagram the
//! socket holds, fires the epoch timer if due, and sends everything the core produced.
//! Application calls lock the core, apply the operation, and send the resulting datagrams
//! themselves, so `write` never waits for the I/O thread. A thread waiting in `read` sleeps
//! on the socket itself (a second poll) and handles the datagram that wakes it, so a reply
//! costs one thread wake-up, not two; meanwhile the I/O thread keeps only the timers. After a
//! wake-up that brought nothing but heartbeats, the driver pauses up to 1 ms so that many
//! idle peers are handled in batches. All protocol and API decisions are made by
//! [`lsp_core`] ([`lsp_core::runtime`] holds the application-side semantics); this crate only
//! sleeps and wakes. Receive buffers hold 64 KiB so an oversized datagram is seen whole and
//! dropped by the core.
//!
//! ```
//! use lsp_core::Params;
//! use lsp_mio::{Client, Server};
//!
//! let server = Server::bind("127.0.0.1:0".parse().unwrap(), Params::default()).unwrap();
//! let client = Client::connect(server.local_addr(), 0, Params::default()).unwrap();
//! client.write(b"ping".to_vec()).unwrap();
//! let (conn, payload) = server.read().unwrap();
//! server.write(conn, payload).unwrap();
//! assert_eq!(client.read().unwrap(), b"ping");
//! client.close().unwrap();
//! ```

mod client;
mod clock;
mod driver;
mod server;
mod socket;

pub use client::Client;
pub use lsp_core::runtime::{ClientReadError, CloseError, ServerReadError, StartError};
pub use lsp_core::{ApiError, ConnId, Limits, Params, ParamsError, ISN_DOMAIN, MAX_ISN};
pub use server::Server;
