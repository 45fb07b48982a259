//! `GET /status`: the pool as one JSON object, built from a [`Snapshot`] on the HTTP
//! worker's thread. The schema is docs/miner.md §7.3's; times are Unix milliseconds, rates
//! nonces per second.

use bitcoin_core::accounting::PoolTotals;
use bitcoin_core::hash::Algo;
use bitcoin_core::message::Mode;
use serde::Serialize;

use super::board::Snapshot;
use super::replication::Replication;

/// The whole document.
#[derive(Serialize)]
pub struct Status<'a> {
    /// When the snapshot was taken.
    pub at_ms: u64,
    /// When the server started serving.
    pub started_ms: u64,
    /// The pool's totals.
    pub totals: &'a PoolTotals,
    /// The pool's nonces per minute over the last hour, oldest first.
    pub history: Vec<Minute>,
    /// Every joined miner, by connection id.
    pub miners: Vec<Miner<'a>>,
    /// Every accepted, unanswered request, by request number.
    pub requests: Vec<Request<'a>>,
    /// The last events (at most 100), oldest first, as the event log writes them.
    pub events: &'a [serde_json::Value],
    /// A replicated or durable server's place in its group (absent from a plain server's
    /// document).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<&'a Replication>,
}

/// One minute of history.
#[derive(Serialize)]
pub struct Minute {
    /// When the minute began.
    pub start_ms: u64,
    /// Nonces credited in it.
    pub nonces: u128,
    /// `nonces / 60`.
    pub rate: f64,
}

/// A joined miner.
#[derive(Serialize)]
pub struct Miner<'a> {
    /// Its connection id.
    pub id: i64,
    /// Its `ip:port`, if known.
    pub addr: Option<&'a str>,
    /// Its moving average.
    pub hash_rate: f64,
    /// Nonces covered by its valid answers.
    pub nonces: u128,
    /// Valid answers.
    pub valid: u64,
    /// Of those, stale ones.
    pub stale: u64,
    /// Lies.
    pub invalid: u64,
    /// Jobs re-issued away from it.
    pub reissued_away: u64,
    /// Jobs it holds.
    pub jobs_held: usize,
    /// Whether it holds a job past its lease.
    pub late: bool,
    /// When it joined.
    pub since_ms: u64,
}

/// An accepted, unanswered request.
#[derive(Serialize)]
pub struct Request<'a> {
    /// The server's request number.
    pub id: u64,
    /// Its client's connection id.
    pub client: i64,
    /// Its text.
    pub message: &'a str,
    /// Its first nonce.
    pub lower: u64,
    /// Its last nonce.
    pub upper: u64,
    /// Its nonces.
    pub total: u128,
    /// In target mode the leading zero bits asked for; `null` for a minimum request.
    pub zeros: Option<u32>,
    /// The hash: `sha256`, or `sha256d` (target mode only).
    pub algo: &'static str,
    /// Nonces of its jobs answered so far (in target mode, with those above its smallest
    /// hit, which need no search).
    pub covered: u128,
    /// Nonces its answers searched: `covered` in minimum mode.
    pub searched: u128,
    /// `covered / total`, 0 to 1.
    pub progress: f64,
    /// Searched nonces per second since it became active.
    pub rate: f64,
    /// Milliseconds left at that rate for the nonces not covered (in target mode an upper
    /// bound: a hit ends the search); `null` until known.
    pub eta_ms: Option<u64>,
    /// When it was accepted.
    pub accepted_ms: u64,
    /// When it became active; `null` while it waits behind its client's earlier ones.
    pub active_since_ms: Option<u64>,
}

/// The document for `snapshot`.
pub fn of(snapshot: &Snapshot) -> Status<'_> {
    let report = &snapshot.report;
    let ms = |at| snapshot.unix_ms(at);
    Status {
        at_ms: ms(report.at),
        started_ms: snapshot.origin_ms,
        totals: &report.totals,
        history: report
            .history
            .iter()
            .map(|m| Minute {
                start_ms: snapshot
                    .origin_ms
                    .saturating_add(m.minute.saturating_mul(60_000)),
                nonces: m.nonces,
                rate: m.rate,
            })
            .collect(),
        miners: report
            .miners
            .iter()
            .map(|m| Miner {
                id: m.miner.0,
                addr: m.address.as_deref(),
                hash_rate: m.hash_rate,
                nonces: m.totals.nonces,
                valid: m.totals.valid,
                stale: m.totals.stale,
                invalid: m.totals.invalid,
                reissued_away: m.totals.reissued_away,
                jobs_held: m.jobs_held,
                late: m.late,
                since_ms: ms(m.totals.joined),
            })
            .collect(),
        requests: report
            .requests
            .iter()
            .map(|r| Request {
                id: r.request.get(),
                client: r.client.0,
                message: &r.msg,
                lower: r.lower,
                upper: r.upper,
                total: r.total,
                zeros: match r.mode {
                    Mode::Target { zeros, .. } => Some(zeros.get()),
                    _ => None,
                },
                algo: match r.mode {
                    Mode::Target { algo, .. } => algo.name(),
                    _ => Algo::Sha256.name(),
                },
                covered: r.covered,
                searched: r.searched,
                progress: if r.total == 0 {
                    0.0
                } else {
                    r.covered as f64 / r.total as f64
                },
                rate: r.rate,
                eta_ms: r
                    .eta
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                accepted_ms: ms(r.accepted),
                active_since_ms: r.active_since.map(ms),
            })
            .collect(),
        events: &snapshot.events,
        replication: snapshot.replication.as_ref(),
    }
}

/// The document for `snapshot`, as JSON text.
pub fn render(snapshot: &Snapshot) -> String {
    serde_json::to_string(&of(snapshot)).unwrap_or_else(|_| "{}".into())
}
