//! The client's logic: one request, one answer (docs/miner.md §3).

use std::fmt;
use std::net::SocketAddr;

use lsp_core::Params;
use lsp_mio::{Client, StartError};

use super::log::Log;
use bitcoin_core::message::Message;

/// How a request ended, once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered: the minimum `hash` over the range, at `nonce`.
    Answer {
        /// The minimum hash.
        hash: u64,
        /// The smallest nonce giving it.
        nonce: u64,
    },
    /// The server was lost before it answered.
    Disconnected,
}

impl fmt::Display for Outcome {
    /// The client's stdout line: `Result <hash> <nonce>` or `Disconnected`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answer { hash, nonce } => write!(f, "Result {hash} {nonce}"),
            Outcome::Disconnected => f.write_str("Disconnected"),
        }
    }
}

/// Connects to `server`, asks for the minimum hash of `msg` over `lower ..= upper`, and
/// waits for the answer or the loss of the server. Fails only if it cannot connect.
pub fn request(
    server: SocketAddr,
    params: Params,
    msg: &str,
    lower: u64,
    upper: u64,
    log: &Log,
) -> Result<Outcome, StartError> {
    request_with(server, params, msg, lower, upper, log, None)
}

/// As [`request`]; with `progress`, the request asks for Progress messages
/// ([`super::progress::request_asking_progress`]) and each one received is handed to it
/// as `(covered, total, rate)`.
pub fn request_with(
    server: SocketAddr,
    params: Params,
    msg: &str,
    lower: u64,
    upper: u64,
    log: &Log,
    mut progress: Option<&mut dyn FnMut(u64, u64, u64)>,
) -> Result<Outcome, StartError> {
    let client = Client::connect(server, 0, params)?;
    log.info(format_args!(
        "connected to {server} as conn {}",
        client.conn_id()
    ));
    let request = match progress {
        Some(_) => super::progress::request_asking_progress(msg, lower, upper),
        None => Message::Request {
            data: msg.to_string(),
            lower,
            upper,
        }
        .encode(),
    };
    if let Err(e) = client.write(request) {
        log.info(format_args!("cannot send the request: {e}"));
        return Ok(Outcome::Disconnected);
    }
    let outcome = loop {
        match client.read() {
            Ok(payload) => match Message::decode(&payload) {
                Ok(Message::Result { hash, nonce }) => break Outcome::Answer { hash, nonce },
                Ok(Message::Progress {
                    covered,
                    total,
                    rate,
                }) if progress.is_some() => {
                    if let Some(show) = progress.as_mut() {
                        show(covered, total, rate);
                    }
                }
                Ok(other) => log.info(format_args!("ignored {other:?}")),
                Err(e) => log.info(format_args!("ignored payload: {e}")),
            },
            Err(e) => {
                log.info(format_args!("server lost: {e}"));
                break Outcome::Disconnected;
            }
        }
    };
    match outcome {
        // A graceful close: nothing of ours is pending once the answer came, so this
        // returns as soon as the endpoint has said its last word; the server learns of the
        // departure as the silence the protocol has for it, and logs it as such.
        Outcome::Answer { .. } => {
            if let Err(e) = client.close() {
                log.info(format_args!("close: {e}"));
            }
        }
        Outcome::Disconnected => client.abort(),
    }
    Ok(outcome)
}
