//! Target mode with the real `server`, `miner` and `client`: the answer against an
//! independent scan (sha256 and sha256d computed here with the plain `sha2` digest),
//! `NotFound`, cancellation on a client's loss, and a reference-style miner (no `Caps`) that
//! never receives a target job or a Cancel.

mod support;

use std::sync::{Arc, Mutex};
use std::thread;

use bitcoin_core::message::Message;
use sha2::{Digest, Sha256};
use support::*;

/// The 64-bit hash of `msg nonce` under one SHA-256 (`double = false`) or two: the first
/// 8 bytes of the digest, big-endian. Independent of the kernel and of `bitcoin_core::hash`.
fn hash(msg: &str, nonce: u64, double: bool) -> u64 {
    let once = Sha256::digest(format!("{msg} {nonce}"));
    let digest = if double { Sha256::digest(once) } else { once };
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The client's expected stdout: the smallest nonce of `lower ..= upper` whose hash has
/// `zeros` leading zero bits, by a plain scan.
fn expected(msg: &str, upper: u64, zeros: u32, double: bool) -> String {
    (0..=upper)
        .map(|n| (hash(msg, n, double), n))
        .find(|(h, _)| h.leading_zeros() >= zeros)
        .map_or("NotFound".into(), |(h, n)| format!("Result {h} {n}"))
}

/// A target-mode client of `addr`.
fn target_client(addr: &str, msg: &str, upper: u64, zeros: u32, algo: &str) -> Proc {
    let (upper, zeros) = (upper.to_string(), zeros.to_string());
    let mut args = vec![addr, msg, &upper, "--zeros", &zeros, "--algo", algo, "-v"];
    args.extend_from_slice(&FAST);
    Proc::spawn(env!("CARGO_BIN_EXE_client"), &args)
}

#[test]
fn target_mode_answers_the_smallest_qualifying_nonce_of_an_independent_scan() {
    let (server, addr) = server(&["--events", "-"]);
    let _a = miner(&addr, &["--threads", "1"]);
    let _b = miner(&addr, &["--threads", "1"]);
    server.wait_stderr_count("miner joined", 2);
    let cases = [
        ("sha256d vector", 3_000_000, 17, "sha256d"),
        ("sha256 vector", 3_000_000, 16, "sha256"),
        ("nothing here", 200_000, 40, "sha256d"),
    ];
    for (i, (msg, upper, zeros, algo)) in cases.into_iter().enumerate() {
        let want = expected(msg, upper, zeros, algo == "sha256d");
        let (status, stdout) = target_client(&addr, msg, upper, zeros, algo).wait_exit();
        assert!(status.success(), "{msg}: {status:?}");
        assert_eq!(
            stdout, want,
            "{msg} over 0..={upper}, {zeros} zeros, {algo}"
        );
        // The -v line says what the client was told, and the mode.
        let told = format!("{upper} target z={zeros} {algo} answered: {want} in ");
        server.wait_stderr(&told);
        // The event log too: `found`, and the hash and nonce only if found.
        let line = server.wait_stderr_count(r#""event":"request_answered""#, i + 1);
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            (&event["data"], &event["zeros"], &event["algo"]),
            (&msg.into(), &zeros.into(), &algo.into()),
            "{event}"
        );
        let searched = event["nonces"].as_u64().expect("nonces");
        match want
            .strip_prefix("Result ")
            .map(|r| r.split(' ').collect::<Vec<_>>())
        {
            Some(hit) => {
                assert_eq!(event["found"], true, "{event}");
                assert_eq!(event["hash"].to_string(), hit[0], "{event}");
                assert_eq!(event["nonce"].to_string(), hit[1], "{event}");
                // Every nonce up to the hit was searched; at most the range.
                let nonce: u64 = hit[1].parse().expect("nonce");
                assert!(searched > nonce && searched <= upper + 1, "{event}");
            }
            None => {
                assert_eq!(event["found"], false, "{event}");
                assert!(
                    event.get("hash").is_none() && event.get("nonce").is_none(),
                    "{event}"
                );
                assert_eq!(searched, upper + 1, "{event}");
            }
        }
    }
    assert_eq!(expected("nothing here", 200_000, 40, true), "NotFound");
}

/// What a reference-style test miner received.
#[derive(Default)]
struct Received {
    payloads: Vec<String>,
}

/// A miner speaking the reference's protocol: a plain Join (no `Caps`), every Request
/// answered with its true minimum, every payload recorded. Runs until the server is lost.
fn reference_miner(addr: &str) -> Arc<Mutex<Received>> {
    reference_miner_silent_for(addr, None)
}

/// [`reference_miner`], that never answers the Requests whose `Data` is `silent` (it holds
/// those jobs).
fn reference_miner_silent_for(addr: &str, silent: Option<&'static str>) -> Arc<Mutex<Received>> {
    let received = Arc::new(Mutex::new(Received::default()));
    let params = lsp_core::Params {
        epoch_millis: 100,
        epoch_limit: 10,
        ..lsp_core::Params::default()
    };
    let conn = lsp_mio::Client::connect(addr.parse().expect("an address"), 0, params)
        .expect("the test miner connects");
    conn.write(Message::Join.encode()).expect("Join written");
    let log = Arc::clone(&received);
    thread::spawn(move || {
        while let Ok(payload) = conn.read() {
            log.lock()
                .expect("not poisoned")
                .payloads
                .push(String::from_utf8_lossy(&payload).into_owned());
            if let Ok(Message::Request { data, lower, upper }) = Message::decode(&payload) {
                if Some(data.as_str()) == silent {
                    continue;
                }
                let (hash, nonce) = (lower..=upper)
                    .map(|n| (hash(&data, n, false), n))
                    .min()
                    .expect("a non-empty job");
                if conn
                    .write(Message::Result { hash, nonce }.encode())
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    received
}

#[test]
fn a_reference_style_miner_never_receives_a_target_job() {
    let (server, addr) = server(&[]);
    // The reference-style miner joins first, so it is the first free miner for everything.
    let received = reference_miner(&addr);
    server.wait_stderr("miner joined");
    let v = million_nonce_vector();
    let (status, stdout) = client(&addr, &v.msg, v.lower, v.upper).wait_exit();
    assert!(status.success());
    assert_eq!(stdout, v.expected);
    let plain_jobs = received.lock().expect("not poisoned").payloads.len();
    assert!(plain_jobs > 0, "the test miner works on minimum requests");
    // A target request waits for a capable miner, then is served by it alone.
    let mut c = target_client(&addr, "only for the capable", 400_000, 15, "sha256d");
    server.wait_stderr("request \"only for the capable\"");
    let _capable = miner(&addr, &["--threads", "1"]);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, expected("only for the capable", 400_000, 15, true));
    let payloads = received.lock().expect("not poisoned").payloads.clone();
    assert_eq!(payloads.len(), plain_jobs, "{payloads:#?}");
    assert!(payloads
        .iter()
        .all(|p| !p.contains("Zeros") && p.starts_with(r#"{"Type":1,"#)));
}

#[test]
fn a_reference_style_miner_holding_a_lost_client_s_jobs_never_receives_a_cancel() {
    let (server, addr) = server(&[]);
    let received = reference_miner_silent_for(&addr, Some("doomed"));
    server.wait_stderr("miner joined");
    // The reference-style miner is the only miner: it holds the doomed client's jobs.
    let mut doomed = client(&addr, "doomed", 0, 1_000_000_000);
    server.wait_stderr(r#"sent {"Type":1,"Data":"doomed""#);
    doomed.kill();
    server.wait_stderr("client lost");
    // A capable miner (it would be sent Cancels) and a later request, served to its end:
    // any Cancel the loss caused was written before this request was even read.
    let _capable = miner(&addr, &["--threads", "1"]);
    let (status, stdout) = client(&addr, "after", 0, 999).wait_exit();
    assert!(status.success());
    assert!(stdout.starts_with("Result "), "{stdout}");
    let log = server.stderr_text();
    assert!(!log.contains(r#"sent {"Type":3,"#), "{log}");
    let payloads = received.lock().expect("not poisoned").payloads.clone();
    assert!(
        payloads.iter().any(|p| p.contains(r#""Data":"doomed""#)),
        "it held the lost client's jobs: {payloads:#?}"
    );
    assert!(
        payloads
            .iter()
            .all(|p| p.starts_with(r#"{"Type":1,"#) && !p.contains("Job")),
        "only the reference's Requests: {payloads:#?}"
    );
}

/// The `L..=U` ranges of a miner's `-vv` lines that start with `what` (`job`, `answer`,
/// `cancelled`).
fn ranges(miner: &Proc, what: &str) -> Vec<String> {
    // `miner <seconds>s <what> L..=U ...`
    miner
        .stderr_text()
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words[..] {
                ["miner", _, w, range, ..] if w == what => {
                    Some(range.trim_end_matches(':').to_string())
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn a_lost_client_s_jobs_are_cancelled_and_its_miner_goes_straight_to_the_next_request() {
    // Both modes: a minimum request and a target request without any hit run until their
    // client is killed.
    for target in [false, true] {
        let (server, addr) = server(&[]);
        // 50 000 nonces/s: each 10 000-nonce job takes 0.2 s.
        let m = miner(&addr, &["--threads", "1", "--max-rate", "50000"]);
        server.wait_stderr("miner joined");
        let doomed = if target {
            // No hash has 60 leading zero bits in this range.
            target_client(&addr, "doomed", 1_000_000_000, 60, "sha256d")
        } else {
            client(&addr, "doomed", 0, 1_000_000_000)
        };
        let mut doomed = doomed;
        m.wait_stderr_count("job ", 2);
        doomed.kill();
        server.wait_stderr("client lost");
        m.wait_stderr("cancelled ");
        // The next request goes to the miner at once: nothing of the doomed one runs
        // ahead of it, and what was cancelled is never finished.
        let (status, stdout) = if target {
            target_client(&addr, "after", 999, 60, "sha256d").wait_exit()
        } else {
            client(&addr, "after", 0, 999).wait_exit()
        };
        assert!(status.success());
        assert!(
            stdout == "NotFound" || stdout.starts_with("Result "),
            "{stdout}"
        );
        let cancelled = ranges(&m, "cancelled");
        let finished = ranges(&m, "finished");
        assert!(!cancelled.is_empty());
        assert!(
            cancelled.iter().all(|r| !finished.contains(r)),
            "target {target}: cancelled {cancelled:?}, finished {finished:?}\n{}",
            m.stderr_text()
        );
        assert!(finished.contains(&"0..=999".to_string()), "{finished:?}");
        assert!(server
            .stderr_text()
            .contains(r#"sent {"Type":3,"Data":"doomed""#));
    }
}
