//! `bench -- echo`: LSP echo over loopback UDP on both runtimes, next to raw UDP measured in
//! the same run.
//!
//! 1. Baselines: raw UDP ping-pong (100 B, blocking sockets on two threads: round trips/s
//!    and p50/p99) and raw UDP streaming (1000 B, one sender, one receiver: datagrams/s).
//! 2. Echo throughput (messages echoed per second) for 100- and 1000-byte payloads at
//!    windows 1, 8 and 64 (`max_unacked = window`), one client and 8 clients, on mio and
//!    smol. Each client keeps `2 × window` messages outstanding.
//! 3. Round-trip latency p50/p99 of one message at window 1, per runtime.
//! 4. Scale: `--clients N` (default 1000) smol clients on one server running in a child
//!    process (mio and smol in turn), `epoch_millis` 2000: the server's resident memory per
//!    connection and its CPU use over idle heartbeat epochs.
//!
//! The flags are [`Options`] (`bench echo --help`). The hidden `--serve RUNTIME` runs the
//! scale server in the child.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::num::{NonZeroU64, NonZeroUsize};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use lsp_core::runtime::ServerReadError;
use lsp_core::Params;

use crate::echo::{Client, Runtime, Server};

/// Runs the `echo` benchmark.
pub fn run(opts: &Options) -> Result<(), String> {
    if let Some(runtime) = opts.serve {
        return serve_scale(runtime);
    }
    if opts.only == Some(Section::Scale) {
        return scale_section(opts);
    }
    println!("LSP echo over loopback UDP ({} ms per point)", opts.millis);
    println!();
    println!("baseline, raw UDP in the same run:");
    let (rtps, raw_p50, raw_p99) = raw_ping_pong(100, opts.duration());
    println!(
        "  ping-pong 100 B:   {rtps:>9.0} round trips/s   p50 {raw_p50:>6.1} µs  p99 {raw_p99:>6.1} µs"
    );
    let streamed = raw_stream(1000, opts.duration());
    println!("  streaming 1000 B:  {streamed:>9.0} datagrams/s");
    println!();
    if opts.runs(Section::Throughput) {
        throughput_section(opts)?;
    }
    if opts.runs(Section::Latency) {
        latency_section(opts, raw_p50, raw_p99)?;
    }
    if opts.runs(Section::Scale) {
        scale_section(opts)?;
    }
    Ok(())
}

/// Echo throughput for every payload, window and client count, per runtime.
fn throughput_section(opts: &Options) -> Result<(), String> {
    println!("echo throughput, messages/s (window = max_unacked):");
    println!(
        "  {:<6} {:>7} {:>7} {:>8} {:>12}",
        "rt", "payload", "window", "clients", "msgs/s"
    );
    let windows: &[u32] = if opts.quick { &[1, 64] } else { &[1, 8, 64] };
    let client_counts: &[usize] = if opts.quick { &[1] } else { &[1, 8] };
    for runtime in opts.runtimes() {
        for size in [100usize, 1000] {
            for &window in windows {
                for &clients in client_counts {
                    let rate = echo_throughput(runtime, size, window, clients, opts.duration())?;
                    println!(
                        "  {:<6} {size:>7} {window:>7} {clients:>8} {rate:>12.0}",
                        runtime.to_string()
                    );
                }
            }
        }
    }
    println!();
    Ok(())
}

/// Round-trip latency of one message at window 1, per runtime.
fn latency_section(opts: &Options, raw_p50: f64, raw_p99: f64) -> Result<(), String> {
    println!("round-trip latency, one message at window 1, 100 B (raw UDP above: p50 {raw_p50:.1} µs, p99 {raw_p99:.1} µs):");
    for runtime in opts.runtimes() {
        let (rate, p50, p99) = echo_latency(runtime, opts.duration())?;
        println!(
            "  {:<6} {rate:>9.0} round trips/s   p50 {p50:>6.1} µs  p99 {p99:>6.1} µs",
            runtime.to_string(),
        );
    }
    println!();
    Ok(())
}

/// Many idle clients on one server, per runtime.
fn scale_section(opts: &Options) -> Result<(), String> {
    println!(
        "scale: {} smol clients, one server in a child process, epoch 2000 ms, {} s idle:",
        opts.clients.get(),
        opts.idle_secs
    );
    for runtime in opts.runtimes() {
        scale(runtime, opts)?;
    }
    Ok(())
}

/// The options of `bench echo`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Milliseconds per throughput point.
    #[arg(long, default_value_t = NonZeroU64::new(1000).unwrap_or(NonZeroU64::MIN))]
    millis: NonZeroU64,
    /// Idle clients in the scale section.
    #[arg(long, default_value_t = NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN))]
    clients: NonZeroUsize,
    /// Seconds of idle heartbeats measured in the scale section.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Fewer points (windows 1 and 64, one client).
    #[arg(long)]
    quick: bool,
    /// Run one section only (the raw-UDP baselines run with throughput and latency).
    #[arg(long, value_enum)]
    only: Option<Section>,
    /// Measure one runtime only (default: both).
    #[arg(long, value_parser = parse_runtime)]
    runtime: Option<Runtime>,
    /// Internal: run the scale section's server in this (child) process.
    #[arg(long, hide = true, value_parser = parse_runtime)]
    serve: Option<Runtime>,
}

