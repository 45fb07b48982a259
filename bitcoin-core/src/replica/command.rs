//! The commands of the replicated log: what must survive a crash of the coordinator.

use core::fmt;

use serde::{Deserialize, Serialize};

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

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.client, self.id)
    }
}

/// What a request searches for. Only the minimum exists today; target mode (issue 13) adds
/// a variant here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mode {
    /// The least hash over the range, ties to the least nonce.
    #[default]
    Minimum,
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
    /// Nonces `lower..=upper` of the request were searched, and `(hash, nonce)` is their
    /// answer (verified by the leader before proposing it).
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
    /// answered that way for ever.
    Answered {
        /// The request's name.
        key: RequestKey,
        /// The answer's hash.
        hash: u64,
        /// The answer's nonce.
        nonce: u64,
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
            | Command::Answered { key, .. } => key,
        }
    }
}

impl CommandError {
    pub(super) fn from_json(error: serde_json::Error) -> Self {
        CommandError(error)
    }
}
