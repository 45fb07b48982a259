//! The real `server`, `miner`, `client` and `mine` binaries over loopback: the reference
//! answers, and every participant dying (docs/miner.md §3–4).

mod support;

use support::{client, conn_of, million_nonce_vector, min_hash_vectors, miner, server, Proc};

#[test]
fn clients_get_the_reference_answers_through_server_and_miners() {
    let (_server, addr) = server(&[]);
    let _miners = [
        miner(&addr, &["--threads", "1"]),
        miner(&addr, &["--threads", "1"]),
    ];
    let vectors = min_hash_vectors();
    assert!(vectors.len() >= 8);
    // All at once: the server must keep several requests apart.
    let mut clients: Vec<Proc> = vectors
        .iter()
        .map(|v| client(&addr, &v.msg, v.lower, v.upper))
        .collect();
    for (v, c) in vectors.iter().zip(&mut clients) {
        let (status, stdout) = c.wait_exit();
        assert!(
            status.success(),
            "{} {}..={}: {status}",
            v.msg,
            v.lower,
            v.upper
        );
        assert_eq!(stdout, v.expected, "{:?} {}..={}", v.msg, v.lower, v.upper);
    }
}

#[test]
fn a_killed_miners_job_is_redone_and_the_answer_is_right() {
    let (server, addr) = server(&[]);
    // A slow miner (0.5 M nonces/s) takes about 2 s for the whole request.
    let mut slow = miner(&addr, &["--threads", "1", "--max-rate", "500000"]);
    let joined = server.wait_stderr("miner joined");
    let conn = joined
        .split("conn ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap()
        .to_string();
    let v = million_nonce_vector();
    let mut c = client(&addr, &v.msg, v.lower, v.upper);
    slow.wait_stderr_count("job ", 2);
    slow.kill();
    // Only once the server has given up on it does a new miner come, so the answer
    // depends on the dead miner's jobs being handed out again.
    server.wait_stderr(&format!("conn {conn}: miner lost"));
    assert!(!c.has_exited(), "answered without the dead miner's jobs");
    let _fresh = miner(&addr, &["--threads", "1"]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
}

#[test]
fn a_dead_clients_work_stops() {
    let (server, addr) = server(&[]);
    // 1 M nonces/s: the request would take 100 s.
    let m = miner(&addr, &["--threads", "1", "--max-rate", "1000000"]);
    server.wait_stderr("miner joined");
    let mut c = client(&addr, "stop", 0, 100_000_000);
    let conn = conn_of(&c);
    m.wait_stderr_count("job ", 3);
    c.kill();
    let lost = format!("conn {conn}: client lost with 1 request(s) unanswered");
    server.wait_stderr(&lost);
    // Another request, answered: the server has gone round its loop since the loss, and
    // from the loss on it sent no job of the dropped request (jobs already sent may still
    // run on the miner; none is added).
    let mut next = client(&addr, "msg", 0, 2);
    let (status, stdout) = next.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, "Result 4754799531757243342 1");
    let log = server.stderr_text();
    let after_loss = &log[log.find(&lost).expect("the loss is logged")..];
    assert!(
        !after_loss.contains(r#"sent {"Type":1,"Data":"stop""#),
        "a job of the lost client's request was sent after its loss:\n{after_loss}"
    );
}

#[test]
fn a_dead_server_disconnects_the_client_and_ends_the_miners() {
    let (mut server, addr) = server(&[]);
    let mut miners = [
        miner(&addr, &["--threads", "1", "--max-rate", "1000000"]),
        miner(&addr, &["--threads", "1", "--max-rate", "1000000"]),
    ];
    server.wait_stderr_count("miner joined", 2);
    let mut c = client(&addr, "gone", 0, 100_000_000);
    miners[0].wait_stderr("job ");
    server.kill();
    let (status, stdout) = c.wait_exit();
    assert!(status.success(), "client: {status}");
    assert_eq!(stdout, "Disconnected");
    for m in &mut miners {
        let (status, stdout) = m.wait_exit();
        assert!(status.success(), "miner: {status}\n{}", m.stderr_text());
        assert_eq!(stdout, "");
    }
}

#[test]
fn a_client_that_cannot_connect_prints_disconnected_and_fails() {
    // A port nobody listens on: bound, then released.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![addr.as_str(), "msg", "10"];
    args.extend_from_slice(&["--epoch-millis", "50", "--epoch-limit", "4"]);
    let mut c = Proc::spawn(env!("CARGO_BIN_EXE_client"), &args);
    let (status, stdout) = c.wait_exit();
    assert_eq!(status.code(), Some(1));
    assert_eq!(stdout, "Disconnected");
}

#[test]
fn bad_command_lines_fail_with_a_usage_error_and_help_succeeds() {
    let bad: [(&str, &[&str]); 7] = [
        (env!("CARGO_BIN_EXE_server"), &[]),
        (env!("CARGO_BIN_EXE_server"), &["port"]),
        (env!("CARGO_BIN_EXE_miner"), &[]),
        (
            env!("CARGO_BIN_EXE_miner"),
            &["127.0.0.1:1", "--hashrate-every", "0"],
        ),
        (env!("CARGO_BIN_EXE_client"), &["127.0.0.1:1", "msg"]),
        (env!("CARGO_BIN_EXE_client"), &["127.0.0.1:1", "msg", "-3"]),
        (env!("CARGO_BIN_EXE_mine"), &["msg", "5", "--lower", "6"]),
    ];
    for (bin, args) in bad {
        let mut p = Proc::spawn(bin, args);
        let (status, stdout) = p.wait_exit();
        assert_eq!(status.code(), Some(2), "{bin} {args:?}");
        assert_eq!(stdout, "", "{bin} {args:?}");
        let stderr = p.stderr_text();
        assert!(
            stderr.starts_with("error:") && stderr.contains("--help"),
            "{bin} {args:?}: {stderr}"
        );
    }
    for bin in [
        env!("CARGO_BIN_EXE_server"),
        env!("CARGO_BIN_EXE_miner"),
        env!("CARGO_BIN_EXE_client"),
        env!("CARGO_BIN_EXE_mine"),
    ] {
        let mut p = Proc::spawn(bin, &["--help"]);
        let (status, stdout) = p.wait_exit();
        assert!(status.success(), "{bin} --help");
        assert!(stdout.contains("--epoch-millis"), "{bin} --help: {stdout}");
    }
}

#[test]
fn mine_answers_in_one_command() {
    for v in min_hash_vectors()
        .iter()
        .filter(|v| v.upper - v.lower <= 200_000)
    {
        let (lower, upper) = (v.lower.to_string(), v.upper.to_string());
        let mut p = Proc::spawn(
            env!("CARGO_BIN_EXE_mine"),
            &[&v.msg, &upper, "--lower", &lower, "--quiet"],
        );
        let (status, stdout) = p.wait_exit();
        assert!(status.success(), "{}", p.stderr_text());
        assert_eq!(stdout, v.expected);
    }
}

#[test]
fn malformed_and_misplaced_payloads_are_dropped_and_the_server_keeps_serving() {
    let (server, addr) = server(&[]);
    let _miner = miner(&addr, &["--threads", "1"]);
    server.wait_stderr("miner joined");
    let params = lsp_core::Params {
        epoch_millis: 100,
        epoch_limit: 10,
        ..lsp_core::Params::default()
    };
    let rogue = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    let junk: [&[u8]; 5] = [
        b"nope",
        br#"{"Type":9,"Data":"","Lower":0,"Upper":0,"Hash":0,"Nonce":0}"#,
        br#"{"Type":1,"Data":"x","Lower":"0","Upper":5,"Hash":0,"Nonce":0}"#,
        // A Result from a connection that holds no job, and an empty range.
        br#"{"Type":2,"Data":"","Lower":0,"Upper":0,"Hash":1,"Nonce":1}"#,
        br#"{"Type":1,"Data":"x","Lower":9,"Upper":3,"Hash":0,"Nonce":0}"#,
    ];
    for payload in junk {
        rogue.write(payload.to_vec()).expect("written");
    }
    server.wait_stderr_count("dropped payload", 3);
    server.wait_stderr("request refused");
    let mut c = client(&addr, "msg", 0, 2);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, "Result 4754799531757243342 1");
}

#[test]
fn refused_requests_close_the_client_so_it_learns() {
    let (server, addr) = server(&["--max-requests-per-client", "2"]);
    let params = lsp_core::Params {
        epoch_millis: 100,
        epoch_limit: 10,
        ..lsp_core::Params::default()
    };
    let request = |data: &str, upper: u64| {
        bitcoin_core::message::Message::Request {
            data: data.to_string(),
            lower: 0,
            upper,
        }
        .encode()
    };
    // No miner: requests stay unanswered, so the third one is over the limit.
    let greedy = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    for data in ["one", "two", "three"] {
        greedy.write(request(data, 1_000)).expect("written");
    }
    server.wait_stderr("request refused: the client already has 2 requests unanswered");
    assert!(
        greedy.read().is_err(),
        "the refused client's connection ends"
    );

    // A text whose jobs would not fit in one LSP message (our client refuses to send it;
    // another may not).
    let wordy = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    wordy
        .write(request(&"w".repeat(990), 1_000_000_000))
        .expect("fits the client's write");
    server.wait_stderr("request refused: the message is too long (990 bytes)");
    assert!(
        wordy.read().is_err(),
        "the refused client's connection ends"
    );

    // The server still serves.
    let _miner = miner(&addr, &["--threads", "1"]);
    let mut c = client(&addr, "msg", 0, 2);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, "Result 4754799531757243342 1");
}
