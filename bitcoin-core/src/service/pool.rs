//! The service's view of the pool: connections and their addresses, on top of the
//! scheduler's accounting ([`crate::accounting`]).

use lsp_core::Timestamp;

use super::MinerService;
use crate::accounting::{PoolEvent, PoolReport, RequestReport};

/// A connection the service knows.
#[derive(Clone, Debug)]
pub(super) struct ConnInfo {
    /// Its address, as the driver gave it.
    pub(super) address: Option<String>,
}

impl<K: Ord + Copy> MinerService<K> {
    /// The driver tells the address of connection `conn` (any text it likes, such as
    /// `ip:port`); optional. Reports then show it for the connection's miner. The
    /// record is forgotten with the connection ([`MinerService::handle_connection_gone`]);
    /// ignored for a connection the service closed.
    pub fn describe(&mut self, conn: K, address: impl Into<String>) {
        if self.closed.contains(&conn) {
            return;
        }
        self.know(conn);
        if let Some(info) = self.conns.get_mut(&conn) {
            info.address = Some(address.into());
        }
    }

    /// The address [`describe`](Self::describe) gave `conn`, while the service knows the
    /// connection.
    pub fn address(&self, conn: K) -> Option<&str> {
        self.conns.get(&conn).and_then(|c| c.address.as_deref())
    }

    /// Records `conn` as known, if it is new.
    pub(super) fn know(&mut self, conn: K) {
        if !self.conns.contains_key(&conn) {
            self.conns_total += 1;
            self.conns.insert(conn, ConnInfo { address: None });
        }
    }

    /// A snapshot of the pool at `now` (see [`crate::accounting`] for what each figure
    /// means): every joined miner with its address if described, every accepted,
    /// unanswered request with its progress, rate and ETA, and the totals. Costs a pass
    /// over the miners and requests; call it when a monitor asks, not per event.
    pub fn pool(&self, now: Timestamp) -> PoolReport<K> {
        let mut report = self.scheduler.pool(now);
        for m in &mut report.miners {
            m.address = self.conns.get(&m.miner).and_then(|c| c.address.clone());
        }
        // The service refuses too-long requests before the scheduler sees them; its own count
        // covers every refusal.
        report.totals.requests_refused = self.stats.refused;
        report.totals.connections = self.conns.len();
        report.totals.connections_total = self.conns_total;
        report
    }

    /// The progress at `now` of `client`'s active request, if it has one.
    pub fn progress(&self, client: K, now: Timestamp) -> Option<RequestReport<K>> {
        self.scheduler.progress(client, now)
    }

