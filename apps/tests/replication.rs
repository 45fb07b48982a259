//! The replicated server as real processes (docs/replication.md): a durable server killed
//! and restarted mid-request, and a leader of three replicas killed mid-request; the
//! client, given every address, still prints the right Result. The killed leader, restarted,
//! catches up by a snapshot and is then needed for a majority. Every replica, follower or
//! leader, tells its role, term and leader over `--http` and in its `--events`. A
//! target-mode request to a durable server killed and restarted gets the answer
//! `mine --zeros` gives.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http::{get_fresh, http_addr};
use support::{
    million_nonce_vector, min_hash_vectors, miner, progress_client, progress_shares, Proc, Vector,
    FAST, PATIENCE,
};

fn free_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a free port");
    socket.local_addr().expect("its address").port()
}

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("replication-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn replica(port: u16, dir: &std::path::Path, cluster: Option<(&str, u64)>) -> Proc {
    replica_with(port, dir, cluster, &[])
}

fn replica_with(
    port: u16,
    dir: &std::path::Path,
    cluster: Option<(&str, u64)>,
    extra: &[&str],
) -> Proc {
    let port = port.to_string();
    let dir = dir.to_string_lossy().into_owned();
    let mut args = vec![port.as_str(), "-vv", "--data-dir", &dir];
    args.extend_from_slice(&FAST);
    args.extend_from_slice(extra);
    let id;
    if let Some((list, n)) = cluster {
        id = n.to_string();
        args.extend_from_slice(&["--cluster", list, "--id", &id]);
    }
    Proc::spawn(env!("CARGO_BIN_EXE_server"), &args)
}

/// Three free loopback ports, their `--cluster` list, and a fresh data dir for each
/// (named `<tag>1` .. `<tag>3`).
fn three_replicas(tag: &str) -> ([u16; 3], String, Vec<std::path::PathBuf>) {
    let ports = [free_port(), free_port(), free_port()];
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let dirs = (1..=3).map(|i| data_dir(&format!("{tag}{i}"))).collect();
    (ports, list, dirs)
}

fn client(list: &str, msg: &str, lower: u64, upper: u64) -> Proc {
    let (lower, upper) = (lower.to_string(), upper.to_string());
    let mut args = vec![list, msg, &upper, "--lower", &lower, "-v"];
    args.extend_from_slice(&FAST);
    Proc::spawn(env!("CARGO_BIN_EXE_client"), &args)
}