/// One section of the benchmark (`--only`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Echo throughput per window, payload size and client count.
    Throughput,
    /// Round-trip latency of one message at window 1.
    Latency,
    /// Many idle clients: memory per connection and idle CPU.
    Scale,
}

/// Parses a runtime name as the command line spells it.
fn parse_runtime(name: &str) -> Result<Runtime, String> {
    Runtime::from_str(name, false).map_err(|_| format!("unknown runtime `{name}` (mio or smol)"))
}

impl Options {
    /// Whether `section` runs.
    fn runs(&self, section: Section) -> bool {
        self.only.is_none_or(|only| only == section)
    }

    /// The runtimes measured.
    fn runtimes(&self) -> Vec<Runtime> {
        match self.runtime {
            Some(runtime) => vec![runtime],
            None => vec![Runtime::Mio, Runtime::Smol],
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_millis(self.millis.get())
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Raw UDP ping-pong between two blocking sockets on two threads: (round trips/s, p50 µs,
/// p99 µs).
fn raw_ping_pong(size: usize, duration: Duration) -> (f64, f64, f64) {
    let (Ok(a), Ok(b)) = (UdpSocket::bind(loopback()), UdpSocket::bind(loopback())) else {
        return (f64::NAN, f64::NAN, f64::NAN);
    };
    let (Ok(a_addr), Ok(b_addr)) = (a.local_addr(), b.local_addr()) else {
        return (f64::NAN, f64::NAN, f64::NAN);
    };
    if a.connect(b_addr).is_err() || b.connect(a_addr).is_err() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let _ = b.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = a.set_read_timeout(Some(Duration::from_millis(200)));
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(n) = b.recv(&mut buf) {
            if n == 0 || b.send(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let payload = vec![7u8; size];
    let mut buf = [0u8; 2048];
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        if a.send(&payload).is_err() || a.recv(&mut buf).is_err() {
            break;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = a.send(&[]);
    let _ = echo.join();
    let rate = samples.len() as f64 / elapsed;
    samples.sort_by(f64::total_cmp);
    (rate, percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Raw UDP streaming from one socket to another: datagrams received per second.
fn raw_stream(size: usize, duration: Duration) -> f64 {
    let (Ok(tx), Ok(rx)) = (UdpSocket::bind(loopback()), UdpSocket::bind(loopback())) else {
        return f64::NAN;
    };
    let Ok(rx_addr) = rx.local_addr() else {
        return f64::NAN;
    };
    let _ = rx.set_read_timeout(Some(Duration::from_millis(100)));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let payload = vec![7u8; size];
            while !stop.load(Ordering::Relaxed) {
                let _ = tx.send_to(&payload, rx_addr);
            }
        })
    };
    let mut buf = [0u8; 2048];
    let mut received = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        if rx.recv(&mut buf).is_ok() {
            received += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    received as f64 / elapsed
}

fn bench_params(window: u32) -> Params {
    Params {
        epoch_limit: 5,
        epoch_millis: 2000,
        window_size: window,
        max_backoff_interval: 0,
        max_unacked_messages: window,
    }
}

/// An echo server on `runtime` bound to loopback, running until dropped.
struct EchoServer {
    server: Arc<Server>,
    addr: SocketAddr,
}

impl EchoServer {
    fn start(runtime: Runtime, params: Params) -> Result<EchoServer, String> {
        let server = Arc::new(Server::listen(runtime, 0, params).map_err(|e| e.to_string())?);
        let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
        let echo = Arc::clone(&server);
        // The loop runs inside one executor call, as an async user of smol would write it.
        thread::spawn(move || {
            smol::block_on(async {
                loop {
                    match echo.read_async().await {
                        Ok((conn, payload)) => {
                            let _ = echo.write(conn, payload);
                        }
                        Err(
                            ServerReadError::ConnectionLost(_)
                            | ServerReadError::ConnectionClosed(_),
                        ) => {}
                        Err(_) => return,
                    }
                }
            })
        });
        Ok(EchoServer { server, addr })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One client's echo loop: keeps `outstanding` messages in flight until `duration` has
/// passed; returns the echoes received while timing and their round trips in µs (only
/// recorded when `outstanding == 1`).
fn client_loop(
    runtime: Runtime,
    server: SocketAddr,
    params: Params,
    size: usize,
    outstanding: usize,
    duration: Duration,
) -> Result<(u64, Vec<f64>), String> {
    let payload = vec![b'x'; size];
    let latency = outstanding == 1;
    // One executor call around the whole loop (see `EchoServer::start`).
    smol::block_on(async {
        let client = Client::connect_async(runtime, server, 0, params)
            .await
            .map_err(|e| e.to_string())?;
        let mut samples = Vec::new();
        let mut sent_at = Instant::now();
        for _ in 0..outstanding {
            client.write(payload.clone()).map_err(|e| e.to_string())?;
        }
        let start = Instant::now();
        let mut echoed = 0u64;
        while start.elapsed() < duration {
            client.read_async().await.map_err(|e| e.to_string())?;
            echoed += 1;
            if latency {
                samples.push(sent_at.elapsed().as_secs_f64() * 1e6);
                sent_at = Instant::now();
            }
            client.write(payload.clone()).map_err(|e| e.to_string())?;
        }
        client.abort();
        Ok((echoed, samples))
    })
}

/// Echoed messages per second with `clients` clients at `window`.
fn echo_throughput(
    runtime: Runtime,
    size: usize,
    window: u32,
    clients: usize,
    duration: Duration,
) -> Result<f64, String> {
    let params = bench_params(window);
    let server = EchoServer::start(runtime, params)?;
    let addr = server.addr();
    let outstanding = 2 * window as usize;
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            thread::spawn(move || client_loop(runtime, addr, params, size, outstanding, duration))
        })
        .collect();
    let mut total = 0u64;
    for w in workers {
        let (echoed, _) = w.join().map_err(|_| "client panicked".to_string())??;
        total += echoed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(server);
    Ok(total as f64 / elapsed)
}

/// Round trips per second and p50/p99 in µs of one message at a time, window 1.
fn echo_latency(runtime: Runtime, duration: Duration) -> Result<(f64, f64, f64), String> {
    let params = bench_params(1);
    let server = EchoServer::start(runtime, params)?;
    let (echoed, mut samples) = client_loop(runtime, server.addr(), params, 100, 1, duration)?;
    samples.sort_by(f64::total_cmp);
    Ok((
        echoed as f64 / duration.as_secs_f64(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    ))
}

/// The child side of the scale test: a server with default parameters that reads and
/// discards; prints its port, then runs until stdin closes.
fn serve_scale(runtime: Runtime) -> Result<(), String> {
    let params = bench_params(1);
    let server = EchoServer::start(runtime, params)?;
    println!("{}", server.addr().port());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}

/// Resident set size of `pid` in KiB (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of `pid` in clock ticks (Linux; 100 per second).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Scale: many smol clients on one server in a child process.
fn scale(runtime: Runtime, opts: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["echo", "--serve", &runtime.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the server: {e}"))?;
    let pid = child.id();
    let port: u16 = {
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim()
            .parse()
            .map_err(|_| format!("the server printed {line:?}, not a port"))?
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let result = (|| -> Result<(), String> {
        thread::sleep(Duration::from_millis(200));
        let rss_before = rss_kib(pid).ok_or("cannot read the server's RSS")?;
        let params = bench_params(1);
        let clients = smol::block_on(async {
            let mut clients = Vec::with_capacity(opts.clients.get());
            for chunk in 0..opts.clients.get().div_ceil(100) {
                let n = (opts.clients.get() - chunk * 100).min(100);
                let connecting: Vec<_> = (0..n)
                    .map(|_| smol::spawn(lsp_smol::Client::connect(addr, 0, params)))
                    .collect();
                for c in connecting {
                    clients.push(c.await.map_err(|e| e.to_string())?);
                }
            }
            Ok::<_, String>(clients)
        })?;
        // One message each so every connection holds real state.
        for c in &clients {
            c.write(b"hello".to_vec()).map_err(|e| e.to_string())?;
        }
        thread::sleep(Duration::from_millis(500));
        let rss_after = rss_kib(pid).ok_or("cannot read the server's RSS")?;
        let ticks_before = cpu_ticks(pid).ok_or("cannot read the server's CPU time")?;
        let own_before = cpu_ticks(std::process::id()).unwrap_or(0);
        let idle = Duration::from_secs(opts.idle_secs);
        let t = Instant::now();
        thread::sleep(idle);
        let wall = t.elapsed().as_secs_f64();
        let ticks = cpu_ticks(pid).unwrap_or(ticks_before) - ticks_before;
        let own = cpu_ticks(std::process::id()).unwrap_or(own_before) - own_before;
        let per_conn =
            (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / opts.clients.get() as f64;
        println!(
            "  {:<6} server RSS {:>6} KiB -> {:>6} KiB ({per_conn:>6.0} B per connection); idle CPU: server {:>5.2}% of a core, {} clients {:>5.2}%",
            runtime.to_string(),
            rss_before,
            rss_after,
            ticks as f64 / wall,
            clients.len(),
            own as f64 / wall,
        );
        for c in &clients {
            smol::block_on(c.abort());
        }
        Ok(())
    })();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}
