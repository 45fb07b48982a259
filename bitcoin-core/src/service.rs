//! The miner server as a sans-IO service: LSP payloads in, encoded messages out.
//!
//! [`MinerService`] is the glue between a transport (the LSP server endpoint) and the
//! [`Scheduler`]: it decodes each payload a connection sends ([`Message::decode`]), feeds
//! it to the scheduler as a Join, a Request or a Result, and encodes every [`Effect`] the
//! scheduler produces as the [`Message`] to write. The real server and the simulator drive
//! the same service, so the simulator tests the server's actual glue.
//!
//! # Contract
//!
//! The driver reports, with the current time:
//! - every payload delivered on a connection: [`MinerService::handle_payload`];
//! - the end of a connection (lost or closed): [`MinerService::handle_connection_gone`];
//! - the deadline named by [`MinerService::poll_timeout`]: [`MinerService::handle_timeout`];
//!
//! and after each such call writes everything [`MinerService::poll_write`] returns, in
//! order, and re-reads [`MinerService::poll_timeout`]. A connection that sends Join is a
//! miner, one that sends Request a client; the end of a connection is reported to the
//! scheduler in both roles (each is a no-op for the wrong one), so nothing is ever written
//! to a connection after [`MinerService::handle_connection_gone`] for it. Connection keys
//! must not be reused after that call (LSP connection ids never are).
//!
//! A client whose Request carries `"Progress": true` (an extension the reference never
//! sends) is also written a [`Message::Progress`] about its active request every
//! [`PROGRESS_INTERVAL`] until it has no request left; no one else ever is.
//!
//! A payload that is not a message, a Progress (server to client only), or a Result from a client is dropped and counted in
//! [`ServiceStats`]; nothing a peer sends can make the service fail. A Request that is
//! refused — an empty range, more requests unanswered than the scheduler's limits, or a
//! text too long for its jobs to fit in one LSP message ([`crate::request_size`]) — is
//! counted, the client's requests are dropped, and its connection is closed
//! ([`CloseReason`]), so the client learns instead of waiting for ever. A miner whose Result is a lie (see
//! [`crate::scheduler::Misbehaviour`]) is forgotten at once, and the driver is asked to
//! close its connection through [`MinerService::poll_close`]; until the driver reports the
//! connection gone, whatever it still sends is counted and ignored.
//!
//! What happened is also told as [`crate::accounting::PoolEvent`]s, drained with
//! [`MinerService::poll_event`] after each call like the writes, and measured in the
//! accounting read with [`MinerService::pool`] (see [`crate::accounting`]); the driver may
//! give each connection's address with [`MinerService::describe`].
//!
//! Target mode ([`crate::message::ext`]): Join's `Caps`, Request's `Zeros`/`Algo` (invalid:
//! refused, [`CloseReason::BadMode`]) and Result's `"Found": false` go to the scheduler;
//! target jobs, Cancels and not-found answers are written with the extension keys.
//!
//! A Result's `Lower` and `Upper`, which the reference leaves zero but some miners fill with
//! their job's range, are passed to the scheduler as a hint of which job it answers. Like the scheduler, it reads no clock and draws no random
//! numbers: the same calls always produce the same writes.

mod pool;
mod progress;
mod restore;
mod wire;

pub use progress::PROGRESS_INTERVAL;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use lsp_core::Timestamp;

use core::fmt;

use crate::message::{Message, ModeError};
use crate::request_size::{self, RequestTooLong};
use crate::scheduler::{Config, ConfigError, Misbehaviour, RequestError, Scheduler, Stats};

/// Counters of what the service received, next to the scheduler's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Payloads that decoded as Join.
    pub joins: u64,
    /// Payloads that decoded as Request.
    pub requests: u64,
    /// Payloads that decoded as Result.
    pub results: u64,
    /// Payloads that did not decode as a message; dropped.
    pub malformed: u64,
    /// Requests refused: by the scheduler (see [`crate::scheduler::RequestError`]: an
    /// empty range, or too many requests unanswered), or as too long to forward to a miner
    /// ([`crate::request_size`]). The client's requests are dropped and its connection
    /// closed, so that it learns (it prints `Disconnected`).
    pub refused: u64,
    /// Messages handed to the driver through [`MinerService::poll_write`].
    pub writes: u64,
    /// Payloads from connections the service closed (a lying miner, a refused client),
    /// before their end was reported; ignored.
    pub from_closed: u64,
}