/// The index of the first of `procs` to log `pattern`, polling their logs.
fn first_to_log(procs: &[&Proc], pattern: &str) -> usize {
    let start = Instant::now();
    loop {
        if let Some(i) = procs.iter().position(|p| p.count_stderr(pattern) > 0) {
            return i;
        }
        assert!(start.elapsed() < PATIENCE, "no one logged {pattern:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_durable_server_killed_mid_request_answers_after_its_restart() {
    let dir = data_dir("single");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = replica(port, &dir, None);
    server.wait_stderr("leader");
    let mut slow = miner(&addr, &["--threads", "1", "--max-rate", "500000"]);
    let v = million_nonce_vector();
    let mut c = client(&format!("{addr},{addr}"), &v.msg, v.lower, v.upper);
    slow.wait_stderr_count("job ", 3);
    server.kill();
    slow.kill();
    assert!(!c.has_exited());
    let restarted = replica(port, &dir, None);
    restarted.wait_stderr("leader");
    let _fast = miner(&addr, &["--threads", "1"]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_durable_server_killed_mid_target_request_answers_it_in_target_mode_after_its_restart() {
    // Target mode (miner.md §9) through the log: the restarted server must restore the
    // request with its mode (a minimum answer would differ) and what was searched.
    let (msg, upper, zeros) = ("durable target", "20000000", "22");
    let mine = std::process::Command::new(env!("CARGO_BIN_EXE_mine"))
        .args([msg, upper, "--zeros", zeros, "-q", "--miners", "1"])
        .output()
        .expect("mine runs");
    assert!(mine.status.success());
    let expected = String::from_utf8(mine.stdout).expect("utf-8");
    let expected = expected.trim_end();
    assert!(expected.starts_with("Result "), "{expected}");

    let dir = data_dir("target");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = replica(port, &dir, None);
    server.wait_stderr("leader");
    let mut slow = miner(&addr, &["--threads", "1", "--max-rate", "500000"]);
    let list = format!("{addr},{addr}");
    let mut args = vec![list.as_str(), msg, upper, "--zeros", zeros, "-v"];
    args.extend_from_slice(&FAST);
    let mut c = Proc::spawn(env!("CARGO_BIN_EXE_client"), &args);
    slow.wait_stderr_count("job ", 3);
    server.kill();
    slow.kill();
    assert!(!c.has_exited(), "killed mid-request");
    let restarted = replica(port, &dir, None);
    restarted.wait_stderr("leader");
    let _fast = miner(&addr, &["--threads", "1"]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The leader compacts its log every `SNAPSHOT_EVERY` applied entries. At 2, once the new
/// leader has applied the Answered entry (index `a`), its log starts after index `a − 1` at
/// the latest, which is at or after the empty entry it appended on its election. The killed
/// leader never had that entry, so it cannot be caught up from the log: it must install a
/// snapshot.
const SNAPSHOT_EVERY: [&str; 2] = ["--snapshot-every", "2"];

/// A request under way on the group `list`: the replica that leads, two slow miners (the
/// first has started two jobs), and the client waiting for the million-nonce vector.
struct UnderWay {
    leader: usize,
    miners: [Proc; 2],
    client: Proc,
    vector: Vector,
}

fn under_way(replicas: &[Proc], list: &str) -> UnderWay {
    let leader = first_to_log(&replicas.iter().collect::<Vec<_>>(), ": leader");
    let slow = ["--threads", "1", "--max-rate", "500000"];
    let miners = [miner(list, &slow), miner(list, &slow)];
    let vector = million_nonce_vector();
    let client = client(list, &vector.msg, vector.lower, vector.upper);
    miners[0].wait_stderr_count("job ", 2);
    UnderWay {
        leader,
        miners,
        client,
        vector,
    }
}

#[test]
fn a_leader_asked_to_leave_hands_over_and_names_the_new_leader_to_its_peers() {
    let (ports, list, dirs) = three_replicas("t");
    let replicas: Vec<Proc> = (0..3)
        .map(|i| replica(ports[i], &dirs[i], Some((&list, i as u64 + 1))))
        .collect();
    let mut w = under_way(&replicas, &list);
    let leader = w.leader;
    assert!(!w.client.has_exited(), "answered before the leader left");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &replicas[leader].pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    // It hands over instead of leaving the group to an election timeout, and tells each
    // miner and the client where the new leader is instead of leaving them to their loss
    // detection.
    let handing = replicas[leader].wait_stderr("leaving: handing leadership to replica ");
    let to = handing.rsplit(' ').next().expect("an id").to_string();
    replicas[leader].wait_stderr(&format!("told replica {to} leads, and closed"));
    replicas[leader].wait_stderr("left (term ");
    for m in &w.miners {
        m.wait_stderr(&format!("does not lead: replica {to} does"));
        assert_eq!(m.count_stderr("server lost"), 0, "{}", m.stderr_text());
    }
    let (status, stdout) = w.client.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, w.vector.expected);
    let told = w.client.stderr_text();
    assert!(
        told.contains(&format!("does not lead: replica {to} does")),
        "{told}"
    );
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn three_replicas_survive_the_leaders_death_mid_request_and_it_catches_up_on_restart() {
    let (ports, list, dirs) = three_replicas("r");
    let mut replicas: Vec<Proc> = (0..3)
        .map(|i| {
            replica_with(
                ports[i],
                &dirs[i],
                Some((&list, i as u64 + 1)),
                &SNAPSHOT_EVERY,
            )
        })
        .collect();
    let UnderWay {
        leader,
        miners,
        client: mut c,
        vector: v,
    } = under_way(&replicas, &list);
    let jobs_before: usize = miners.iter().map(|m| m.count_stderr("job ")).sum();
    assert!(!c.has_exited(), "answered before the leader died");
    let killed = Instant::now();
    replicas[leader].kill();
    let others: Vec<&Proc> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| &replicas[i])
        .collect();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = survivors[first_to_log(&others, ": leader")];
    let elected = killed.elapsed();
    // Miners find the new leader and work again.
    let start = Instant::now();
    while miners.iter().map(|m| m.count_stderr("job ")).sum::<usize>() <= jobs_before + 2 {
        assert!(start.elapsed() < PATIENCE, "miners never worked again");
        std::thread::sleep(Duration::from_millis(20));
    }
    let working = killed.elapsed();
    eprintln!("failover: new leader after {elected:?}, miners working again after {working:?}");
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    // The killed leader returns from its data dir and is caught up by a snapshot (its log
    // lacks entries the new leader has compacted away; see SNAPSHOT_EVERY).
    replicas[leader] = replica_with(
        ports[leader],
        &dirs[leader],
        Some((&list, leader as u64 + 1)),
        &SNAPSHOT_EVERY,
    );
    replicas[leader].wait_stderr("installed a snapshot from the leader");
    // The other survivor dies: the new leader can commit only with the restarted replica,
    // and a new request (a new "Id") is answered rightly.
    let other = survivors
        .into_iter()
        .find(|&i| i != new_leader)
        .expect("two survivors");
    replicas[other].kill();
    let w = min_hash_vectors()
        .into_iter()
        .find(|w| w.msg != v.msg && w.upper - w.lower >= 100_000)
        .expect("a second vector");
    let mut second = client(&list, &w.msg, w.lower, w.upper);
    let (status, stdout) = second.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, w.expected);
    replicas.clear();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn without_a_majority_nothing_is_answered_and_a_returning_replica_restores_progress() {
    let (ports, list, dirs) = three_replicas("q");
    let mut replicas: Vec<Proc> = (0..3)
        .map(|i| replica(ports[i], &dirs[i], Some((&list, i as u64 + 1))))
        .collect();
    let UnderWay {
        leader,
        miners: _miners,
        client: mut c,
        vector: v,
    } = under_way(&replicas, &list);
    assert!(!c.has_exited(), "answered before the followers died");
    // Both followers die: the leader loses its quorum and steps down.
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &followers {
        replicas[i].kill();
    }
    replicas[leader].wait_stderr(": follower");
    assert!(!c.has_exited(), "answered without a majority");
    // One returns from its disk: a majority again, and the request is answered rightly.
    let back = followers[0];
    replicas[back] = replica(ports[back], &dirs[back], Some((&list, back as u64 + 1)));
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    replicas.clear();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `GET /status?fresh` of the server at `http`, as JSON, once `ready` holds of it.
fn status_when(http: SocketAddr, ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (code, _, body) = get_fresh(http, "/status");
        let status: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if code == 200 && ready(&status) {
            return status;
        }
        assert!(start.elapsed() < PATIENCE, "never ready: {code} {body}");
    }
}

#[test]
fn every_replica_tells_its_role_term_and_leader_over_http_and_in_its_events() {
    let (ports, list, dirs) = three_replicas("o");
    let extra = ["--http", "127.0.0.1:0", "--events", "-"];
    let replicas: Vec<Proc> = (0..3)
        .map(|i| replica_with(ports[i], &dirs[i], Some((&list, i as u64 + 1)), &extra))
        .collect();
    let https: Vec<SocketAddr> = replicas.iter().map(http_addr).collect();
    let leader = first_to_log(&replicas.iter().collect::<Vec<_>>(), ": leader");
    let id = leader as u64 + 1;
    let s = status_when(https[leader], |s| {
        s["replication"]["role"] == "leader" && s["replication"]["raft_received"].as_u64() > Some(0)
    });
    let r = &s["replication"];
    assert_eq!(
        (r["id"].as_u64(), r["replicas"].as_u64()),
        (Some(id), Some(3))
    );
    assert!(r["raft_sent"].as_u64() > Some(0), "{r}");
    let term = r["term"].as_u64().expect("a term");
    for f in (0..3).filter(|&i| i != leader) {
        // A follower answers too: no pool, its role, the leader's id and term.
        let s = status_when(https[f], |s| {
            s["replication"]["leader"].as_u64() == Some(id)
        });
        let r = &s["replication"];
        assert_eq!(r["role"], "follower", "{r}");
        assert_eq!(r["term"].as_u64(), Some(term));
        assert_eq!(s["requests"].as_array().map(Vec::len), Some(0));
        let (code, _, text) = get_fresh(https[f], "/metrics");
        assert_eq!(code, 200);
        assert!(
            text.lines()
                .any(|l| l == "miner_replica_role{role=\"follower\"} 1"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l == format!("miner_replica_leader {id}")),
            "{text}"
        );
        // Its event log says so.
        let line = replicas[f].wait_stderr("\"role\":\"follower\"");
        let event: Value = serde_json::from_str(line.trim()).expect("a JSON line");
        assert_eq!(event["event"], "replica_role");
        let told = format!("\"leader\":{id}");
        replicas[f].wait_stderr(&told);
        // A reference client (no Id) sent to it is closed, and counted.
        let _plain = client(&format!("127.0.0.1:{}", ports[f]), "x", 0, 10);
        status_when(https[f], |s| {
            s["replication"]["not_leader"].as_u64() >= Some(1)
        });
    }
    // A client given the list asks for Progress and is shown it; the leader's event log
    // has the request answered.
    let _miner = miner(&list, &["--threads", "1", "--max-rate", "300000"]);
    let v = million_nonce_vector();
    let mut c = progress_client(&list, &v, &[]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    progress_shares(&c);
    replicas[leader].wait_stderr("\"request_answered\"");
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
