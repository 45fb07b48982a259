//! `GET /metrics`: the pool in the Prometheus text exposition format (OpenMetrics text, as
//! the `prometheus-client` crate encodes it), built from a [`Snapshot`] on the HTTP
//! worker's thread. docs/miner.md §7.3 lists the metrics.
//!
//! Counters get `_total` appended by the encoder (`miner_pool_nonces` is exposed as
//! `miner_pool_nonces_total`). Nonce counts above 2⁶⁴ − 1 (only for the whole `u64` range)
//! saturate.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::board::Snapshot;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A miner's labels: its connection id and address (`""` if unknown).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MinerLabels {
    miner: String,
    addr: String,
}

/// A miner's results by status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    miner: String,
    status: &'static str,
}

/// The pool's results by status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// A gauge or counter holding an `f64`.
type GaugeF = Gauge<f64, AtomicU64>;

/// Registers a gauge `name` holding `value` (saturating at `i64::MAX`).
pub(super) fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// Registers a counter `name` (exposed as `name_total`) holding `value` (saturating at
/// `u64::MAX`).
pub(super) fn counter(registry: &mut Registry, name: &str, help: &str, value: u128) {
    let c: Counter = Counter::default();
    c.inc_by(u64::try_from(value).unwrap_or(u64::MAX));
    registry.register(name, help, c);
}

/// The exposition of `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let report = &snapshot.report;
    let t = &report.totals;
    let mut r = Registry::default();
    gauge(
        &mut r,
        "miner_pool_miners",
        "Miners joined now",
        t.miners as u64,
    );
    let rate = GaugeF::default();
    rate.set(t.hash_rate);
    r.register(
        "miner_pool_hashrate",
        "The pool's hash rate, nonces per second (10 s moving average)",
        rate,
    );
    counter(
        &mut r,
        "miner_pool_nonces",
        "Nonces covered by valid answers",
        t.nonces,
    );
    gauge(
        &mut r,
        "miner_pool_requests_active",
        "Requests accepted and not yet answered or dropped",
        t.requests_active as u64,
    );
    let counts: [(&str, &str, u64); 8] = [
        (
            "miner_pool_requests_accepted",
            "Requests accepted",
            t.requests_accepted,
        ),
        (
            "miner_pool_requests_answered",
            "Requests answered",
            t.requests_answered,
        ),
        (
            "miner_pool_requests_dropped",
            "Requests dropped with their client",
            t.requests_dropped,
        ),
        (
            "miner_pool_requests_refused",
            "Requests refused",
            t.requests_refused,
        ),
        ("miner_pool_jobs_sent", "Jobs sent to miners", t.jobs_sent),
        (
            "miner_pool_jobs_reissued",
            "Jobs re-issued because their lease ended",
            t.jobs_reissued,
        ),
        (
            "miner_pool_connections_accepted",
            "Connections the service has known",
            t.connections_total,
        ),
        (
            "miner_pool_events_dropped",
            "Events dropped undrained",
            t.events_dropped,
        ),
    ];
    for (name, help, value) in counts {
        counter(&mut r, name, help, u128::from(value));
    }
    gauge(
        &mut r,
        "miner_pool_connections",
        "Connections the service knows now",
        t.connections as u64,
    );
    let results = Family::<StatusLabels, Counter>::default();
    r.register(
        "miner_pool_results",
        "Miners' answers by status, since the start",
        results.clone(),
    );
    for (status, n) in [("valid", t.valid_results), ("invalid", t.invalid_results)] {
        results.get_or_create(&StatusLabels { status }).inc_by(n);
    }

    let hash_rate = Family::<MinerLabels, GaugeF>::default();
    let nonces = Family::<MinerLabels, Counter>::default();
    let answers = Family::<ResultLabels, Counter>::default();
    for m in &report.miners {
        let labels = MinerLabels {
            miner: m.miner.0.to_string(),
            addr: m.address.clone().unwrap_or_default(),
        };
        hash_rate.get_or_create(&labels).set(m.hash_rate);
        nonces
            .get_or_create(&labels)
            .inc_by(u64::try_from(m.totals.nonces).unwrap_or(u64::MAX));
        for (status, n) in [("valid", m.totals.valid), ("invalid", m.totals.invalid)] {
            answers
                .get_or_create(&ResultLabels {
                    miner: labels.miner.clone(),
                    status,
                })
                .inc_by(n);
        }
    }
    r.register(
        "miner_hashrate",
        "A joined miner's hash rate, nonces per second (10 s moving average)",
        hash_rate,
    );
    r.register(
        "miner_nonces",
        "Nonces covered by a joined miner's valid answers",
        nonces,
    );
    r.register(
        "miner_results",
        "A joined miner's answers by status",
        answers,
    );
    if let Some(replication) = &snapshot.replication {
        super::replication::register(&mut r, replication);
    }
    let mut text = String::with_capacity(256 + 200 * report.miners.len());
    // Writing to a String cannot fail.
    let _ = encode(&mut text, &r);
    text
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bitcoin_core::message::Message;
    use bitcoin_core::scheduler::Config;
    use bitcoin_core::service::MinerService;
    use lsp_core::{ConnId, Timestamp};

    use super::*;

    #[test]
    fn the_exposition_names_the_pool_and_each_miner_with_its_labels() {
        let mut service = MinerService::new(Config::default()).expect("valid config");
        service.describe(ConnId(7), "10.0.0.1:4000");
        service.handle_payload(Timestamp::ZERO, ConnId(7), &Message::Join.encode());
        let snapshot = Snapshot {
            report: service.pool(Timestamp::from_millis(1000)),
            origin_ms: 0,
            events: Vec::new(),
            taken: Instant::now(),
            replication: None,
        };
        let text = render(&snapshot);
        for line in [
            "miner_pool_miners 1",
            "miner_pool_nonces_total 0",
            "miner_pool_requests_active 0",
            "miner_pool_requests_answered_total 0",
            "miner_pool_jobs_reissued_total 0",
            "miner_pool_results_total{status=\"valid\"} 0",
            "miner_hashrate{miner=\"7\",addr=\"10.0.0.1:4000\"} 0.0",
            "miner_results_total{miner=\"7\",status=\"valid\"} 0",
            "miner_results_total{miner=\"7\",status=\"invalid\"} 0",
            "# TYPE miner_pool_hashrate gauge",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
