//! Back-pressure on delivery (`Limits::max_unread_messages`): an application that stops
//! reading while its peer writes many messages holds a bounded number of them, the
//! connection stays alive, and once it reads again every message arrives exactly once, in
//! order.

mod common;

use std::time::Duration;

use common::{params, Fate, Rng, World};
use lsp_core::{ClientEvent, Limits, ServerEvent};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    messages: u16,
    size: u16,
    max_unread: u32,
    window: u32,
    max_unacked: u32,
    max_backoff: u32,
    drop_pct: u64,
    pause_ms: u64,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        Case {
            seed: u64::arbitrary(g),
            messages: 1 + u16::arbitrary(g) % 600,
            size: u16::arbitrary(g) % 200,
            max_unread: 1 + u32::arbitrary(g) % 40,
            window: 1 + u32::arbitrary(g) % 8,
            max_unacked: 1 + u32::arbitrary(g) % 8,
            max_backoff: u32::arbitrary(g) % 5,
            drop_pct: u64::arbitrary(g) % 21,
            pause_ms: u64::arbitrary(g) % 20_000,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let mut out = vec![];
        if self.messages > 1 {
            out.push(Case {
                messages: self.messages / 2,
                ..self.clone()
            });
        }
        if self.drop_pct > 0 {
            out.push(Case {
                drop_pct: 0,
                ..self.clone()
            });
        }
        if self.pause_ms > 0 {
            out.push(Case {
                pause_ms: self.pause_ms / 2,
                ..self.clone()
            });
        }
        Box::new(out.into_iter())
    }
}

fn payload(k: usize, size: u16) -> Vec<u8> {
    let mut p = vec![k as u8; usize::from(size)];
    p.extend_from_slice(&(k as u32).to_le_bytes());
    p
}

fn holds(case: Case) -> TestResult {
    // 100 ms epochs, K = 20: a connection whose peer is silent for 2 s is lost, so the
    // pause (up to 20 s) is survived only if heartbeats keep flowing; with at most 20 %
    // loss, 20 silent epochs in a row do not happen by chance.
    let p = params(20, 100, case.window, case.max_unacked, case.max_backoff);
    let limits = Limits {
        max_unread_messages: case.max_unread,
        ..Limits::default()
    };
    let mut world = World::with_limits(p, p, limits, 1, |_| 0);
    let mut rng = Rng(case.seed);
    let drop_pct = case.drop_pct;
    world.faults = Box::new(move |_, _, _, _| {
        if rng.chance(drop_pct) {
            Fate::Drop
        } else {
            Fate::Deliver(Duration::from_millis(1 + rng.below(20)))
        }
    });
    if !world.run_until_cond(Duration::from_secs(5), |w| w.all_connected()) {
        return TestResult::discard();
    }
    world.run_for(Duration::from_millis(1)); // the Connected event is taken
    let conn = world.conn_of(0).unwrap();
    world.server_reading = false;
    let n = usize::from(case.messages);
    for k in 0..n {
        world.clients[0].write(payload(k, case.size)).unwrap();
    }
    world.collect();
    // Paused: the server never holds more than max_unread + window - 1 unread messages.
    let bound = (case.max_unread + case.window - 1) as usize;
    let mut peak = 0;
    let paused_until = world.now + Duration::from_millis(case.pause_ms);
    let held = world.run_until_cond(Duration::from_millis(case.pause_ms), |w| {
        peak = peak.max(w.server.unread(conn));
        peak > bound || w.now >= paused_until
    });
    if peak > bound {
        return TestResult::error(format!("{peak} unread messages, bound {bound}"));
    }
    if held && world.now < paused_until {
        return TestResult::error("stopped early");
    }
    world.server_reading = true;
    world.collect();
    let done = |w: &World| w.server.stats().messages_delivered >= n as u64;
    world.run_until_cond(Duration::from_secs(600), done);
    let lost = world
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::ConnectionLost { .. }))
        || world.client_events[0]
            .iter()
            .any(|e| matches!(e, ClientEvent::ConnectionLost));
    if lost {
        return TestResult::error("a connection was lost");
    }
    let want: Vec<Vec<u8>> = (0..n).map(|k| payload(k, case.size)).collect();
    let got = world.server_messages(conn);
    if got != want {
        return TestResult::error(format!("delivered {} of {n}, or out of order", got.len()));
    }
    TestResult::passed()
}

#[test]
fn a_reader_that_pauses_holds_a_bounded_queue_and_loses_nothing() {
    QuickCheck::new()
        .tests(150)
        .quickcheck(holds as fn(Case) -> TestResult);
}

/// The figure, scaled to a test: one peer, window 1, writes 5,000 messages of
/// 1,000 bytes (`LSP_STOPPED_READER_MESSAGES` to change; the figure is 100,000) to
/// a reader that stops; the reader holds at most `max_unread_messages` of them (1 MiB of
/// payload with the default 1,024), and receives all of them in order once it reads again.
#[test]
fn many_messages_to_a_stopped_reader() {
    let p = params(5, 100, 1, 1, 0);
    let mut world = World::with_limits(p, p, Limits::default(), 1, |_| 0);
    world.run_until_cond(Duration::from_secs(1), |w| w.all_connected());
    world.run_for(Duration::from_millis(1));
    let conn = world.conn_of(0).unwrap();
    world.server_reading = false;
    let n: usize = std::env::var("LSP_STOPPED_READER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    for k in 0..n {
        world.clients[0].write(payload(k, 996)).unwrap();
    }
    world.collect();
    let mut peak = 0;
    world.run_until_cond(Duration::from_secs(30), |w| {
        peak = peak.max(w.server.unread(conn));
        false
    });
    let max_unread = Limits::default().max_unread_messages as usize;
    assert_eq!(peak, max_unread, "exactly the bound is held");
    assert!(world.server.stats().dropped.unread_full > 0);
    world.server_reading = true;
    world.collect();
    world.run_until_cond(Duration::from_secs(36_000), |w| {
        w.server.stats().messages_delivered >= n as u64
    });
    let got = world.server_messages(conn);
    assert_eq!(got.len(), n);
    eprintln!(
        "{n} messages of 1000 bytes: peak {peak} unread ({} KiB of payload), {} Data refused \
         for a full queue, all delivered in order by {:?} virtual",
        peak * 1000 / 1024,
        world.server.stats().dropped.unread_full,
        world.now
    );
    assert!(got.iter().enumerate().all(|(k, m)| *m == payload(k, 996)));
}
