//! The client's logic: one request, one answer (docs/miner.md §3).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use lsp_core::Params;
use lsp_mio::{Client, StartError};

use super::log::Log;
use bitcoin_core::message::ext::encode_request;
use bitcoin_core::message::{Message, Mode};
use bitcoin_core::replica;

/// How a request ended, once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered: the minimum `hash` over the range, at `nonce`.
    Answer {
        /// The minimum hash.
        hash: u64,
        /// The smallest nonce giving it.
        nonce: u64,
    },
    /// Target mode: the server answered `"Found": false`, no nonce of the range qualifies.
    NotFound,
    /// The server was lost before it answered.
    Disconnected,
}

impl fmt::Display for Outcome {
    /// The client's stdout line: `Result <hash> <nonce>`, `NotFound` or `Disconnected`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answer { hash, nonce } => write!(f, "Result {hash} {nonce}"),
            Outcome::NotFound => f.write_str("NotFound"),
            Outcome::Disconnected => f.write_str("Disconnected"),
        }
    }
}

/// Connects to `server`, asks for the minimum hash of `msg` over `lower ..= upper`, and
/// waits for the answer or the loss of the server. Fails only if it cannot connect.
pub fn request(
    server: SocketAddr,
    params: Params,
    msg: &str,
    lower: u64,
    upper: u64,
    log: &Log,
) -> Result<Outcome, StartError> {
    request_in(server, params, msg, lower, upper, Mode::Minimum, log)
}

/// [`request`] in `mode`: in target mode the Request carries `Zeros` (and `Algo`), and the
/// answer may be [`Outcome::NotFound`]. [`Mode::Minimum`] sends the reference's bytes.
pub fn request_in(
    server: SocketAddr,
    params: Params,
    msg: &str,
    lower: u64,
    upper: u64,
    mode: Mode,
    log: &Log,
) -> Result<Outcome, StartError> {
    let request = encode_request(msg, lower, upper, mode);
    request_encoded(server, params, request, log, None)
}

/// What [`request_encoded`] hands each Progress message to: `(covered, total, rate)`.
pub type ShowProgress<'a> = dyn FnMut(u64, u64, u64) + 'a;

/// Sends the encoded Request `request` (from [`encode_request`], perhaps
/// [`super::progress::asking_progress`]) and waits for its answer as [`request`] does;
/// with `progress`, each Progress message received is handed to it as
/// `(covered, total, rate)`.
pub fn request_encoded(
    server: SocketAddr,
    params: Params,
    request: Vec<u8>,
    log: &Log,
    mut progress: Option<&mut ShowProgress<'_>>,
) -> Result<Outcome, StartError> {
    let client = Client::connect(server, 0, params)?;
    log.info(format_args!(
        "connected to {server} as conn {}",
        client.conn_id()
    ));
    if let Err(e) = client.write(request) {
        log.info(format_args!("cannot send the request: {e}"));
        return Ok(Outcome::Disconnected);
    }
    let outcome = loop {
        match client.read() {
            Ok(payload) => match Message::decode_full(&payload).map(|d| (d.message, d.ext.found)) {
                Ok((Message::Result { .. }, false)) => break Outcome::NotFound,
                Ok((Message::Result { hash, nonce }, true)) => {
                    break Outcome::Answer { hash, nonce }
                }
                Ok((
                    Message::Progress {
                        covered,
                        total,
                        rate,
                    },
                    _,
                )) if progress.is_some() => {
                    if let Some(show) = progress.as_mut() {
                        show(covered, total, rate);
                    }
                }
                Ok((other, _)) => log.info(format_args!("ignored {other:?}")),
                Err(e) => log.info(format_args!("ignored payload: {e}")),
            },
            Err(e) => {
                log.info(format_args!("server lost: {e}"));
                break Outcome::Disconnected;
            }
        }
    };
    match outcome {
        // A graceful close: nothing of ours is pending once the answer came, so this
        // returns as soon as the endpoint has said its last word; the server learns of the
        // departure as the silence the protocol has for it, and logs it as such.
        Outcome::Answer { .. } | Outcome::NotFound => {
            if let Err(e) = client.close() {
                log.info(format_args!("close: {e}"));
            }
        }
        Outcome::Disconnected => client.abort(),
    }
    Ok(outcome)
}

/// Like [`request`], against a replicated server given as several addresses (see
/// docs/replication.md): the request carries an `"Id"` drawn at start (an extension the
/// reference never sends), and whenever the server is lost or cannot be reached the same
/// request, same id, goes to the next address, round robin, until an answer comes. The
/// group answers an id at most once, one way. Gives up (`Disconnected`) after `rounds`
/// rounds in which no address could be reached.
pub fn request_replicated(
    servers: &[SocketAddr],
    params: Params,
    msg: &str,
    lower: u64,
    upper: u64,
    rounds: usize,
    log: &Log,
) -> Outcome {
    let request = encode_request(msg, lower, upper, Mode::Minimum);
    request_replicated_with(servers, params, request, rounds, log, None)
}

