//! `sim`: the simulator's command line.
//!
//! - `sim conformance [--seed S] [--seeds N] [--only NAME] [-v]`: the 64 scenarios in
//!   virtual time, each against its deadline;
//! - `sim sweep --seeds N [--start S]`: swarm testing, each seed its own fault mix and
//!   workload, each run twice to compare trace digests; failures are shrunk;
//! - `sim replay --seed S [-v] [--shrunk]`: one sweep seed again, with its parameters and,
//!   with `-v`, its event trace;
//! - `sim sweep-miner --seeds N [--start S]`: whole-system runs (server service, miners,
//!   clients) on a faulty network, each seed twice to compare trace digests;
//! - `sim replay-miner --seed S [-v]`: one whole-system seed again, with its parameters and,
//!   with `-v`, its event trace.
//! - `sim sweep-raft --seeds N [--start S]`: replicated coordinators (the real
//!   `Coordinator` on raft-rs, with simulated miners and clients) with
//!   crashes, partitions, loss and reordering, each seed twice to compare trace digests;
//! - `sim replay-raft --seed S [-v]`: one replicated-coordinator seed again.
//!
//! The last line printed is always `N passed, M failed`; the exit code is non-zero if
//! anything failed.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use sim::conformance;
use sim::mining::{self, MinerCase};
use sim::replica::{self, ReplicaCase};
use sim::scenario::SCENARIOS;
use sim::shrink::minimize;
use sim::sweep::{check_seed, run_case, Case};

