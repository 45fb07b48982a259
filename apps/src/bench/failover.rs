//! `bench failover`: how long the miners stop working when the leader of a group of
//! replicas dies mid-request, against the goal of the loss-detection time plus one election.
//!
//! Each of `--runs` runs: `--replicas` servers (`--cluster`, fresh data dirs, LSP epochs of
//! `--epoch-millis` and loss after `--epoch-limit` of them) start; once one logs `leader`,
//! `--miners` miners (`-vv`, every address) join it, and a client (every address) asks for
//! `--msg` over `0 ..= --max-nonce`. Once the miners have started `--kill-after-jobs` jobs
//! of that request, the leader is killed (SIGKILL), or with `--graceful` asked to leave
//! (SIGTERM: it hands its leadership to a follower and names it to its peers first).
//! Measured from the kill, with the time each log line was read:
//!
//! - **elected**: the first survivor's `: leader (term` line;
//! - **lost**: each miner's `server lost` line (its own loss detection), or its
//!   `does not lead` line (the leaving leader's NotLeader);
//! - **working**: each miner's first `job` line after its `joined <new leader>` line (a
//!   job the new leader sent; jobs the dead leader had queued do not count); the first
//!   miner and the last.
//!
//! The client must then print the true Result, computed here with the kernel before the
//! runs. Printed per run, then min / median / max of each figure, in seconds and epochs,
//! beside the loss-detection time (`epoch_limit × epoch`) and the election time of the
//! slowest survivor (`election_tick` ticks of a quarter epoch, `ReplicaConfig::for_id`).

use std::num::NonZeroUsize;
use std::process::{Command, Stdio};
use std::time::Instant;

use bitcoin_core::kernel::{cores, Kernel};
use bitcoin_core::replica::ReplicaConfig;

use super::cluster::{min_median_max, poll, start_miners, Kind, Servers, READY};
use super::e2e::{binary, Proc};

/// The options of `bench failover`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// The message the client asks about.
    #[arg(long, default_value = "failover")]
    msg: String,
    /// The last nonce of the client's range (from 0): long enough to outlast the failover.
    #[arg(long, default_value_t = 500_000_000)]
    max_nonce: u64,
    /// Replicas (the leader is killed; a majority must survive).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Miner processes.
    #[arg(long, default_value_t = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN))]
    miners: NonZeroUsize,
    /// Search threads per miner.
    #[arg(long, default_value_t = NonZeroUsize::MIN)]
    threads: NonZeroUsize,
    /// Runs (a fresh group each).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// LSP epoch of every process, in milliseconds.
    #[arg(long, default_value_t = 100)]
    epoch_millis: u64,
    /// Epochs of silence before a peer is declared lost.
    #[arg(long, default_value_t = 10)]
    epoch_limit: u32,
    /// Jobs the miners start (all together) on the request before the leader is killed.
    #[arg(long, default_value_t = 4)]
    kill_after_jobs: usize,
    /// Ask the leader to leave (SIGTERM) instead of killing it (SIGKILL).
    #[arg(long)]
    graceful: bool,
}

/// One run's figures, in seconds from the kill.
#[derive(Clone, Debug, Default)]
struct Run {
    elected: f64,
    lost_first: f64,
    working_first: f64,
    working_last: f64,
}

