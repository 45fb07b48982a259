//! `bench replicas`: what durability and replication cost end to end, against a plain server
//! measured in the same run.
//!
//! Three modes, each real `server` processes (the binaries next to `bench`):
//!
//! - **plain**: `server 0`, the baseline;
//! - **durable**: `server 0 --data-dir DIR`, a group of one (redb, fsynced);
//! - **N replicas**: `--replicas` servers with `--cluster` and `--data-dir`.
//!
//! For each of `--runs` runs and each mode (the order rotates every run, so that drift in the
//! machine's load hits every mode alike), the servers start on fresh data dirs; once one
//! logs `leader` (or, plain, `listening on`), `--miners` miners (`--threads` each) start
//! with every address and the benchmark waits until each has logged joining the leader;
//! then a `client` asks for `--msg` over `0 ..= --max-nonce`, given every address too.
//! Wall time is from starting the client to its exit; server CPU is that of every server
//! process of the mode over the same span. Every run of every mode must print the same
//! Result. Printed: each run, then per mode min and median, and their ratios to the plain
//! server's (the overhead; the goal for 3 replicas is ≤ 5 %).

use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::time::Instant;

use lsp_core::Params;

use super::cluster::{min_median_max, start_miners, Kind, Servers};
use super::e2e::binary;

/// The options of `bench replicas`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// The message the client asks about.
    #[arg(long, default_value = "replicas")]
    msg: String,
    /// The last nonce of the client's range (from 0).
    #[arg(long, default_value_t = 1_000_000_000)]
    max_nonce: u64,
    /// Replicas of the replicated mode.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Miner processes.
    #[arg(long, default_value_t = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN))]
    miners: NonZeroUsize,
    /// Search threads per miner.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    threads: NonZeroUsize,
    /// Runs of every mode (alternating).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// LSP epoch of every process, in milliseconds (the reference's by default).
    #[arg(long, default_value_t = Params::default().epoch_millis)]
    epoch_millis: u64,
    /// Leave out the durable single server.
    #[arg(long)]
    no_durable: bool,
}

/// One run of one mode.
#[derive(Clone, Debug)]
struct Run {
    wall: f64,
    server_cpu: f64,
    answer: String,
}

/// Runs the comparison (see the module documentation).
pub fn run(o: &Options) -> Result<(), String> {
    if o.replicas < 2 {
        return Err("--replicas must be at least 2 (the durable mode is a group of one)".into());
    }
    let (server, miner, client) = (binary("server")?, binary("miner")?, binary("client")?);
    let mut kinds = vec![Kind::Plain];
    if !o.no_durable {
        kinds.push(Kind::Durable);
    }
    kinds.push(Kind::Group(o.replicas));
    println!(
        "replicas: {} over 0..={}, {} miner(s) x {} thread(s), epoch {} ms, {} run(s) of {}, \
         order rotating; load average {}",
        o.msg,
        o.max_nonce,
        o.miners,
        o.threads,
        o.epoch_millis,
        o.runs,
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(" / "),
        load()
    );
    let lsp = vec!["--epoch-millis".to_string(), o.epoch_millis.to_string()];
    let mut miner_args = vec!["--threads".to_string(), o.threads.to_string(), "-v".into()];
    miner_args.extend_from_slice(&lsp);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); kinds.len()];
    for r in 0..o.runs {
        for k in 0..kinds.len() {
            let m = (k + r) % kinds.len();
            let kind = kinds[m];
            let servers = Servers::start(&server, kind, &lsp)?;
            let leader = servers.addrs[servers.leader].clone();
            let list = servers.list();
            let miners = start_miners(&miner, &list, &leader, o.miners.get(), &miner_args)?;
            let cpu = servers.cpu_seconds()?;
            let started = Instant::now();
            let output = Command::new(&client)
                .args([list.as_str(), &o.msg, &o.max_nonce.to_string()])
                .args(&lsp)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run the client: {e}"))?;
            let wall = started.elapsed().as_secs_f64();
            let server_cpu = servers.cpu_seconds()? - cpu;
            drop(miners);
            drop(servers);
            let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
            if !answer.starts_with("Result ") {
                return Err(format!(
                    "{}: the client printed {answer:?} ({})",
                    kind.name(),
                    output.status
                ));
            }
            if let Some(first) = runs.iter().flatten().next() {
                if first.answer != answer {
                    return Err(format!(
                        "{}: {answer:?}, but an earlier run printed {:?}",
                        kind.name(),
                        first.answer
                    ));
                }
            }
            println!(
                "  run {r} {:<12} wall {wall:>8.3} s   server CPU {server_cpu:>7.3} s   {answer}",
                kind.name()
            );
            runs[m].push(Run {
                wall,
                server_cpu,
                answer,
            });
        }
    }
    let stats = |runs: &[Run], f: fn(&Run) -> f64| {
        min_median_max(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
    };
    let (base_min, base_med, _) = stats(&runs[0], |r| r.wall);
    for (kind, runs) in kinds.iter().zip(&runs) {
        let (min, med, max) = stats(runs, |r| r.wall);
        let (_, cpu, _) = stats(runs, |r| r.server_cpu);
        println!(
            "  {:<12} wall min {min:.3} median {med:.3} max {max:.3} s   against plain: \
             median {:+.1} %, min {:+.1} %   server CPU median {cpu:.3} s",
            kind.name(),
            (med / base_med - 1.0) * 100.0,
            (min / base_min - 1.0) * 100.0
        );
    }
    println!("  load average at the end {}", load());
    Ok(())
}

/// The 1, 5 and 15-minute load averages, as `/proc/loadavg` gives them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
