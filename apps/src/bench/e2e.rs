//! `bench -- e2e`: the real `server`, `miner` and `client` processes end to end, against the
//! ideal set by the kernel's speed measured in the same run; then the idle CPU use of a
//! server and its miners.
//!
//! 1. Kernel rate: `miners × threads` threads search the message concurrently (as the
//!    miner processes will) for `--kernel-millis` each, before and after the run; the mean
//!    of the two sums is the pool's rate.
//! 2. End to end: `server` and `--miners` `miner` processes (`--threads` each) start; once
//!    every miner has joined, a `client` asks for `--msg` over `0 ..= --max-nonce`. Wall
//!    time is from starting the client to its exit. Ideal = nonces ÷ pool rate; ratio =
//!    ideal ÷ wall (1.0 is perfect; the target is ≥ 0.85).
//!    Also in CPU time: the miners' CPU-seconds over the run against the CPU-seconds the
//!    bare kernel needs for the nonces (less sensitive to other work sharing the machine),
//!    and the server's CPU-seconds. Redundant work: the nonces of every job the server
//!    sent (from its `-vv` log), backups and re-issues included, ÷ the request's nonces.
//! 3. Idle: with no request, the server's and miners' CPU time over `--idle-secs`, from
//!    `/proc/<pid>/stat` (utime + stime, in USER_HZ = 100 ticks per second).
//!
//! The binaries are taken from the directory of the running `bench` (build them with
//! `cargo build --release -p apps`).

use std::io::{BufRead, BufReader};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bitcoin_core::kernel::Kernel;
use bitcoin_core::message::Message;

mod observe;

/// Ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// The options of `bench e2e`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// The message the client asks about.
    #[arg(long, default_value = "hello")]
    msg: String,
    /// The last nonce of the client's range (from 0).
    #[arg(long, default_value_t = 1_000_000_000)]
    max_nonce: u64,
    /// Miner processes.
    #[arg(long, default_value_t = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN))]
    miners: NonZeroUsize,
    /// Search threads per miner.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    threads: NonZeroUsize,
    /// Milliseconds of kernel-only hashing before and after the run (the baseline).
    #[arg(long, default_value_t = 2000)]
    kernel_millis: u64,
    /// Seconds of idle CPU measured with no request.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Instead of the above: the cost of observing the pool, over this many rounds of a
    /// plain server against one with `--http` and `--events` and a scraper (see
    /// `bench/e2e/observe.rs`).
    #[arg(long, value_name = "ROUNDS", conflicts_with = "zeros")]
    observe_rounds: Option<NonZeroUsize>,
    /// Target mode instead (`--zeros Z [--algo sha256d]`): time to the answer and the
    /// nonces hashed after it, with and without cancellation (see `e2e_target`).
    #[command(flatten)]
    target: crate::system::mode_args::ModeArgs,
    /// Target mode: only the run whose miners do not announce `cancel`.
    #[arg(long, requires = "zeros")]
    no_cancel: bool,
    /// Target mode: how many messages to run (each with and without cancellation).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// A child process killed on drop; its stderr lines are forwarded to a channel, each with
/// the instant it was read.
pub(super) struct Proc {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Proc {
    pub(super) fn spawn(bin: &Path, args: &[&str]) -> Result<Proc, String> {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        // Unbounded on purpose: a full channel would stop this reader, fill the pipe and stall
        // the child being measured; the lines are the benchmark's own children's, and it
        // reads them all (the server's job lines are counted).
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take();
        thread::spawn(move || {
            if let Some(stderr) = stderr {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = tx.send((Instant::now(), line));
                }
            }
        });
        Ok(Proc { child, lines })
    }

    /// Waits (up to `limit`) for a stderr line containing `pattern`.
    pub(super) fn wait_line(&self, pattern: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, line)) if line.contains(pattern) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("no {pattern:?} on stderr within {limit:?}")),
            }
        }
    }

    /// Sums the nonces of the jobs (Requests) this server logged as sent, up to the first
    /// Result it logged as sent; waits up to `limit` for it.
    fn nonces_sent_until_result(&self, limit: Duration) -> Result<u128, String> {
        let deadline = Instant::now() + limit;
        let mut sent = 0u128;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, line) = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("the server logged no Result within {limit:?}"))?;
            let Some((_, payload)) = line.split_once(": sent ") else {
                continue;
            };
            match Message::decode(payload.as_bytes()) {
                Ok(Message::Request { lower, upper, .. }) => {
                    sent += u128::from(upper.saturating_sub(lower)) + 1;
                }
                Ok(Message::Result { .. }) => return Ok(sent),
                _ => {}
            }
        }
    }

    /// The stderr lines read so far that were not consumed yet, with when each was read;
    /// does not wait.
    pub(super) fn take_lines(&self) -> Vec<(Instant, String)> {
        self.lines.try_iter().collect()
    }

    /// Kills the process (SIGKILL) and reaps it; the instant of the kill.
    pub(super) fn kill(&mut self) -> Instant {
        let at = Instant::now();
        let _ = self.child.kill();
        let _ = self.child.wait();
        at
    }

    /// Asks the process to leave (SIGTERM, sent with `kill`) without waiting for it; the
    /// instant it was sent.
    pub(super) fn terminate(&mut self) -> Result<Instant, String> {
        let at = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM {}: {status}", self.child.id()));
        }
        Ok(at)
    }

    /// CPU seconds used so far (user + system).
    pub(super) fn cpu_seconds(&self) -> Result<f64, String> {
        cpu_seconds_of(&format!("/proc/{}/stat", self.child.id()))
    }
}

