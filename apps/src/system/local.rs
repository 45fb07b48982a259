//! The whole system in one process on loopback: a server, some miners, one request.
//!
//! [`LocalRun::run`] binds a server to `127.0.0.1:0`, starts its glue loop on a thread and
//! each miner on its own thread, sends one request through a client, and returns the
//! answer; meanwhile it reports the nonces searched so far to a callback. Everything it
//! started is stopped before it returns.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use bitcoin_core::kernel::Kernel;
use bitcoin_core::message::Mode;
use bitcoin_core::scheduler::Config;
use lsp_core::Params;
use lsp_mio::{Server, StartError};

use super::client::{self, Outcome};
use super::log::Log;
use super::miner::Miner;
use super::search::Searcher;
use super::serve::{self, ServeError};

/// Why a local run failed.
#[derive(Debug)]
pub enum LocalError {
    /// The server could not start.
    Server(StartError),
    /// The client could not connect.
    Client(StartError),
    /// The server's loop failed.
    Serve(ServeError),
    /// A thread could not be spawned.
    Spawn(std::io::Error),
}

impl fmt::Display for LocalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalError::Server(e) => write!(f, "cannot start the server: {e}"),
            LocalError::Client(e) => write!(f, "the client cannot connect: {e}"),
            LocalError::Serve(e) => write!(f, "{e}"),
            LocalError::Spawn(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for LocalError {}

/// The shape of a local run.
#[derive(Clone, Debug)]
pub struct LocalRun {
    /// How many miners to start (at least one).
    pub miners: NonZeroUsize,
    /// Search threads per miner.
    pub threads: NonZeroUsize,
    /// The kernel path the miners use.
    pub kernel: Kernel,
    /// LSP parameters of every endpoint.
    pub params: Params,
    /// The server's scheduler.
    pub config: Config,
    /// Verbosity of the server's, miners' and client's logs.
    pub log_level: u8,
    /// What the request asks for (default: the minimum hash).
    pub mode: Mode,
}

impl LocalRun {
    /// A run with `miners` miners sharing the machine's cores, and default parameters.
    pub fn new(miners: NonZeroUsize) -> LocalRun {
        let cores = bitcoin_core::kernel::cores().get();
        let threads = NonZeroUsize::new(cores / miners.get()).unwrap_or(NonZeroUsize::MIN);
        LocalRun {
            miners,
            threads,
            kernel: Kernel::best(),
            params: Params::default(),
            config: Config::default(),
            log_level: 0,
            mode: Mode::Minimum,
        }
    }

    /// Finds the minimum hash of `msg` over `lower ..= upper`, calling `progress` with the
    /// nonces searched so far and the time elapsed about every `every`.
    pub fn run(
        &self,
        msg: &str,
        lower: u64,
        upper: u64,
        every: Duration,
        mut progress: impl FnMut(u64, Duration),
    ) -> Result<Outcome, LocalError> {
        let started = Instant::now();
        let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), self.params)
            .map(Arc::new)
            .map_err(LocalError::Server)?;
        let addr = server.local_addr();
        let serving = {
            let server = Arc::clone(&server);
            let config = Config {
                lease_slack: serve::lease_slack(&self.params),
                ..self.config.clone()
            };
            let log = Log::new("server", self.log_level);
            thread::Builder::new()
                .name("server".into())
                .spawn(move || serve::serve(server, config, log))
                .map_err(LocalError::Spawn)?
        };
        let searched = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let mut miners = Vec::new();
        for _ in 0..self.miners.get() {
            let miner = Miner {
                params: self.params,
                kernel: self.kernel,
                searcher: Searcher::new(self.threads).with_progress(Arc::clone(&searched)),
                log: Log::new("miner", self.log_level),
            };
            let stopped = stopped.clone();
            let spawned = thread::Builder::new().name("miner".into()).spawn(move || {
                smol::block_on(smol::future::or(
                    async {
                        if let Err(e) = miner.run(addr).await {
                            miner.log.error(format_args!("{e}"));
                        }
                    },
                    async {
                        let _ = stopped.recv().await;
                    },
                ));
            });
            match spawned {
                Ok(handle) => miners.push(handle),
                Err(e) => {
                    server.abort();
                    return Err(LocalError::Spawn(e));
                }
            }
        }
        // One answer, sent once.
        let (done, answer) = mpsc::sync_channel(1);
        let asking = {
            let (params, msg, mode) = (self.params, msg.to_string(), self.mode);
            let log = Log::new("client", self.log_level);
            thread::Builder::new()
                .name("client".into())
                .spawn(move || {
                    let asked = client::request_in(addr, params, &msg, lower, upper, mode, &log);
                    let _ = done.send(asked);
                })
                .map_err(LocalError::Spawn)?
        };
        let outcome = loop {
            match answer.recv_timeout(every) {
                Ok(outcome) => break outcome.map_err(LocalError::Client),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    progress(searched.load(Ordering::Relaxed), started.elapsed());
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(Outcome::Disconnected),
            }
        };
        // Stop everything: the miners first (they would otherwise wait for the server's loss).
        drop(stop);
        for miner in miners {
            let _ = miner.join();
        }
        let _ = asking.join();
        server.abort();
        if let Ok(Err(e)) = serving.join() {
            return Err(LocalError::Serve(e));
        }
        outcome
    }
}
