//! The real `lsp-echo` binary over loopback: servers and clients on both runtimes, mixed,
//! several clients at once, a client with no server, and bad command lines.
//!
//! Every wait is bounded by [`PATIENCE`] (the machine is small and shared); the only time
//! asserted is an upper bound many times the expected one.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::{Proc, PATIENCE};

const BIN: &str = env!("CARGO_BIN_EXE_lsp-echo");

/// 100 ms epochs (quick retransmission), but 5 s of silence before a loss, so a stalled
/// machine does not break a connection.
const PARAMS: [&str; 4] = ["--epoch-millis", "100", "--epoch-limit", "50"];

/// An echo server on `runtime` on a free port, and the `127.0.0.1:PORT` address to reach it.
fn server(runtime: &str) -> (Proc, String) {
    let mut args = vec!["server", "--port", "0", "-v", "--runtime", runtime];
    args.extend_from_slice(&PARAMS);
    let proc = Proc::spawn(BIN, &args);
    let line = proc.wait_stderr("listening on ");
    assert!(line.ends_with(&format!("({runtime})")), "{line:?}");
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (proc, format!("127.0.0.1:{}", addr.port()))
}

/// A running client process with its stdin already written and closed.
struct Run {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

/// How a client process ended.
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn read_all(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
}

/// Starts `lsp-echo` with `args`; returns it and its stdin, still open.
fn spawn(args: &[&str]) -> (Run, ChildStdin) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let run = Run {
        child,
        stdout,
        stderr,
    };
    (run, stdin)
}

/// Starts `lsp-echo` with `args` and `input` as its whole stdin.
fn start(args: &[&str], input: &str) -> Run {
    let (run, mut stdin) = spawn(args);
    // A process that already failed has closed its stdin: not this helper's concern.
    let _ = stdin.write_all(input.as_bytes());
    run
}

/// Starts a client of `addr` on `runtime` with `input` as its stdin and `extra` flags,
/// logging (`-v`).
fn client(addr: &str, runtime: &str, input: &str, extra: &[&str]) -> Run {
    let mut args = vec!["client", "--addr", addr, "--runtime", runtime, "-v"];
    args.extend_from_slice(&PARAMS);
    args.extend_from_slice(extra);
    start(&args, input)
}

impl Run {
    /// Waits (at most [`PATIENCE`]) for the process to exit and its output to end.
    fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.join().unwrap_or_default();
                panic!("lsp-echo did not exit within {PATIENCE:?}; stderr:\n{stderr}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        Outcome {
            status,
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr.join().expect("stderr reader"),
        }
    }
}

/// What the client must print for `tokens`: each on its own line, in order.
fn lines(tokens: &[String]) -> String {
    tokens.iter().map(|t| format!("{t}\n")).collect()
}

/// `count` distinct tokens of varying length, each starting with `tag`.
fn tokens(tag: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{tag}{i}{}", "x".repeat(i % 7)))
        .collect()
}

/// Stdin for `tokens`, spread over lines with varied whitespace (spaces, tabs, blank lines).
fn stdin_for(tokens: &[String]) -> String {
    let mut text = String::new();
    for (i, token) in tokens.iter().enumerate() {
        text.push_str(token);
        text.push_str(match i % 4 {
            0 => " ",
            1 => "\t  ",
            2 => "\n",
            _ => "\n\n ",
        });
    }
    text
}

/// Asserts that `outcome` is a success of a client on `runtime` that printed exactly
/// `tokens`.
fn assert_echoed(outcome: &Outcome, runtime: &str, tokens: &[String]) {
    assert!(
        outcome.status.success(),
        "client failed: {}; stderr:\n{}",
        outcome.status,
        outcome.stderr
    );
    assert_eq!(outcome.stdout, lines(tokens), "stderr:\n{}", outcome.stderr);
    let on_runtime = format!("({runtime})");
    assert!(
        outcome
            .stderr
            .lines()
            .any(|l| l.contains(" as conn ") && l.ends_with(&on_runtime)),
        "not connected on {runtime}; stderr:\n{}",
        outcome.stderr
    );
}

