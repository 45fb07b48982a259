//! The server's event log (`--events`), as real processes write it: its lines parse, and
//! tell the story of a run with a killed miner and a lost client.

mod support;

use serde_json::Value;
use support::*;

/// The event-log lines the server wrote to stderr so far, parsed (each must parse).
fn events(server: &Proc) -> Vec<Value> {
    server
        .stderr_text()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits for an event-log line with `"event":"<kind>"` and `fragment`; returns it parsed.
fn wait_event(server: &Proc, kind: &str, fragment: &str) -> Value {
    let pattern = format!(r#""event":"{kind}""#);
    let mut n = 1;
    loop {
        let line = server.wait_stderr_count(&pattern, n);
        if line.contains(fragment) {
            return serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        n += 1;
    }
}

/// The index of the first event of `kind` for which `matches` holds.
fn position(events: &[Value], kind: &str, matches: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .position(|e| e["event"] == kind && matches(e))
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

#[test]
fn the_event_log_tells_of_a_killed_miner_an_answer_and_a_lost_client() {
    let (server, addr) = server(&["--events", "-"]);
    // A slow miner (0.5 M nonces/s) holds the request's first jobs when it is killed.
    let mut slow = miner(&addr, &["--threads", "1", "--max-rate", "500000"]);
    let joined = wait_event(&server, "miner_joined", "");
    let slow_conn = joined["conn"].as_i64().expect("conn");
    let v = min_hash_vectors()
        .into_iter()
        .find(|v| v.upper - v.lower >= 1_000_000)
        .expect("a vector of a million nonces");
    let mut c = client(&addr, &v.msg, v.lower, v.upper);
    slow.wait_stderr_count("job ", 2);
    slow.kill();
    wait_event(&server, "miner_lost", &format!(r#""conn":{slow_conn},"#));
    let _fresh = miner(&addr, &["--threads", "1"]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    wait_event(&server, "request_answered", "");
    // A client asking for far too much, killed while its request runs.
    let mut doomed = client(&addr, "doomed", 0, 100_000_000_000);
    let accepted = wait_event(&server, "request_accepted", r#""data":"doomed""#);
    let doomed_conn = accepted["conn"].as_i64().expect("conn");
    doomed.kill();
    wait_event(&server, "client_lost", &format!(r#""conn":{doomed_conn},"#));

    let log = events(&server);
    let mut ts = 0;
    for e in &log {
        let t = e["ts"].as_u64().unwrap_or_else(|| panic!("no ts in {e}"));
        assert!(t >= ts && t > 1_600_000_000_000, "ts {t} after {ts}: {e}");
        ts = t;
    }
    let is = |conn: i64| move |e: &Value| e["conn"] == conn;
    let first_join = position(&log, "miner_joined", is(slow_conn));
    let accepted = position(&log, "request_accepted", |e| e["data"] == v.msg.as_str());
    let request = log[accepted]["request"].clone();
    assert_eq!(
        (&log[accepted]["lower"], &log[accepted]["upper"]),
        (&Value::from(v.lower), &Value::from(v.upper))
    );
    let lost = position(&log, "miner_lost", is(slow_conn));
    assert!(
        log[lost]["jobs_returned"].as_u64() >= Some(1),
        "{}",
        log[lost]
    );
    let fresh_join = position(&log, "miner_joined", |e| e["conn"] != slow_conn);
    let answered = position(&log, "request_answered", |e| e["request"] == request);
    let a = &log[answered];
    let (hash, nonce) = (a["hash"].as_u64().unwrap(), a["nonce"].as_u64().unwrap());
    assert_eq!(format!("Result {hash} {nonce}"), v.expected);
    assert_eq!(a["nonces"].as_u64(), Some(v.upper - v.lower + 1));
    assert!(a["duration_ms"].as_f64() > Some(0.0) && a["nonces_per_sec"].as_f64() > Some(0.0));
    let doomed_at = position(&log, "request_accepted", |e| e["data"] == "doomed");
    let client_lost = position(&log, "client_lost", is(doomed_conn));
    assert_eq!(log[client_lost]["dropped"], 1);
    assert!(
        first_join < accepted
            && accepted < lost
            && lost < fresh_join
            && fresh_join < answered
            && answered < doomed_at
            && doomed_at < client_lost,
        "the story is out of order: {log:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|e| e["event"] == "events_dropped")
            .count(),
        0
    );
}
