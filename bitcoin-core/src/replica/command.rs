//! The commands of the replicated log: what must survive a crash of the coordinator.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Algo, Zeros};
use crate::message::Mode as MessageMode;
use crate::scheduler::{Covered, Covers};

use super::state::Outcome;

/// Names a request across replicas and restarts: the client's key (its address, or the id
/// it chose) and the request's id within it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestKey {
    /// The client: for a client that sends an `"Id"`, a stable name of its own choosing;
    /// otherwise whatever the leader uses to tell clients apart.
    pub client: String,
    /// The request's id within that client.
    pub id: u64,
}

impl RequestKey {
    /// The key of a request that carried `"Id": id`: shared by every client, so that a
    /// client resubmitting it to another replica is answered once.
    #[must_use]
    pub fn of_id(id: u64) -> Self {
        RequestKey {
            client: "id".into(),
            id,
        }
    }
}

impl RequestKey {
    /// The `"Id"` a Request's payload carries, if any (read exactly as `Id`; a value that
    /// is not a u64 is as none).
    #[must_use]
    pub fn id_in(payload: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct IdField {
            #[serde(rename = "Id")]
            id: Option<u64>,
        }
        serde_json::from_slice::<IdField>(payload).ok()?.id
    }
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.client, self.id)
    }
}

/// What a client asked for: an [`Command::Accept`] without its key. A request id that
/// comes again must ask for the same, or it is refused: it would otherwise be given the
/// answer to another request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The text whose nonces are hashed.
    pub message: String,
    /// First nonce, inclusive.
    pub lower: u64,
    /// Last nonce, inclusive.
    pub upper: u64,
    /// What is searched for.
    pub mode: Mode,
}

impl Asked {
    /// The Accept of this request under `key`.
    #[must_use]
    pub fn accept(self, key: RequestKey) -> Command {
        Command::Accept {
            key,
            message: self.message,
            lower: self.lower,
            upper: self.upper,
            mode: self.mode,
        }
    }
}

/// What a request searches for, as the log holds it (the wire's
/// [`crate::message::Mode`], with a stable JSON form).
///
/// JSON: `"Minimum"` (every entry written before target mode existed), or
/// `{"Target":{"zeros":Z,"algo":"sha256"|"sha256d"}}`. A `zeros` outside 1 ..= 64 or an
/// unknown `algo` does not decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mode {
    /// The least hash over the range, ties to the least nonce.
    #[default]
    Minimum,
    /// The smallest nonce of the range whose hash under `algo` has at least `zeros`
    /// leading zero bits, or none (issue 13, `docs/miner.md` §9).
    Target {
        /// The difficulty.
        #[serde(with = "zeros_json")]
        zeros: Zeros,
        /// The hash.
        #[serde(with = "algo_json")]
        algo: Algo,
    },
}

impl Mode {
    /// Whether this is target mode.
    #[must_use]
    pub fn is_target(self) -> bool {
        matches!(self, Mode::Target { .. })
    }
}

impl From<MessageMode> for Mode {
    fn from(mode: MessageMode) -> Self {
        match mode {
            MessageMode::Minimum => Mode::Minimum,
            MessageMode::Target { zeros, algo } => Mode::Target { zeros, algo },
        }
    }
}

impl From<Mode> for MessageMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Minimum => MessageMode::Minimum,
            Mode::Target { zeros, algo } => MessageMode::Target { zeros, algo },
        }
    }
}

/// [`Zeros`] as a JSON integer, checked on the way in.
mod zeros_json {
    use super::{Deserialize, Deserializer, Serializer, Zeros};

