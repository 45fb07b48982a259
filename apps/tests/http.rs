//! `server --http`: `/metrics` parsed by a Prometheus text-format parser during and after a
//! known request, `/status` against its documented schema (docs/miner.md §7.3), and the
//! dashboard rendered by headless Chromium (skipped, saying so, when it is not installed);
//! and a durable server (`--data-dir`) observed the same way, saying that it leads.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use support::http::{get, get_fresh, http_addr};
use support::*;

/// A server with `--http 127.0.0.1:0`; returns it, its LSP address and its HTTP address.
fn http_server() -> (Proc, String, SocketAddr) {
    http_server_with(&[])
}

/// As [`http_server`], with `extra` flags.
fn http_server_with(extra: &[&str]) -> (Proc, String, SocketAddr) {
    let mut args = vec!["--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (server, addr) = server(&args);
    let http = http_addr(&server);
    (server, addr, http)
}

/// One scrape of `/metrics?fresh` (a snapshot taken after the request), parsed.
fn scrape(http: SocketAddr) -> prometheus_parse::Scrape {
    let (code, head, body) = get_fresh(http, "/metrics");
    assert_eq!(code, 200, "{head}\n{body}");
    assert!(head.contains("openmetrics-text"), "{head}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

fn value(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(x)
        | prometheus_parse::Value::Gauge(x)
        | prometheus_parse::Value::Untyped(x) => *x,
        other => panic!("not a number: {other:?}"),
    }
}

/// The samples named `name` whose labels include `labels`.
fn samples<'a>(
    s: &'a prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a prometheus_parse::Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect()
}

/// The one sample named `name` with `labels`, as a number.
fn one(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match samples(s, name, labels)[..] {
        [x] => value(&x.value),
        ref found => panic!("{} samples {name} {labels:?}: {found:?}", found.len()),
    }
}

#[test]
fn metrics_during_and_after_a_known_request_agree_with_the_answer() {
    let (server, addr, http) = http_server();
    // 300 k nonces/s: the vector's million nonces take a few seconds, time to scrape.
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "300000"]);
    let joined = server.wait_stderr("miner joined");
    assert!(joined.contains(" from 127.0.0.1:"), "{joined}");
    let miner_id = joined
        .split("conn ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .expect("conn id")
        .to_string();
    let v = million_nonce_vector();
    let size = (v.upper - v.lower + 1) as f64;
    let mut c = client(&addr, &v.msg, v.lower, v.upper);
    server.wait_stderr("accepted");

    let during = scrape(http);
    assert_eq!(one(&during, "miner_pool_miners", &[]), 1.0);
    assert_eq!(one(&during, "miner_pool_requests_active", &[]), 1.0);
    assert_eq!(one(&during, "miner_pool_requests_answered_total", &[]), 0.0);
    assert!(one(&during, "miner_pool_nonces_total", &[]) < size);
    let rates = samples(&during, "miner_hashrate", &[("miner", &miner_id)]);
    assert_eq!(rates.len(), 1, "{:?}", during.samples);
    let peer: SocketAddr = rates[0]
        .labels
        .get("addr")
        .and_then(|a| a.parse().ok())
        .expect("addr is ip:port");
    assert!(peer.ip().is_loopback());

    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    // Every job the pool sent has been answered and counted once the server has logged as
    // many results: then the counts hold still.
    let jobs = one(&scrape(http), "miner_pool_jobs_sent_total", &[]) as usize;
    server.wait_stderr_count(": result ", jobs);
    let after = scrape(http);
    let answers = server.count_stderr(": result ") as f64;
    assert_eq!(one(&after, "miner_pool_jobs_sent_total", &[]), answers);
    assert_eq!(one(&after, "miner_pool_requests_active", &[]), 0.0);
    assert_eq!(one(&after, "miner_pool_requests_answered_total", &[]), 1.0);
    let nonces = one(&after, "miner_pool_nonces_total", &[]);
    assert!(nonces >= size, "{nonces} < {size}");
    let mine = [("miner", miner_id.as_str())];
    assert_eq!(one(&after, "miner_nonces_total", &mine), nonces);
    let valid = [("miner", miner_id.as_str()), ("status", "valid")];
    let invalid = [("miner", miner_id.as_str()), ("status", "invalid")];
    assert_eq!(one(&after, "miner_results_total", &valid), answers);
    assert_eq!(one(&after, "miner_results_total", &invalid), 0.0);
    assert_eq!(
        one(&after, "miner_pool_results_total", &[("status", "valid")]),
        answers
    );
    assert!(one(&after, "miner_pool_hashrate", &[]) > 0.0);
    assert!(one(&after, "miner_pool_jobs_reissued_total", &[]) >= 0.0);
}