/// As [`request_replicated`], for the encoded Request `request` in any mode (a target
/// Request may be answered [`Outcome::NotFound`]), perhaps
/// [`super::progress::asking_progress`]); with `progress`, each Progress message received
/// is handed to it as `(covered, total, rate)`, as [`request_encoded`] does.
pub fn request_replicated_with(
    servers: &[SocketAddr],
    params: Params,
    request: Vec<u8>,
    rounds: usize,
    log: &Log,
    mut progress: Option<&mut ShowProgress<'_>>,
) -> Outcome {
    let id = request_id();
    let mut payload = request;
    // The encoding is one JSON object: add the key before its closing brace.
    payload.pop();
    payload.extend_from_slice(format!(r#","Id":{id}}}"#).as_bytes());
    let mut unreachable = 0;
    let mut redirects = 0;
    let mut next = 0;
    loop {
        if unreachable >= rounds.saturating_mul(servers.len()) {
            break;
        }
        let Some(server) = servers.get(next % servers.len().max(1)) else {
            break;
        };
        next = next % servers.len() + 1;
        let client = match Client::connect(*server, 0, params) {
            Ok(client) => client,
            Err(e) => {
                log.info(format_args!("cannot connect to {server}: {e}"));
                unreachable += 1;
                continue;
            }
        };
        unreachable = 0;
        log.info(format_args!("connected to {server}; request id {id}"));
        if client.write(payload.clone()).is_err() {
            client.abort();
            continue;
        }
        loop {
            match client.read() {
                Ok(reply) => {
                    let decoded = Message::decode_full(&reply).map(|d| (d.message, d.ext.found));
                    match decoded {
                        Ok((Message::Result { hash, nonce }, found)) => {
                            let _ = client.close();
                            return match found {
                                true => Outcome::Answer { hash, nonce },
                                false => Outcome::NotFound,
                            };
                        }
                        Ok((
                            Message::Progress {
                                covered,
                                total,
                                rate,
                            },
                            _,
                        )) => {
                            if let Some(show) = progress.as_mut() {
                                show(covered, total, rate);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    // A follower naming the leader (docs/replication.md): go there at
                    // once rather than wait for the loss of this connection. Ids are
                    // 1-based positions in the list, the servers' --cluster order.
                    let hint = replica::redirect::decode_not_leader(&reply);
                    if let Some(leader) = hint.filter(|l| (1..=servers.len() as u64).contains(l)) {
                        log.info(format_args!(
                            "{server} does not lead: replica {leader} does"
                        ));
                        client.abort();
                        next = leader as usize - 1;
                        redirects += 1;
                        if redirects >= servers.len() {
                            // Replicas disagreeing while a new leader settles: slow down.
                            std::thread::sleep(Duration::from_millis(params.epoch_millis));
                            redirects = 0;
                        }
                        break;
                    }
                }
                Err(e) => {
                    log.info(format_args!("{server} lost: {e}; trying the next"));
                    client.abort();
                    redirects = 0;
                    break;
                }
            }
        }
    }
    Outcome::Disconnected
}

/// A request id unlikely to collide with another client's: the process id, the time and
/// std's per-process random hasher keys, mixed.
fn request_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(t.as_nanos());
    }
    // Kept below 2^53 so that any JSON reader holds it exactly.
    hasher.finish() >> 11
}

/// Why `outcome` is not an answer to a target-mode request for `msg` in `mode`, if it is
/// not: its hash is not the nonce's hash under the mode's algorithm, or lacks the zeros
/// asked for. A server that ignores `Zeros` (the reference) answers with the minimum-mode
/// Result, which this tells apart. `None` for anything else (minimum mode, `NotFound`,
/// `Disconnected`).
pub fn not_a_target_answer(msg: &str, mode: Mode, outcome: &Outcome) -> Option<String> {
    let (Mode::Target { zeros, algo }, Outcome::Answer { hash, nonce }) = (mode, outcome) else {
        return None;
    };
    let actual = algo.hash(msg, *nonce);
    if actual != *hash {
        return Some(format!(
            "the answer is not a target-mode answer: {algo}({msg:?}, {nonce}) is {actual}, \
             not {hash} (the server may not support target mode, e.g. the reference)"
        ));
    }
    (!zeros.accepts(*hash)).then(|| {
        format!(
            "the answer is not a target-mode answer: hash {hash} has {} leading zero bits, \
             fewer than {zeros} (the server may not support target mode, e.g. the reference)",
            hash.leading_zeros()
        )
    })
}

#[cfg(test)]
mod target_answer_tests {
    use super::*;
    use bitcoin_core::hash::{Algo, Zeros};

    #[test]
    fn a_minimum_mode_answer_is_not_taken_for_a_target_answer() {
        let mode = |z| Mode::Target {
            zeros: Zeros::new(z).unwrap(),
            algo: Algo::Sha256d,
        };
        let first = |z| {
            (0..)
                .map(|n| (Algo::Sha256d.hash("m", n), n))
                .find(|(h, _)| Zeros::new(z).unwrap().accepts(*h))
                .unwrap()
        };
        let (hash, nonce) = first(6);
        let hit = Outcome::Answer { hash, nonce };
        assert_eq!(not_a_target_answer("m", mode(6), &hit), None);
        assert!(not_a_target_answer("m", mode(hash.leading_zeros() + 1), &hit).is_some());
        // The reference's answer: the sha256 minimum, not a sha256d hash.
        let (hash, nonce) = (0..1000u64)
            .map(|n| (bitcoin_core::hash::hash("m", n), n))
            .min()
            .unwrap();
        let minimum = Outcome::Answer { hash, nonce };
        assert!(not_a_target_answer("m", mode(1), &minimum).is_some());
        assert_eq!(not_a_target_answer("m", Mode::Minimum, &minimum), None);
        assert_eq!(not_a_target_answer("m", mode(6), &Outcome::NotFound), None);
    }
}
