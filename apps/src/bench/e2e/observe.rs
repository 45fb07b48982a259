//! `bench e2e --observe-rounds N`: what observing the pool costs. The same request runs on
//! a plain server and on one with `--http 127.0.0.1:0 --events FILE` and a scraper that
//! reads `/metrics` and `/status` every second (as Prometheus and an open dashboard
//! would), alternating A B B A … so that drift in the machine's load hits both alike.
//! Prints each run's wall time and server CPU time, then min and median of both modes and
//! the overhead of the medians.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Options, Proc};

/// One run's figures.
#[derive(Clone, Copy, Debug)]
struct Run {
    wall: f64,
    server_cpu: f64,
    /// HTTP answers the scraper got, and their bytes.
    scraped: (u64, u64),
}

/// The binaries.
pub(super) struct Bins<'a> {
    pub(super) server: &'a Path,
    pub(super) miner: &'a Path,
    pub(super) client: &'a Path,
}

/// Runs the comparison.
pub(super) fn compare(o: &Options, bins: &Bins<'_>, rounds: usize) -> Result<(), String> {
    println!(
        "observing: plain server against --http --events + a scraper (/metrics and /status \
         every second), {rounds} round(s) each, alternating"
    );
    let events = std::env::temp_dir().join(format!("bench-events-{}.jsonl", std::process::id()));
    let mut plain = Vec::new();
    let mut observed = Vec::new();
    for round in 0..rounds {
        // A B, then B A: each mode goes first half of the time.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for observe in order {
            let run = one(o, bins, observe.then_some(events.as_path()))?;
            let scraped = if observe {
                format!("   {} scrapes, {} bytes", run.scraped.0, run.scraped.1)
            } else {
                String::new()
            };
            println!(
                "  round {round} {:<8} wall {:.3} s   server CPU {:.4} s{scraped}",
                if observe { "observed" } else { "plain" },
                run.wall,
                run.server_cpu
            );
            if observe {
                observed.push(run);
            } else {
                plain.push(run);
            }
        }
    }
    let _ = std::fs::remove_file(&events);
    let stats = |runs: &[Run], f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2])
    };
    let (pmin, pmed) = stats(&plain, |r| r.server_cpu);
    let (omin, omed) = stats(&observed, |r| r.server_cpu);
    println!(
        "  server CPU added by observing: {:+.2} ms (medians), {:+.2} ms (mins) per run",
        (omed - pmed) * 1e3,
        (omin - pmin) * 1e3
    );
    for (name, f) in [
        ("wall", (|r: &Run| r.wall) as fn(&Run) -> f64),
        ("server CPU", |r: &Run| r.server_cpu),
    ] {
        let (pmin, pmed) = stats(&plain, f);
        let (omin, omed) = stats(&observed, f);
        println!(
            "  {name:<10}  plain min {pmin:.4} median {pmed:.4}   observed min {omin:.4} \
             median {omed:.4}   overhead (medians) {:+.1}%  (mins) {:+.1}%",
            (omed / pmed - 1.0) * 100.0,
            (omin / pmin - 1.0) * 100.0
        );
    }
    Ok(())
}

/// One request on a fresh server and miners; observed if `events` is given.
fn one(o: &Options, bins: &Bins<'_>, events: Option<&Path>) -> Result<Run, String> {
    let mut args = vec!["0".to_string()];
    if let Some(events) = events {
        let _ = std::fs::remove_file(events);
        args.extend(["--http".into(), "127.0.0.1:0".into(), "--events".into()]);
        args.push(events.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Proc::spawn(bins.server, &args)?;
    let listening = server.wait_line("listening on", Duration::from_secs(10))?;
    let port = listening.rsplit(':').next().map(str::trim).unwrap_or("");
    let addr = format!("127.0.0.1:{port}");
    let scraper = match events {
        Some(_) => {
            let line = server.wait_line("http on ", Duration::from_secs(10))?;
            let http: SocketAddr = line
                .rsplit("http on ")
                .next()
                .and_then(|a| a.trim().parse().ok())
                .ok_or_else(|| format!("no address in {line:?}"))?;
            Some(Scraper::start(http))
        }
        None => None,
    };
    let threads = o.threads.to_string();
    // -v: the join lines tell when every miner is in.
    let miners = (0..o.miners.get())
        .map(|_| Proc::spawn(bins.miner, &[&addr, "--threads", &threads, "-v"]))
        .collect::<Result<Vec<_>, _>>()?;
    for miner in &miners {
        miner.wait_line("joined", Duration::from_secs(10))?;
    }
    let cpu = cpu_seconds(&server)?;
    let started = Instant::now();
    let max_nonce = o.max_nonce.to_string();
    let client = Command::new(bins.client)
        .args([&addr, &o.msg, &max_nonce])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the client: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&server)? - cpu;
    let answer = String::from_utf8_lossy(&client.stdout);
    if !answer.starts_with("Result ") {
        return Err(format!("the client printed {answer:?} ({})", client.status));
    }
    let scraped = scraper.map_or((0, 0), Scraper::stop);
    if events.is_some() && scraped.0 == 0 {
        return Err("the scraper got no answer".into());
    }
    Ok(Run {
        wall,
        server_cpu,
        scraped,
    })
}

/// The CPU seconds `proc`'s live threads have used, to the nanosecond: the sum of the first
/// field of `/proc/<pid>/task/*/schedstat` (the `stat` ticks of 10 ms are too coarse for a
/// server that uses a few milliseconds per request).
fn cpu_seconds(proc: &Proc) -> Result<f64, String> {
    let dir = format!("/proc/{}/task", proc.child.id());
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut nanos = 0u64;
    for task in tasks.flatten() {
        let path = task.path().join("schedstat");
        // A thread that ended meanwhile has no file any more: it no longer counts.
        if let Ok(text) = std::fs::read_to_string(&path) {
            nanos += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(nanos as f64 / 1e9)
}

/// A thread reading `/metrics` and `/status` every second.
struct Scraper {
    stop: Arc<AtomicBool>,
    scrapes: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    thread: thread::JoinHandle<()>,
}

impl Scraper {
    fn start(http: SocketAddr) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (s, n, b) = (Arc::clone(&stop), Arc::clone(&scrapes), Arc::clone(&bytes));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for path in ["/metrics", "/status"] {
                    if let Ok(len) = get(http, path) {
                        n.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(len as u64, Ordering::Relaxed);
                    }
                }
                thread::sleep(Duration::from_secs(1));
            }
        });
        Scraper {
            stop,
            scrapes,
            bytes,
            thread,
        }
    }

    /// Stops it; returns the scrapes answered and their bytes.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        (
            self.scrapes.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// `GET path` on `http`; the answer's length in bytes.
pub(crate) fn get(http: SocketAddr, path: &str) -> std::io::Result<usize> {
    let mut stream = TcpStream::connect(http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not 200"));
    }
    Ok(answer.len())
}