/// The path of binary `name` next to the running `bench`, or how to build it.
pub(super) fn binary(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::current_exe()
        .map_err(|e| format!("cannot locate the bench binary: {e}"))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = dir.join(name);
    path.exists().then_some(path.clone()).ok_or_else(|| {
        format!(
            "{} is missing: build it with `cargo build --release -p apps`",
            path.display()
        )
    })
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `e2e` benchmark.
pub fn run(o: &Options) -> Result<(), String> {
    let mode = o.target.mode();
    if mode.is_target() {
        let (miners, threads) = (o.miners, o.threads);
        return super::e2e_target::run(
            &o.msg,
            o.max_nonce,
            mode,
            miners,
            threads,
            o.runs,
            o.no_cancel,
        );
    }
    let bin = binary;
    let (server_bin, miner_bin, client_bin) = (bin("server")?, bin("miner")?, bin("client")?);
    if let Some(rounds) = o.observe_rounds {
        let bins = observe::Bins {
            server: &server_bin,
            miner: &miner_bin,
            client: &client_bin,
        };
        return observe::compare(o, &bins, rounds.get());
    }
    let workers = o.miners.get() * o.threads.get();
    let kernel = Kernel::best();
    println!(
        "e2e: server + {} miner(s) x {} thread(s) + client, {:?} over 0..={}, {} kernel",
        o.miners,
        o.threads,
        o.msg,
        o.max_nonce,
        kernel.path()
    );

    let before = pool_rate(kernel, &o.msg, workers, o.kernel_millis);
    print_rates("before", workers, before);

    // -vv: every message sent is logged, to count the nonces handed out.
    let server = Proc::spawn(&server_bin, &["0", "-vv"])?;
    let listening = server.wait_line("listening on", Duration::from_secs(10))?;
    let port = listening
        .rsplit(':')
        .next()
        .map(str::trim)
        .ok_or_else(|| format!("no port in {listening:?}"))?
        .to_string();
    let addr = format!("127.0.0.1:{port}");
    let threads = o.threads.to_string();
    let miners = (0..o.miners.get())
        .map(|_| Proc::spawn(&miner_bin, &[&addr, "--threads", &threads, "-v"]))
        .collect::<Result<Vec<_>, _>>()?;
    for _ in 0..o.miners.get() {
        server.wait_line("miner joined", Duration::from_secs(10))?;
    }
    let (idle_server, idle_miners) = idle(&server, &miners, o.idle_secs)?;

    let cpu_before = std::iter::once(&server)
        .chain(&miners)
        .map(Proc::cpu_seconds)
        .collect::<Result<Vec<_>, _>>()?;
    let load = load_average();
    let started = Instant::now();
    let max_nonce = o.max_nonce.to_string();
    let client = Command::new(&client_bin)
        .args([&addr, &o.msg, &max_nonce])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the client: {e}"))?;
    let wall = started.elapsed();
    let answer = String::from_utf8_lossy(&client.stdout).trim().to_string();
    if !answer.starts_with("Result ") {
        return Err(format!("the client printed {answer:?} ({})", client.status));
    }
    let handed_out = server.nonces_sent_until_result(Duration::from_secs(10))?;
    let cpu_used: Vec<f64> = std::iter::once(&server)
        .chain(&miners)
        .map(Proc::cpu_seconds)
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .zip(&cpu_before)
        .map(|(after, before)| after - before)
        .collect();
    drop(miners);
    drop(server);

    let after = pool_rate(kernel, &o.msg, workers, o.kernel_millis);
    print_rates("after ", workers, after);
    let nonces = o.max_nonce as f64 + 1.0;
    let ideal = nonces / ((before.wall + after.wall) / 2.0);
    let secs = wall.as_secs_f64();
    println!("  answer: {answer}");
    println!(
        "  wall {secs:.3} s   ideal {ideal:.3} s (nonces / mean kernel rate)   ratio {:.3}   \
         end-to-end {:.1} M nonces/s",
        ideal / secs,
        nonces / secs / 1e6
    );
    println!(
        "  redundant work: {handed_out} nonces handed out for {nonces} requested (ratio {:.4}, \
         backups and re-issues included)",
        handed_out as f64 / nonces
    );
    let miner_cpu: f64 = cpu_used[1..].iter().sum();
    let cpu_ideal = nonces / ((before.cpu + after.cpu) / 2.0);
    println!(
        "  CPU: miners {miner_cpu:.2} s against {cpu_ideal:.2} s of pure kernel (ratio {:.3}), \
         server {:.2} s",
        cpu_ideal / miner_cpu.max(1e-9),
        cpu_used[0]
    );
    if let Some(load) = load.filter(|l| *l > kernel_cores()) {
        println!(
            "  note: load average {load:.1} on {} cores at the start: other work shares the \
             CPUs, so wall-time figures are noisy; the CPU-time ratio less so",
            kernel_cores()
        );
    }
    println!(
        "  idle over {} s: server {:.2}% CPU, miners {} (% of one core)",
        o.idle_secs,
        idle_server,
        idle_miners
            .iter()
            .map(|p| format!("{p:.2}%"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn print_rates(when: &str, workers: usize, rates: Rates) {
    println!(
        "  kernel, {workers} threads at once, {when}: {:>8.1} M nonces/s ({:.1} M per CPU-second)",
        rates.wall / 1e6,
        rates.cpu / 1e6
    );
}

/// The number of cores, as a float for comparing with the load average.
fn kernel_cores() -> f64 {
    bitcoin_core::kernel::cores().get() as f64
}

/// The CPU use, in percent of one core, of the server and each miner over `secs` seconds.
fn idle(server: &Proc, miners: &[Proc], secs: u64) -> Result<(f64, Vec<f64>), String> {
    let start: Vec<f64> = std::iter::once(server)
        .chain(miners)
        .map(Proc::cpu_seconds)
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    let elapsed = t0.elapsed().as_secs_f64();
    let end: Vec<f64> = std::iter::once(server)
        .chain(miners)
        .map(Proc::cpu_seconds)
        .collect::<Result<_, _>>()?;
    let mut percent = start
        .iter()
        .zip(&end)
        .map(|(a, b)| (b - a) / elapsed * 100.0);
    let server = percent.next().unwrap_or(0.0);
    Ok((server, percent.collect()))
}

/// The kernel's speed: nonces per second of wall time of `workers` threads searching `msg`
/// at once for about `millis` each, over 9-digit nonces (most of a `0 ..= 10⁹` range), and
/// nonces per CPU-second of those threads.
fn pool_rate(kernel: Kernel, msg: &str, workers: usize, millis: u64) -> Rates {
    let prepared = kernel.prepare(msg);
    let limit = Duration::from_millis(millis);
    let started = Instant::now();
    let total: (u64, f64) = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers as u64)
            .map(|w| {
                let prepared = &prepared;
                scope.spawn(move || {
                    const CHUNK: u64 = 1 << 20;
                    let mut lower = 100_000_000 + w * 200_000_000;
                    let mut done = 0u64;
                    let begun = Instant::now();
                    let cpu = thread_cpu_seconds();
                    while begun.elapsed() < limit {
                        std::hint::black_box(prepared.min_hash(lower, lower + CHUNK - 1));
                        lower += CHUNK;
                        done += CHUNK;
                    }
                    (done, thread_cpu_seconds() - cpu)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0.0)))
            .fold((0, 0.0), |(n, c), (dn, dc)| (n + dn, c + dc))
    });
    let (nonces, cpu) = total;
    Rates {
        wall: nonces as f64 / started.elapsed().as_secs_f64(),
        cpu: nonces as f64 / cpu.max(1.0 / USER_HZ),
    }
}

/// The kernel's measured speed.
#[derive(Clone, Copy, Debug)]
struct Rates {
    /// Nonces per second of wall time, all workers together.
    wall: f64,
    /// Nonces per CPU-second.
    cpu: f64,
}

/// CPU seconds used by the calling thread so far (0 if `/proc` cannot tell).
fn thread_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/thread-self/stat").unwrap_or(0.0)
}

/// User + system CPU seconds from a `/proc/…/stat` file.
fn cpu_seconds_of(path: &str) -> Result<f64, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("{path}: no field {}", i + 3))
    };
    Ok((tick(11)? + tick(12)?) / USER_HZ)
}

/// The 1-minute load average, if `/proc/loadavg` tells.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
