//! Running the real binaries: a child-process guard that collects output and kills on drop.

#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Generous bound on anything waited for: the test machine is small and shared.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// LSP flags for fast loss detection (100 ms epochs, lost after 1 s of silence).
pub const FAST: [&str; 4] = ["--epoch-millis", "100", "--epoch-limit", "10"];

/// Lines a child wrote to one stream, and a way to wait for more or for its end.
#[derive(Default)]
struct Lines {
    lines: Mutex<Stream>,
    grew: Condvar,
}

/// What the reader thread has taken from one stream so far.
#[derive(Default)]
struct Stream {
    lines: Vec<String>,
    /// The stream reached its end (or failed): no more lines will come.
    ended: bool,
}

impl Lines {
    /// Everything read so far, one line each.
    fn text(&self) -> String {
        self.lines.lock().unwrap().lines.join("\n")
    }

    /// Waits until the stream has ended; false if it has not by `deadline`.
    fn wait_end(&self, deadline: Instant) -> bool {
        let mut locked = self.lines.lock().unwrap();
        while !locked.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            locked = self.grew.wait_timeout(locked, left).unwrap().0;
        }
        true
    }
}

/// A running binary; killed (SIGKILL) and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Lines> {
    let lines = Arc::new(Lines::default());
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut locked = sink.lines.lock().unwrap();
            locked.lines.push(line);
            sink.grew.notify_all();
        }
        sink.lines.lock().unwrap().ended = true;
        sink.grew.notify_all();
    });
    lines
}

