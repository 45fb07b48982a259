//! The real `server`, `miner` and `client` with hand-written test miners speaking LSP that
//! answer their jobs in reverse order, lie, or never answer: every client still gets the
//! true minimum, within bounded time.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bitcoin_core::hash::hash;
use bitcoin_core::message::Message;
use support::{client, miner, server};

/// How a test miner answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Truly, newest job first whenever it holds several.
    Reverse,
    /// With a hash one above the true minimum's.
    Liar,
    /// Never: it stays connected and reads its jobs.
    Silent,
}

/// What a test miner did.
#[derive(Default)]
struct Tally {
    answers: AtomicU64,
    /// Answers given while an older job was still unanswered.
    out_of_order: AtomicU64,
    /// Jobs received that it had received before (its answer was not taken).
    repeated: AtomicU64,
}

/// The true answer over `lower ..= upper`.
fn truth(msg: &str, lower: u64, upper: u64) -> (u64, u64) {
    (lower..=upper).map(|n| (hash(msg, n), n)).min().unwrap()
}

/// Starts a test miner of `addr` on its own threads; it joins at once and runs until its
/// connection ends.
fn test_miner(addr: &str, mode: Mode) -> Arc<Tally> {
    let params = lsp_core::Params {
        epoch_millis: 100,
        epoch_limit: 10,
        ..lsp_core::Params::default()
    };
    let conn = lsp_mio::Client::connect(addr.parse().unwrap(), 0, params).expect("connects");
    let conn = Arc::new(conn);
    conn.write(Message::Join.encode()).expect("Join written");
    let tally = Arc::new(Tally::default());
    let (jobs, inbox) = mpsc::channel();
    let reader = Arc::clone(&conn);
    let seen_by = Arc::clone(&tally);
    thread::spawn(move || {
        let mut seen = std::collections::BTreeSet::new();
        while let Ok(payload) = reader.read() {
            if let Ok(Message::Request { data, lower, upper }) = Message::decode(&payload) {
                if !seen.insert((data.clone(), lower, upper)) {
                    seen_by.repeated.fetch_add(1, Ordering::Relaxed);
                }
                if jobs.send((data, lower, upper)).is_err() {
                    return;
                }
            }
        }
    });
    let counts = Arc::clone(&tally);
    thread::spawn(move || {
        let mut held = Vec::new();
        loop {
            // Gather what has arrived: a job, then whatever follows it closely.
            let next = if held.is_empty() {
                inbox.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                inbox.recv_timeout(Duration::from_millis(20))
            };
            match next {
                Ok(job) => {
                    held.push(job);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if mode == Mode::Silent {
                continue;
            }
            // Newest first.
            while let Some((data, lower, upper)) = held.pop() {
                let (mut h, n) = truth(&data, lower, upper);
                if mode == Mode::Liar {
                    h = h.wrapping_add(1);
                }
                if !held.is_empty() {
                    counts.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
                if conn
                    .write(Message::Result { hash: h, nonce: n }.encode())
                    .is_err()
                {
                    return;
                }
                counts.answers.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tally
}

/// Runs one request of 300 001 nonces against a server with one real miner and one test
/// miner of `mode`; checks the answer and returns the server's log and the tally.
fn one_request(mode: Mode, msg: &str) -> (String, Arc<Tally>) {
    let (server, addr) = server(&[]);
    let tally = test_miner(&addr, mode);
    server.wait_stderr("miner joined");
    let _honest = miner(&addr, &["--threads", "1", "--max-rate", "3000000"]);
    server.wait_stderr_count("miner joined", 2);
    let (lower, upper) = (0, 300_000);
    let mut c = client(&addr, msg, lower, upper);
    let (status, stdout) = c.wait_exit();
    let (h, n) = truth(msg, lower, upper);
    assert!(status.success(), "{}", server.stderr_text());
    assert_eq!(
        stdout,
        format!("Result {h} {n}"),
        "{}",
        server.stderr_text()
    );
    (server.stderr_text(), tally)
}

#[test]
fn a_miner_answering_in_reverse_order_is_matched_by_content() {
    let (log, tally) = one_request(Mode::Reverse, "reverse");
    assert!(!log.contains("closing:"), "{log}");
    assert!(tally.answers.load(Ordering::Relaxed) > 0);
    assert!(
        tally.out_of_order.load(Ordering::Relaxed) > 0,
        "the test miner never answered out of order"
    );
    // Matched by order, an out-of-order answer would give its job back, to be sent again.
    assert_eq!(tally.repeated.load(Ordering::Relaxed), 0, "{log}");
}

#[test]
fn a_lying_miner_is_disconnected_and_its_work_redone() {
    let (log, tally) = one_request(Mode::Liar, "liar");
    assert!(tally.answers.load(Ordering::Relaxed) > 0);
    assert!(log.contains("closing: miner lied: hash"), "{log}");
}

#[test]
fn a_miner_that_never_answers_does_not_hold_the_request() {
    let (_, tally) = one_request(Mode::Silent, "silent");
    assert_eq!(tally.answers.load(Ordering::Relaxed), 0);
}
