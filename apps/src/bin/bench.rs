//! `bench <MODE> [FLAGS]`: benchmarks that print figures next to a same-run baseline.
//!
//! Each mode is a subcommand with its own documented flags (`bench <MODE> --help`).

use std::process::ExitCode;

use apps::bench::{codec, e2e, echo, failover, hash, replica_disk, replicas, schedule, scrape};
use clap::{Parser, Subcommand};

/// Benchmarks of this workspace: each prints its figures beside a baseline measured in the
/// same run (the machine is noisy: compare ratios, repeat, quote medians).
#[derive(Parser, Debug)]
#[command(name = "bench", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// One benchmark.
#[derive(Subcommand, Debug)]
enum Mode {
    /// The mining kernel on every available path, per core and on all cores, against the
    /// naive loop (one SHA-256 per nonce through the `sha2` crate).
    Hash(hash::Options),
    /// The scheduler in virtual time against modelled miners: mean response time and
    /// worst slowdown, beside first come first served and the SRPT lower bound.
    Schedule(schedule::Options),
    /// The LSP codec per Data message (encode, decode, checksum) against a serde_json
    /// baseline.
    Codec(codec::Options),
    /// LSP echo over loopback UDP on both runtimes (throughput, latency, many idle
    /// clients) against raw UDP.
    Echo(echo::Options),
    /// The real server, miner and client processes end to end against the kernel's own
    /// rate (build them first: `cargo build --release -p apps`).
    E2e(e2e::Options),
    /// One `/metrics` scrape of a server with many joined miners (default 1,000): time
    /// and size (build the server first: `cargo build --release -p apps`).
    Scrape(scrape::Options),
    /// One request end to end on a plain server, a durable one (`--data-dir`) and a group
    /// of replicas (`--cluster`), alternating: wall time and overhead against the plain
    /// server (docs/replication.md; build the binaries first).
    Replicas(replicas::Options),
    /// Kill -9 the leader of a group of replicas mid-request: time to a new leader and
    /// until the miners work again, against loss detection plus one election.
    Failover(failover::Options),
    /// A one-replica group with a real redb store through a million requests: disk after
    /// compaction, snapshot size, time per request.
    ReplicaDisk(replica_disk::Options),
}

fn main() -> ExitCode {
    let result = match Cli::parse().mode {
        Mode::Hash(options) => hash::run(&options),
        Mode::Schedule(options) => schedule::run(&options),
        Mode::Codec(options) => codec::run(&options),
        Mode::Echo(options) => echo::run(&options),
        Mode::E2e(options) => e2e::run(&options),
        Mode::Scrape(options) => scrape::run(&options),
        Mode::Replicas(options) => replicas::run(&options),
        Mode::Failover(options) => failover::run(&options),
        Mode::ReplicaDisk(options) => replica_disk::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench: {message}");
            ExitCode::FAILURE
        }
    }
}