impl Proc {
    /// Starts `bin` (a path from `env!("CARGO_BIN_EXE_…")`) with `args`.
    pub fn spawn(bin: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        let name = std::path::Path::new(bin)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Proc {
            name,
            child,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stderr line contains `pattern` (the first such line).
    pub fn wait_stderr(&self, pattern: &str) -> String {
        self.wait_lines(&self.stderr, pattern, 1)
    }

    /// Waits until `count` stderr lines contain `pattern`; returns the last of them.
    pub fn wait_stderr_count(&self, pattern: &str, count: usize) -> String {
        self.wait_lines(&self.stderr, pattern, count)
    }

    fn wait_lines(&self, lines: &Lines, pattern: &str, count: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut locked = lines.lines.lock().unwrap();
        loop {
            let found: Vec<&String> = locked
                .lines
                .iter()
                .filter(|l| l.contains(pattern))
                .collect();
            if found.len() >= count {
                return found[count - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no {count} stderr lines with {pattern:?} within {PATIENCE:?}; stderr:\n{}",
                self.name,
                self.stderr_text()
            );
            locked = lines.grew.wait_timeout(locked, left).unwrap().0;
        }
    }

    /// How many stderr lines so far contain `pattern`.
    pub fn count_stderr(&self, pattern: &str) -> usize {
        let locked = self.stderr.lines.lock().unwrap();
        locked.lines.iter().filter(|l| l.contains(pattern)).count()
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Waits for the process to exit, then for all of its output (stdout and stderr) to be
    /// read, so that [`stderr_text`](Self::stderr_text) is complete too; returns the status
    /// and stdout. Panics after [`PATIENCE`].
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {PATIENCE:?}; stderr:\n{}",
                self.name,
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(20));
        };
        // The pipes close at exit, but the reader threads may not have taken the last lines
        // yet (on a loaded machine, often not): wait until both have seen the end.
        let deadline = Instant::now() + PATIENCE;
        for (stream, lines) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(
                lines.wait_end(deadline),
                "{}: exited, but its {stream} did not end within {PATIENCE:?}",
                self.name
            );
        }
        (status, self.stdout.text())
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many of its last stderr lines a process shows when a test fails.
const SHOWN_ON_FAILURE: usize = 150;

impl Drop for Proc {
    /// Kills the process; if the test is failing, first shows whether it was still running
    /// and the end of its stderr, so that a failure on a machine nobody can log in to (CI)
    /// says what every process of the scene was doing, not only the one waited for.
    fn drop(&mut self) {
        if thread::panicking() {
            let state = match self.child.try_wait() {
                Ok(Some(status)) => format!("exited: {status}"),
                Ok(None) => "still running".to_string(),
                Err(e) => format!("unknown: {e}"),
            };
            let text = self.stderr_text();
            let lines: Vec<&str> = text.lines().collect();
            let skipped = lines.len().saturating_sub(SHOWN_ON_FAILURE);
            eprintln!(
                "--- {} (pid {}, {state}); stderr{}:\n{}",
                self.name,
                self.pid(),
                if skipped > 0 {
                    format!(" without its first {skipped} lines")
                } else {
                    String::new()
                },
                lines[skipped..].join("\n")
            );
        }
        self.kill();
    }
}

/// A server on a free port with fast loss detection and the given extra flags; returns it
/// and the `127.0.0.1:PORT` address to reach it.
pub fn server(extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["0", "-vv"];
    args.extend_from_slice(&FAST);
    args.extend_from_slice(extra);
    let proc = Proc::spawn(env!("CARGO_BIN_EXE_server"), &args);
    let line = proc.wait_stderr("listening on");
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (proc, format!("127.0.0.1:{port}"))
}

/// A miner of `addr` with fast loss detection and the given extra flags.
pub fn miner(addr: &str, extra: &[&str]) -> Proc {
    let mut args = vec![addr, "-vv"];
    args.extend_from_slice(&FAST);
    args.extend_from_slice(extra);
    Proc::spawn(env!("CARGO_BIN_EXE_miner"), &args)
}

/// A client of `addr` asking for `msg` over `lower ..= upper`, with fast loss detection.
pub fn client(addr: &str, msg: &str, lower: u64, upper: u64) -> Proc {
    let (lower, upper) = (lower.to_string(), upper.to_string());
    let mut args = vec![addr, msg, &upper, "--lower", &lower, "-v"];
    args.extend_from_slice(&FAST);
    Proc::spawn(env!("CARGO_BIN_EXE_client"), &args)
}

/// A client of `addr` asking for `v` with `--progress` (and `extra` flags), with fast loss
/// detection.
pub fn progress_client(addr: &str, v: &Vector, extra: &[&str]) -> Proc {
    let (lower, upper) = (v.lower.to_string(), v.upper.to_string());
    let mut args = vec![addr, &v.msg, &upper, "--lower", &lower, "--progress"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&FAST);
    Proc::spawn(env!("CARGO_BIN_EXE_client"), &args)
}

/// The shares (percent) of the `progress …` lines `client --progress` wrote to its stderr
/// (not a terminal), checking each line's form; panics if there are none, or if they
/// decrease or exceed 100.
pub fn progress_shares(client: &Proc) -> Vec<f64> {
    let stderr = client.stderr_text();
    let shares: Vec<f64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("progress "))
        .map(|l| {
            assert!(l.contains(" nonces, ") && l.contains("H/s, ETA "), "{l}");
            l.split('%')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no share in {l:?}"))
        })
        .collect();
    assert!(!shares.is_empty(), "no progress line on stderr:\n{stderr}");
    assert!(
        shares.windows(2).all(|w| w[0] <= w[1]) && shares.iter().all(|&s| s <= 100.0),
        "{shares:?}"
    );
    shares
}

/// One answer of the reference vectors.
pub struct Vector {
    /// The message.
    pub msg: String,
    /// First nonce.
    pub lower: u64,
    /// Last nonce.
    pub upper: u64,
    /// The client's expected stdout.
    pub expected: String,
}

/// The first reference vector of at least a million nonces: long enough that a slow miner
/// still holds its jobs when a test kills it.
pub fn million_nonce_vector() -> Vector {
    min_hash_vectors()
        .into_iter()
        .find(|v| v.upper - v.lower >= 1_000_000)
        .expect("a vector of a million nonces")
}

/// The connection id a client logs (`connected to … as conn N`), once it has.
pub fn conn_of(client: &Proc) -> String {
    let line = client.wait_stderr("as conn ");
    line.rsplit("as conn ")
        .next()
        .map(|id| id.trim().to_string())
        .unwrap_or_else(|| panic!("no conn id in {line:?}"))
}

/// The vectors of `testdata/bitcoin-min-hash.json` (embedded at compile time).
pub fn min_hash_vectors() -> Vec<Vector> {
    let text = include_str!("../../../testdata/bitcoin-min-hash.json");
    let doc: serde_json::Value = serde_json::from_str(text).expect("vectors parse");
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| Vector {
            msg: v["msg"].as_str().expect("msg").to_string(),
            lower: v["lower"].as_u64().expect("lower"),
            upper: v["upper"].as_u64().expect("upper"),
            expected: format!(
                "Result {} {}",
                v["min_hash"].as_u64().expect("min_hash"),
                v["nonce"].as_u64().expect("nonce")
            ),
        })
        .collect()
}