/// Why the service asks its driver to close a connection ([`MinerService::poll_close`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A miner's answer was a lie; its jobs went back to their requests.
    Lied(Misbehaviour),
    /// A client's request was refused by the scheduler; its requests were dropped.
    Refused(RequestError),
    /// A client's request cannot be forwarded: its jobs would not fit in one LSP message.
    TooLong(RequestTooLong),
    /// A client's request has an invalid `Zeros` or `Algo`.
    BadMode(ModeError),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Lied(lie) => write!(f, "miner lied: {lie}"),
            CloseReason::Refused(refusal) => write!(f, "request refused: {refusal}"),
            CloseReason::TooLong(too_long) => write!(f, "request refused: {too_long}"),
            CloseReason::BadMode(bad) => write!(f, "request refused: {bad}"),
        }
    }
}

/// The miner server's logic: a [`Scheduler`] behind the wire codec. See the
/// [module documentation](self) for the driver's contract.
#[derive(Debug)]
pub struct MinerService<K> {
    scheduler: Scheduler<K>,
    outbox: VecDeque<(K, Vec<u8>)>,
    /// Connections to close, with why, oldest first.
    closing: VecDeque<(K, CloseReason)>,
    /// Connections the service closed whose end the driver has not reported yet.
    closed: BTreeSet<K>,
    stats: ServiceStats,
    /// Connections known and not gone: since when, and the address the driver gave.
    conns: BTreeMap<K, pool::ConnInfo>,
    /// Connections known since the start.
    conns_total: u64,
    /// Clients that asked for Progress messages, with when the next one is due.
    progress: BTreeMap<K, Timestamp>,
}

