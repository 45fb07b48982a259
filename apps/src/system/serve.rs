//! The server's glue loop: LSP events in, scheduler decisions out.
//!
//! A reader thread blocks in [`Server::read`] and forwards every event over a channel; the
//! loop waits on that channel with the scheduler's next deadline as timeout, feeds each
//! event to the [`Scheduler`] with the current time, and writes every effect it produces.
//! A connection that sends Join is a miner, one that sends Request a client; a lost
//! connection is reported to the scheduler as both (each is a no-op for the wrong role).
//! Malformed payloads are logged and counted, never fatal.

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;

use bitcoin_core::scheduler::{Config, ConfigError, Effect, Scheduler, Stats};
use lsp_mio::{ConnId, Server, ServerReadError};

use super::clock::Clock;
use super::log::Log;
use bitcoin_core::message::Message;

/// Why [`serve`] stopped other than by the server being closed.
#[derive(Debug)]
pub enum ServeError {
    /// The scheduler configuration is invalid.
    Config(ConfigError),
    /// The server's I/O thread failed.
    Io(String),
    /// The reader thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "invalid scheduler configuration: {e}"),
            ServeError::Io(e) => write!(f, "server failed: {e}"),
            ServeError::Spawn(e) => write!(f, "cannot start the reader thread: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// What [`serve`] did, once the server was closed.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The scheduler's counters.
    pub scheduler: Stats,
    /// Payloads that were not miner messages (misplaced messages, such as a Result from a
    /// connection holding no job, are counted by the scheduler instead).
    pub malformed: u64,
}

/// Serves miners and clients on `server` until it is closed ([`Server::close`] or
/// [`Server::abort`] from another thread), then returns what it did.
pub fn serve(server: Arc<Server>, config: Config, log: Log) -> Result<Summary, ServeError> {
    let mut scheduler = Scheduler::<ConnId>::new(config).map_err(ServeError::Config)?;
    let clock = Clock::start();
    let (events, inbox) = mpsc::channel();
    let reader = Arc::clone(&server);
    thread::Builder::new()
        .name("server-reader".into())
        .spawn(move || loop {
            let event = reader.read();
            let last = matches!(event, Err(ServerReadError::Closed | ServerReadError::Io(_)));
            if events.send(event).is_err() || last {
                return;
            }
        })
        .map_err(ServeError::Spawn)?;
    let mut summary = Summary::default();
    loop {
        let event = match scheduler.poll_timeout() {
            Some(deadline) => match inbox.recv_timeout(clock.until(deadline)) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match inbox.recv() {
                Ok(event) => Some(event),
                Err(_) => break,
            },
        };
        let now = clock.now();
        match event {
            None => scheduler.handle_timeout(now),
            Some(Ok((conn, payload))) => match Message::decode(&payload) {
                Ok(Message::Join) => {
                    log.info(format_args!("conn {conn}: miner joined"));
                    scheduler.handle_miner_joined(now, conn);
                }
                Ok(Message::Request { data, lower, upper }) => {
                    log.info(format_args!(
                        "conn {conn}: request {data:?} {lower}..={upper}"
                    ));
                    if let Err(e) = scheduler.handle_request(now, conn, data, lower, upper) {
                        log.error(format_args!("conn {conn}: request refused: {e}"));
                    }
                }
                Ok(Message::Result { hash, nonce }) => {
                    log.debug(format_args!("conn {conn}: result {hash} {nonce}"));
                    scheduler.handle_result(now, conn, hash, nonce);
                }
                Err(e) => {
                    summary.malformed += 1;
                    log.info(format_args!("conn {conn}: dropped payload: {e}"));
                }
            },
            Some(Err(
                ServerReadError::ConnectionLost(conn) | ServerReadError::ConnectionClosed(conn),
            )) => {
                log.info(format_args!("conn {conn}: lost"));
                scheduler.handle_miner_lost(now, conn);
                scheduler.handle_client_lost(now, conn);
            }
            Some(Err(ServerReadError::Closed)) => break,
            Some(Err(ServerReadError::Io(e))) => return Err(ServeError::Io(e.to_string())),
        }
        while let Some(effect) = scheduler.poll_effect() {
            send(&server, effect, &log);
        }
    }
    summary.scheduler = scheduler.stats().clone();
    Ok(summary)
}

/// Writes one scheduler effect. A failed write means the connection is gone; its loss
/// event follows through `read`, so the failure is only logged.
fn send(server: &Server, effect: Effect<ConnId>, log: &Log) {
    let (conn, message) = match effect {
        Effect::SendJob {
            miner,
            request,
            msg,
            lower,
            upper,
        } => {
            log.debug(format_args!(
                "conn {miner}: job {lower}..={upper} of {request}"
            ));
            let message = Message::Request {
                data: msg.to_string(),
                lower,
                upper,
            };
            (miner, message)
        }
        Effect::SendResult {
            client,
            request,
            hash,
            nonce,
        } => {
            log.info(format_args!(
                "conn {client}: answer to {request}: {hash} {nonce}"
            ));
            (client, Message::Result { hash, nonce })
        }
    };
    if let Err(e) = server.write(conn, message.encode()) {
        log.info(format_args!("conn {conn}: write failed: {e}"));
    }
}
