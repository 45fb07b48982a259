//! The replicated server's loop (`server --data-dir DIR [--cluster LIST --id N]`): LSP
//! events and peers' raft messages in, [`Coordinator`] effects out (docs/replication.md).
//!
//! - **Durability.** The `Persist` effects of a round (up to [`BATCH`] inputs already
//!   waiting) are committed to the [`Store`] (redb, fsync) in one transaction before any
//!   other effect of the round is acted on, so no raft message that depends on them is
//!   sent and no answer is written before they are on disk (group commit: one fsync per
//!   round, not per effect).
//! - **Peers over LSP.** Raft messages travel as LSP payloads, fragmented to fit one LSP
//!   payload each ([`bitcoin_core::replica::frames`]), on one LSP connection per pair of
//!   replicas: the replica with the lower id connects (a
//!   `lsp_mio::Client`, re-connected after a loss) to the higher one's server port, and the
//!   higher one answers on that same connection, learning which peer it is from the
//!   messages' `from` field. Clients and miners never send payloads starting with `F` or
//!   `R` (theirs are JSON objects).
//! - **Ticks** every quarter of an epoch, so an election takes 2.5 to 4 epochs
//!   ([`bitcoin_core::replica::ReplicaConfig::for_id`]), less than LSP's loss detection.
//!
//! Only the leader serves clients and miners; a follower closes their connections at
//! their first payload (they then try the next address of their list).
//!
//! **Leaving.** SIGTERM or SIGINT ([`super::leaving`]) makes a leader hand its leadership
//! to a follower and name it to its peers before the loop ends
//! ([`Coordinator::hand_over`]); a follower just stops. The LSP server is then closed,
//! which delivers what was written first.
//!
//! Observed like the plain server ([`super::observe`]): the leader's pool events, and this
//! replica's own ([`super::replica_events`]), go to the `-v` narration, the event log and
//! the HTTP board, requests told under the connection waiting for them
//! ([`super::replica_view`]); `/status` and `/metrics` also tell the replica's role, term
//! and log indexes, on a follower too.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bitcoin_core::replica::frames::{self, Reassembler};
use bitcoin_core::replica::{Coordinator, CoordinatorEffect, Disk, RaftMessage, ReplicaConfig};
use bitcoin_core::scheduler::Config;
use lsp_core::Params;
use lsp_mio::{Client, ConnId, Server, ServerReadError};

use super::clock::Clock;
use super::http::board::Board;
use super::leaving::Leaving;
use super::log::Log;
use super::narrate::Departure;
use super::observe::{peer_address, Observers};
use super::replica_view::View;
use super::serve::ServeError;
use super::store::Store;

/// Inputs handled together before one durable write (group commit).
const BATCH: usize = 64;

/// This replica's place in its group.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// This replica's id, 1-based.
    pub id: u64,
    /// Every replica's address, in id order (this one's included).
    pub peers: Vec<SocketAddr>,
}

/// Where and how a replica keeps its state.
#[derive(Clone, Debug)]
pub struct Durable {
    /// The directory of its redb file.
    pub data_dir: PathBuf,
    /// Its group; `None`: a group of one (a durable single server).
    pub cluster: Option<Cluster>,
    /// Overrides [`ReplicaConfig::for_id`]'s compaction policy with a snapshot every this
    /// many entries, whatever their size (tests make it small, so that a lagging replica is
    /// caught up by a snapshot).
    pub snapshot_every: Option<u64>,
}

enum Input {
    Lsp(Result<(ConnId, Vec<u8>), ServerReadError>),
    Peer(RaftMessage),
}