/// Runs the failover benchmark (see the module documentation).
pub fn run(o: &Options) -> Result<(), String> {
    if o.replicas < 3 {
        return Err("--replicas must be at least 3 (a majority must survive the kill)".into());
    }
    let (server, miner, client) = (binary("server")?, binary("miner")?, binary("client")?);
    let epoch = o.epoch_millis as f64 / 1e3;
    let loss = f64::from(o.epoch_limit) * epoch;
    let voters: Vec<u64> = (1..=o.replicas as u64).collect();
    // The replicated loop ticks every quarter epoch (apps/src/system/replicated.rs).
    let election =
        |id: u64| ReplicaConfig::for_id(id, voters.clone()).election_tick as f64 * epoch / 4.0;
    println!(
        "failover: {} replicas, {} miner(s) x {} thread(s), {} over 0..={}, epoch {} ms, \
         loss after {} epochs ({loss:.3} s), {} run(s)",
        o.replicas, o.miners, o.threads, o.msg, o.max_nonce, o.epoch_millis, o.epoch_limit, o.runs
    );
    let started = Instant::now();
    let threads = cores();
    let truth = Kernel::best()
        .prepare(&o.msg)
        .min_hash_parallel(0, o.max_nonce, threads);
    let expected = format!("Result {} {}", truth.hash, truth.nonce);
    println!(
        "  true answer {expected} (kernel, {threads} threads, {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let lsp = vec![
        "--epoch-millis".to_string(),
        o.epoch_millis.to_string(),
        "--epoch-limit".into(),
        o.epoch_limit.to_string(),
    ];
    let mut miner_args = vec!["--threads".to_string(), o.threads.to_string(), "-vv".into()];
    miner_args.extend_from_slice(&lsp);
    let mut runs = Vec::new();
    let mut goals = Vec::new();
    for r in 0..o.runs {
        let mut servers = Servers::start(&server, Kind::Group(o.replicas), &lsp)?;
        let old = servers.leader;
        let list = servers.list();
        let miners = start_miners(
            &miner,
            &list,
            &servers.addrs[old],
            o.miners.get(),
            &miner_args,
        )?;
        let mut client = Command::new(&client)
            .args([list.as_str(), &o.msg, &o.max_nonce.to_string()])
            .args(&lsp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run the client: {e}"))?;
        let mut jobs = 0;
        poll(READY, || {
            jobs += miners
                .iter()
                .flat_map(Proc::take_lines)
                .filter(|(_, l)| l.contains(" job "))
                .count();
            (jobs >= o.kill_after_jobs).then_some(())
        })
        .map_err(|()| "the miners started no jobs".to_string())?;
        if let Ok(Some(status)) = client.try_wait() {
            return Err(format!(
                "the client ended ({status}) before the kill: raise --max-nonce"
            ));
        }
        let leader = servers.procs[old].as_mut().ok_or("no leader to kill")?;
        let killed = if o.graceful {
            leader.terminate()?
        } else {
            leader.kill()
        };
        let survivors: Vec<usize> = (0..o.replicas).filter(|&i| i != old).collect();
        let (new, elected_at) = servers.first_to_log(&survivors, ": leader (term", READY)?;
        let joined = format!("joined {} ", servers.addrs[new]);
        // Per miner: when it lost the old leader, and when it started a job of the new one.
        let mut lost = vec![None; miners.len()];
        let mut working = vec![None; miners.len()];
        let mut on_new = vec![false; miners.len()];
        poll(READY, || {
            for (i, m) in miners.iter().enumerate() {
                for (at, line) in m.take_lines() {
                    if at < killed {
                        continue;
                    }
                    let left = line.contains("server lost") || line.contains("does not lead");
                    if left && lost[i].is_none() {
                        lost[i] = Some(at);
                    } else if line.contains(" joined ") {
                        on_new[i] = line.contains(&joined);
                    } else if line.contains(" job ") && on_new[i] && working[i].is_none() {
                        working[i] = Some(at);
                    }
                }
            }
            working.iter().all(Option::is_some).then_some(())
        })
        .map_err(|()| format!("run {r}: the miners never worked for the new leader"))?;
        let output = client
            .wait_with_output()
            .map_err(|e| format!("the client: {e}"))?;
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if answer != expected {
            return Err(format!(
                "run {r}: the client printed {answer:?}, expected {expected:?}"
            ));
        }
        drop(miners);
        drop(servers);
        let since = |at: Instant| at.saturating_duration_since(killed).as_secs_f64();
        let times =
            |v: &[Option<Instant>]| -> Vec<f64> { v.iter().flatten().map(|&t| since(t)).collect() };
        let (working_first, _, working_last) = min_median_max(&times(&working)).unwrap_or_default();
        let run = Run {
            elected: since(elected_at),
            lost_first: min_median_max(&times(&lost)).map_or(f64::NAN, |m| m.0),
            working_first,
            working_last,
        };
        let goal = loss + election(new as u64 + 1);
        println!(
            "  run {r}: leader {} {}; {} elected after {:.3} s ({:.1} epochs); miners lost \
             it after {:.3} s; working for the new leader after {:.3} s (first) {:.3} s (last) \
             = {:.1} epochs; goal {goal:.3} s; {answer}",
            old + 1,
            if o.graceful {
                "left (SIGTERM)"
            } else {
                "killed"
            },
            new + 1,
            run.elected,
            run.elected / epoch,
            run.lost_first,
            run.working_first,
            run.working_last,
            run.working_last / epoch,
        );
        runs.push(run);
        goals.push(goal);
    }
    let column = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let figures = [
        ("new leader elected", column(|r| r.elected)),
        ("miners detect the loss", column(|r| r.lost_first)),
        ("first miner working", column(|r| r.working_first)),
        ("every miner working", column(|r| r.working_last)),
    ];
    for (name, values) in figures {
        if let Some((min, med, max)) = min_median_max(&values) {
            println!(
                "  {name:<24} min {min:.3} median {med:.3} max {max:.3} s  = {:.1} / {:.1} / \
                 {:.1} epochs",
                min / epoch,
                med / epoch,
                max / epoch
            );
        }
    }
    let survivors_election: Vec<f64> = (2..=o.replicas as u64).map(election).collect();
    println!(
        "  goal: loss detection {loss:.3} s ({} epochs) + one election {:.3}..{:.3} s \
         (election_tick of replicas 2..{}, a quarter epoch each) = at most {:.3} s",
        o.epoch_limit,
        survivors_election.first().copied().unwrap_or(0.0),
        survivors_election.last().copied().unwrap_or(0.0),
        o.replicas,
        goals.iter().copied().fold(0.0, f64::max)
    );
    Ok(())
}
