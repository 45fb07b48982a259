//! The server's glue loop: LSP events in, [`MinerService`] writes out.
//!
//! A reader thread blocks in [`Server::read`] and forwards every event over a bounded channel
//! ([`FORWARD_CAPACITY`]): when the loop falls behind, the reader waits, the LSP server's
//! delivery queue fills, and its back-pressure reaches the peers; nothing grows without
//! bound. The loop waits on that channel with the service's next deadline as timeout, feeds
//! each event to the service with the current time, writes every message it produces, and
//! closes the connections it names (a lying miner, a refused client). The service (in
//! `bitcoin-core`, shared with the simulator) decodes payloads and drives the scheduler;
//! this loop only moves bytes, tells the `-v` log what happened (from the service's events,
//! [`super::narrate`], and its counters), and hands every event to the event log
//! ([`super::events`]) if there is one.

use std::fmt;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bitcoin_core::scheduler::{Config, ConfigError, Stats, MAX_JOB_DURATION};
use bitcoin_core::service::{MinerService, ServiceStats};
use lsp_core::Params;
use lsp_mio::{ConnId, Server, ServerReadError};

use super::clock::Clock;
use super::http::board::Board;
use super::log::Log;
use super::narrate::Departure;
use super::observe::{peer_address, Observers};

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
    /// The reader or event-log thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "invalid scheduler configuration: {e}"),
            ServeError::Io(e) => write!(f, "server failed: {e}"),
            ServeError::Spawn(e) => write!(f, "cannot start a thread: {e}"),
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
    /// Events the event log dropped because its writer was behind (or failed).
    pub events_dropped: u64,
}

/// Serves miners and clients on `server` until it is closed ([`Server::close`] or
/// [`Server::abort`] from another thread), then returns what it did.
pub fn serve(server: Arc<Server>, config: Config, log: Log) -> Result<Summary, ServeError> {
    serve_with(server, config, log, None)
}

/// As [`serve`], and writes every event of the service as a JSON line to `events` (see
/// [`super::events`] for the format), from a thread of its own that never blocks the loop.
pub fn serve_with(
    server: Arc<Server>,
    config: Config,
    log: Log,
    events: Option<Box<dyn Write + Send>>,
) -> Result<Summary, ServeError> {
    serve_observed(server, config, log, events, None)
}

/// As [`serve_with`], and publishes snapshots of the pool and its recent events on `board`
/// for the HTTP server ([`super::http`]) when someone reads it; the loop then wakes at
/// least every [`PUBLISH_INTERVAL`](super::http::board::PUBLISH_INTERVAL).
pub fn serve_observed(
    server: Arc<Server>,
    config: Config,
    log: Log,
    events: Option<Box<dyn Write + Send>>,
    board: Option<Arc<Board>>,
) -> Result<Summary, ServeError> {
    let mut service = MinerService::<ConnId>::new(config).map_err(ServeError::Config)?;
    let clock = Clock::start();
    let mut observers = Observers::start(log, events, board).map_err(ServeError::Spawn)?;
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
        let deadline = service.poll_timeout();
        let wait = observers.cap(deadline.map(|deadline| clock.until(deadline)));
        let event = match wait {
            Some(wait) => match inbox.recv_timeout(wait) {
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
        let mut departure: Option<Departure<'_>> = None;
        match event {
            // Woken for the board alone.
            None if deadline.is_none_or(|deadline| deadline > now) => {}
            None => service.handle_timeout(now),
            Some(Ok((conn, payload))) => {
                if service.address(conn).is_none() {
                    if let Some(addr) = peer_address(&server, conn) {
                        service.describe(conn, addr);
                    }
                }
                let before = service.stats().clone();
                service.handle_payload(now, conn, &payload);
                log_payload(&log, conn, &before, service.stats(), &payload);
            }
            Some(Err(ServerReadError::ConnectionLost(conn))) => {
                departure = Some((conn, "lost"));
                service.handle_connection_gone(now, conn);
            }
            Some(Err(ServerReadError::ConnectionClosed(conn))) => {
                departure = Some((conn, "closed"));
                service.handle_connection_gone(now, conn);
            }
            Some(Err(ServerReadError::Closed)) => break,
            Some(Err(ServerReadError::Io(e))) => return Err(ServeError::Io(e.to_string())),
        }
        let mut told = false;
        while let Some(event) = service.poll_event() {
            let addr = super::events::subject(&event).and_then(|conn| service.address(conn));
            let addr = addr.map(str::to_owned);
            told |= observers.pool_event(event, departure, addr.as_deref());
        }
        if let Some(departure) = departure {
            observers.gone(departure, told);
        }
        while let Some((conn, payload)) = service.poll_write() {
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
        observers.publish(|| (service.pool(clock.now()), None));
    }
    Ok(Summary {
        service: service.stats().clone(),
        scheduler: service.scheduler_stats().clone(),
        events_dropped: observers.finish(),
    })
}

/// Logs what a payload the service has just handled turned out to be, from the service's
/// counters before and after (joins and requests are told from the service's events).
fn log_payload(
    log: &Log,
    conn: ConnId,
    before: &ServiceStats,
    after: &ServiceStats,
    payload: &[u8],
) {
    if after.malformed > before.malformed {
        log.info(format_args!(
            "conn {conn}: dropped payload {:?}",
            String::from_utf8_lossy(payload)
        ));
    } else if after.refused > before.refused {
        log.error(format_args!("conn {conn}: request refused"));
    } else if after.results > before.results && log.enabled(2) {
        log.debug(format_args!(
            "conn {conn}: result {}",
            String::from_utf8_lossy(payload)
        ));
    }
}
