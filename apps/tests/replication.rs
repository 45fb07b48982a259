//! The replicated server as real processes (docs/replication.md): a durable server killed
//! and restarted mid-request, and a leader of three replicas killed mid-request; the
//! client, given every address, still prints the right Result.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::{million_nonce_vector, miner, Proc, FAST, PATIENCE};

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
    let port = port.to_string();
    let dir = dir.to_string_lossy().into_owned();
    let mut args = vec![port.as_str(), "-vv", "--data-dir", &dir];
    args.extend_from_slice(&FAST);
    let id;
    if let Some((list, n)) = cluster {
        id = n.to_string();
        args.extend_from_slice(&["--cluster", list, "--id", &id]);
    }
    Proc::spawn(env!("CARGO_BIN_EXE_server"), &args)
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
fn three_replicas_survive_the_leaders_death_mid_request() {
    let ports = [free_port(), free_port(), free_port()];
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let dirs: Vec<_> = (1..=3).map(|i| data_dir(&format!("r{i}"))).collect();
    let mut replicas: Vec<Proc> = (0..3)
        .map(|i| replica(ports[i], &dirs[i], Some((&list, i as u64 + 1))))
        .collect();
    let leader = first_to_log(&replicas.iter().collect::<Vec<_>>(), ": leader");
    let slow = ["--threads", "1", "--max-rate", "500000"];
    let miners = [miner(&list, &slow), miner(&list, &slow)];
    let v = million_nonce_vector();
    let mut c = client(&list, &v.msg, v.lower, v.upper);
    miners[0].wait_stderr_count("job ", 2);
    let jobs_before: usize = miners.iter().map(|m| m.count_stderr("job ")).sum();
    assert!(!c.has_exited(), "answered before the leader died");
    let killed = Instant::now();
    replicas[leader].kill();
    let others: Vec<&Proc> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| &replicas[i])
        .collect();
    first_to_log(&others, ": leader");
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
    replicas.clear();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn without_a_majority_nothing_is_answered_and_a_returning_replica_restores_progress() {
    let ports = [free_port(), free_port(), free_port()];
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let dirs: Vec<_> = (1..=3).map(|i| data_dir(&format!("q{i}"))).collect();
    let mut replicas: Vec<Proc> = (0..3)
        .map(|i| replica(ports[i], &dirs[i], Some((&list, i as u64 + 1))))
        .collect();
    let leader = first_to_log(&replicas.iter().collect::<Vec<_>>(), ": leader");
    let slow = ["--threads", "1", "--max-rate", "500000"];
    let miners = [miner(&list, &slow), miner(&list, &slow)];
    let v = million_nonce_vector();
    let mut c = client(&list, &v.msg, v.lower, v.upper);
    miners[0].wait_stderr_count("job ", 2);
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
