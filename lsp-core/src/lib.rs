//! The sans-IO core of LSP, the Live Sequence Protocol: reliable, ordered, checksummed
//! messages between a server and many clients over UDP, wire compatible with the CMU
//! 15-440/640 Project 1 reference (see `docs/protocol.md`).
//!
//! This crate does no IO. [`ServerEndpoint`] and [`ClientEndpoint`] are state machines:
//! drivers feed them datagrams (`handle_datagram`) and timer expiries (`handle_timeout`),
//! call application operations (`write`, `close_conn`, `close`), and drain what they produce
//! with the `#[must_use]` methods `poll_transmit`, `poll_event` and `poll_timeout`. Time is an
//! argument ([`Timestamp`]); nothing here reads a clock, touches a socket, spawns a thread or
//! draws a random number, so the same inputs always give the same outputs byte for byte.
//!
//! Nothing a peer sends grows memory without a bound: [`Limits`] caps the server's
//! connections and half-open connections (admission control) and each connection's unread
//! messages (back-pressure), and initial sequence numbers live in [`ISN_DOMAIN`] so that
//! sequence numbers never wrap and a heartbeat is never taken for an acknowledgement.
//!
//! ```
//! use lsp_core::{ClientEndpoint, ClientEvent, Params, ServerEndpoint, ServerEvent, Timestamp};
//!
//! let now = Timestamp::ZERO;
//! let mut server = ServerEndpoint::<&str>::new(Params::default(), now).unwrap();
//! let mut client = ClientEndpoint::new(Params::default(), 0, now).unwrap();
//! client.write(b"hi".to_vec()).unwrap(); // queued until connected
//!
//! // A perfect network: shuttle datagrams until both sides are quiet.
//! loop {
//!     let mut moved = false;
//!     while let Some(d) = client.poll_transmit() {
//!         server.handle_datagram(now, "client", &d);
//!         moved = true;
//!     }
//!     while let Some(t) = server.poll_transmit() {
//!         client.handle_datagram(now, &t.payload);
//!         moved = true;
//!     }
//!     if !moved { break; }
//! }
//! assert!(matches!(client.poll_event(), Some(ClientEvent::Connected(_))));
//! assert!(matches!(server.poll_event(), Some(ServerEvent::Connected { .. })));
//! assert!(matches!(server.poll_event(), Some(ServerEvent::Message { payload, .. }) if payload == b"hi"));
//! ```
#![forbid(unsafe_code)]

mod admission;
mod checksum;
mod client;
mod connection;
mod epoch;
mod error;
mod integrity;
mod isn;
mod limits;
mod message;
mod params;
pub mod runtime;
mod server;
mod stats;
pub mod time;

use std::fmt;

pub use checksum::checksum;
pub use client::{ClientEndpoint, ClientEvent};
pub use error::{ApiError, CloseError};
pub use isn::{is_valid_isn, ISN_DOMAIN, MAX_ISN};
pub use limits::Limits;
pub use message::{
    data_encoded_len, DecodeError, Message, MsgType, MAX_DATAGRAM_LEN, MAX_GUARANTEED_PAYLOAD,
};
pub use params::{Params, ParamsError};
pub use server::{ServerEndpoint, ServerEvent, Transmit};
pub use stats::{DropCounts, Stats};
pub use time::Timestamp;

/// A connection id as the server assigns them: 1, 2, 3, … in order of connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub i64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
