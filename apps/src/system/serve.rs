//! The server's glue loop: LSP events in, [`MinerService`] writes out.
//!
//! A reader thread blocks in [`Server::read`] and forwards every event over a bounded channel
//! ([`FORWARD_CAPACITY`]): when the loop falls behind, the reader waits, the LSP server's
//! delivery queue fills, and its back-pressure reaches the peers; nothing grows without
//! bound. The loop waits on that channel with the service's next deadline as timeout, feeds
//! each event to the service with the current time, writes every message it produces, and
//! closes the connections it names (a lying miner, a refused client). The service (in `bitcoin-core`, shared with the simulator) decodes payloads and drives the
//! scheduler; this loop only moves bytes and logs, from the service's counters, what
//! happened.

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bitcoin_core::message::Message;
use bitcoin_core::scheduler::{Config, ConfigError, Stats, MAX_JOB_DURATION};
use bitcoin_core::service::{MinerService, ServiceStats};
use lsp_core::{Params, Timestamp};
use lsp_mio::{ConnId, Server, ServerReadError};

use super::clock::Clock;
use super::journal::{Departure, Journal};
use super::log::Log;

/// A lease's allowance for network trouble ([`Config::lease_slack`]): two epochs of the
/// server's LSP parameters, at most [`MAX_JOB_DURATION`].
pub fn lease_slack(params: &Params) -> Duration {
    Duration::from_millis(params.epoch_millis.saturating_mul(2)).min(MAX_JOB_DURATION)
}

/// How many events the reader thread may hand the loop ahead of it.
pub const FORWARD_CAPACITY: usize = 1024;

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
    /// The service's counters (payloads received by kind, malformed, refused, writes).
    pub service: ServiceStats,
    /// The scheduler's counters.
    pub scheduler: Stats,
}

/// Serves miners and clients on `server` until it is closed ([`Server::close`] or
/// [`Server::abort`] from another thread), then returns what it did.
pub fn serve(server: Arc<Server>, config: Config, log: Log) -> Result<Summary, ServeError> {
    let mut service = MinerService::<ConnId>::new(config).map_err(ServeError::Config)?;
    let clock = Clock::start();
    let mut journal = Journal::new();
    let (events, inbox) = mpsc::sync_channel(FORWARD_CAPACITY);
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
    loop {
        let event = match service.poll_timeout() {
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
            None => service.handle_timeout(now),
            Some(Ok((conn, payload))) => {
                let before = service.stats().clone();
                service.handle_payload(now, conn, &payload);
                let seen = Seen {
                    conn,
                    now,
                    before: &before,
                    after: service.stats(),
                    payload: &payload,
                };
                seen.log(&log, &mut journal);
            }
            Some(Err(ServerReadError::ConnectionLost(conn))) => {
                log_departure(&log, conn, "lost", &service, &mut journal);
                service.handle_connection_gone(now, conn);
            }
            Some(Err(ServerReadError::ConnectionClosed(conn))) => {
                log_departure(&log, conn, "closed", &service, &mut journal);
                service.handle_connection_gone(now, conn);
            }
            Some(Err(ServerReadError::Closed)) => break,
            Some(Err(ServerReadError::Io(e))) => return Err(ServeError::Io(e.to_string())),
        }
        while let Some((conn, payload)) = service.poll_write() {
            if log.enabled(1) {
                if let Ok(Message::Result { hash, nonce }) = Message::decode(&payload) {
                    if let Some(line) = journal.answered(conn, now, hash, nonce) {
                        log.info(format_args!("{line}"));
                    }
                }
            }
            if log.enabled(2) {
                log.debug(format_args!(
                    "conn {conn}: sent {}",
                    String::from_utf8_lossy(&payload)
                ));
            }
            // A failed write means the connection is gone; its loss follows through `read`.
            if let Err(e) = server.write(conn, payload) {
                log.info(format_args!("conn {conn}: write failed: {e}"));
            }
        }
        // A miner that lied or a refused client: its end follows through `read` as
        // ConnectionClosed.
        while let Some((conn, reason)) = service.poll_close() {
            log.error(format_args!("conn {conn}: closing: {reason}"));
            if let Err(e) = server.close_conn(conn) {
                log.info(format_args!("conn {conn}: close failed: {e}"));
            }
        }
    }
    Ok(Summary {
        service: service.stats().clone(),
        scheduler: service.scheduler_stats().clone(),
    })
}

/// One payload the service has just handled, with its counters before and after.
struct Seen<'a> {
    conn: ConnId,
    now: Timestamp,
    before: &'a ServiceStats,
    after: &'a ServiceStats,
    payload: &'a [u8],
}

impl Seen<'_> {
    /// Logs what the payload turned out to be, and records an accepted request in the
    /// journal (only when logging at `-v`: the journal serves the log alone).
    fn log(&self, log: &Log, journal: &mut Journal) {
        let (conn, before, after, payload) = (self.conn, self.before, self.after, self.payload);
        if after.malformed > before.malformed {
            log.info(format_args!(
                "conn {conn}: dropped payload {:?}",
                String::from_utf8_lossy(payload)
            ));
        } else if after.refused > before.refused {
            log.error(format_args!("conn {conn}: request refused"));
        } else if after.joins > before.joins {
            log.info(format_args!("conn {conn}: miner joined"));
        } else if after.requests > before.requests && log.enabled(1) {
            if let Ok(Message::Request { data, lower, upper }) = Message::decode(payload) {
                let line = journal.accepted(conn, self.now, &data, lower, upper);
                log.info(format_args!("{line}"));
            }
        } else if after.results > before.results && log.enabled(2) {
            log.debug(format_args!(
                "conn {conn}: result {}",
                String::from_utf8_lossy(payload)
            ));
        }
    }
}

/// Logs the end of `conn` (`how`: lost or closed) by what it was: a miner and the jobs it
/// gives back, a client that left after its answers, or one lost with requests unanswered.
fn log_departure(
    log: &Log,
    conn: ConnId,
    how: &str,
    service: &MinerService<ConnId>,
    journal: &mut Journal,
) {
    let departure = journal.gone(conn);
    if !log.enabled(1) {
        return;
    }
    if let Some(jobs) = service.scheduler().jobs_held(conn) {
        log.info(format_args!(
            "conn {conn}: miner {how} ({jobs} unanswered job(s) back to their requests)"
        ));
        return;
    }
    match departure {
        Departure::ClientLeft { answered } => log.info(format_args!(
            "conn {conn}: client left after {answered} answer(s)"
        )),
        Departure::ClientLost { unanswered } => log.info(format_args!(
            "conn {conn}: client {how} with {unanswered} request(s) unanswered (dropped)"
        )),
        Departure::Other => log.info(format_args!("conn {conn}: {how}")),
    }
}
