//! The notice board between the serving loop and the HTTP workers: the loop pins up the
//! latest snapshot of the pool, the workers read it. The loop never waits for a reader.
//!
//! The loop owns the service, so only it can take [`MinerService::pool`] snapshots. The
//! loop, which wakes at least every [`PUBLISH_INTERVAL`] while it serves with a board
//! ([`Publisher::cap`]), publishes one every [`PUBLISH_INTERVAL`] while the board is
//! watched: read within the last [`WATCH_WINDOW`]. A reader takes the latest snapshot if it
//! is at most [`PUBLISH_INTERVAL`] old (a dashboard polling every second always finds one),
//! and otherwise waits (at most [`FRESH_WAIT`]) for the next. Nobody watching, nothing is
//! computed. The loop's only cost is the snapshot itself and a short lock to swap an
//! [`Arc`].
//!
//! The board also keeps the last [`RECENT_EVENTS`] events, as event-log JSON objects, for
//! the dashboard.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin_core::accounting::{PoolEvent, PoolReport};
use bitcoin_core::service::MinerService;
use lsp_core::{ConnId, Timestamp};
use serde_json::Value;

use super::replication::Replication;
use crate::system::events;

/// The most often the loop publishes a snapshot, and so how stale one may be.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// How long a reader waits for a fresh snapshot: [`Board::read`] then takes the latest
/// one, [`Board::read_fresh`] none.
pub const FRESH_WAIT: Duration = Duration::from_millis(600);

/// How long after a read the loop keeps publishing.
pub const WATCH_WINDOW: Duration = Duration::from_secs(5);

/// How many recent events the board keeps.
pub const RECENT_EVENTS: usize = 100;

/// One published view of the pool.
#[derive(Debug)]
pub struct Snapshot {
    /// The service's report.
    pub report: PoolReport<ConnId>,
    /// Unix milliseconds at service time zero (add a [`Timestamp`]'s milliseconds to date
    /// it).
    pub origin_ms: u64,
    /// The last [`RECENT_EVENTS`] events, oldest first, as the event log writes them.
    pub events: Vec<Value>,
    /// When it was published.
    pub taken: Instant,
    /// A replicated or durable server's place in its group; `None` for a plain server.
    pub replication: Option<Replication>,
}

impl Snapshot {
    /// The Unix milliseconds of service time `at`.
    pub fn unix_ms(&self, at: Timestamp) -> u64 {
        self.origin_ms.saturating_add(at.as_micros() / 1000)
    }
}

#[derive(Debug, Default)]
struct Pinned {
    /// Snapshots published so far.
    generation: u64,
    latest: Option<Arc<Snapshot>>,
}

/// The board: shared by the loop ([`Publisher`]) and the HTTP workers ([`Board::read`]).
#[derive(Debug)]
pub struct Board {
    pinned: Mutex<Pinned>,
    fresh: Condvar,
    /// When a reader last asked.
    read_at: Mutex<Option<Instant>>,
    recent: Mutex<VecDeque<Value>>,
    origin_ms: u64,
}

impl Board {
    /// An empty board; service time zero is taken to be now.
    pub fn new() -> Arc<Board> {
        let origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Arc::new(Board {
            pinned: Mutex::new(Pinned::default()),
            fresh: Condvar::new(),
            read_at: Mutex::new(None),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_EVENTS)),
            origin_ms,
        })
    }

    fn pinned(&self) -> MutexGuard<'_, Pinned> {
        // A panicking holder leaves a consistent value (an Arc swap): keep serving it.
        self.pinned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot at most about [`PUBLISH_INTERVAL`] old if there is one or the loop
    /// publishes one within [`FRESH_WAIT`], else the latest there is (`None` before the
    /// first).
    pub fn read(&self) -> Option<Arc<Snapshot>> {
        self.read_with(false)
    }

    /// A snapshot taken after the call, so that it reflects everything the server did
    /// before it: for a scraper that checks what it has just seen happen. Waits at most
    /// [`FRESH_WAIT`]; `None` if the loop has published none by then (a busy machine; ask
    /// again), never an older one.
    pub fn read_fresh(&self) -> Option<Arc<Snapshot>> {
        self.read_with(true)
    }

    fn read_with(&self, fresh: bool) -> Option<Arc<Snapshot>> {
        *self.read_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let pinned = self.pinned();
        if let Some(latest) = &pinned.latest {
            if !fresh && latest.taken.elapsed() <= PUBLISH_INTERVAL {
                return Some(Arc::clone(latest));
            }
        }
        let seen = pinned.generation;
        let (pinned, _) = self
            .fresh
            .wait_timeout_while(pinned, FRESH_WAIT, |p| p.generation == seen)
            .unwrap_or_else(|e| e.into_inner());
        if fresh && pinned.generation == seen {
            return None;
        }
        pinned.latest.clone()
    }
}

/// The loop's side of a [`Board`].
#[derive(Debug)]
pub struct Publisher {
    board: Arc<Board>,
    last: Option<Instant>,
}

impl Publisher {
    /// The loop's handle on `board`.
    pub fn new(board: Arc<Board>) -> Publisher {
        Publisher { board, last: None }
    }

