//! The event log's line format, and a stuck writer.

use super::*;
use std::sync::{Condvar, Mutex};

use bitcoin_core::accounting::MinerTotals;
use bitcoin_core::hash::{Algo, Zeros};
use bitcoin_core::message::ext::{encode_join, encode_request, encode_target_result};
use bitcoin_core::message::{Caps, Message};
use bitcoin_core::scheduler::Config;
use bitcoin_core::service::MinerService;
use lsp_core::Timestamp;

fn event(ms: u64, kind: PoolEventKind<ConnId>) -> PoolEvent<ConnId> {
    PoolEvent {
        at: Timestamp::from_millis(ms),
        kind,
    }
}

/// Whether the gate is open, and what was written through it.
type GateState = Mutex<(bool, Vec<u8>)>;

/// A sink that holds every write until it is opened, then keeps what it got.
#[derive(Clone, Default)]
struct Gate {
    state: Arc<(GateState, Condvar)>,
}

impl Gate {
    fn open(&self) {
        self.state.0.lock().unwrap().0 = true;
        self.state.1.notify_all();
    }
    fn text(&self) -> String {
        String::from_utf8(self.state.0.lock().unwrap().1.clone()).unwrap()
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (lock, cvar) = &*self.state;
        let mut s = cvar.wait_while(lock.lock().unwrap(), |s| !s.0).unwrap();
        s.1.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_event_is_one_json_line_to_a_file() {
    let path = std::env::temp_dir().join(format!("events-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let log = EventLog::start(EventLog::sink(path.to_str().unwrap()).unwrap()).unwrap();
    let origin = log.origin();
    log.record_from(
        event(1500, PoolEventKind::MinerJoined { miner: ConnId(3) }),
        Some("127.0.0.1:4000".into()),
    );
    let totals = MinerTotals {
        joined: Timestamp::from_millis(1500),
        nonces: 1 << 64,
        valid: 2,
        ..MinerTotals::default()
    };
    log.record(event(
        2500,
        PoolEventKind::MinerLost {
            miner: ConnId(3),
            jobs_returned: 1,
            totals,
        },
    ));
    assert_eq!(log.finish(), 0);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["event"], "miner_joined");
    assert_eq!(lines[0]["ts"], origin + 1500);
    assert_eq!(lines[0]["conn"], 3);
    assert_eq!(lines[0]["addr"], "127.0.0.1:4000");
    assert!(lines[1].get("addr").is_none(), "{text}");
    assert_eq!(lines[1]["event"], "miner_lost");
    assert_eq!(lines[1]["connected_ms"], 1000);
    assert_eq!(lines[1]["valid"], 2);
    // Exact in the text (a parser without big numbers reads it as a float).
    assert!(text.contains(r#""nonces":18446744073709551616,"#), "{text}");
}

/// The JSON object of the `request_answered` event of a real service asked for `mode`
/// over `0..=upper` by client 4, with one capable miner (3) answering `answer` for the
/// whole range.
fn answered(mode: Mode, upper: u64, answer: &[u8]) -> serde_json::Value {
    let mut s = MinerService::<ConnId>::new(Config::default()).unwrap();
    let at = Timestamp::from_millis;
    s.handle_payload(at(0), ConnId(3), &encode_join(Caps::ALL));
    s.handle_payload(at(1), ConnId(4), &encode_request("m", 0, upper, mode));
    s.handle_payload(at(3), ConnId(3), answer);
    std::iter::from_fn(|| s.poll_event())
        .find(|e| matches!(e.kind, PoolEventKind::RequestAnswered { .. }))
        .and_then(|e| to_json(10, &e, None))
        .expect("a request_answered event")
}

#[test]
fn a_found_false_answer_has_no_hash_and_a_target_its_zeros_and_algo() {
    let target = Mode::Target {
        zeros: Zeros::new(60).unwrap(),
        algo: Algo::Sha256d,
    };
    let none = answered(target, 999, &encode_target_result(None, (0, 999)));
    assert_eq!(none["found"], false, "{none}");
    assert!(
        none.get("hash").is_none() && none.get("nonce").is_none(),
        "{none}"
    );
    assert_eq!(
        (&none["zeros"], &none["algo"]),
        (&60.into(), &"sha256d".into())
    );
    assert_eq!(
        (&none["nonces"], &none["nonces_per_sec"]),
        (&1000.into(), &500_000.0.into())
    );
    // A hit at nonce n: the search covered 0..=n, and that is what is counted.
    let easy = Mode::Target {
        zeros: Zeros::new(1).unwrap(),
        algo: Algo::Sha256,
    };
    let first = (0..=999)
        .map(|n| (bitcoin_core::hash::hash("m", n), n))
        .find(|(h, _)| h.leading_zeros() >= 1)
        .unwrap();
    let hit = answered(easy, 999, &encode_target_result(Some(first), (0, 999)));
    assert_eq!(
        (&hit["found"], &hit["zeros"], &hit["algo"]),
        (&true.into(), &1.into(), &"sha256".into())
    );
    assert_eq!(
        (&hit["hash"], &hit["nonce"]),
        (&first.0.into(), &first.1.into())
    );
    assert_eq!(hit["nonces"], first.1 + 1, "{hit}");
    // Minimum mode: as before, with `found`.
    let min = (0..=999)
        .map(|n| (bitcoin_core::hash::hash("m", n), n))
        .min()
        .unwrap();
    let minimum = answered(
        Mode::Minimum,
        999,
        &Message::Result {
            hash: min.0,
            nonce: min.1,
        }
        .encode(),
    );
    assert_eq!(
        (&minimum["found"], &minimum["hash"], &minimum["nonces"]),
        (&true.into(), &min.0.into(), &1000.into())
    );
    assert!(
        minimum.get("zeros").is_none() && minimum.get("algo").is_none(),
        "{minimum}"
    );
}

#[test]
fn a_stuck_writer_never_blocks_and_drops_are_counted_and_logged() {
    let gate = Gate::default();
    let log = EventLog::start(Box::new(gate.clone())).unwrap();
    let total = EVENT_LOG_CAPACITY + 100;
    for i in 0..total {
        let conn = ConnId(i as i64);
        log.record(event(i as u64, PoolEventKind::MinerJoined { miner: conn }));
    }
    // The writer holds one event at most, the channel the capacity: the rest dropped.
    let dropped = log.dropped();
    assert!(
        (99..=100).contains(&dropped),
        "{dropped} dropped of {total}"
    );
    gate.open();
    assert_eq!(log.finish(), dropped);
    let text = gate.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let written = lines
        .iter()
        .filter(|l| l["event"] == "miner_joined")
        .count();
    assert_eq!(written as u64 + dropped, total as u64);
    let reported: u64 = lines
        .iter()
        .filter(|l| l["event"] == "events_dropped")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(reported, dropped);
}
