//! The server's event log (`--events`), as real processes write it: its lines parse, and
//! tell the story of a run with a killed miner and a lost client; and Progress messages to
//! a client that asks for them; what `client --progress` and `miner -v` show.

mod support;

use bitcoin_core::message::Message;
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
    let slow_addr: std::net::SocketAddr = joined["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no ip:port in {joined}"));
    assert!(
        slow_addr.ip().is_loopback() && slow_addr.port() != 0,
        "{joined}"
    );
    let v = million_nonce_vector();
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
    assert!(accepted["addr"].as_str().is_some(), "{accepted}");
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

#[test]
fn a_client_that_asks_gets_progress_messages_until_its_result() {
    let (server, addr) = server(&[]);
    // 2 M nonces/s for 6 M nonces: about 3 s, so about three Progress messages.
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "2000000"]);
    server.wait_stderr("miner joined");
    let params = lsp_core::Params {
        epoch_millis: 100,
        epoch_limit: 10,
        ..lsp_core::Params::default()
    };
    let conn = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    let (lower, upper) = (0u64, 5_999_999u64);
    let request =
        format!(r#"{{"Type":1,"Data":"prog","Lower":{lower},"Upper":{upper},"Progress":true}}"#);
    conn.write(request.into_bytes()).expect("written");
    let mut progress = Vec::new();
    let answer = loop {
        let payload = conn.read().expect("the server answers");
        match Message::decode(&payload).expect("a message") {
            Message::Progress {
                covered,
                total,
                rate,
            } => progress.push((covered, total, rate)),
            Message::Result { hash, nonce } => break (hash, nonce),
            other => panic!("unexpected {other:?}"),
        }
    };
    let truth = (lower..=upper)
        .map(|n| (bitcoin_core::hash::hash("prog", n), n))
        .min()
        .unwrap();
    assert_eq!(answer, truth);
    assert!(!progress.is_empty(), "no Progress in about 3 s");
    assert!(progress
        .iter()
        .all(|p| p.1 == upper - lower + 1 && p.0 <= p.1));
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    assert!(progress.iter().any(|p| p.0 > 0 && p.2 > 0), "{progress:?}");
}

#[test]
fn client_progress_shows_progress_on_stderr_and_stdout_stays_the_result() {
    let (server, addr) = server(&[]);
    // 300 k nonces/s for the vector's million nonces: a few seconds, a few Progress lines.
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "300000"]);
    server.wait_stderr("miner joined");
    let v = million_nonce_vector();
    let mut c = progress_client(&addr, &v, &[]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected, "stdout is the result line alone");
    progress_shares(&c);
}

#[test]
fn a_verbose_miner_logs_its_own_hash_rate_while_it_works() {
    let (server, addr) = server(&[]);
    let m = miner(
        &addr,
        &[
            "--threads",
            "1",
            "--max-rate",
            "400000",
            "--hashrate-every",
            "0.5",
        ],
    );
    server.wait_stderr("miner joined");
    let v = million_nonce_vector();
    let mut c = client(&addr, &v.msg, v.lower, v.upper);
    let line = m.wait_stderr("H/s over ");
    let rate = line
        .split("hashrate ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no rate in {line:?}"));
    assert!(rate > 0.0, "{line}");
    assert!(line.contains(" nonces searched"), "{line}");
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
}