impl<K: Ord + Copy> MinerService<K> {
    /// A service with no connections, or the reason `config` is invalid.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Ok(Self::around(Scheduler::new(config)?))
    }

    /// A service whose scheduler verifies answers with `hash` (see
    /// [`Scheduler::with_hash`]).
    pub fn with_hash(config: Config, hash: crate::scheduler::HashFn) -> Result<Self, ConfigError> {
        Ok(Self::around(Scheduler::with_hash(config, hash)?))
    }

    fn around(scheduler: Scheduler<K>) -> Self {
        MinerService {
            scheduler,
            outbox: VecDeque::new(),
            closing: VecDeque::new(),
            closed: BTreeSet::new(),
            stats: ServiceStats::default(),
            conns: BTreeMap::new(),
            conns_total: 0,
            progress: BTreeMap::new(),
        }
    }

    /// Connection `conn` delivered `payload` at `now`: a Join makes it a miner, a Request
    /// asks for an answer, a Result answers one of the miner's jobs. Anything else, and
    /// anything from a connection closed for lying, is counted and dropped.
    pub fn handle_payload(&mut self, now: Timestamp, conn: K, payload: &[u8]) {
        if self.closed.contains(&conn) {
            self.stats.from_closed += 1;
            return;
        }
        self.know(conn);
        let decoded = Message::decode_full(payload);
        let ext = decoded.as_ref().map(|d| d.ext.clone()).unwrap_or_default();
        match decoded.map(|d| (d.message, d.range, d.progress)) {
            Ok((Message::Join, _, _)) => {
                self.stats.joins += 1;
                self.scheduler.handle_miner_joined_with(now, conn, ext.caps);
            }
            Ok((Message::Request { data, lower, upper }, _, wants_progress)) => {
                self.stats.requests += 1;
                let accepted = match ext.mode {
                    Err(bad) => Err(CloseReason::BadMode(bad)),
                    Ok(mode) => match request_size::check_mode(&data, upper, mode) {
                        Err(too_long) => Err(CloseReason::TooLong(too_long)),
                        Ok(()) => self
                            .scheduler
                            .handle_request_in(now, conn, data, lower, upper, mode)
                            .map_err(CloseReason::Refused),
                    },
                };
                match accepted {
                    Err(reason) => self.refuse(now, conn, reason),
                    Ok(_) if wants_progress => self.want_progress(now, conn),
                    Ok(_) => {}
                }
            }
            Ok((Message::Result { hash, nonce }, range, _)) if ext.job.is_some() => {
                self.stats.results += 1;
                let hit = ext.found.then_some((hash, nonce));
                let job = ext.job.unwrap_or_default();
                self.scheduler
                    .handle_job_answer(now, conn, job, hit, Some(range));
            }
            Ok((Message::Result { .. }, range, _)) if !ext.found => {
                self.stats.results += 1;
                self.scheduler.handle_not_found(now, conn, Some(range));
            }
            Ok((Message::Result { hash, nonce }, range, _)) => {
                self.stats.results += 1;
                self.scheduler
                    .handle_result(now, conn, hash, nonce, Some(range));
            }
            // Progress and Cancel go from the server only.
            Ok((Message::Progress { .. } | Message::Cancel { .. }, _, _)) | Err(_) => {
                self.stats.malformed += 1
            }
        }
        self.collect();
        self.tick_progress(now);
    }

    /// Connection `conn` is gone (lost or closed) at `now`: as a client, its requests are
    /// dropped; as a miner, its unanswered jobs go back to their requests. Nothing is written
    /// to it afterwards, and no job of its requests is handed out in this call.
    pub fn handle_connection_gone(&mut self, now: Timestamp, conn: K) {
        // Client first: the miner-loss step hands out work again, which must not include
        // the requests being dropped. What the client step hands out to `conn` itself (if
        // it is also a miner) is withdrawn here, and given back by the miner-loss step.
        self.scheduler.handle_client_lost(now, conn);
        self.collect();
        self.outbox.retain(|(to, _)| *to != conn);
        self.scheduler.handle_miner_lost(now, conn);
        self.collect();
        self.closed.remove(&conn);
        self.closing.retain(|(to, _)| *to != conn);
        self.conns.remove(&conn);
        self.progress.remove(&conn);
        self.tick_progress(now);
    }

    /// The time named by [`MinerService::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.scheduler.handle_timeout(now);
        self.collect();
        self.tick_progress(now);
    }

    /// When [`MinerService::handle_timeout`] should next be called, if ever: the scheduler's
    /// next lease end or backup check ([`Scheduler::poll_timeout`]), or the next Progress
    /// message due. Re-read after every
    /// `handle_*` call; a driver that does not wake for it leaves silent miners' jobs
    /// unreissued.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let progress = self.progress.values().min().copied();
        match (self.scheduler.poll_timeout(), progress) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next message to write: the connection and the encoded payload, oldest first.
    #[must_use]
    pub fn poll_write(&mut self) -> Option<(K, Vec<u8>)> {
        let next = self.outbox.pop_front();
        if next.is_some() {
            self.stats.writes += 1;
        }
        next
    }

    /// The next connection to close, and why: a miner that lied, or a client whose request
    /// was refused. Drain after [`MinerService::poll_write`], after every `handle_*` call;
    /// nothing more is written to it. The driver reports its end with
    /// [`MinerService::handle_connection_gone`] as usual.
    #[must_use]
    pub fn poll_close(&mut self) -> Option<(K, CloseReason)> {
        self.closing.pop_front()
    }

    /// Refuses a request of client `conn`: counts it, drops the client's other requests at
    /// once, and asks the driver to close the connection so the client learns.
    fn refuse(&mut self, now: Timestamp, conn: K, reason: CloseReason) {
        self.stats.refused += 1;
        let refused = crate::accounting::PoolEventKind::RequestRefused {
            client: conn,
            reason: reason.clone(),
        };
        self.scheduler.record(now, refused);
        self.scheduler.handle_client_lost(now, conn);
        self.close(conn, reason);
    }

    /// Stops writing to `conn` and queues it for [`MinerService::poll_close`].
    fn close(&mut self, conn: K, reason: CloseReason) {
        self.outbox.retain(|(to, _)| *to != conn);
        self.closed.insert(conn);
        self.closing.push_back((conn, reason));
    }

    /// What the service has received and written.
    pub fn stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// The scheduler's counters.
    pub fn scheduler_stats(&self) -> &Stats {
        self.scheduler.stats()
    }

    /// The scheduler, for introspection (miners joined, jobs held, requests pending).
    pub fn scheduler(&self) -> &Scheduler<K> {
        &self.scheduler
    }

    /// Moves the scheduler's effects, encoded, to the outbox.
    fn collect(&mut self) {
        while let Some(effect) = self.scheduler.poll_effect() {
            match wire::encode(effect) {
                wire::Encoded::Write(to, bytes) if !self.closed.contains(&to) => {
                    self.outbox.push_back((to, bytes));
                }
                wire::Encoded::Write(..) => {}
                wire::Encoded::Close(miner, lie) => self.close(miner, CloseReason::Lied(lie)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn service() -> MinerService<u32> {
        MinerService::new(Config::default()).unwrap()
    }

    fn writes(s: &mut MinerService<u32>) -> Vec<(u32, Message)> {
        std::iter::from_fn(|| s.poll_write())
            .map(|(to, bytes)| (to, Message::decode(&bytes).unwrap()))
            .collect()
    }

    fn request(data: &str, lower: u64, upper: u64) -> Vec<u8> {
        Message::Request {
            data: data.into(),
            lower,
            upper,
        }
        .encode()
    }

    /// The true answer over `lower..=upper`: least hash, least nonce on ties.
    fn scan(data: &str, lower: u64, upper: u64) -> (u64, u64) {
        (lower..=upper).map(|n| (hash(data, n), n)).min().unwrap()
    }

    /// Answers every job written to a miner with the true minimum over its range, until
    /// nothing more is written; returns the writes to other connections.
    fn mine_all(s: &mut MinerService<u32>, miners: &[u32], now: Timestamp) -> Vec<(u32, Message)> {
        let mut others = Vec::new();
        loop {
            let pending = writes(s);
            if pending.is_empty() {
                return others;
            }
            for (to, message) in pending {
                match message {
                    Message::Request { data, lower, upper } if miners.contains(&to) => {
                        let (hash, nonce) = scan(&data, lower, upper);
                        s.handle_payload(now, to, &Message::Result { hash, nonce }.encode());
                    }
                    other => others.push((to, other)),
                }
            }
        }
    }

    #[test]
    fn a_request_is_split_among_miners_and_answered_with_the_true_minimum() {
        let mut s = service();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 2, &Message::Join.encode());
        assert!(writes(&mut s).is_empty());
        s.handle_payload(at(1), 7, &request("svc", 0, 30_000));
        let answers = mine_all(&mut s, &[1, 2], at(2));
        let (hash, nonce) = scan("svc", 0, 30_000);
        assert_eq!(answers, vec![(7, Message::Result { hash, nonce })]);
        assert!(s.scheduler_stats().jobs_sent >= 2);
        assert_eq!((s.stats().joins, s.stats().requests), (2, 1));
        assert_eq!(s.stats().writes, s.scheduler_stats().jobs_sent + 1);
    }

    #[test]
    fn malformed_and_refused_payloads_are_counted_and_dropped() {
        let mut s = service();
        s.handle_payload(at(0), 1, b"not json");
        s.handle_payload(at(0), 1, br#"{"Type":9}"#);
        s.handle_payload(at(0), 2, &request("x", 5, 4));
        s.handle_payload(at(0), 3, &Message::Result { hash: 1, nonce: 1 }.encode());
        assert_eq!(s.stats().malformed, 2);
        assert_eq!(s.stats().refused, 1);
        assert_eq!(s.scheduler_stats().unexpected_results, 1);
        assert!(s.poll_write().is_none());
        assert!(matches!(
            s.poll_close(),
            Some((2, CloseReason::Refused(RequestError::EmptyRange { .. })))
        ));
        assert_eq!(s.poll_close(), None);
    }

    #[test]
    fn a_request_too_long_to_forward_closes_its_client() {
        let mut s = service();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        let longest = "a".repeat(request_size::max_plain_text_len(1_000));
        s.handle_payload(at(0), 2, &request(&longest, 0, 1_000));
        assert_eq!(writes(&mut s).len(), 1, "the longest text is forwarded");
        // One byte more would not fit in a job's message: refused before any job exists.
        s.handle_payload(at(1), 3, &request(&format!("{longest}a"), 0, 1_000));
        assert!(writes(&mut s).is_empty());
        assert!(matches!(s.poll_close(), Some((3, CloseReason::TooLong(_)))));
        assert_eq!(s.stats().refused, 1);
        assert_eq!(
            s.pool(at(1)).totals.requests_refused,
            1,
            "the pool counts it too"
        );
        // Until its end is reported, the closed client is not heard.
        s.handle_payload(at(2), 3, &request("short", 0, 10));
        assert_eq!(s.stats().from_closed, 1);
    }

    #[test]
    fn a_client_over_its_request_limit_is_closed_and_its_requests_dropped() {
        let config = Config {
            max_requests_per_client: 2,
            max_requests: 3,
            ..Config::default()
        };
        let mut s = MinerService::<u32>::new(config).expect("valid");
        s.handle_payload(at(0), 10, &request("a", 0, 100));
        s.handle_payload(at(0), 10, &request("b", 0, 100));
        assert_eq!(s.scheduler().request_count(), 2);
        s.handle_payload(at(0), 10, &request("c", 0, 100));
        assert!(matches!(
            s.poll_close(),
            Some((
                10,
                CloseReason::Refused(RequestError::ClientFull { limit: 2 })
            ))
        ));
        assert_eq!(s.scheduler().request_count(), 0, "its requests are dropped");
        // The total limit holds across clients.
        for client in [20, 20, 21] {
            s.handle_payload(at(1), client, &request("d", 0, 100));
        }
        assert_eq!(s.poll_close(), None);
        s.handle_payload(at(1), 22, &request("e", 0, 100));
        assert!(matches!(
            s.poll_close(),
            Some((22, CloseReason::Refused(RequestError::Full { limit: 3 })))
        ));
        assert_eq!(s.scheduler().request_count(), 3);
        assert_eq!(s.stats().refused, 2);
    }

    #[test]
    fn nothing_is_written_to_a_gone_connection() {
        let mut s = service();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 7, &request("gone", 0, 50_000));
        // The miner's first job is queued for writing when the miner disappears.
        s.handle_connection_gone(at(1), 1);
        assert!(writes(&mut s).is_empty());
        // A new miner takes over the work; the client is lost before the answer.
        s.handle_payload(at(2), 2, &Message::Join.encode());
        let jobs = writes(&mut s);
        assert!(!jobs.is_empty() && jobs.iter().all(|(to, _)| *to == 2));
        assert!(
            matches!(&jobs[0].1, Message::Request { data, lower: 0, .. } if data == "gone"),
            "{jobs:?}"
        );
        s.handle_connection_gone(at(3), 7);
        for (_, job) in jobs {
            if let Message::Request { data, lower, upper } = job {
                let (hash, nonce) = scan(&data, lower, upper);
                s.handle_payload(at(4), 2, &Message::Result { hash, nonce }.encode());
            }
        }
        assert!(writes(&mut s).iter().all(|(to, _)| *to != 7 && *to != 1));
        assert_eq!(s.scheduler_stats().results_sent, 0);
    }

    #[test]
    fn a_gone_connection_s_requests_get_no_more_jobs() {
        // Connection 5 is both a miner and a client; its request is two jobs, one on
        // each miner. Miner 1 answers and is free when 5 goes: 5's job must not move to 1.
        let config = Config {
            backup_jobs: false,
            ..Config::default()
        };
        let mut s = MinerService::new(config).unwrap();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 5, &Message::Join.encode());
        s.handle_payload(at(0), 5, &request("both", 0, 19_999));
        let jobs = writes(&mut s);
        assert_eq!(jobs.iter().map(|(to, _)| *to).collect::<Vec<_>>(), [1, 5]);
        if let Message::Request { data, lower, upper } = &jobs[0].1 {
            let (hash, nonce) = scan(data, *lower, *upper);
            s.handle_payload(at(1), 1, &Message::Result { hash, nonce }.encode());
        }
        assert!(writes(&mut s).is_empty());
        s.handle_connection_gone(at(2), 5);
        assert!(writes(&mut s).is_empty());
        assert_eq!(s.scheduler().request_count(), 0);
        assert_eq!(s.scheduler().jobs_held(1), Some(0));
    }

    #[test]
    fn a_lying_miner_is_closed_and_then_ignored_and_its_job_moves() {
        let mut s = service();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 7, &request("lie", 0, 9_999));
        let jobs = writes(&mut s);
        assert_eq!(jobs.len(), 1);
        let (_, nonce) = scan("lie", 0, 9_999);
        s.handle_payload(at(1), 1, &Message::Result { hash: 0, nonce }.encode());
        assert!(writes(&mut s).is_empty());
        let closed = s.poll_close();
        assert!(
            matches!(
                closed,
                Some((1, CloseReason::Lied(Misbehaviour::WrongHash { .. })))
            ),
            "{closed:?}"
        );
        assert_eq!(s.poll_close(), None);
        // Until its end is reported, the closed connection is not heard.
        s.handle_payload(at(2), 1, &Message::Join.encode());
        assert_eq!(s.stats().from_closed, 1);
        s.handle_payload(at(2), 2, &Message::Join.encode());
        let answers = mine_all(&mut s, &[2], at(3));
        let (hash, nonce) = scan("lie", 0, 9_999);
        assert_eq!(answers, vec![(7, Message::Result { hash, nonce })]);
        s.handle_connection_gone(at(4), 1);
        assert_eq!(s.poll_close(), None);
        assert_eq!(s.scheduler_stats().miners_disconnected, 1);
    }

    #[test]
    fn an_echoed_range_is_passed_as_a_hint() {
        let mut s = MinerService::new(Config {
            backup_jobs: false,
            ..Config::default()
        })
        .unwrap();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 7, &request("echo", 0, 19_999));
        let jobs = writes(&mut s);
        assert_eq!(jobs.len(), 2);
        // Answer the newer job first, echoing its range as some Go miners do.
        for (_, job) in jobs.into_iter().rev() {
            let Message::Request { data, lower, upper } = job else {
                panic!("{job:?}");
            };
            let (hash, nonce) = scan(&data, lower, upper);
            let echo = format!(
                r#"{{"Type":2,"Data":"","Lower":{lower},"Upper":{upper},"Hash":{hash},"Nonce":{nonce}}}"#
            );
            s.handle_payload(at(1), 1, echo.as_bytes());
        }
        let (hash, nonce) = scan("echo", 0, 19_999);
        assert_eq!(writes(&mut s), vec![(7, Message::Result { hash, nonce })]);
        assert_eq!(s.poll_close(), None);
    }

    #[test]
    fn the_timeout_is_the_schedulers() {
        let mut s = service();
        assert_eq!(s.poll_timeout(), None);
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 7, &request("t", 0, 5_000));
        assert_eq!(s.poll_timeout(), s.scheduler().poll_timeout());
        if let Some(deadline) = s.poll_timeout() {
            s.handle_timeout(deadline);
        }
        assert_eq!(s.scheduler().miner_count(), 1);
        assert_eq!(s.scheduler().jobs_held(1), Some(1));
    }
}