    /// How long the loop may wait for its next event: `wait` (`None`: forever), at most
    /// [`PUBLISH_INTERVAL`], so that a reader is served within it.
    pub fn cap(&self, wait: Option<Duration>) -> Duration {
        wait.map_or(PUBLISH_INTERVAL, |w| w.min(PUBLISH_INTERVAL))
    }

    /// Keeps `event` among the recent ones, with its subject's address.
    pub fn record(&self, event: &PoolEvent<ConnId>, addr: Option<&str>) {
        if let Some(json) = events::to_json(self.unix_ms(event.at), event, addr) {
            self.record_json(json);
        }
    }

    /// The Unix milliseconds of service time `at`.
    pub fn unix_ms(&self, at: Timestamp) -> u64 {
        self.board.origin_ms.saturating_add(at.as_micros() / 1000)
    }

    /// Keeps `json` (an event-log object) among the recent events.
    pub fn record_json(&self, json: Value) {
        let mut recent = self.board.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(json);
    }

    /// Publishes a snapshot of `service` at `now` if the board is watched (read within
    /// [`WATCH_WINDOW`]) and the last one is at least [`PUBLISH_INTERVAL`] old.
    pub fn tick(&mut self, service: &MinerService<ConnId>, now: Timestamp) {
        self.tick_with(|| (service.pool(now), None));
    }

    /// As [`tick`](Self::tick), with the report (and a replica's place in its group) that
    /// `take` makes, called only if a snapshot is due.
    pub fn tick_with(&mut self, take: impl FnOnce() -> (PoolReport<ConnId>, Option<Replication>)) {
        let due = self.last.is_none_or(|t| t.elapsed() >= PUBLISH_INTERVAL);
        if !due {
            return;
        }
        let read_at = *self.board.read_at.lock().unwrap_or_else(|e| e.into_inner());
        if read_at.is_none_or(|t| t.elapsed() >= WATCH_WINDOW) {
            return;
        }
        let taken = Instant::now();
        self.last = Some(taken);
        let events = {
            let recent = self.board.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.iter().cloned().collect()
        };
        let (report, replication) = take();
        let snapshot = Arc::new(Snapshot {
            report,
            origin_ms: self.board.origin_ms,
            events,
            taken,
            replication,
        });
        let mut pinned = self.board.pinned();
        pinned.generation += 1;
        pinned.latest = Some(snapshot);
        drop(pinned);
        self.board.fresh.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin_core::accounting::PoolEventKind;
    use bitcoin_core::message::Message;
    use bitcoin_core::scheduler::Config;

    fn one_miner() -> MinerService<ConnId> {
        let mut service = MinerService::new(Config::default()).expect("valid config");
        service.describe(ConnId(1), "10.0.0.1:4000");
        service.handle_payload(
            Timestamp::from_millis(5),
            ConnId(1),
            &Message::Join.encode(),
        );
        service
    }

    #[test]
    fn nothing_is_published_unwatched_and_a_read_gets_the_loop_publishing() {
        let board = Board::new();
        let mut publisher = Publisher::new(Arc::clone(&board));
        let mut service = one_miner();
        publisher.tick(&service, Timestamp::from_millis(10));
        assert_eq!(board.pinned().generation, 0, "nobody watching: no snapshot");
        // The first read finds none and waits in vain (no loop runs here), but marks the
        // board watched: the next tick publishes, and a read then takes it at once.
        assert!(board.read().is_none());
        while let Some(event) = service.poll_event() {
            publisher.record(&event, service.address(ConnId(1)));
        }
        publisher.tick(&service, Timestamp::from_millis(20));
        assert_eq!(board.pinned().generation, 1);
        let snapshot = board.read().expect("a snapshot");
        assert_eq!(snapshot.report.totals.miners, 1);
        assert_eq!(snapshot.report.at, Timestamp::from_millis(20));
        assert_eq!(snapshot.events.len(), 1);
        assert_eq!(snapshot.events[0]["event"], "miner_joined");
        assert_eq!(snapshot.events[0]["addr"], "10.0.0.1:4000");
        assert_eq!(
            snapshot.unix_ms(Timestamp::from_millis(20)),
            board.origin_ms + 20
        );
        // Not due again within PUBLISH_INTERVAL.
        publisher.tick(&service, Timestamp::from_millis(30));
        assert_eq!(board.pinned().generation, 1);
        // A fresh read wants one taken after it: none comes (no loop runs here), so it
        // gets none rather than the older one.
        assert!(board.read_fresh().is_none());
    }

    #[test]
    fn the_recent_events_are_a_bounded_ring_of_the_newest() {
        let board = Board::new();
        let publisher = Publisher::new(Arc::clone(&board));
        for i in 0..RECENT_EVENTS + 50 {
            let event = PoolEvent {
                at: Timestamp::from_millis(i as u64),
                kind: PoolEventKind::MinerJoined {
                    miner: ConnId(i as i64),
                },
            };
            publisher.record(&event, None);
        }
        let recent = board.recent.lock().expect("not poisoned");
        assert_eq!(recent.len(), RECENT_EVENTS);
        assert_eq!(recent[0]["conn"], 50);
        assert_eq!(recent[RECENT_EVENTS - 1]["conn"], RECENT_EVENTS as i64 + 49);
    }
}