    /// The oldest event not yet drained: miners joining, leaving, rejected; requests
    /// accepted, refused, answered; jobs re-issued; clients lost (see
    /// [`crate::accounting::PoolEventKind`]). Drain it after every `handle_*` call, like
    /// [`MinerService::poll_write`]; at most [`crate::accounting::EVENT_CAPACITY`] wait,
    /// later ones are dropped and counted in [`crate::accounting::PoolTotals::events_dropped`].
    pub fn poll_event(&mut self) -> Option<PoolEvent<K>> {
        self.scheduler.poll_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::PoolEventKind;
    use crate::hash::hash;
    use crate::message::Message;
    use crate::scheduler::Config;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn scan(data: &str, lower: u64, upper: u64) -> (u64, u64) {
        (lower..=upper).map(|n| (hash(data, n), n)).min().unwrap()
    }

    fn kinds(s: &mut MinerService<u32>) -> Vec<PoolEventKind<u32>> {
        std::iter::from_fn(|| s.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    /// Answers every job written, honestly, at `now`, until nothing is written; returns
    /// how many nonces were answered per miner.
    fn answer_all(s: &mut MinerService<u32>, now: Timestamp) -> u128 {
        let mut nonces = 0;
        while let Some((to, bytes)) = s.poll_write() {
            if let Ok(Message::Request { data, lower, upper }) = Message::decode(&bytes) {
                let (hash, nonce) = scan(&data, lower, upper);
                s.handle_payload(now, to, &Message::Result { hash, nonce }.encode());
                nonces += u128::from(upper - lower) + 1;
            }
        }
        nonces
    }

    #[test]
    fn a_request_s_progress_rate_and_eta_follow_its_answers() {
        let config = Config {
            backup_jobs: false,
            jobs_per_miner: 1,
            ..Config::default()
        };
        let mut s = MinerService::<u32>::new(config).unwrap();
        s.describe(1, "10.0.0.1:4000");
        s.handle_payload(at(0), 1, &Message::Join.encode());
        let request = Message::Request {
            data: "acct".into(),
            lower: 0,
            upper: 99_999,
        };
        s.handle_payload(at(1000), 7, &request.encode());
        let before = s.pool(at(1000));
        assert_eq!(before.requests.len(), 1);
        assert_eq!(
            (before.requests[0].covered, before.requests[0].eta),
            (0, None)
        );
        // One job answered a second later: progress, a rate, a finite ETA.
        let (to, bytes) = s.poll_write().expect("a job");
        let Ok(Message::Request { data, lower, upper }) = Message::decode(&bytes) else {
            panic!("not a job");
        };
        let (hash, nonce) = scan(&data, lower, upper);
        s.handle_payload(at(2000), to, &Message::Result { hash, nonce }.encode());
        let report = s.pool(at(2000));
        let r = &report.requests[0];
        let job = u128::from(upper - lower) + 1;
        assert_eq!((r.covered, r.total), (job, 100_000));
        assert_eq!(r.rate, job as f64);
        let eta = r.eta.expect("a rate is known").as_secs_f64();
        assert!(
            (eta - (100_000 - job) as f64 / job as f64).abs() < 1e-3,
            "{eta}"
        );
        let m = &report.miners[0];
        assert_eq!(m.address.as_deref(), Some("10.0.0.1:4000"));
        assert_eq!(s.address(1), Some("10.0.0.1:4000"));
        assert_eq!(s.address(7), None);
        assert_eq!((m.totals.valid, m.totals.nonces), (1, job));
        assert!(m.hash_rate > 0.0);
        assert_eq!(report.totals.nonces, job);
        assert_eq!(
            (report.totals.connections, report.totals.connections_total),
            (2, 2)
        );
        // The rest, answered: the request is gone, the miner has every nonce.
        let rest = answer_all(&mut s, at(3000));
        let done = s.pool(at(3000));
        assert!(done.requests.is_empty());
        assert_eq!(done.totals.requests_answered, 1);
        assert_eq!(done.miners[0].totals.nonces, job + rest);
        assert_eq!(job + rest, 100_000);
        let events = kinds(&mut s);
        assert!(matches!(events[0], PoolEventKind::MinerJoined { miner: 1 }));
        assert!(matches!(
            events[1],
            PoolEventKind::RequestAccepted {
                client: 7,
                lower: 0,
                upper: 99_999,
                ..
            }
        ));
        let (hash, nonce) = scan("acct", 0, 99_999);
        assert!(
            matches!(
                events[2..],
                [PoolEventKind::RequestAnswered { client: 7, answer: Some(found), nonces: 100_000, took, .. }]
                    if found == (hash, nonce) && took == std::time::Duration::from_secs(2)
            ),
            "{events:?}"
        );
    }

    #[test]
    fn departures_lies_and_refusals_are_events_and_ledgers_go() {
        let mut s = MinerService::<u32>::new(Config::default()).unwrap();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 2, &Message::Join.encode());
        let request = Message::Request {
            data: "ev".into(),
            lower: 0,
            upper: 9_999,
        };
        s.handle_payload(at(0), 7, &request.encode());
        // Miner 1 lies; miner 2 is lost; the client goes before its answer.
        s.handle_payload(at(1), 1, &Message::Result { hash: 0, nonce: 5 }.encode());
        s.handle_connection_gone(at(2), 2);
        s.handle_connection_gone(at(3), 7);
        let bad = Message::Request {
            data: "bad".into(),
            lower: 5,
            upper: 4,
        };
        s.handle_payload(at(4), 8, &bad.encode());
        let events = kinds(&mut s);
        let names: Vec<&str> = events
            .iter()
            .map(|e| match e {
                PoolEventKind::MinerJoined { .. } => "joined",
                PoolEventKind::MinerRejected {
                    miner: 1, totals, ..
                } if totals.invalid == 1 => "rejected",
                PoolEventKind::MinerLost { miner: 2, .. } => "lost",
                PoolEventKind::RequestAccepted { .. } => "accepted",
                PoolEventKind::ClientLost {
                    client: 7,
                    dropped: 1,
                } => "client lost",
                PoolEventKind::RequestRefused { client: 8, .. } => "refused",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "joined",
                "joined",
                "accepted",
                "rejected",
                "lost",
                "client lost",
                "refused"
            ]
        );
        let report = s.pool(at(5));
        assert!(report.miners.is_empty());
        assert_eq!(report.departed.len(), 2);
        assert!(report.departed[0].rejected && !report.departed[1].rejected);
        assert_eq!(report.totals.invalid_results, 1);
        assert_eq!(
            report.totals.connections, 2,
            "1 is closed but not gone, 8 too"
        );
        assert_eq!(report.totals.connections_total, 4);
    }
}
