//! The miner's loop: join, then search each job and answer it, until the server is lost.
//!
//! Jobs are answered in the order they arrive (the wire has no job ids). While a job is
//! being searched on worker threads, the loop keeps reading from the server: further jobs
//! are queued, and the loss of the server abandons the search at once. The LSP driver task
//! acknowledges and heartbeats on its own meanwhile, so a long job never looks like a dead
//! miner.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin_core::kernel::{Kernel, MinHash, Prepared};
use lsp_core::Params;
use lsp_smol::{ApiError, Client, ClientReadError, StartError};

use super::log::Log;
use super::search::Searcher;
use bitcoin_core::message::Message;

/// Why a miner stopped other than by losing the server.
#[derive(Debug)]
pub enum MinerError {
    /// It could not connect.
    Connect(StartError),
    /// The Join could not be written.
    Join(ApiError),
    /// A search could not be started (no thread could be spawned).
    Search,
}

impl fmt::Display for MinerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinerError::Connect(e) => write!(f, "cannot connect: {e}"),
            MinerError::Join(e) => write!(f, "cannot send Join: {e}"),
            MinerError::Search => write!(f, "cannot start a search thread"),
        }
    }
}

impl std::error::Error for MinerError {}

/// What a miner did before it lost the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinerReport {
    /// Jobs answered.
    pub jobs: u64,
    /// Nonces searched in answered jobs.
    pub nonces: u128,
    /// Payloads that were not Requests; ignored.
    pub ignored: u64,
}

/// A job: search `data` over `lower ..= upper`.
struct Job {
    data: String,
    lower: u64,
    upper: u64,
}

/// The miner's settings.
#[derive(Clone, Debug)]
pub struct Miner {
    /// LSP parameters.
    pub params: Params,
    /// The kernel path to search with.
    pub kernel: Kernel,
    /// Threads, speed cap and progress counter of the search.
    pub searcher: Searcher,
    /// Where to log.
    pub log: Log,
}

impl Miner {
    /// Connects to `server`, joins, and mines until the server is lost; then returns what
    /// it did. Dropping the future stops the miner (connection and search) at once.
    pub async fn run(&self, server: SocketAddr) -> Result<MinerReport, MinerError> {
        let client = Client::connect(server, 0, self.params)
            .await
            .map_err(MinerError::Connect)?;
        client
            .write(Message::Join.encode())
            .map_err(MinerError::Join)?;
        self.log.info(format_args!(
            "joined {server} as conn {} ({} threads, {} kernel)",
            client.conn_id(),
            self.searcher.threads(),
            self.kernel.path()
        ));
        let mut report = MinerReport::default();
        let mut queue = VecDeque::new();
        let mut prepared: Option<(String, Arc<Prepared>)> = None;
        loop {
            let job = match queue.pop_front() {
                Some(job) => job,
                None => match client.read().await {
                    Ok(payload) => {
                        self.accept(&payload, &mut queue, &mut report);
                        continue;
                    }
                    Err(e) => return Ok(self.lost(e, report)),
                },
            };
            let message = match &prepared {
                Some((data, p)) if *data == job.data => Arc::clone(p),
                _ => {
                    let p = Arc::new(self.kernel.prepare(&job.data));
                    prepared = Some((job.data.clone(), Arc::clone(&p)));
                    p
                }
            };
            self.log
                .debug(format_args!("job {}..={}", job.lower, job.upper));
            let running = self.searcher.start(message, job.lower, job.upper);
            let best = loop {
                let step =
                    smol::future::or(async { Step::Answer(running.answer().await) }, async {
                        Step::Read(client.read().await)
                    })
                    .await;
                match step {
                    Step::Answer(Some(best)) => break best,
                    Step::Answer(None) => return Err(MinerError::Search),
                    Step::Read(Ok(payload)) => self.accept(&payload, &mut queue, &mut report),
                    Step::Read(Err(e)) => {
                        running.cancel();
                        return Ok(self.lost(e, report));
                    }
                }
            };
            let MinHash { hash, nonce } = best;
            self.log.debug(format_args!(
                "answer {hash} {nonce} for {}..={}",
                job.lower, job.upper
            ));
            if let Err(e) = client.write(Message::Result { hash, nonce }.encode()) {
                // The loss itself is reported by the next read.
                self.log.info(format_args!("cannot answer: {e}"));
            }
            report.jobs += 1;
            report.nonces += u128::from(job.upper.saturating_sub(job.lower)) + 1;
        }
    }

    /// Queues a Request; counts and logs anything else.
    fn accept(&self, payload: &[u8], queue: &mut VecDeque<Job>, report: &mut MinerReport) {
        match Message::decode(payload) {
            Ok(Message::Request { data, lower, upper }) => {
                queue.push_back(Job { data, lower, upper })
            }
            Ok(other) => {
                report.ignored += 1;
                self.log.info(format_args!("ignored {other:?}"));
            }
            Err(e) => {
                report.ignored += 1;
                self.log.info(format_args!("ignored payload: {e}"));
            }
        }
    }

    fn lost(&self, e: ClientReadError, report: MinerReport) -> MinerReport {
        self.log.info(format_args!(
            "server lost ({e}) after {} jobs, {} nonces",
            report.jobs, report.nonces
        ));
        report
    }
}

/// What the miner's loop woke up for.
enum Step {
    Answer(Option<MinHash>),
    Read(Result<Vec<u8>, ClientReadError>),
}
