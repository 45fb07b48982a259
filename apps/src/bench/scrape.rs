//! `bench scrape`: the cost of one `/metrics` scrape of a big pool. A `server --http` child
//! process gets `--miners` (default 1,000) LSP connections that each send Join (lsp-smol
//! clients in this process, idle afterwards); once the server counts them all, `/metrics`
//! and `/status` are fetched `--scrapes` times each. Prints the answers' sizes and the
//! time from connecting to the last byte (min, median, max): as a dashboard reads them (a
//! snapshot at most 250 ms old, published while the board is watched) and with `?fresh`
//! (waiting for a snapshot taken after the request, up to the serving loop's next tick).
//! Then, in this process, what a snapshot costs the serving loop (`MinerService::pool`
//! with as many joined miners) and what formatting it costs an HTTP worker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin_core::message::Message;
use lsp_core::Params;

use super::e2e::Proc;

/// The options of `bench scrape`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Miner connections (each sends Join, then stays idle).
    #[arg(long, default_value_t = NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN))]
    miners: NonZeroUsize,
    /// Scrapes of each kind.
    #[arg(long, default_value_t = NonZeroUsize::new(20).unwrap_or(NonZeroUsize::MIN))]
    scrapes: NonZeroUsize,
}

/// Runs the `scrape` benchmark.
pub fn run(o: &Options) -> Result<(), String> {
    let dir = std::env::current_exe()
        .map_err(|e| format!("cannot locate the bench binary: {e}"))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let server_bin = dir.join("server");
    if !server_bin.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p apps`",
            server_bin.display()
        ));
    }
    let server = Proc::spawn(
        &server_bin,
        &["0", "--bind", "127.0.0.1", "--http", "127.0.0.1:0"],
    )?;
    let listening = server.wait_line("listening on", Duration::from_secs(10))?;
    let addr: SocketAddr = listening
        .rsplit("listening on ")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("no address in {listening:?}"))?;
    let line = server.wait_line("http on ", Duration::from_secs(10))?;
    let http: SocketAddr = line
        .rsplit("http on ")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("no address in {line:?}"))?;
    let n = o.miners.get();
    println!(
        "scrape: server --http with {n} miner connections, {} scrapes each",
        o.scrapes
    );
    let started = Instant::now();
    let miners = smol::block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                smol::spawn(async move {
                    let client = lsp_smol::Client::connect(addr, 0, Params::default())
                        .await
                        .map_err(|e| format!("cannot connect: {e}"))?;
                    client
                        .write(Message::Join.encode())
                        .map_err(|e| format!("cannot join: {e}"))?;
                    Ok::<_, String>(client)
                })
            })
            .collect();
        let mut miners = Vec::with_capacity(n);
        for task in tasks {
            miners.push(task.await?);
        }
        Ok::<_, String>(miners)
    })?;
    // Until the server counts every miner.
    let wanted = format!("\nminer_pool_miners {n}\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = match get(http, "/metrics?fresh") {
            Ok((_, body)) => body,
            // No snapshot newer than the request yet: ask again.
            Err(e) if e.contains(" 503 ") => Vec::new(),
            Err(e) => return Err(e),
        };
        if String::from_utf8_lossy(&body).contains(&wanted) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the server did not count {n} miners within 60 s"));
        }
    }
    println!(
        "  {n} miners joined in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    for path in ["/metrics", "/metrics?fresh", "/status", "/status?fresh"] {
        let mut times = Vec::with_capacity(o.scrapes.get());
        let mut bytes = 0;
        for _ in 0..o.scrapes.get() {
            let (took, body) = get(http, path)?;
            times.push(took.as_secs_f64() * 1e3);
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {path:<15} {bytes:>8} bytes   min {:.2} ms   median {:.2} ms   max {:.2} ms",
            times[0],
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    drop(miners);
    drop(server);
    in_process(n, o.scrapes.get());
    Ok(())
}

/// Times, on a service with `n` joined miners, the snapshot the serving loop takes and the
/// formatting the HTTP workers do, `rounds` times each.
fn in_process(n: usize, rounds: usize) {
    use crate::system::http::{board::Snapshot, metrics, status};
    use bitcoin_core::scheduler::Config;
    use bitcoin_core::service::MinerService;
    use lsp_core::{ConnId, Timestamp};

    let Ok(mut service) = MinerService::<ConnId>::new(Config::default()) else {
        return;
    };
    let join = Message::Join.encode();
    for i in 0..n {
        let conn = ConnId(i as i64 + 1);
        service.describe(conn, format!("127.0.0.1:{}", 10_000 + i));
        service.handle_payload(Timestamp::from_millis(i as u64), conn, &join);
    }
    let now = Timestamp::from_millis(60_000);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64() * 1e6
    };
    let mut report = None;
    let pool = median(
        (0..rounds)
            .map(|_| time(&mut || report = Some(service.pool(now))))
            .collect(),
    );
    let Some(report) = report else { return };
    let snapshot = Snapshot {
        report,
        origin_ms: 0,
        events: Vec::new(),
        taken: Instant::now(),
        replication: None,
    };
    let text = median(
        (0..rounds)
            .map(|_| time(&mut || drop(std::hint::black_box(metrics::render(&snapshot)))))
            .collect(),
    );
    let json = median(
        (0..rounds)
            .map(|_| time(&mut || drop(std::hint::black_box(status::render(&snapshot)))))
            .collect(),
    );
    println!(
        "  in process, {n} miners (medians of {rounds}): snapshot on the serving loop \
         (MinerService::pool) {pool:.0} us; formatting on an HTTP worker: /metrics {text:.0} us, \
         /status {json:.0} us"
    );
}

/// `GET path` on `http`: how long it took (connect to last byte) and the body.
fn get(http: SocketAddr, path: &str) -> Result<(Duration, Vec<u8>), String> {
    let started = Instant::now();
    let fetch = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(http)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    };
    let answer = fetch().map_err(|e| format!("GET {path}: {e}"))?;
    let took = started.elapsed();
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no head"))?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            String::from_utf8_lossy(&answer[..head_end])
        ));
    }
    Ok((took, answer[head_end + 4..].to_vec()))
}