/// Serves as the replica `durable` describes until the server is closed, writing events to
/// `events` and publishing on `board` if given (as [`super::serve::serve_observed`]).
/// Returns how many events the event log dropped.
pub fn serve_replicated(
    server: Arc<Server>,
    config: Config,
    params: Params,
    log: Log,
    durable: &Durable,
    events: Option<Box<dyn Write + Send>>,
    board: Option<Arc<Board>>,
) -> Result<u64, ServeError> {
    let data_dir = durable.data_dir.as_path();
    let snapshot_every = durable.snapshot_every;
    let cluster = durable.cluster.clone().unwrap_or(Cluster {
        id: 1,
        peers: vec![server.local_addr()],
    });
    let voters: Vec<u64> = (1..=cluster.peers.len() as u64).collect();
    let mut store = Store::open(data_dir).map_err(|e| ServeError::Io(e.to_string()))?;
    let disk = store
        .load(&Disk::fresh(&voters))
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let mut replica = ReplicaConfig::for_id(cluster.id, voters);
    if let Some(every) = snapshot_every {
        // A test's flag: every `every` entries exactly, whatever their size.
        replica.snapshot_every = every.max(1);
        replica.snapshot_log_percent = 0;
    }
    let mut node = Coordinator::<ConnId>::new(&replica, disk, config)
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let clock = Clock::start();
    let mut observers = Observers::start(log, events, board).map_err(ServeError::Spawn)?;
    let mut view = View::new(cluster.peers.len());
    let tick = Duration::from_millis((params.epoch_millis / 4).max(1));
    let (inputs, inbox) = mpsc::sync_channel(super::serve::FORWARD_CAPACITY);
    let reader = Arc::clone(&server);
    let forward = inputs.clone();
    thread::Builder::new()
        .name("server-reader".into())
        .spawn(move || loop {
            let event = reader.read();
            let last = matches!(event, Err(ServerReadError::Closed | ServerReadError::Io(_)));
            if forward.send(Input::Lsp(event)).is_err() || last {
                return;
            }
        })
        .map_err(ServeError::Spawn)?;
    // Outgoing connections to the peers with a higher id.
    let mut dialed: BTreeMap<u64, Arc<std::sync::Mutex<Option<Arc<Client>>>>> = BTreeMap::new();
    for (i, &addr) in cluster.peers.iter().enumerate() {
        let peer = i as u64 + 1;
        if peer > cluster.id {
            let slot = Arc::new(std::sync::Mutex::new(None));
            dial(peer, addr, params, Arc::clone(&slot), inputs.clone(), log)?;
            dialed.insert(peer, slot);
        }
    }
    drop(inputs);
    let mut peer_conns: BTreeMap<u64, ConnId> = BTreeMap::new();
    let mut incoming: BTreeMap<ConnId, Reassembler> = BTreeMap::new();
    let mut next_tick = clock.now() + tick;
    log.info(format_args!(
        "replica {} of {}, data in {}",
        cluster.id,
        cluster.peers.len(),
        data_dir.display()
    ));
    let mut was_leader = false;
    let mut last_commit = 0;
    let leaving = Leaving::on_signals().map_err(ServeError::Spawn)?;
    // While leaving: until when the hand-over may take (twice an election timeout).
    let mut leave_by: Option<lsp_core::Timestamp> = None;
    let hand_over_bound = tick * 2 * u32::try_from(replica.election_tick).unwrap_or(u32::MAX);
    'serve: loop {
        let deadline = node.poll_timeout().map_or(next_tick, |t| t.min(next_tick));
        let wait = observers
            .cap(Some(clock.until(deadline)))
            .unwrap_or_default();
        // Group commit: every input already waiting is handled before the effects, so
        // that one durable write (one fsync) covers them all.
        let mut batch = Vec::new();
        match inbox.recv_timeout(wait) {
            Ok(input) => batch.push(input),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while !batch.is_empty() && batch.len() < BATCH {
            match inbox.try_recv() {
                Ok(input) => batch.push(input),
                Err(_) => break,
            }
        }
        let now = clock.now();
        for input in batch {
            let mut departure: Option<Departure<'_>> = None;
            match input {
                Input::Peer(message) => {
                    view.counters.raft_received += 1;
                    node.step_raft(now, message);
                }
                Input::Lsp(Ok((conn, payload))) => {
                    if frames::is_fragment(&payload) {
                        match incoming.entry(conn).or_default().push(&payload) {
                            None => {}
                            Some(Ok(message)) => {
                                view.counters.raft_received += 1;
                                peer_conns.insert(message.from, conn);
                                node.step_raft(now, message);
                            }
                            Some(Err(e)) => log.info(format_args!("conn {conn}: {e}")),
                        }
                    } else {
                        if log.enabled(2) {
                            log.debug(format_args!(
                                "conn {conn}: received {}",
                                String::from_utf8_lossy(&payload)
                            ));
                        }
                        node.handle_payload(now, conn, &payload);
                    }
                }
                Input::Lsp(Err(
                    e @ (ServerReadError::ConnectionLost(conn)
                    | ServerReadError::ConnectionClosed(conn)),
                )) => {
                    let peer = peer_conns.values().any(|c| *c == conn);
                    peer_conns.retain(|_, c| *c != conn);
                    incoming.remove(&conn);
                    if !peer {
                        let how = match e {
                            ServerReadError::ConnectionLost(_) => "lost",
                            _ => "closed",
                        };
                        departure = Some((conn, how));
                    }
                    node.handle_connection_gone(now, conn);
                }
                Input::Lsp(Err(ServerReadError::Closed)) => break 'serve,
                Input::Lsp(Err(ServerReadError::Io(e))) => {
                    return Err(ServeError::Io(e.to_string()))
                }
            }
            observe(&mut node, &mut view, &mut observers, &server, departure);
        }
        if now >= next_tick {
            node.tick(now);
            next_tick = now + tick;
        }
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
        if leaving.asked() {
            // Leaving on purpose: hand the leadership over (again, if the transfer was
            // abandoned or this replica won the election after all), before this turn's
            // effects go out, so that the transfer's messages leave now.
            let leader = node.replica().is_leader() && !node.replica().transferring();
            if leave_by.is_none() || leader {
                match node.hand_over(now) {
                    Some(to) => {
                        log.info(format_args!("leaving: handing leadership to replica {to}"));
                        leave_by.get_or_insert(now + hand_over_bound);
                    }
                    // Nothing to hand over (a follower, or a group of one): stop at the end
                    // of this turn, its effects done.
                    None => {
                        leave_by.get_or_insert(now);
                    }
                }
            }
        }
        observe(&mut node, &mut view, &mut observers, &server, None);
        // Every Persist of this round in one transaction, before any other effect but the
        // miners' jobs (which depend on nothing durable, so they need not wait for the
        // fsync): making something durable earlier, or sending later, never breaks
        // raft-rs's contract.
        let mut effects: Vec<_> = std::iter::from_fn(|| node.poll_effect()).collect();
        effects.retain(|effect| match effect {
            CoordinatorEffect::Write(conn, payload) => {
                if log.enabled(2) {
                    log.debug(format_args!(
                        "conn {conn}: sent {}",
                        String::from_utf8_lossy(payload)
                    ));
                }
                if let Err(e) = server.write(*conn, payload.clone()) {
                    log.info(format_args!("conn {conn}: write failed: {e}"));
                }
                false
            }
            _ => true,
        });
        let ops: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                CoordinatorEffect::Persist(ops) => Some(ops.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        if !ops.is_empty() {
            // On failure, stop rather than send what the disk does not hold.
            let compaction = store
                .apply(&ops)
                .map_err(|e| ServeError::Io(e.to_string()))?;
            if let Some(e) = compaction {
                // The batch is durable; only the file's compaction failed (retried after
                // the next snapshot): told, not fatal.
                log.info(format_args!("compacting the data file failed: {e}"));
            }
            view.counters.persisted_batches += 1;
        }
        for effect in effects {
            match effect {
                CoordinatorEffect::Persist(_) => {}
                CoordinatorEffect::SendRaft(message) => {
                    // A message lost here (no connection yet, or it broke) is resent by
                    // raft-rs: appends are retried, snapshots reported failed (Replica).
                    let payloads = frames::fragment(&message, lsp_core::MAX_GUARANTEED_PAYLOAD);
                    let to = message.to;
                    if let Some(slot) = dialed.get(&to) {
                        let client = slot.lock().ok().and_then(|c| c.clone());
                        if let Some(client) = client {
                            view.counters.raft_sent += 1;
                            for payload in payloads {
                                if client.write(payload).is_err() {
                                    break;
                                }
                            }
                        }
                    } else if let Some(&conn) = peer_conns.get(&to) {
                        view.counters.raft_sent += 1;
                        for payload in payloads {
                            if server.write(conn, payload).is_err() {
                                break;
                            }
                        }
                    }
                }
                CoordinatorEffect::Write(conn, payload)
                | CoordinatorEffect::Answer(conn, payload) => {
                    if log.enabled(2) {
                        log.debug(format_args!(
                            "conn {conn}: sent {}",
                            String::from_utf8_lossy(&payload)
                        ));
                    }
                    if let Err(e) = server.write(conn, payload) {
                        log.info(format_args!("conn {conn}: write failed: {e}"));
                    }
                }
                CoordinatorEffect::Close(conn) => {
                    // The closing is told at `-v` once, when the server reports the
                    // connection closed (the departure below).
                    log.debug(format_args!("conn {conn}: closing"));
                    let _ = server.close_conn(conn);
                }
                _ => {}
            }
        }
        let commit = node.replica().disk().hard_state().commit;
        if commit != last_commit && log.enabled(2) {
            last_commit = commit;
            log.debug(format_args!(
                "commit index {commit}, applied {}",
                node.replica().state().applied_index()
            ));
        }
        view.refresh(&node);
        for event in view.replica_events(&node, now) {
            observers.replica_event(event);
        }
        observers.publish(|| {
            let now = clock.now();
            let addr = |conn| peer_address(&server, conn);
            (
                view.report(&node, now, &addr),
                Some(view.replication(&node)),
            )
        });
        if leaving.asked() {
            // Stepped down, and every peer that understands it told who leads (the step-
            // down's effects went out above); or out of time.
            let done = !node.replica().is_leader() && node.awaiting_leader() == 0;
            if leave_by.is_some_and(|by| done || now >= by) {
                break 'serve;
            }
        }
        let leader = node.replica().is_leader();
        if leader != was_leader {
            was_leader = leader;
            log.at(
                0,
                format_args!(
                    "replica {}: {} (term {})",
                    cluster.id,
                    if leader { "leader" } else { "follower" },
                    node.replica().term()
                ),
            );
        }
    }
    if leaving.asked() {
        // What was written (a NotLeader, an answer) is delivered before the process exits,
        // unless its peer is lost first.
        if let Err(e) = server.close() {
            log.info(format_args!("leaving: {e}"));
        }
        log.info(format_args!("left (term {})", node.replica().term()));
    }
    Ok(observers.finish())
}

/// Tells what the leader's service reported after one input (`departure`: the
/// connection whose end it was, if any).
fn observe(
    node: &mut Coordinator<ConnId>,
    view: &mut View,
    observers: &mut Observers,
    server: &Server,
    departure: Option<Departure<'_>>,
) {
    let mut told = false;
    while let Some(event) = node.poll_event() {
        let event = view.event(node, event);
        let addr = super::events::subject(&event).and_then(|conn| peer_address(server, conn));
        told |= observers.pool_event(event, departure, addr.as_deref());
    }
    if let Some(departure) = departure {
        observers.gone(departure, told);
    }
}

/// Keeps a connection to peer `peer` at `addr` in `slot`, forwarding its raft messages,
/// re-connecting an epoch after each loss or failed attempt.
fn dial(
    peer: u64,
    addr: SocketAddr,
    params: Params,
    slot: Arc<std::sync::Mutex<Option<Arc<Client>>>>,
    inputs: SyncSender<Input>,
    log: Log,
) -> Result<(), ServeError> {
    let pause = Duration::from_millis(params.epoch_millis.max(1));
    thread::Builder::new()
        .name(format!("peer-{peer}"))
        .spawn(move || loop {
            match Client::connect(addr, 0, params) {
                Ok(client) => {
                    let client = Arc::new(client);
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(Arc::clone(&client));
                    }
                    log.info(format_args!("peer {peer} ({addr}): connected"));
                    let mut reassembler = Reassembler::default();
                    while let Ok(payload) = client.read() {
                        if let Some(Ok(message)) = reassembler.push(&payload) {
                            if inputs.send(Input::Peer(message)).is_err() {
                                return;
                            }
                        }
                    }
                    if let Ok(mut s) = slot.lock() {
                        *s = None;
                    }
                    client.abort();
                    log.info(format_args!("peer {peer} ({addr}): lost"));
                }
                Err(_) => thread::sleep(pause),
            }
        })
        .map(|_| ())
        .map_err(ServeError::Spawn)
}
