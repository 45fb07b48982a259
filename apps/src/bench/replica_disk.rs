//! `bench replica-disk`: a replica's disk per million answered requests, after compaction,
//! through the real path: a one-replica group ([`Replica`], raft-rs and the
//! [`ReplicatedState`](bitcoin_core::replica::ReplicatedState)) whose `Persist` effects go
//! to a real redb [`Store`] in a temporary directory.
//!
//! Each of `--requests` requests is proposed as `Accept` (a 16-byte text, range
//! `0 ..= 999,999,999`), `--ranges` × `RangeDone` (synthetic answers: this measures storage,
//! not mining) and `Answered`, each applied before the next is proposed. Like the server's
//! group commit, the `Persist` effects of `--batch` requests go to the store in one
//! transaction (one fsync). Snapshots and compaction happen as in the server, after at
//! least `--snapshot-every` applied entries once their bytes reach `--snapshot-log-percent`
//! of the last snapshot's, and the state remembers `--max-answered` answered requests (the
//! programs' values by default).
//!
//! Printed: progress every tenth; then the redb file's size and allocated bytes, the
//! snapshot's size, the entries left in the log, the time per request (split into the
//! replica's own work, snapshots' JSON included, and the store's writes), the snapshots
//! taken and their bytes written; the longest single step of each (what one turn of the
//! server's loop would stall for: a snapshot's JSON, a transaction writing it); and the
//! time to reopen the store and rebuild the replica
//! from it (a restart: the snapshot restored, then the log after it applied again).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin_core::replica::{
    Applied, Command, Disk, DiskOp, Mode, Replica, ReplicaConfig, ReplicaEffect, RequestKey,
};

use crate::system::store::Store;

/// The options of `bench replica-disk`.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Requests accepted, covered and answered.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// `RangeDone` entries per request (its range cut in this many pieces).
    #[arg(long, default_value_t = 1)]
    ranges: u64,
    /// Requests whose entries are made durable in one transaction (one fsync).
    #[arg(long, default_value_t = 64)]
    batch: u64,
    /// Snapshot and compact after at least this many applied entries (default: the
    /// programs').
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// ... and once their bytes reach this percent of the last snapshot's (default: the
    /// programs'; 0: every `--snapshot-every` entries, whatever their size).
    #[arg(long)]
    snapshot_log_percent: Option<u64>,
    /// Answered requests remembered (default: the programs').
    #[arg(long)]
    max_answered: Option<usize>,
    /// The data dir (default: a fresh one under the temporary directory, removed after).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// Where the time went, and what was written.
#[derive(Default)]
struct Tally {
    replica: Duration,
    store: Duration,
    transactions: u64,
    snapshots: u64,
    snapshot_bytes: u64,
    answered: u64,
    /// The longest single proposal's work in the replica (one that took a snapshot: its
    /// JSON), which the server's loop would spend without serving anything.
    longest_step: Duration,
    /// The longest single store transaction (one that wrote a snapshot and compacted).
    longest_transaction: Duration,
}

