//! The miner's loop: the sans-IO [`MinerCore`] driven with a real connection and the
//! kernel on worker threads.
//!
//! The core decides (join, which job to search, what to answer, when to stop); this loop
//! only carries its actions out. While a job is being searched, the loop keeps reading
//! from the server: further jobs are queued by the core, and the loss of the server
//! abandons the search at once. The LSP driver task acknowledges and heartbeats on its own
//! meanwhile, so a long job never looks like a dead miner.
//!
//! The miner announces every extension it supports in its Join (`"Caps"`: target, sha256d,
//! cancel; a reference server ignores the key). A Cancel for the running job stops its
//! search within one chunk and its answer is dropped; a target job is searched for its
//! first qualifying nonce and answered with the job's range echoed.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin_core::hash::Algo;
use bitcoin_core::kernel::{Kernel, MinHash, Prepared};
use bitcoin_core::message::ext::encode_join;
use bitcoin_core::message::{Caps, Mode};
use bitcoin_core::replica;
use lsp_core::Params;
use lsp_smol::{ApiError, Client, ClientReadError, StartError};

use super::log::Log;
use super::search::{Answer, Running, Searcher};
use bitcoin_core::message::Message;
use bitcoin_core::miner::{Action, JobOrder, MinerCore};

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
    /// With [`Miner::run_replicated`]: the replica a follower named as the leader when it
    /// turned the miner away (a NotLeader message, docs/replication.md). `None` otherwise.
    pub leader: Option<u64>,
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
        self.run_with_caps(server, Caps::ALL).await
    }

    /// [`Miner::run`], announcing only `caps` (for benchmarks and tests: without `cancel`
    /// the server lets its unneeded jobs run to the end; with none it is a reference miner).
    pub async fn run_with_caps(
        &self,
        server: SocketAddr,
        caps: Caps,
    ) -> Result<MinerReport, MinerError> {
        self.run_inner(server, caps, false).await
    }

    /// [`Miner::run`] against one replica of a replicated server: the Join also carries
    /// `"Redirect": true`, and a follower's NotLeader message ends the run at once, with
    /// the leader it names in [`MinerReport::leader`], instead of after the loss detection
    /// that its closing the connection would otherwise cost.
    pub async fn run_replicated(&self, server: SocketAddr) -> Result<MinerReport, MinerError> {
        self.run_inner(server, Caps::ALL, true).await
    }

    async fn run_inner(
        &self,
        server: SocketAddr,
        caps: Caps,
        redirect: bool,
    ) -> Result<MinerReport, MinerError> {
        let client = Client::connect(server, 0, self.params)
            .await
            .map_err(MinerError::Connect)?;
        let mut core = MinerCore::new(JobOrder::Arrival).with_caps(caps);
        core.handle_connected();
        let mut prepared: Option<(Arc<str>, Algo, Arc<Prepared>)> = None;
        let mut running: Option<Running> = None;
        loop {
            while let Some(action) = core.poll_action() {
                match action {
                    Action::Send(Message::Join) | Action::Announce(_) => {
                        let mut join = encode_join(core.caps());
                        if redirect {
                            join = replica::redirect::with_redirect(join);
                        }
                        client.write(join).map_err(MinerError::Join)?;
                        self.log.info(format_args!(
                            "joined {server} as conn {} ({} threads, {} kernel)",
                            client.conn_id(),
                            self.searcher.threads(),
                            self.kernel.path()
                        ));
                    }
                    Action::Send(message) => {
                        self.log.debug(format_args!("answer {message:?}"));
                        if let Err(e) = client.write(message.encode()) {
                            // The loss itself is reported by the next read.
                            self.log.info(format_args!("cannot answer: {e}"));
                        }
                    }
                    Action::SendTarget { job, hit } => {
                        self.log.debug(format_args!(
                            "answer {}..={}: {hit:?}",
                            job.lower, job.upper
                        ));
                        let bytes = job.encode_answer(hit);
                        if let Err(e) = client.write(bytes) {
                            self.log.info(format_args!("cannot answer: {e}"));
                        }
                    }
                    Action::Stop(job) => {
                        self.log
                            .debug(format_args!("cancelled {}..={}", job.lower, job.upper));
                        // Dropping it cancels it; its answer never comes.
                        running = None;
                    }
                    Action::Search(job) => {
                        let algo = match job.mode {
                            Mode::Target { algo, .. } => algo,
                            Mode::Minimum => Algo::Sha256,
                        };
                        let message = match &prepared {
                            Some((data, a, p)) if *data == job.data && *a == algo => Arc::clone(p),
                            _ => {
                                let p =
                                    Arc::new(self.kernel.prepare_algo(job.data.as_bytes(), algo));
                                prepared = Some((Arc::clone(&job.data), algo, Arc::clone(&p)));
                                p
                            }
                        };
                        self.log.debug(format_args!(
                            "job {}..={} ({})",
                            job.lower, job.upper, job.mode
                        ));
                        running = Some(match job.mode {
                            Mode::Minimum => self.searcher.start(message, job.lower, job.upper),
                            Mode::Target { zeros, .. } => self
                                .searcher
                                .start_target(message, job.lower, job.upper, zeros),
                        });
                    }
                    Action::Exit => {
                        if let Some(search) = running.take() {
                            search.cancel();
                        }
                        let stats = core.stats();
                        return Ok(MinerReport {
                            jobs: stats.jobs,
                            nonces: stats.nonces,
                            ignored: stats.ignored,
                            leader: None,
                        });
                    }
                }
            }
            let step = match &running {
                Some(search) => {
                    smol::future::or(async { Step::Answer(search.answer().await) }, async {
                        Step::Read(client.read().await)
                    })
                    .await
                }
                None => Step::Read(client.read().await),
            };
            match step {
                Step::Answer(Some(answer)) => {
                    if let Some(job) = core.running() {
                        self.log
                            .debug(format_args!("finished {}..={}", job.lower, job.upper));
                    }
                    running = None;
                    match answer {
                        Answer::Min(MinHash { hash, nonce }) => {
                            core.handle_search_finished(hash, nonce)
                        }
                        Answer::Target(hit) => {
                            core.handle_target_finished(hit.map(|h| (h.hash, h.nonce)))
                        }
                    }
                }
                Step::Answer(None) => return Err(MinerError::Search),
                Step::Read(Ok(payload)) => {
                    let hint = redirect
                        .then(|| replica::redirect::decode_not_leader(&payload))
                        .flatten();
                    if let Some(leader) = hint {
                        self.log.info(format_args!(
                            "{server} does not lead: replica {leader} does"
                        ));
                        if let Some(search) = running.take() {
                            search.cancel();
                        }
                        let stats = core.stats();
                        return Ok(MinerReport {
                            jobs: stats.jobs,
                            nonces: stats.nonces,
                            ignored: stats.ignored,
                            leader: Some(leader),
                        });
                    }
                    let ignored = core.stats().ignored;
                    core.handle_payload(&payload);
                    if core.stats().ignored > ignored {
                        self.log.info(format_args!(
                            "ignored payload {:?}",
                            String::from_utf8_lossy(&payload)
                        ));
                    }
                }
                Step::Read(Err(e)) => {
                    let stats = core.stats();
                    self.log.info(format_args!(
                        "server lost ({e}) after {} jobs, {} nonces",
                        stats.jobs, stats.nonces
                    ));
                    core.handle_server_lost();
                }
            }
        }
    }
}

/// What the miner's loop woke up for.
enum Step {
    Answer(Option<Answer>),
    Read(Result<Vec<u8>, ClientReadError>),
}