    pub(super) fn serialize<S: Serializer>(zeros: &Zeros, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(zeros.get())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeros, D::Error> {
        let n = u32::deserialize(d)?;
        Zeros::new(n).map_err(serde::de::Error::custom)
    }
}

/// [`Algo`] as its name, checked on the way in.
mod algo_json {
    use super::{Algo, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(algo: &Algo, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(algo.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Algo, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One entry of the replicated log. Commands are applied in log order by every replica's
/// [`crate::replica::ReplicatedState`]; applying one is deterministic and idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// The leader accepted a request. A second `Accept` of the same key is a no-op (a client
    /// resubmitting to a new leader).
    Accept {
        /// The request's name.
        key: RequestKey,
        /// The text whose nonces are hashed.
        message: String,
        /// First nonce, inclusive.
        lower: u64,
        /// Last nonce, inclusive.
        upper: u64,
        /// What is searched for.
        mode: Mode,
    },
    /// Nonces `lower..=upper` of a minimum-mode request were searched, and `(hash, nonce)`
    /// is their answer (verified by the leader before proposing it).
    RangeDone {
        /// The request's name.
        key: RequestKey,
        /// First nonce searched, inclusive.
        lower: u64,
        /// Last nonce searched, inclusive.
        upper: u64,
        /// The least hash of that range.
        hash: u64,
        /// Its nonce.
        nonce: u64,
    },
    /// The leader is about to send this answer to the client; once applied, the request is
    /// answered that way for ever. In target mode, a hit: the smallest qualifying nonce.
    Answered {
        /// The request's name.
        key: RequestKey,
        /// The answer's hash.
        hash: u64,
        /// The answer's nonce.
        nonce: u64,
    },
    /// A chunk `lower..=upper` of a target-mode request was searched (verified and
    /// spot-checked by the leader). `hit: None`: no nonce of the chunk qualifies.
    /// `hit: Some((hash, nonce))`: `nonce` is the chunk's smallest qualifying nonce (the
    /// nonces above it were not searched; the search of a chunk stops at its first hit).
    ///
    /// A variant of its own rather than a field added to [`Command::RangeDone`]: a binary
    /// from before target mode fails to decode it instead of applying it as a minimum.
    TargetDone {
        /// The request's name.
        key: RequestKey,
        /// First nonce of the chunk, inclusive.
        lower: u64,
        /// Last nonce of the chunk, inclusive.
        upper: u64,
        /// Its first hit, if any.
        hit: Option<(u64, u64)>,
    },
    /// Like [`Command::Answered`], for a target-mode request of which no nonce qualifies:
    /// the client is written a Result with `"Found": false`.
    AnsweredNotFound {
        /// The request's name.
        key: RequestKey,
    },
}

/// A log entry that does not decode as a [`Command`].
#[derive(Debug)]
pub struct CommandError(serde_json::Error);

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed command: {}", self.0)
    }
}

impl std::error::Error for CommandError {}

impl Command {
    /// The bytes stored in a log entry (JSON).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        // Serializing a plain enum of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a log entry's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CommandError> {
        serde_json::from_slice(bytes).map_err(CommandError)
    }

    /// The request the command is about.
    #[must_use]
    pub fn key(&self) -> &RequestKey {
        match self {
            Command::Accept { key, .. }
            | Command::RangeDone { key, .. }
            | Command::Answered { key, .. }
            | Command::TargetDone { key, .. }
            | Command::AnsweredNotFound { key } => key,
        }
    }
}

impl CommandError {
    pub(super) fn from_json(error: serde_json::Error) -> Self {
        CommandError(error)
    }
}

impl Command {
    /// The command that logs the chunk `c` of request `key` the scheduler verified:
    /// `TargetDone` for a target chunk (with its first hit, or none), `RangeDone` else.
    #[must_use]
    pub fn chunk_done<K>(key: RequestKey, c: &Covered<K>) -> Command {
        let (lower, upper) = (c.lower, c.upper);
        match c.covers {
            Covers::FirstHit | Covers::NoHit => Command::TargetDone {
                key,
                lower,
                upper,
                hit: (c.covers == Covers::FirstHit).then_some((c.hash, c.nonce)),
            },
            _ => Command::RangeDone {
                key,
                lower,
                upper,
                hash: c.hash,
                nonce: c.nonce,
            },
        }
    }

    /// The command that answers `key` with `outcome`.
    #[must_use]
    pub fn answering(key: RequestKey, outcome: Outcome) -> Command {
        match outcome {
            Outcome::Found { hash, nonce } => Command::Answered { key, hash, nonce },
            Outcome::NotFound => Command::AnsweredNotFound { key },
        }
    }
}