/// Runs the benchmark (see the module documentation).
pub fn run(o: &Options) -> Result<(), String> {
    if o.ranges == 0 || o.batch == 0 {
        return Err("--ranges and --batch must be positive".into());
    }
    let defaults = ReplicaConfig::for_id(1, vec![1]);
    let config = ReplicaConfig {
        snapshot_every: o.snapshot_every.unwrap_or(defaults.snapshot_every).max(1),
        snapshot_log_percent: o
            .snapshot_log_percent
            .unwrap_or(defaults.snapshot_log_percent),
        max_answered: o.max_answered.unwrap_or(defaults.max_answered).max(1),
        ..defaults
    };
    let temporary = o.dir.is_none();
    let dir = o.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("bench-replica-disk-{}", std::process::id()))
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "replica-disk: {} requests ({} RangeDone each), {} per transaction, snapshot after {} \
         entries and {} % of the last snapshot's bytes, {} answered remembered, in {}",
        o.requests,
        o.ranges,
        o.batch,
        config.snapshot_every,
        config.snapshot_log_percent,
        config.max_answered,
        dir.display()
    );
    let result = measure(o, &config, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn measure(o: &Options, config: &ReplicaConfig, dir: &Path) -> Result<(), String> {
    let mut store = Store::open(dir).map_err(|e| e.to_string())?;
    let fresh = Disk::fresh(&[1]);
    let disk = store.load(&fresh).map_err(|e| e.to_string())?;
    let mut replica = Replica::new(config, disk).map_err(|e| e.to_string())?;
    let mut tally = Tally::default();
    let mut ops = Vec::new();
    while !replica.is_leader() {
        replica.tick();
        drain(&mut replica, &mut ops, &mut tally);
    }
    flush(&mut store, &mut ops, &mut tally)?;
    let started = Instant::now();
    let step = (o.requests / 10).max(1);
    let piece = 1_000_000_000 / o.ranges;
    for id in 0..o.requests {
        let key = RequestKey::of_id(id);
        let mut commands = vec![Command::Accept {
            key: key.clone(),
            message: format!("request-{id:08}"),
            lower: 0,
            upper: 999_999_999,
            mode: Mode::Minimum,
        }];
        for k in 0..o.ranges {
            let lower = k * piece;
            let upper = if k + 1 == o.ranges {
                999_999_999
            } else {
                lower + piece - 1
            };
            commands.push(Command::RangeDone {
                key: key.clone(),
                lower,
                upper,
                hash: id,
                nonce: lower,
            });
        }
        commands.push(Command::Answered {
            key,
            hash: id,
            nonce: 0,
        });
        for command in &commands {
            let begun = Instant::now();
            replica.propose(command).map_err(|e| e.to_string())?;
            drain(&mut replica, &mut ops, &mut tally);
            let took = begun.elapsed();
            tally.replica += took;
            tally.longest_step = tally.longest_step.max(took);
        }
        if (id + 1) % o.batch == 0 {
            flush(&mut store, &mut ops, &mut tally)?;
        }
        if (id + 1) % step == 0 {
            println!(
                "  {:>9} requests  {:>7.1} s  snapshot {:>10} bytes  file {:>11} bytes",
                id + 1,
                started.elapsed().as_secs_f64(),
                replica.disk().snapshot_ref().data.len(),
                file_size(dir).0
            );
        }
    }
    flush(&mut store, &mut ops, &mut tally)?;
    let elapsed = started.elapsed().as_secs_f64();
    if tally.answered != o.requests {
        return Err(format!(
            "{} of {} requests answered",
            tally.answered, o.requests
        ));
    }
    let (len, allocated) = file_size(dir);
    let snapshot = replica.disk().snapshot_ref().data.len();
    let n = o.requests.max(1) as f64;
    // Not scaled per request: the state remembers at most `max_answered` answers, so the
    // disk is bounded, not proportional to the requests (run 10⁶ for "per million").
    println!(
        "  disk after {} answered requests: redb file {len} bytes = {:.1} MB ({allocated} \
         allocated); snapshot {snapshot} bytes; {} entries in the log; logical size {} bytes",
        o.requests,
        len as f64 / 1e6,
        replica.disk().entries_ref().len(),
        replica.disk().size()
    );
    println!(
        "  time {elapsed:.1} s = {:.1} µs per request: replica {:.1} µs (raft-rs, state, \
         snapshots' JSON), store {:.1} µs ({} transactions, {:.2} ms each)",
        elapsed * 1e6 / n,
        tally.replica.as_secs_f64() * 1e6 / n,
        tally.store.as_secs_f64() * 1e6 / n,
        tally.transactions,
        tally.store.as_secs_f64() * 1e3 / tally.transactions.max(1) as f64
    );
    println!(
        "  {} snapshots taken, {:.1} MB of snapshot data written ({:.1} kB per request)",
        tally.snapshots,
        tally.snapshot_bytes as f64 / 1e6,
        tally.snapshot_bytes as f64 / 1e3 / n
    );
    println!(
        "  longest stall of a loop turn: replica {:.1} ms (a proposal that took a snapshot), \
         store {:.1} ms (a transaction that wrote one and compacted)",
        tally.longest_step.as_secs_f64() * 1e3,
        tally.longest_transaction.as_secs_f64() * 1e3
    );
    let replica_applied = replica.state().applied_index();
    let disk_entries = replica.disk().entries_ref().len();
    drop(replica);
    drop(store);
    let begun = Instant::now();
    let store = Store::open(dir).map_err(|e| e.to_string())?;
    let disk = store.load(&fresh).map_err(|e| e.to_string())?;
    let loaded = begun.elapsed().as_secs_f64();
    let mut again = Replica::new(config, disk).map_err(|e| e.to_string())?;
    let restored = begun.elapsed().as_secs_f64();
    // The log kept after the snapshot is applied again as raft-rs hands it out.
    let mut ops = Vec::new();
    let mut replayed = Tally::default();
    while !again.is_leader() || again.state().applied_index() < replica_applied {
        again.tick();
        drain(&mut again, &mut ops, &mut replayed);
    }
    println!(
        "  restart: store read in {loaded:.3} s, snapshot restored in {:.3} s more, {} \
         entries of the log applied again in {:.3} s more; it remembers {} requests",
        restored - loaded,
        disk_entries,
        begun.elapsed().as_secs_f64() - restored,
        again.state().requests().count()
    );
    Ok(())
}

/// Moves the replica's effects along: `Persist` ops queued for the next transaction,
/// snapshots and answers counted.
fn drain(replica: &mut Replica, ops: &mut Vec<DiskOp>, tally: &mut Tally) {
    while let Some(effect) = replica.poll_effect() {
        match effect {
            ReplicaEffect::Persist(new) => {
                for op in &new {
                    if let DiskOp::Compact(snapshot) = op {
                        tally.snapshots += 1;
                        tally.snapshot_bytes += snapshot.data.len() as u64;
                    }
                }
                ops.extend(new);
            }
            ReplicaEffect::Applied {
                outcome: Applied::Answered { .. },
                ..
            } => tally.answered += 1,
            _ => {}
        }
    }
}

/// Makes `ops` durable in one transaction.
fn flush(store: &mut Store, ops: &mut Vec<DiskOp>, tally: &mut Tally) -> Result<(), String> {
    if ops.is_empty() {
        return Ok(());
    }
    let begun = Instant::now();
    if let Some(e) = store.apply(ops).map_err(|e| e.to_string())? {
        return Err(format!("compacting the store failed: {e}"));
    }
    let took = begun.elapsed();
    tally.store += took;
    tally.longest_transaction = tally.longest_transaction.max(took);
    tally.transactions += 1;
    ops.clear();
    Ok(())
}

/// The redb file's length and the bytes allocated to it.
fn file_size(dir: &Path) -> (u64, u64) {
    std::fs::metadata(dir.join("replica.redb")).map_or((0, 0), |m| (m.len(), m.blocks() * 512))
}