/// A server on `server_rt` echoes a client on `client_rt`, one message at a time and then
/// with a window of 8.
fn round_trip(server_rt: &str, client_rt: &str) {
    let (_server, addr) = server(server_rt);
    let sent = tokens("t", 25);
    let one_by_one = client(&addr, client_rt, &stdin_for(&sent), &[]).finish();
    assert_echoed(&one_by_one, client_rt, &sent);
    let window = ["--window", "8", "--max-unacked", "8", "--isn", "1000"];
    let pipelined = client(&addr, client_rt, &stdin_for(&sent), &window).finish();
    assert_echoed(&pipelined, client_rt, &sent);
}

#[test]
fn mio_server_echoes_mio_client() {
    round_trip("mio", "mio");
}

#[test]
fn smol_server_echoes_smol_client() {
    round_trip("smol", "smol");
}

#[test]
fn mio_server_echoes_smol_client() {
    round_trip("mio", "smol");
}

#[test]
fn smol_server_echoes_mio_client() {
    round_trip("smol", "mio");
}

#[test]
fn the_runtime_defaults_to_mio() {
    let (_server, addr) = server("smol");
    let sent = tokens("d", 3);
    let mut args = vec!["client", "--addr", &addr, "-v"];
    args.extend_from_slice(&PARAMS);
    let outcome = start(&args, &stdin_for(&sent)).finish();
    assert_echoed(&outcome, "mio", &sent);
}

#[test]
fn a_client_with_empty_stdin_exits_at_once_without_output() {
    for runtime in ["mio", "smol"] {
        let (_server, addr) = server(runtime);
        for input in ["", " \n\t\n"] {
            let outcome = client(&addr, runtime, input, &[]).finish();
            assert_echoed(&outcome, runtime, &[]);
        }
    }
}

#[test]
fn concurrent_clients_each_get_their_own_tokens() {
    for server_rt in ["mio", "smol"] {
        let (_server, addr) = server(server_rt);
        let window = ["--window", "4", "--max-unacked", "4"];
        // Six clients at once, alternating runtimes, each with tokens of its own.
        let plan: Vec<(&str, Vec<String>)> = (0..6)
            .map(|c| (["mio", "smol"][c % 2], tokens(&format!("c{c}-"), 40)))
            .collect();
        let runs: Vec<Run> = plan
            .iter()
            .map(|(runtime, sent)| client(&addr, runtime, &stdin_for(sent), &window))
            .collect();
        for (run, (runtime, sent)) in runs.into_iter().zip(&plan) {
            assert_echoed(&run.finish(), runtime, sent);
        }
        // The server goes on serving after its clients left.
        let after = tokens("after", 3);
        let outcome = client(&addr, "mio", &stdin_for(&after), &[]).finish();
        assert_echoed(&outcome, "mio", &after);
    }
}

#[test]
fn a_client_whose_server_dies_fails_even_while_stdin_is_open() {
    for runtime in ["mio", "smol"] {
        let (mut server, addr) = server(runtime);
        let args = [
            "client",
            "--addr",
            &addr,
            "--runtime",
            runtime,
            "--epoch-millis",
            "100",
            "--epoch-limit",
            "10",
        ];
        let (run, mut stdin) = spawn(&args);
        stdin.write_all(b"a\n").expect("client stdin");
        server.wait_stderr("conn 1: first message");
        server.kill();
        let outcome = run.finish();
        drop(stdin);
        assert_eq!(outcome.status.code(), Some(1), "{runtime}");
        // The echo may or may not have made it before the kill.
        assert!("a\n".starts_with(&outcome.stdout), "{:?}", outcome.stdout);
        assert!(
            outcome.stderr.contains("reading echoes: connection lost"),
            "{runtime}: stderr:\n{}",
            outcome.stderr
        );
    }
}

