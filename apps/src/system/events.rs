//! The server's event log (`server --events FILE`): one JSON object per line for each
//! [`PoolEvent`] the service emits, written by its own thread so that a slow disk never
//! slows the server.
//!
//! # Format
//!
//! Every line is one JSON object with `"event"` (its kind) and `"ts"` (integer
//! milliseconds since the Unix epoch: the wall clock when the server started plus the
//! server's monotonic time since, so it never goes backwards within a run). Connections
//! are LSP connection ids (`"conn"`, `"from"`, `"to"`); nonce counts may exceed 2⁶⁴ − 1
//! only for a request of the whole `u64` range (2⁶⁴ nonces).
//!
//! | `event` | other keys |
//! |---|---|
//! | `miner_joined` | `conn`, `addr` |
//! | `miner_lost` | `conn`, `jobs_returned`, `nonces`, `valid`, `stale`, `reissued_away`, `connected_ms` |
//! | `miner_rejected` | `conn`, `kind` (`out_of_range`, `wrong_hash`, `lazy`), `reason`, `nonces`, `valid`, `stale`, `reissued_away`, `connected_ms` |
//! | `request_accepted` | `conn`, `addr`, `request`, `data`, `lower`, `upper`, and for a target request `zeros`, `algo` |
//! | `request_refused` | `conn`, `reason` |
//! | `request_answered` | `conn`, `request`, `data`, `lower`, `upper`, (`zeros`, `algo`), `found`, `hash` and `nonce` (only if `found`), `nonces`, `duration_ms`, `nonces_per_sec` |
//! | `job_reissued` | `request`, `from`, `to`, `lower`, `upper` |
//! | `client_lost` | `conn`, `dropped` |
//! | `events_dropped` | `count` (since the previous such line), `total` |
//!
//! A replicated or durable server (`--data-dir`) writes these, its leader's pool events,
//! and its replica's own ([`super::replica_events`]).
//!
//! `addr` is the connection's UDP address (`ip:port`), present when the server knows it.
//! `request` is the server's request number (0 for the first); `nonces` a miner's nonces
//! covered by valid answers, or the nonces a request's answers searched (its size, except
//! that a target job with a hit searched only up to it); `duration_ms` from acceptance to
//! answer. `found` is false only for a target request that no nonce met (`"Found":
//! false`), which has no `hash` or `nonce`.
//!
//! # Never blocking
//!
//! The server hands each event to the writer over a bounded channel
//! ([`EVENT_LOG_CAPACITY`]) without waiting: when it is full (the writer is behind), the
//! event is dropped and counted. The writer appends and flushes each line, and writes an
//! `events_dropped` line when it sees that events were dropped since its previous line;
//! [`EventLog::finish`] returns the total. A write error ends the writer; later events are
//! counted as dropped.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin_core::accounting::{PoolEvent, PoolEventKind};
use bitcoin_core::message::Mode;
use bitcoin_core::scheduler::Misbehaviour;
use lsp_core::ConnId;
use serde::Serialize;

use super::replica_events::ReplicaEvent;

/// How many events may wait for the writer; more are dropped and counted.
pub const EVENT_LOG_CAPACITY: usize = 4096;

/// One line of the log (see the [module documentation](self)).
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line<'a> {
    MinerJoined {
        ts: u64,
        conn: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        addr: Option<&'a str>,
    },
    MinerLost {
        ts: u64,
        conn: i64,
        jobs_returned: usize,
        #[serde(flatten)]
        totals: Totals,
    },
    MinerRejected {
        ts: u64,
        conn: i64,
        kind: &'static str,
        reason: String,
        #[serde(flatten)]
        totals: Totals,
    },
    RequestAccepted {
        ts: u64,
        conn: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        addr: Option<&'a str>,
        request: u64,
        data: &'a str,
        lower: u64,
        upper: u64,
        #[serde(flatten)]
        target: Option<Target>,
    },
    RequestRefused {
        ts: u64,
        conn: i64,
        reason: String,
    },
    RequestAnswered {
        ts: u64,
        conn: i64,
        request: u64,
        data: &'a str,
        lower: u64,
        upper: u64,
        #[serde(flatten)]
        target: Option<Target>,
        found: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        hash: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
        nonces: u128,
        duration_ms: f64,
        nonces_per_sec: f64,
    },
    JobReissued {
        ts: u64,
        request: u64,
        from: i64,
        to: i64,
        lower: u64,
        upper: u64,
    },
    ClientLost {
        ts: u64,
        conn: i64,
        dropped: u64,
    },
    EventsDropped {
        ts: u64,
        count: u64,
        total: u64,
    },
}

