//! LSP on smol / async-io: an async [`Server`] and [`Client`] with the reference API
//! (docs/protocol.md §7), each a thin driver of the sans-IO endpoints of [`lsp_core`].
//!
//! Every endpoint runs one driver task on smol's global executor, waiting on its
//! `Async<UdpSocket>`, an `async_io::Timer` at the core's next deadline and a doorbell: an
//! idle endpoint uses no CPU between epochs. On each wake-up the task drains every datagram
//! the socket holds, fires the epoch timer if due, and sends everything the core produced.
//! Application calls lock the core (never across an `.await`), apply the operation, and send
//! the resulting datagrams themselves, so `write` is a plain non-blocking `fn`; `connect`,
//! `read` and `close` are `async fn`s usable from any executor, and a call waiting for a
//! message drains the socket itself when it becomes readable. After a wake-up that brought
//! nothing but heartbeats, the driver pauses up to 1 ms so that many idle peers are handled
//! in batches. All protocol and API decisions are made by [`lsp_core`]
//! ([`lsp_core::runtime`] holds the application-side semantics); this crate only waits and
//! wakes. Dropping a handle stops its task. Receive buffers hold 64 KiB so an oversized
//! datagram is seen whole and dropped.
//!
//! ```
//! use lsp_core::Params;
//! use lsp_smol::{Client, Server};
//!
//! smol::block_on(async {
//!     let server = Server::bind("127.0.0.1:0".parse().unwrap(), Params::default()).unwrap();
//!     let client = Client::connect(server.local_addr(), 0, Params::default()).await.unwrap();
//!     client.write(b"ping".to_vec()).unwrap();
//!     let (conn, payload) = server.read().await.unwrap();
//!     server.write(conn, payload).unwrap();
//!     assert_eq!(client.read().await.unwrap(), b"ping");
//!     client.close().await.unwrap();
//! });
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