#[test]
fn a_client_without_a_server_fails_within_epoch_limit_epochs() {
    // 5 epochs of 100 ms: the client gives up after about 0.5 s.
    let params = ["--epoch-millis", "100", "--epoch-limit", "5"];
    // A bound socket that never answers, and a closed port ("connection refused").
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let closed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let targets = [
        silent.local_addr().expect("addr").to_string(),
        closed.local_addr().expect("addr").to_string(),
    ];
    drop(closed);
    for addr in &targets {
        for runtime in ["mio", "smol"] {
            let started = Instant::now();
            let mut args = vec!["client", "--addr", addr, "--runtime", runtime];
            args.extend_from_slice(&params);
            let outcome = start(&args, "never sent\n").finish();
            let took = started.elapsed();
            assert_eq!(outcome.status.code(), Some(1), "{addr} {runtime}");
            assert_eq!(outcome.stdout, "");
            assert!(
                outcome
                    .stderr
                    .contains(&format!("connecting to {addr}: could not connect")),
                "{addr} {runtime}: stderr:\n{}",
                outcome.stderr
            );
            // 10 times the limit: a client that ignored the parameters (defaults: 10 s)
            // or never gave up would fail this.
            assert!(took < Duration::from_secs(5), "{addr} {runtime}: {took:?}");
        }
    }
}

#[test]
fn invalid_parameters_are_refused_with_a_message() {
    let cases: [(&[&str], &str); 6] = [
        (&["--window", "0"], "window_size must be at least 1"),
        (
            &["--max-unacked", "0"],
            "max_unacked_messages must be at least 1",
        ),
        (&["--epoch-limit", "0"], "epoch_limit must be at least 1"),
        (&["--epoch-millis", "0"], "epoch_millis must be at least 1"),
        (
            &["--window", "x"],
            "invalid value 'x' for '--window <WINDOW>'",
        ),
        (
            &["--runtime", "tokio"],
            "invalid value 'tokio' for '--runtime <RUNTIME>'",
        ),
    ];
    let invocations = cases.iter().flat_map(|(flags, message)| {
        [["server", "--port=0"], ["client", "--addr=127.0.0.1:9"]].map(|command| {
            let args: Vec<&str> = command.iter().chain(flags.iter()).copied().collect();
            (args, *message)
        })
    });
    let more = [
        (
            vec!["server", "--port", "70000"],
            "invalid value '70000' for '--port <PORT>'",
        ),
        (
            vec!["client", "--addr=127.0.0.1:9", "--isn", "1.5"],
            "invalid value '1.5' for '--isn <ISN>'",
        ),
    ];
    for (args, message) in invocations.chain(more) {
        let outcome = start(&args, "").finish();
        assert!(!outcome.status.success(), "{args:?} succeeded");
        assert!(
            outcome.stderr.contains(message),
            "{args:?}: stderr lacks {message:?}:\n{}",
            outcome.stderr
        );
        assert_eq!(outcome.stdout, "", "{args:?}");
    }
}

#[test]
fn bad_command_lines_get_a_usage_message() {
    let cases: [&[&str]; 5] = [
        &[],
        &["client"],
        &["server"],
        &["client", "--addr", "127.0.0.1:9", "--bogus"],
        &["relay", "--port", "1"],
    ];
    for args in cases {
        let outcome = start(args, "").finish();
        assert_eq!(
            outcome.status.code(),
            Some(2),
            "{args:?}: {}",
            outcome.stderr
        );
        assert!(
            outcome.stderr.contains("Usage: lsp-echo"),
            "{args:?}: stderr:\n{}",
            outcome.stderr
        );
        assert_eq!(outcome.stdout, "", "{args:?}");
    }
}

#[test]
fn an_unresolvable_address_is_refused_with_a_message() {
    let outcome = start(&["client", "--addr", "no-port-here"], "a\n").finish();
    assert_eq!(outcome.status.code(), Some(1));
    assert!(
        outcome.stderr.contains("bad address `no-port-here`"),
        "stderr:\n{}",
        outcome.stderr
    );
}
