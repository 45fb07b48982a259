//! The echo server: every message goes back to its sender.

use std::collections::BTreeSet;
use std::convert::Infallible;

use lsp_core::runtime::ServerReadError;
use lsp_core::Params;

use super::{EchoError, Runtime, Server};
use crate::system::log::Log;

/// Starts a server on `port` of every interface (0 picks a free one) and echoes every
/// message back to its sender, forever. Logs `listening on ADDR` at level 1 (`-v`), then
/// connection events, and each message at level 2. Returns only if the server cannot start
/// or its driver fails.
pub fn run_server(
    runtime: Runtime,
    port: u16,
    params: Params,
    log: Log,
) -> Result<Infallible, EchoError> {
    let server = Server::listen(runtime, port, params)
        .map_err(|source| EchoError::Listen { port, source })?;
    log.info(format_args!(
        "listening on {} ({})",
        server.local_addr(),
        server.runtime()
    ));
    echo_forever(&server, log)
}

/// The server's loop. A connection that ends, or an echo that cannot be queued because
/// its connection just ended, is logged and the loop goes on.
fn echo_forever(server: &Server, log: Log) -> Result<Infallible, EchoError> {
    // Connections seen so far, only to log each one's first message.
    let mut seen = BTreeSet::new();
    loop {
        match server.read() {
            Ok((conn, payload)) => {
                if seen.insert(conn) {
                    log.info(format_args!("conn {conn}: first message"));
                }
                log.debug(format_args!("conn {conn}: {} bytes", payload.len()));
                if let Err(e) = server.write(conn, payload) {
                    log.info(format_args!("conn {conn}: echo not sent: {e}"));
                }
            }
            Err(
                e @ (ServerReadError::ConnectionLost(_) | ServerReadError::ConnectionClosed(_)),
            ) => {
                seen.remove(&e.conn_id());
                log.info(format_args!("{e}"));
            }
            Err(e) => return Err(EchoError::ServerRead(e)),
        }
    }
}
