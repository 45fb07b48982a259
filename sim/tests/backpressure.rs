//! Back-pressure in the simulator: a server application that stops reading while a client
//! writes many messages over a lossy, reordering network. The endpoint holds a bounded
//! number of unread messages (checked by the world's invariants at every datagram and
//! tick), the connection survives on heartbeats, and once the application reads again every
//! message is read exactly once, in order, and echoed back.

use std::time::Duration;

use lsp_core::{Limits, Params};
use sim::{Echo, Prob, World};

fn run(seed: u64, messages: usize, pause: Duration) -> Result<(), String> {
    let params = Params {
        epoch_limit: 10,
        epoch_millis: 100,
        window_size: 4,
        max_unacked_messages: 4,
        max_backoff_interval: 2,
    };
    let limits = Limits {
        max_unread_messages: 8,
        ..Limits::default()
    };
    let mut w = World::new(seed);
    w.net.faults.write_drop = [Prob::percent(10); 2];
    w.net.faults.jitter = Duration::from_millis(30);
    w.start_server_with_limits(params, limits, Echo::Immediate)
        .map_err(|e| e.to_string())?;
    let client = w.add_client(params, 0).map_err(|e| e.to_string())?;
    let limit = w.now() + Duration::from_secs(5);
    w.run_while(limit, |w| {
        w.client(client).is_some_and(|l| l.conn.is_none())
    });
    let conn = w
        .client(client)
        .and_then(|l| l.conn)
        .ok_or("client did not connect")?;
    w.set_server_reading(false);
    for k in 0..messages {
        w.client_write(client, format!("m{k}").into_bytes())
            .map_err(|e| e.to_string())?;
    }
    w.run_for(pause);
    w.check().map_err(|v| v.to_string())?;
    let ep = w.server_endpoint().ok_or("no server")?;
    let held = ep.unread(conn);
    if held >= 8 + 4 {
        return Err(format!("{held} unread messages held while paused"));
    }
    if messages > 20 && ep.stats().dropped.unread_full == 0 {
        return Err("the full queue never refused Data".into());
    }
    w.set_server_reading(true);
    let limit = w.now() + Duration::from_secs(600);
    w.run_while(limit, |w| {
        w.client(client).map_or(0, |l| l.reads.len()) < messages
    });
    w.check().map_err(|v| v.to_string())?;
    let life = w.client(client).ok_or("client gone")?;
    if life.lost || w.server().is_some_and(|s| s.conns[&conn].lost) {
        return Err("the connection was lost".into());
    }
    let want: Vec<Vec<u8>> = (0..messages)
        .map(|k| format!("m{k}").into_bytes())
        .collect();
    let read = &w.server().ok_or("no server")?.conns[&conn].reads;
    if *read != want {
        return Err(format!(
            "server read {} of {messages}, or out of order",
            read.len()
        ));
    }
    if life.reads != want {
        return Err(format!(
            "client read {} echoes of {messages}",
            life.reads.len()
        ));
    }
    Ok(())
}

#[test]
fn a_paused_reader_holds_a_bounded_queue_and_loses_nothing() {
    let failures: Vec<String> = (0..40)
        .filter_map(|seed| {
            let messages = 50 + (seed as usize * 37) % 400;
            let pause = Duration::from_millis(500 + seed * 250);
            run(seed, messages, pause)
                .err()
                .map(|e| format!("seed {seed} ({messages} messages, pause {pause:?}): {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
