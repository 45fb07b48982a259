//! `bench e2e --zeros Z [--algo sha256d] [--no-cancel]`: target mode end to end, and what
//! cancellation saves.
//!
//! A server, `--miners` miners (`--threads` each) and a client run in this process on
//! loopback (the real server loop, miner loop and client code, on threads), so the miners'
//! search threads can share one counter of the nonces they hash. For each of `--runs`
//! messages (`<msg>-0`, `<msg>-1`, …) the client asks for the first nonce of
//! `0 ..= --max-nonce` with Z leading zero bits, twice: once with miners that announce
//! `cancel` and once with miners that do not (`--no-cancel`: only the latter). Printed per
//! run: the time to the answer (from sending the request to reading the Result), the
//! nonces hashed until then, and the nonces hashed **after** it (read 1 s later, when
//! every miner is idle again): the work spent on jobs that were no longer needed.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bitcoin_core::kernel::Kernel;
use bitcoin_core::message::{Cap, Caps, Mode};
use bitcoin_core::scheduler::Config;
use lsp_core::Params;
use lsp_mio::Server;

use crate::system::client::{self, Outcome};
use crate::system::log::Log;
use crate::system::miner::Miner;
use crate::system::search::Searcher;
use crate::system::serve;

/// What one target run measured.
struct Run {
    outcome: Outcome,
    to_answer: Duration,
    before: u64,
    after: u64,
}

/// One request against a fresh server and miners announcing `caps`.
fn one(
    msg: &str,
    max_nonce: u64,
    mode: Mode,
    miners: NonZeroUsize,
    threads: NonZeroUsize,
    caps: Caps,
) -> Result<Run, String> {
    let params = Params::default();
    let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), params)
        .map(Arc::new)
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let addr = server.local_addr();
    let serving = {
        let server = Arc::clone(&server);
        let config = Config {
            lease_slack: serve::lease_slack(&params),
            ..Config::default()
        };
        thread::spawn(move || serve::serve(server, config, Log::quiet("server")))
    };
    let searched = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let mut handles = Vec::new();
    for _ in 0..miners.get() {
        let miner = Miner {
            params,
            kernel: Kernel::best(),
            searcher: Searcher::new(threads).with_progress(Arc::clone(&searched)),
            log: Log::quiet("miner"),
        };
        let stopped = stopped.clone();
        handles.push(thread::spawn(move || {
            smol::block_on(smol::future::or(
                async {
                    let _ = miner.run_with_caps(addr, caps).await;
                },
                async {
                    let _ = stopped.recv().await;
                },
            ));
        }));
    }
    let started = Instant::now();
    let outcome = client::request_in(addr, params, msg, 0, max_nonce, mode, &Log::quiet("client"))
        .map_err(|e| format!("the client cannot connect: {e}"))?;
    let to_answer = started.elapsed();
    let before = searched.load(Ordering::Relaxed);
    // Jobs are sized for 50 ms: a second is ample for every miner to have gone idle.
    thread::sleep(Duration::from_secs(1));
    let after = searched.load(Ordering::Relaxed) - before;
    drop(stop);
    for h in handles {
        let _ = h.join();
    }
    server.abort();
    let _ = serving.join();
    Ok(Run {
        outcome,
        to_answer,
        before,
        after,
    })
}

/// Runs the target-mode benchmark (see the module documentation).
pub fn run(
    msg: &str,
    max_nonce: u64,
    mode: Mode,
    miners: NonZeroUsize,
    threads: NonZeroUsize,
    runs: usize,
    no_cancel: bool,
) -> Result<(), String> {
    println!(
        "e2e target: {miners} miner(s) x {threads} thread(s) in-process, {mode}, {} kernel, \
         {runs} message(s) over 0..={max_nonce}",
        Kernel::best().path()
    );
    let with = Caps::ALL;
    let without = Caps::NONE.with(Cap::Target).with(Cap::Sha256d);
    let variants: &[(&str, Caps)] = if no_cancel {
        &[("no cancel", without)]
    } else {
        &[("cancel", with), ("no cancel", without)]
    };
    let mut totals = vec![(0.0f64, 0u64); variants.len()];
    for i in 0..runs {
        let msg = format!("{msg}-{i}");
        for (v, (name, caps)) in variants.iter().enumerate() {
            let r = one(&msg, max_nonce, mode, miners, threads, *caps)?;
            println!(
                "  {msg:>10} {name:>9}: {:<34} in {:>8.3} s, {:>12} nonces hashed until then, \
                 {:>10} after",
                r.outcome.to_string(),
                r.to_answer.as_secs_f64(),
                r.before,
                r.after
            );
            totals[v].0 += r.to_answer.as_secs_f64();
            totals[v].1 += r.after;
        }
    }
    for ((name, _), (secs, after)) in variants.iter().zip(totals) {
        println!(
            "  mean {name:>9}: {:.3} s to the answer, {} nonces hashed after it",
            secs / runs.max(1) as f64,
            after / runs.max(1) as u64
        );
    }
    Ok(())
}
