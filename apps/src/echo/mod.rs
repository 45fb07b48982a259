//! The `lsp-echo` tool, on either runtime: an echo server ([`run_server`]) and a client
//! that sends its input's tokens and prints their echoes ([`run_client`]).
//!
//! Both are written once against [`Server`] and [`Client`], which hide the runtime
//! ([`Runtime`]) behind one blocking API.

mod client;
mod endpoint;
mod error;
mod server;

pub use client::run_client;
pub use endpoint::{Client, Runtime, Server};
pub use error::EchoError;
pub use server::run_server;