/// A target request's keys: the difficulty and the hash.
#[derive(Serialize)]
struct Target {
    zeros: u32,
    algo: &'static str,
}

impl Target {
    /// `mode`'s keys, `None` in minimum mode.
    fn of(mode: Mode) -> Option<Target> {
        match mode {
            Mode::Target { zeros, algo } => Some(Target {
                zeros: zeros.get(),
                algo: algo.name(),
            }),
            _ => None,
        }
    }
}

/// A miner's counts, as its departure lines give them.
#[derive(Serialize)]
struct Totals {
    nonces: u128,
    valid: u64,
    stale: u64,
    reissued_away: u64,
    connected_ms: u64,
}

impl Totals {
    fn of(t: &bitcoin_core::accounting::MinerTotals, at: lsp_core::Timestamp) -> Totals {
        Totals {
            nonces: t.nonces,
            valid: t.valid,
            stale: t.stale,
            reissued_away: t.reissued_away,
            connected_ms: (at.as_micros().saturating_sub(t.joined.as_micros())) / 1000,
        }
    }
}

fn kind_of(m: &Misbehaviour) -> &'static str {
    match m {
        Misbehaviour::OutOfRange { .. } => "out_of_range",
        Misbehaviour::WrongHash { .. } => "wrong_hash",
        Misbehaviour::Lazy { .. } => "lazy",
        Misbehaviour::NotAHit { .. } => "not_a_hit",
        Misbehaviour::MissedHit { .. } => "missed_hit",
        _ => "other",
    }
}

/// An event on its way to the writer: the pool's, with the address of the connection it
/// is about, or a replica's ([`super::replica_events`]).
#[derive(Debug)]
enum Entry {
    Pool {
        event: PoolEvent<ConnId>,
        addr: Option<String>,
    },
    Replica(ReplicaEvent),
}

impl Entry {
    fn at(&self) -> lsp_core::Timestamp {
        match self {
            Entry::Pool { event, .. } => event.at,
            Entry::Replica(event) => event.at,
        }
    }
}

/// The connection whose address an event's line tells (joins and accepted requests: the
/// first time the log meets a miner or a client), if any.
pub fn subject(event: &PoolEvent<ConnId>) -> Option<ConnId> {
    match event.kind {
        PoolEventKind::MinerJoined { miner } => Some(miner),
        PoolEventKind::RequestAccepted { client, .. } => Some(client),
        _ => None,
    }
}

/// `event` as one JSON line (without the newline), stamped `ts`.
fn render(ts: u64, entry: &Entry) -> Option<String> {
    match entry {
        Entry::Pool { event, addr } => {
            serde_json::to_string(&line(ts, event, addr.as_deref())?).ok()
        }
        Entry::Replica(event) => serde_json::to_string(&event.to_json(ts)).ok(),
    }
}

/// `event` as the JSON object its event-log line holds, stamped `ts` (Unix milliseconds),
/// with `addr` the address of its [`subject`] if known; `None` for a kind the log does not
/// write.
pub fn to_json(
    ts: u64,
    event: &PoolEvent<ConnId>,
    addr: Option<&str>,
) -> Option<serde_json::Value> {
    serde_json::to_value(line(ts, event, addr)?).ok()
}