/// docs/miner.md §7.3's `/status` schema: any key it does not name fails the test.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Status {
    at_ms: u64,
    started_ms: u64,
    totals: Totals,
    history: Vec<Minute>,
    miners: Vec<Miner>,
    requests: Vec<Request>,
    events: Vec<serde_json::Map<String, serde_json::Value>>,
    /// A replicated or durable server's only.
    #[serde(default)]
    replication: Option<Replication>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Replication {
    id: u64,
    replicas: usize,
    role: String,
    term: u64,
    leader: u64,
    commit_index: u64,
    applied_index: u64,
    raft_sent: u64,
    raft_received: u64,
    persisted_batches: u64,
    redirected: u64,
    not_leader: u64,
    restored: u64,
    snapshots_installed: u64,
    refused: Refused,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Refused {
    full: u64,
    mode: u64,
    id_conflict: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Totals {
    miners: usize,
    hash_rate: f64,
    nonces: u64,
    valid_results: u64,
    invalid_results: u64,
    requests_active: usize,
    requests_accepted: u64,
    requests_answered: u64,
    requests_dropped: u64,
    requests_refused: u64,
    jobs_sent: u64,
    jobs_reissued: u64,
    connections: usize,
    connections_total: u64,
    events_dropped: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Minute {
    start_ms: u64,
    nonces: u64,
    rate: f64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Miner {
    id: i64,
    addr: Option<String>,
    hash_rate: f64,
    nonces: u64,
    valid: u64,
    stale: u64,
    invalid: u64,
    reissued_away: u64,
    jobs_held: usize,
    late: bool,
    since_ms: u64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Request {
    id: u64,
    client: i64,
    message: String,
    lower: u64,
    upper: u64,
    total: u64,
    zeros: Option<u32>,
    algo: String,
    covered: u64,
    searched: u64,
    progress: f64,
    rate: f64,
    eta_ms: Option<u64>,
    accepted_ms: u64,
    active_since_ms: Option<u64>,
}

fn status(http: SocketAddr) -> Status {
    let (code, head, body) = get_fresh(http, "/status");
    assert_eq!(code, 200, "{head}\n{body}");
    assert!(head.contains("application/json"), "{head}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Reads `/status` until `ready` holds (each read waits for a snapshot taken after it, so
/// this follows the server's publications); panics after [`PATIENCE`].
fn status_when(http: SocketAddr, ready: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = status(http);
        if ready(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never ready: {s:#?}");
    }
}

#[test]
fn status_follows_its_schema_and_tells_miners_requests_and_events() {
    let (server, addr, http) = http_server();
    let (code, _, _) = get(http, "/nowhere");
    assert_eq!(code, 404);
    let (code, head, page) = get(http, "/");
    assert_eq!(code, 200);
    assert!(
        head.contains("text/html") && page.contains("/status"),
        "{head}"
    );
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "300000"]);
    server.wait_stderr("miner joined");
    let (lower, upper) = (5u64, 50_000_000u64);
    let _client = client(&addr, "schema", lower, upper);
    server.wait_stderr("accepted");
    let s = status_when(http, |s| s.requests.first().is_some_and(|r| r.covered > 0));
    assert!(s.at_ms >= s.started_ms && s.started_ms > 1_600_000_000_000);
    assert!(s.replication.is_none(), "a plain server has no group");
    assert_eq!(s.totals.miners, 1);
    assert_eq!(s.miners.len(), 1);
    let m = &s.miners[0];
    let peer: SocketAddr = m
        .addr
        .as_deref()
        .and_then(|a| a.parse().ok())
        .expect("ip:port");
    assert!(peer.ip().is_loopback());
    assert!(m.since_ms >= s.started_ms && m.since_ms <= s.at_ms);
    assert!(m.valid >= 1 && m.nonces > 0 && m.hash_rate > 0.0);
    let r = &s.requests[0];
    assert_eq!(
        (r.message.as_str(), r.lower, r.upper),
        ("schema", lower, upper)
    );
    assert_eq!(r.total, upper - lower + 1);
    assert!(r.covered <= r.total);
    // A minimum request: no zeros, sha256, and everything covered was searched.
    assert_eq!(
        (r.zeros, r.algo.as_str(), r.searched),
        (None, "sha256", r.covered)
    );
    assert!((r.progress - r.covered as f64 / r.total as f64).abs() < 1e-9);
    assert!(r.rate > 0.0 && r.eta_ms.is_some() && r.active_since_ms.is_some());
    assert_eq!(s.totals.nonces, m.nonces);
    assert!(!s.history.is_empty());
    let kinds: Vec<&str> = s
        .events
        .iter()
        .filter_map(|e| e.get("event").and_then(|k| k.as_str()))
        .collect();
    assert_eq!(
        kinds,
        ["miner_joined", "request_accepted"],
        "{:?}",
        s.events
    );
    assert_eq!(s.events[0]["addr"], m.addr.as_deref().unwrap_or(""));
}

#[test]
fn status_tells_a_target_request_s_mode_and_the_nonces_searched() {
    let (server, addr, http) = http_server();
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "300000"]);
    server.wait_stderr("miner joined");
    // 64 zero bits: no nonce qualifies, so the search runs through the range.
    let mut args = vec![
        addr.as_str(),
        "tgt",
        "50000000",
        "--zeros",
        "64",
        "--algo",
        "sha256d",
    ];
    args.extend_from_slice(&FAST);
    let _client = Proc::spawn(env!("CARGO_BIN_EXE_client"), &args);
    server.wait_stderr("target z=64 sha256d accepted");
    let s = status_when(http, |s| s.requests.first().is_some_and(|r| r.covered > 0));
    let r = &s.requests[0];
    assert_eq!(
        (r.message.as_str(), r.zeros, r.algo.as_str()),
        ("tgt", Some(64), "sha256d")
    );
    // Without a hit, what is covered was searched; the rate is over it.
    assert_eq!(r.searched, r.covered);
    assert!(
        r.covered < r.total && r.rate > 0.0 && r.eta_ms.is_some(),
        "{r:?}"
    );
    let accepted = s
        .events
        .iter()
        .find(|e| e["event"] == "request_accepted")
        .unwrap_or_else(|| panic!("no request_accepted in {:?}", s.events));
    assert_eq!(
        (&accepted["zeros"], &accepted["algo"]),
        (&64.into(), &"sha256d".into())
    );
    // The miner's credit is what its answers searched.
    assert_eq!(s.totals.nonces, s.miners[0].nonces);
    assert!(s.totals.nonces >= r.searched, "{s:?}");
}

/// Where test artifacts go: `target/artifacts/` beside the test binaries.
fn artifacts() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_server"));
    let target = bin.ancestors().nth(2).expect("target directory");
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// Runs headless Chromium with `args` and a fresh profile; returns its stdout. Killed
/// after [`PATIENCE`].
fn chromium(chrome: &Path, args: &[String]) -> String {
    let profile = std::env::temp_dir().join(format!(
        "dashboard-chromium-{}-{}",
        std::process::id(),
        args.len()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "chromium failed: {status}");
    reader.join().expect("reader")
}

#[test]
fn the_dashboard_renders_live_miners_and_progress_in_headless_chromium() {
    // CHROMIUM names another browser binary (or a missing one, to see the skip).
    let chrome =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    let chrome = chrome.as_path();
    if !chrome.exists() {
        println!(
            "SKIPPED: chromium not installed ({}; `apt-get install chromium`)",
            chrome.display()
        );
        return;
    }
    let (server, addr, http) = http_server();
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "300000"]);
    server.wait_stderr("miner joined");
    let _client = client(&addr, "dashboard", 0, 100_000_000);
    server.wait_stderr("accepted");
    let s = status_when(http, |s| {
        s.requests.first().is_some_and(|r| r.covered > 0) && s.miners[0].hash_rate > 0.0
    });
    let miner_id = s.miners[0].id;
    // A target request beside it: the table names each request's mode.
    let mut args = vec![addr.as_str(), "dash-target", "100000000", "--zeros", "64"];
    args.extend_from_slice(&["--algo", "sha256d"]);
    args.extend_from_slice(&FAST);
    let _target = Proc::spawn(env!("CARGO_BIN_EXE_client"), &args);
    server.wait_stderr("target z=64 sha256d accepted");
    let url = format!("http://{http}/");
    let budget = "--virtual-time-budget=4000".to_string();
    let dom = chromium(chrome, &[budget.clone(), "--dump-dom".into(), url.clone()]);
    // The miners table has the miner's row with a non-zero rate.
    let row_at = dom
        .find(&format!("<tr data-miner=\"{miner_id}\">"))
        .unwrap_or_else(|| panic!("no row for miner {miner_id} in {dom}"));
    let row = &dom[row_at..row_at + dom[row_at..].find("</tr>").expect("row end")];
    let rate = row
        .split("<td class=\"rate\">")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no rate in {row}"));
    assert!(rate > 0.0, "{row}");
    assert!(row.contains("127.0.0.1:"), "{row}");
    // The request has a progress bar filled to its live share.
    let bar = dom
        .split("data-progress=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .and_then(|p| p.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no progress bar in {dom}"));
    assert!(bar > 0.0 && bar <= 100.0, "progress {bar}");
    assert!(
        dom.contains(&format!("class=\"fill\" style=\"width: {bar:.1}%")),
        "{dom}"
    );
    assert!(dom.contains("miner_joined") && dom.contains("request_accepted"));
    for mode in ["minimum", "target z=64 sha256d"] {
        assert!(
            dom.contains(&format!("<td class=\"l mode\">{mode}</td>")),
            "no {mode} request in {dom}"
        );
    }

    let shot = artifacts().join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        chrome,
        &[budget, format!("--screenshot={}", shot.display()), url],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!("dashboard screenshot: {}", shot.display());
}

/// The JSON event lines (`--events -`) `server` has written to its stderr so far.
fn event_lines(server: &Proc) -> Vec<serde_json::Value> {
    let text = server.stderr_text();
    text.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

#[test]
fn a_durable_server_is_observed_like_a_plain_one_and_says_it_leads() {
    let dir = std::env::temp_dir().join(format!("http-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_string_lossy().into_owned();
    let (server, addr, http) = http_server_with(&["--data-dir", &data, "--events", "-"]);
    server.wait_stderr(": leader");
    let s = status_when(http, |s| {
        s.replication.as_ref().is_some_and(|r| r.role == "leader")
    });
    let r = s.replication.expect("a durable server's group");
    assert_eq!((r.id, r.replicas, r.leader), (1, 1, 1));
    assert!(
        r.term >= 1 && r.commit_index >= 1 && r.persisted_batches >= 1,
        "{r:?}"
    );
    let _miner = miner(&addr, &["--threads", "1", "--max-rate", "300000"]);
    server.wait_stderr("miner joined");
    let v = million_nonce_vector();
    let mut client = progress_client(&addr, &v, &["-v"]);
    let conn = conn_of(&client);
    // The request is told under its client's connection, not the coordinator's slot.
    let s = status_when(http, |s| s.requests.first().is_some_and(|r| r.covered > 0));
    assert_eq!(s.requests[0].client.to_string(), conn);
    assert_eq!(s.requests[0].message, v.msg);
    // The client asked for Progress and is told it, through the log's slot.
    client.wait_stderr("progress ");
    let (status, stdout) = client.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    progress_shares(&client);
    // The request's lifecycle in the event log, under the client's connection.
    server.wait_stderr("\"request_answered\"");
    let events = event_lines(&server);
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["event"] == kind).collect()
    };
    assert!(of("replica_role")
        .iter()
        .any(|e| e["role"] == "leader" && e["leader"] == 1));
    assert_eq!(of("miner_joined").len(), 1);
    let accepted = of("request_accepted");
    assert_eq!(accepted.len(), 1, "{events:?}");
    assert_eq!(accepted[0]["conn"].to_string(), conn);
    assert_eq!(accepted[0]["data"], v.msg.as_str());
    let answered = of("request_answered");
    assert_eq!(answered.len(), 1, "{events:?}");
    assert_eq!(answered[0]["conn"].to_string(), conn);
    let told = format!("Result {} {}", answered[0]["hash"], answered[0]["nonce"]);
    assert_eq!(told, v.expected.trim());
    // And in /metrics, with the replica's place in its group.
    let m = scrape(http);
    assert_eq!(one(&m, "miner_replica_role", &[("role", "leader")]), 1.0);
    assert_eq!(one(&m, "miner_replica_role", &[("role", "follower")]), 0.0);
    assert_eq!(one(&m, "miner_replica_leader", &[]), 1.0);
    assert!(one(&m, "miner_replica_term", &[]) >= 1.0);
    let commit = one(&m, "miner_replica_commit_index", &[]);
    assert!(
        commit >= r.commit_index as f64 + 2.0,
        "accepted and answered"
    );
    assert!(one(&m, "miner_replica_persisted_batches_total", &[]) >= 1.0);
    assert_eq!(one(&m, "miner_pool_requests_answered_total", &[]), 1.0);
    // A request whose "Id" already names another request is refused, and counted so.
    let params = lsp_core::Params {
        epoch_millis: 100,
        epoch_limit: 10,
        ..lsp_core::Params::default()
    };
    let with_id = |data: &str| {
        format!(r#"{{"Type":1,"Data":"{data}","Lower":0,"Upper":10,"Hash":0,"Nonce":0,"Id":77}}"#)
            .into_bytes()
    };
    let first = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    first.write(with_id("first")).expect("written");
    assert!(
        first.read().is_ok(),
        "the first request under id 77 is answered"
    );
    let other = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    other.write(with_id("other")).expect("written");
    assert!(other.read().is_err(), "the other one is refused");
    let m = scrape(http);
    let refused = |reason| {
        one(
            &m,
            "miner_replica_requests_refused_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(
        (refused("id_conflict"), refused("full"), refused("mode")),
        (1.0, 0.0, 0.0)
    );
    let s = status_when(http, |s| {
        s.replication
            .as_ref()
            .is_some_and(|r| r.refused.id_conflict == 1)
    });
    assert_eq!(s.replication.map(|r| r.refused.full), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