#[derive(Parser)]
#[command(name = "sim", about = "Deterministic simulator for LSP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the 64 conformance scenarios in virtual time.
    Conformance {
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seeds per scenario.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Only the scenario with this name.
        #[arg(long)]
        only: Option<String>,
        /// Print the event trace.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Swarm testing: each seed draws its own fault mix and workload and runs twice.
    Sweep {
        /// Number of seeds.
        #[arg(long)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Cases tried when shrinking a failure (0: no shrinking).
        #[arg(long, default_value_t = 400)]
        shrink_budget: usize,
        /// Stop after this many failures.
        #[arg(long, default_value_t = 3)]
        max_failures: u64,
    },
    /// Re-runs one sweep seed, printing its parameters (and with -v its event trace).
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print the event trace.
        #[arg(short, long)]
        verbose: bool,
        /// Shrink the case first (if it fails) and replay the smallest failing case.
        #[arg(long)]
        shrunk: bool,
        /// Cases tried when shrinking.
        #[arg(long, default_value_t = 400)]
        shrink_budget: usize,
    },
    /// Whole-system swarm testing: server service, miners and clients on a faulty network.
    SweepMiner {
        /// Number of seeds.
        #[arg(long)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Stop after this many failures.
        #[arg(long, default_value_t = 10)]
        max_failures: u64,
    },
    /// Re-runs one whole-system seed, printing its parameters (and with -v its trace).
    ReplayMiner {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print the event trace.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Replicated coordinators: crashes, restarts from disk, partitions, loss; each seed twice.
    SweepRaft {
        /// Number of seeds.
        #[arg(long)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Stop after this many failures.
        #[arg(long, default_value_t = 10)]
        max_failures: u64,
    },
    /// Re-runs one replicated-coordinator seed, printing its parameters (and with -v its trace).
    ReplayRaft {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Print the event trace.
        #[arg(short, long)]
        verbose: bool,
        /// The leader's scheduler holds at most this many requests (default: the
        /// scheduler's default), and the log as many unanswered ones.
        #[arg(long)]
        max_requests: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (passed, failed) = match cli.command {
        Command::Conformance {
            seed,
            seeds,
            only,
            verbose,
        } => run_conformance(seed, seeds, only.as_deref(), verbose),
        Command::Sweep {
            seeds,
            start,
            shrink_budget,
            max_failures,
        } => run_sweep(start, seeds, shrink_budget, max_failures),
        Command::Replay {
            seed,
            verbose,
            shrunk,
            shrink_budget,
        } => replay(seed, verbose, shrunk, shrink_budget),
        Command::SweepMiner {
            seeds,
            start,
            max_failures,
        } => sweep_miner(start, seeds, max_failures),
        Command::ReplayMiner { seed, verbose } => replay_miner(seed, verbose),
        Command::SweepRaft {
            seeds,
            start,
            max_failures,
        } => sweep_raft(start, seeds, max_failures),
        Command::ReplayRaft {
            seed,
            verbose,
            max_requests,
        } => replay_raft(seed, verbose, max_requests),
    };
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_conformance(seed: u64, seeds: u64, only: Option<&str>, verbose: bool) -> (u64, u64) {
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    let mut virtual_total = std::time::Duration::ZERO;
    for scenario in SCENARIOS
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
    {
        for seed in seed..seed.saturating_add(seeds.max(1)) {
            match conformance::run(scenario, seed, verbose) {
                Ok(p) => {
                    passed += 1;
                    virtual_total += p.elapsed;
                    println!(
                        "ok   {:<26} seed {seed:<6} {:>9.3} s virtual (deadline {:>4.1} s), {} steps",
                        scenario.name,
                        p.elapsed.as_secs_f64(),
                        scenario.deadline.as_secs_f64(),
                        p.steps
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {:<26} seed {seed:<6} {e}", scenario.name);
                    println!(
                        "     replay: cargo run --release -p sim -- conformance --only {} --seed {seed} -v",
                        scenario.name
                    );
                }
            }
        }
    }
    let wall = started.elapsed();
    println!(
        "{:.1} s of virtual time in {:.3} s of wall time ({:.0}x)",
        virtual_total.as_secs_f64(),
        wall.as_secs_f64(),
        virtual_total.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    (passed, failed)
}

fn run_sweep(start: u64, seeds: u64, shrink_budget: usize, max_failures: u64) -> (u64, u64) {
    let started = Instant::now();
    let mut virtual_total = std::time::Duration::ZERO;
    let mut steps = 0u64;
    let pass = |stats: sim::sweep::RunStats| {
        virtual_total += stats.virtual_time;
        steps += stats.steps;
    };
    let fail = |seed, failure| {
        let case = Case::generate(seed);
        print_failure(seed, &failure, &case, "replay");
        if shrink_budget > 0 {
            let shrunk = minimize(case, failure, shrink_budget);
            println!(
                "  shrunk in {} steps ({} cases tried) to: {}",
                shrunk.steps, shrunk.tries, shrunk.failure
            );
            print!("{}", shrunk.case);
            println!(
                "  replay the shrunk case: cargo run --release -p sim -- replay --seed {seed} --shrunk -v"
            );
        }
    };
    let (passed, failed) = sweep_seeds(
        start..start.saturating_add(seeds),
        max_failures,
        check_seed,
        pass,
        fail,
    );
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let runs = passed + failed;
    println!(
        "{runs} seeds in {wall:.2} s: {:.0} seeds/s (each run twice), {:.0} steps/s; {:.0} s of virtual time, virtual:wall {:.0}:1",
        runs as f64 / wall,
        2.0 * steps as f64 / wall,
        virtual_total.as_secs_f64(),
        2.0 * virtual_total.as_secs_f64() / wall
    );
    (passed, failed)
}

fn replay(seed: u64, verbose: bool, shrunk: bool, shrink_budget: usize) -> (u64, u64) {
    let mut case = Case::generate(seed);
    println!("seed {seed}:");
    print!("{case}");
    if shrunk {
        match run_case(&case, false) {
            Ok(_) => println!("seed {seed} passes: nothing to shrink"),
            Err(failure) => {
                let s = minimize(case, failure, shrink_budget);
                println!("shrunk in {} steps ({} cases tried):", s.steps, s.tries);
                print!("{}", s.case);
                case = s.case;
            }
        }
    }
    match run_case(&case, verbose) {
        Ok(stats) => {
            println!(
                "passed: {:.3} s virtual, {} steps, digest {:016x}",
                stats.virtual_time.as_secs_f64(),
                stats.steps,
                stats.digest
            );
            (1, 0)
        }
        Err(failure) => {
            println!("FAILED {failure}");
            (0, 1)
        }
    }
}

fn sweep_miner(start: u64, seeds: u64, max_failures: u64) -> (u64, u64) {
    let started = Instant::now();
    let mut total = mining::Outcome::default();
    let mut virtual_secs = 0.0;
    let pass = |o: mining::Outcome| {
        virtual_secs += o.virtual_time.as_secs_f64();
        total.steps += o.steps;
        total.answered += o.answered;
        total.crashed += o.crashed;
        total.lost += o.lost;
        total.jobs += o.jobs;
        total.backups += o.backups;
        total.requeued += o.requeued;
        total.target_answered += o.target_answered;
        total.cancels += o.cancels;
        total.target_lazy_answers += o.target_lazy_answers;
        total.target_lazy_caught += o.target_lazy_caught;
        total.crossed_answers += o.crossed_answers;
        total.crossed_misleading += o.crossed_misleading;
    };
    let fail = |seed, failure: String| {
        print_failure(seed, &failure, &MinerCase::generate(seed), "replay-miner");
    };
    let seeds = start..start.saturating_add(seeds);
    let (passed, failed) = sweep_seeds(seeds, max_failures, mining::check_seed, pass, fail);
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let runs = passed + failed;
    println!(
        "{runs} seeds in {wall:.2} s: {:.0} seeds/s (each run twice), {:.0} steps/s, {virtual_secs:.0} s virtual",
        runs as f64 / wall,
        2.0 * total.steps as f64 / wall,
    );
    println!(
        "clients: {} answered, {} crashed, {} lost; jobs {} (backups {}, requeued {})",
        total.answered, total.crashed, total.lost, total.jobs, total.backups, total.requeued
    );
    println!(
        "target mode: {} clients answered with the first hit (or none); {} Cancels sent; \
         {} lazy Found:false on jobs with a hit, {} caught",
        total.target_answered, total.cancels, total.target_lazy_answers, total.target_lazy_caught
    );
    println!(
        "answers that crossed their Cancel (matched by job id, stale): {}, of which {} \
         would have matched another job held by content",
        total.crossed_answers, total.crossed_misleading
    );
    (passed, failed)
}

fn replay_miner(seed: u64, verbose: bool) -> (u64, u64) {
    let case = MinerCase::generate(seed);
    println!("seed {seed}:");
    print!("{case}");
    match mining::run_case(&case, verbose) {
        Ok(o) => {
            println!(
                "passed: {:.3} s virtual, {} steps, digest {:016x}; clients {} answered, {} crashed, {} lost; jobs {} (backups {}, requeued {})",
                o.virtual_time.as_secs_f64(),
                o.steps,
                o.digest,
                o.answered,
                o.crashed,
                o.lost,
                o.jobs,
                o.backups,
                o.requeued
            );
            (1, 0)
        }
        Err(failure) => {
            println!("FAILED {failure}");
            (0, 1)
        }
    }
}

fn sweep_raft(start: u64, seeds: u64, max_failures: u64) -> (u64, u64) {
    let started = Instant::now();
    let mut total = replica::Outcome::default();
    let pass = |o: replica::Outcome| total.add(&o);
    let fail = |seed, failure: String| {
        print_failure(seed, &failure, &ReplicaCase::generate(seed), "replay-raft");
    };
    let seeds = start..start.saturating_add(seeds);
    let (passed, failed) = sweep_seeds(seeds, max_failures, replica::check_seed, pass, fail);
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{} seeds in {wall:.2} s (each run twice), {:.0} s virtual; {} answered ({} target, {} of them Found:false), {} disconnected, {} crashes, {} terms, {} snapshots installed, {} jobs searched ({} target), {} Cancels, {} redirects, {} requests restored, {} refused for an Id naming another request",
        passed + failed,
        total.ms as f64 / 1000.0,
        total.answered,
        total.target_answered,
        total.not_found,
        total.disconnected,
        total.crashes,
        total.terms,
        total.snapshots_installed,
        total.searches,
        total.target_searches,
        total.cancels,
        total.redirects,
        total.restored,
        total.id_conflicts
    );
    (passed, failed)
}

fn replay_raft(seed: u64, verbose: bool, max_requests: Option<usize>) -> (u64, u64) {
    let mut case = ReplicaCase::generate(seed);
    if let Some(max) = max_requests {
        case = case.with_max_requests(max);
    }
    println!("seed {seed}:");
    print!("{case}");
    match replica::run_case(&case, verbose) {
        Ok(o) => {
            println!(
                "passed: {} ms virtual, digest {:016x}; {} answered ({} target, {} Found:false), {} disconnected, {} crashes, {} terms, {} snapshots installed, {} jobs searched ({} target), {} Cancels, {} redirects, {} requests restored, {} Id conflicts",
                o.ms, o.digest, o.answered, o.target_answered, o.not_found, o.disconnected, o.crashes, o.terms, o.snapshots_installed, o.searches, o.target_searches, o.cancels, o.redirects, o.restored, o.id_conflicts
            );
            (1, 0)
        }
        Err(failure) => {
            println!("FAILED {failure}");
            (0, 1)
        }
    }
}

/// Runs `check` on every seed of `seeds`: a passing run's outcome goes to `pass`, a failure
/// to `fail` (which reports it); stops after `max_failures` failures. Returns how many
/// passed and failed.
fn sweep_seeds<O, E>(
    seeds: std::ops::Range<u64>,
    max_failures: u64,
    check: impl Fn(u64) -> Result<O, E>,
    mut pass: impl FnMut(O),
    mut fail: impl FnMut(u64, E),
) -> (u64, u64) {
    let (mut passed, mut failed) = (0u64, 0u64);
    for seed in seeds {
        match check(seed) {
            Ok(outcome) => {
                passed += 1;
                pass(outcome);
            }
            Err(failure) => {
                failed += 1;
                fail(seed, failure);
                if failed >= max_failures {
                    println!("stopping after {failed} failures");
                    break;
                }
            }
        }
    }
    (passed, failed)
}

/// Prints a failing seed: the failure, its case, and the command that replays it.
fn print_failure(
    seed: u64,
    failure: &impl std::fmt::Display,
    case: &impl std::fmt::Display,
    replay: &str,
) {
    println!("FAIL seed {seed}: {failure}");
    print!("{case}");
    println!("  replay: cargo run --release -p sim -- {replay} --seed {seed} -v");
}
