//! `server <port>`: the miner system's server on lsp-mio (docs/miner.md §3).
//!
//! Accepts miners and clients, splits each request into jobs with the scheduler of
//! `bitcoin-core`, and answers each client. Runs until killed.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use apps::system::args::{resolve, LimitsArgs, LspArgs};
use apps::system::events::EventLog;
use apps::system::http::board::Board;
use apps::system::http::HttpServer;
use apps::system::log::Log;
use apps::system::{replicated, serve};
use bitcoin_core::scheduler::Config;
use clap::{ArgAction, Parser};
use lsp_mio::Server;

/// The miner system's server: hands out jobs to miners and answers clients.
#[derive(Parser, Debug)]
#[command(name = "server", version)]
struct Cli {
    /// UDP port to listen on (0 picks a free one; the `listening on` line gives it).
    port: u16,
    /// The local IP address to listen on, IPv4 or IPv6 (default: every interface of both
    /// families, one dual-stack socket where the OS allows it, IPv4 alone otherwise).
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
    /// Log to stderr: `-v` connections and requests, `-vv` every job.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// How long a job should take on the miner it is sized for, in milliseconds (default:
    /// the scheduler's).
    #[arg(long)]
    job_millis: Option<u64>,
    /// Jobs a miner holds at once (one running, the others queued behind it).
    #[arg(long, default_value_t = Config::default().jobs_per_miner)]
    jobs_per_miner: usize,
    /// Requests one client may have unanswered at once; one more is refused and the
    /// client's connection closed.
    #[arg(long, default_value_t = Config::default().max_requests_per_client)]
    max_requests_per_client: usize,
    /// Requests all clients together may have unanswered; one more is refused and its
    /// client's connection closed.
    #[arg(long, default_value_t = Config::default().max_requests)]
    max_requests: usize,
    /// Write the pool's events (miners joining, leaving, rejected; requests accepted,
    /// refused, answered; jobs re-issued; clients lost) to FILE, one JSON object per line,
    /// appending; `-` for stderr. Never slows the server: lines it cannot keep up with are
    /// dropped and counted in an `events_dropped` line of the event log itself.
    #[arg(long, value_name = "FILE")]
    events: Option<String>,
    /// Serve the pool's numbers over HTTP on ADDR (e.g. 127.0.0.1:9100; port 0 picks one,
    /// the `http on` line gives it): `/metrics` (Prometheus), `/status` (JSON) and `/` (a
    /// live dashboard). A few worker threads, never in the server's way.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Keep the requests, searched ranges and answers in DIR (a redb file), synced before
    /// anything depends on them: killed and restarted, the server resumes its unanswered
    /// requests. See docs/replication.md. `--events` and `--http` observe it as they do a
    /// plain server, and tell its place in its group.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Run as one replica of a Raft group: every replica's HOST:PORT, comma-separated, in id
    /// order (needs --id and --data-dir). Only the leader serves clients and miners.
    #[arg(long, value_name = "LIST", requires_all = ["id", "data_dir"])]
    cluster: Option<String>,
    /// This replica's entry in --cluster, 1-based.
    #[arg(long, requires = "cluster")]
    id: Option<u64>,
    /// Testing: snapshot and compact the log every N applied entries, whatever their size
    /// (default: after at least 1,000, once their bytes reach the last snapshot's), so
    /// that tests can make a lagging replica be caught up by a snapshot.
    #[arg(long, hide = true, value_name = "N", requires = "data_dir")]
    snapshot_every: Option<u64>,
    #[command(flatten)]
    lsp: LspArgs,
    #[command(flatten)]
    limits: LimitsArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = Log::new("server", cli.verbose);
    log.exit(run(&cli, log))
}

fn run(cli: &Cli, log: Log) -> Result<(), String> {
    let params = cli.lsp.params()?;
    let mut config = Config {
        jobs_per_miner: cli.jobs_per_miner,
        max_requests_per_client: cli.max_requests_per_client,
        max_requests: cli.max_requests,
        lease_slack: serve::lease_slack(&params),
        ..Config::default()
    };
    if let Some(millis) = cli.job_millis {
        config.target_job_duration = Duration::from_millis(millis);
        config.min_job_duration = config.min_job_duration.min(config.target_job_duration);
    }
    config.validate().map_err(|e| e.to_string())?;
    let limits = cli.limits.limits()?;
    let events = match &cli.events {
        Some(path) => Some(
            EventLog::sink(path).map_err(|e| format!("cannot open the event log {path}: {e}"))?,
        ),
        None => None,
    };
    let server = match cli.bind {
        Some(ip) => {
            let addr = SocketAddr::new(ip, cli.port);
            Server::bind_with_limits(addr, params, limits)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?
        }
        None => Server::listen_with_limits(cli.port, params, limits)
            .map_err(|e| format!("cannot listen on port {}: {e}", cli.port))?,
    };
    log.at(0, format_args!("listening on {}", server.local_addr()));
    let board = match cli.http {
        Some(addr) => {
            let board = Board::new();
            let http = HttpServer::start(addr, Arc::clone(&board))
                .map_err(|e| format!("cannot serve HTTP on {addr}: {e}"))?;
            log.at(0, format_args!("http on {}", http.local_addr()));
            Some(board)
        }
        None => None,
    };
    if let Some(dir) = &cli.data_dir {
        let cluster = match (&cli.cluster, cli.id) {
            (Some(list), Some(id)) => {
                let peers = list
                    .split(',')
                    .map(resolve)
                    .collect::<Result<Vec<_>, _>>()?;
                if id == 0 || id as usize > peers.len() {
                    return Err(format!(
                        "--id {id} is not an entry of --cluster ({} entries)",
                        peers.len()
                    ));
                }
                Some(replicated::Cluster { id, peers })
            }
            _ => None,
        };
        let durable = replicated::Durable {
            data_dir: dir.clone(),
            cluster,
            snapshot_every: cli.snapshot_every,
        };
        let dropped = replicated::serve_replicated(
            Arc::new(server),
            config,
            params,
            log,
            &durable,
            events,
            board,
        )
        .map_err(|e| e.to_string())?;
        report_dropped(log, dropped);
        return Ok(());
    }
    let summary = serve::serve_observed(Arc::new(server), config, log, events, board)
        .map_err(|e| e.to_string())?;
    report_dropped(log, summary.events_dropped);
    log.info(format_args!("closed: {summary:?}"));
    Ok(())
}

/// Says how many events the event log dropped, if any.
fn report_dropped(log: Log, dropped: u64) {
    if dropped > 0 {
        log.error(format_args!(
            "event log: {dropped} event(s) dropped (the writer fell behind)"
        ));
    }
}