/// `event`'s line.
fn line<'a>(ts: u64, event: &'a PoolEvent<ConnId>, addr: Option<&'a str>) -> Option<Line<'a>> {
    let at = event.at;
    let line = match &event.kind {
        PoolEventKind::MinerJoined { miner } => Line::MinerJoined {
            ts,
            conn: miner.0,
            addr,
        },
        PoolEventKind::MinerLost {
            miner,
            jobs_returned,
            totals,
        } => Line::MinerLost {
            ts,
            conn: miner.0,
            jobs_returned: *jobs_returned,
            totals: Totals::of(totals, at),
        },
        PoolEventKind::MinerRejected {
            miner,
            reason,
            totals,
        } => Line::MinerRejected {
            ts,
            conn: miner.0,
            kind: kind_of(reason),
            reason: reason.to_string(),
            totals: Totals::of(totals, at),
        },
        PoolEventKind::RequestAccepted {
            client,
            request,
            msg,
            lower,
            upper,
            mode,
            ..
        } => Line::RequestAccepted {
            ts,
            conn: client.0,
            addr,
            request: request.get(),
            data: msg,
            lower: *lower,
            upper: *upper,
            target: Target::of(*mode),
        },
        PoolEventKind::RequestRefused { client, reason } => Line::RequestRefused {
            ts,
            conn: client.0,
            reason: reason.to_string(),
        },
        PoolEventKind::RequestAnswered {
            client,
            request,
            msg,
            lower,
            upper,
            mode,
            answer,
            nonces,
            took,
            ..
        } => Line::RequestAnswered {
            ts,
            conn: client.0,
            request: request.get(),
            data: msg,
            lower: *lower,
            upper: *upper,
            target: Target::of(*mode),
            found: answer.is_some(),
            hash: answer.map(|(hash, _)| hash),
            nonce: answer.map(|(_, nonce)| nonce),
            nonces: *nonces,
            duration_ms: took.as_secs_f64() * 1000.0,
            nonces_per_sec: *nonces as f64 / took.as_secs_f64().max(1e-6),
        },
        PoolEventKind::JobReissued {
            request,
            from,
            to,
            lower,
            upper,
        } => Line::JobReissued {
            ts,
            request: request.get(),
            from: from.0,
            to: to.0,
            lower: *lower,
            upper: *upper,
        },
        PoolEventKind::ClientLost { client, dropped } => Line::ClientLost {
            ts,
            conn: client.0,
            dropped: *dropped,
        },
        _ => return None,
    };
    Some(line)
}

/// Milliseconds since the Unix epoch, now.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The event log: a writer thread behind a bounded channel. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct EventLog {
    sender: Option<SyncSender<Entry>>,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
    /// The wall clock, in Unix milliseconds, at service time zero.
    origin: u64,
}

impl EventLog {
    /// Where `server --events PATH` writes: `path` opened for appending (created if
    /// missing), or stderr for `-`.
    pub fn sink(path: &str) -> io::Result<Box<dyn Write + Send>> {
        if path == "-" {
            return Ok(Box::new(io::stderr()));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(file))
    }

    /// Starts a writer thread writing to `out`. Service time zero is taken to be now.
    pub fn start(out: Box<dyn Write + Send>) -> io::Result<EventLog> {
        let origin = unix_millis();
        let (sender, receiver) = mpsc::sync_channel::<Entry>(EVENT_LOG_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&dropped);
        let writer = thread::Builder::new()
            .name("event-log".into())
            .spawn(move || {
                let mut out = out;
                let mut reported = 0;
                let mut report = |out: &mut dyn Write, ts: u64| -> io::Result<()> {
                    let total = seen.load(Ordering::Relaxed);
                    if total > reported {
                        let line = Line::EventsDropped {
                            ts,
                            count: total - reported,
                            total,
                        };
                        reported = total;
                        write_line(out, &serde_json::to_string(&line).unwrap_or_default())?;
                    }
                    Ok(())
                };
                for entry in receiver.iter() {
                    let ts = origin.saturating_add(entry.at().as_micros() / 1000);
                    let written = render(ts, &entry).map_or(Ok(()), |l| write_line(&mut out, &l));
                    if written.and_then(|()| report(&mut out, ts)).is_err() {
                        return;
                    }
                }
                let _ = report(&mut out, unix_millis());
            })?;
        Ok(EventLog {
            sender: Some(sender),
            dropped,
            writer: Some(writer),
            origin,
        })
    }

    /// Hands `event` to the writer without waiting; drops and counts it if the writer is
    /// [`EVENT_LOG_CAPACITY`] events behind or has stopped.
    pub fn record(&self, event: PoolEvent<ConnId>) {
        self.record_from(event, None);
    }

    /// As [`record`](Self::record), with the address (`ip:port`) of the event's
    /// [`subject`], which its line then tells as `addr`.
    pub fn record_from(&self, event: PoolEvent<ConnId>, addr: Option<String>) {
        self.send(Entry::Pool { event, addr });
    }

    /// As [`record`](Self::record), for a replica's event.
    pub fn record_replica(&self, event: ReplicaEvent) {
        self.send(Entry::Replica(event));
    }

    fn send(&self, entry: Entry) {
        let Some(sender) = &self.sender else {
            return;
        };
        match sender.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The wall clock, in Unix milliseconds, at service time zero.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// Lets the writer write every event handed to it, waits for it, and returns how many
    /// events were dropped in all.
    pub fn finish(mut self) -> u64 {
        self.sender = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.dropped()
    }
}

/// Writes `line` and a newline in one write, and flushes.
fn write_line(out: &mut dyn Write, line: &str) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    out.flush()
}

#[cfg(test)]
mod tests;
