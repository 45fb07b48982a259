//! `miner <host:port>`: a miner on lsp-smol (docs/miner.md §3).
//!
//! Joins the server as soon as it is connected, then searches every job it is given with
//! the fastest kernel on all cores (`--threads`), until it loses the server.

use std::num::NonZeroUsize;
use std::process::ExitCode;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use apps::system::args::{resolve, LspArgs};
use apps::system::hashrate;
use apps::system::log::Log;
use apps::system::miner::Miner;
use apps::system::search::Searcher;
use bitcoin_core::kernel::{cores, Kernel, Path};
use clap::{ArgAction, Parser};

/// A miner: joins the server and searches the jobs it hands out.
#[derive(Parser, Debug)]
#[command(name = "miner", version)]
struct Cli {
    /// The server's address, HOST:PORT; or a replicated server's addresses,
    /// comma-separated: the miner then moves to the next address whenever its server is
    /// lost or is not the leader, and exits once none could be reached for 10 rounds.
    server: String,
    /// Search threads (default: one per core).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// Kernel path: scalar, sha-ni, avx2 or avx512 (default: the fastest available).
    #[arg(long)]
    kernel: Option<Path>,
    /// Cap the search speed at this many nonces per second (to play a slow miner).
    #[arg(long)]
    max_rate: Option<u64>,
    /// Log to stderr: `-v` connection events and the miner's hash rate every few seconds,
    /// `-vv` every job.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// With `-v`, how often to log the hash rate, in seconds (positive; default 5).
    #[arg(long, value_name = "SECS", value_parser = hashrate::parse_interval)]
    hashrate_every: Option<Duration>,
    #[command(flatten)]
    lsp: LspArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = Log::new("miner", cli.verbose);
    log.exit(run(&cli, log))
}

fn run(cli: &Cli, log: Log) -> Result<(), String> {
    let params = cli.lsp.params()?;
    let servers = cli
        .server
        .split(',')
        .map(resolve)
        .collect::<Result<Vec<_>, _>>()?;
    let kernel = match cli.kernel {
        Some(path) => Kernel::new(path).map_err(|e| e.to_string())?,
        None => Kernel::best(),
    };
    let mut searcher = Searcher::new(cli.threads.unwrap_or_else(cores));
    if let Some(rate) = cli.max_rate {
        searcher = searcher.with_max_rate(rate);
    }
    if log.enabled(1) {
        let every = cli.hashrate_every.unwrap_or(hashrate::DEFAULT_INTERVAL);
        let searched = Arc::new(AtomicU64::new(0));
        searcher = searcher.with_progress(Arc::clone(&searched));
        hashrate::report(searched, log, every)
            .map_err(|e| format!("cannot start the hash-rate thread: {e}"))?;
    }
    let miner = Miner {
        params,
        kernel,
        searcher,
        log,
    };
    if let [server] = servers[..] {
        // The miner exits normally once it has lost the server.
        return smol::block_on(miner.run(server))
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let mut unreachable = 0;
    let mut redirects = 0;
    let mut next = 0;
    loop {
        let server = servers[next % servers.len()];
        next = next % servers.len() + 1;
        match smol::block_on(miner.run_replicated(server)) {
            Ok(report) => {
                unreachable = 0;
                match report.leader {
                    // A follower named the leader: go there at once (ids are 1-based
                    // positions in the list, which is the servers' --cluster order).
                    Some(leader) if (1..=servers.len() as u64).contains(&leader) => {
                        next = leader as usize - 1;
                        redirects += 1;
                        if redirects >= servers.len() {
                            // Replicas disagreeing while a new leader settles: slow down.
                            std::thread::sleep(Duration::from_millis(miner.params.epoch_millis));
                            redirects = 0;
                        }
                    }
                    _ => redirects = 0,
                }
            }
            Err(e) => {
                miner.log.info(format_args!("{server}: {e}"));
                unreachable += 1;
                if unreachable >= 10 * servers.len() {
                    return Err(e.to_string());
                }
            }
        }
    }
}
