//! The replicated state machine: requests, the nonces covered and their best answer so far,
//! and the answers given. Pure and deterministic (`BTreeMap`s only): every replica that
//! applies the same log holds the same state, byte for byte in its snapshot.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::command::{Command, Mode, RequestKey};

/// One request as the log knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The text whose nonces are hashed.
    pub message: String,
    /// First nonce, inclusive.
    pub lower: u64,
    /// Last nonce, inclusive.
    pub upper: u64,
    /// What is searched for.
    pub mode: Mode,
    /// Nonces searched: disjoint, non-adjacent inclusive intervals `start -> end`.
    pub covered: BTreeMap<u64, u64>,
    /// The least `(hash, nonce)` over the covered nonces.
    pub best: Option<(u64, u64)>,
    /// The answer given, once [`Command::Answered`] is applied.
    pub answer: Option<(u64, u64)>,
}

impl Request {
    /// Whether every nonce of the range has been searched.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.covered.get(&self.lower) == Some(&self.upper)
    }

    /// The nonces of the range not yet searched, as inclusive intervals in ascending order.
    #[must_use]
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut next = Some(self.lower);
        for (&start, &end) in &self.covered {
            if let Some(from) = next {
                if start > from {
                    gaps.push((from, start - 1));
                }
            }
            next = end.checked_add(1);
        }
        if let Some(from) = next {
            if from <= self.upper {
                gaps.push((from, self.upper));
            }
        }
        gaps
    }

    /// Adds `lower..=upper` (inside the range) to the covered nonces, merging neighbours.
    fn cover(&mut self, lower: u64, upper: u64) {
        let (mut start, mut end) = (lower, upper);
        // Intervals that overlap or touch [start, end]: those starting at most end + 1 and
        // ending at least start - 1.
        let touching: Vec<(u64, u64)> = self
            .covered
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|&(_, &e)| e.saturating_add(1) >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.covered.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.covered.insert(start, end);
    }
}

/// What applying one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// A new request (`fresh`), or one already known (a resubmission: nothing changed).
    Accepted {
        /// The request.
        key: RequestKey,
        /// Whether it was new.
        fresh: bool,
    },
    /// Nonces were covered; `complete` once the whole range is.
    Covered {
        /// The request.
        key: RequestKey,
        /// Whether the whole range is now searched.
        complete: bool,
    },
    /// The request is answered with `(hash, nonce)`.
    Answered {
        /// The request.
        key: RequestKey,
        /// The answer's hash.
        hash: u64,
        /// The answer's nonce.
        nonce: u64,
    },
    /// The command changed nothing, and why.
    Ignored(&'static str),
}

/// The replicated state machine. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedState {
    /// Requests unanswered and answered (the latter kept, at most `max_answered` of them, so
    /// that a resubmission is answered the same way).
    requests: Vec<(RequestKey, Request)>,
    /// Answered requests, oldest first.
    answered: VecDeque<RequestKey>,
    /// How many answered requests are remembered.
    max_answered: usize,
    /// Index of the last log entry applied.
    applied_index: u64,
    #[serde(skip)]
    map: BTreeMap<RequestKey, Request>,
}

impl ReplicatedState {
    /// An empty state remembering at most `max_answered` answered requests (at least 1).
    #[must_use]
    pub fn new(max_answered: usize) -> Self {
        ReplicatedState {
            requests: Vec::new(),
            answered: VecDeque::new(),
            max_answered: max_answered.max(1),
            applied_index: 0,
            map: BTreeMap::new(),
        }
    }

    /// Applies the command of log entry `index`. Deterministic; never fails: a command
    /// that makes no sense (unknown request, range outside it, an answer that is not the
    /// best) changes nothing and says why.
    pub fn apply(&mut self, index: u64, command: &Command) -> Applied {
        self.applied_index = self.applied_index.max(index);
        match command {
            Command::Accept {
                key,
                message,
                lower,
                upper,
                mode,
            } => {
                if lower > upper {
                    return Applied::Ignored("empty range");
                }
                let fresh = !self.map.contains_key(key);
                if fresh {
                    let request = Request {
                        message: message.clone(),
                        lower: *lower,
                        upper: *upper,
                        mode: *mode,
                        covered: BTreeMap::new(),
                        best: None,
                        answer: None,
                    };
                    self.map.insert(key.clone(), request);
                }
                Applied::Accepted {
                    key: key.clone(),
                    fresh,
                }
            }
            Command::RangeDone {
                key,
                lower,
                upper,
                hash,
                nonce,
            } => {
                let Some(request) = self.map.get_mut(key) else {
                    return Applied::Ignored("unknown request");
                };
                if request.answer.is_some() {
                    return Applied::Ignored("already answered");
                }
                if lower > upper || *lower < request.lower || *upper > request.upper {
                    return Applied::Ignored("range outside the request");
                }
                if nonce < lower || nonce > upper {
                    return Applied::Ignored("nonce outside the range");
                }
                request.cover(*lower, *upper);
                let candidate = (*hash, *nonce);
                request.best = Some(request.best.map_or(candidate, |b| b.min(candidate)));
                Applied::Covered {
                    key: key.clone(),
                    complete: request.complete(),
                }
            }
            Command::Answered { key, hash, nonce } => {
                let Some(request) = self.map.get_mut(key) else {
                    return Applied::Ignored("unknown request");
                };
                if request.answer.is_some() {
                    return Applied::Ignored("already answered");
                }
                if !request.complete() || request.best != Some((*hash, *nonce)) {
                    return Applied::Ignored("not the best answer of a complete range");
                }
                request.answer = Some((*hash, *nonce));
                request.covered.clear();
                self.answered.push_back(key.clone());
                while self.answered.len() > self.max_answered {
                    if let Some(old) = self.answered.pop_front() {
                        self.map.remove(&old);
                    }
                }
                Applied::Answered {
                    key: key.clone(),
                    hash: *hash,
                    nonce: *nonce,
                }
            }
        }
    }

    /// The request named `key`, if known (unanswered, or answered and still remembered).
    #[must_use]
    pub fn request(&self, key: &RequestKey) -> Option<&Request> {
        self.map.get(key)
    }

    /// Every known request, in key order.
    pub fn requests(&self) -> impl Iterator<Item = (&RequestKey, &Request)> {
        self.map.iter()
    }

    /// The requests not yet answered, in key order.
    pub fn unanswered(&self) -> impl Iterator<Item = (&RequestKey, &Request)> {
        self.map.iter().filter(|(_, r)| r.answer.is_none())
    }

    /// Index of the last log entry applied.
    #[must_use]
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The state as bytes (JSON), for a Raft snapshot.
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        let mut copy = ReplicatedState {
            requests: self
                .map
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            answered: self.answered.clone(),
            max_answered: self.max_answered,
            applied_index: self.applied_index,
            map: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        copy.requests.clear();
        bytes
    }

    /// The state a [`ReplicatedState::snapshot`] was taken of.
    pub fn restore(bytes: &[u8]) -> Result<Self, super::command::CommandError> {
        let mut state: ReplicatedState =
            serde_json::from_slice(bytes).map_err(super::command::CommandError::from_json)?;
        state.map = std::mem::take(&mut state.requests).into_iter().collect();
        state.max_answered = state.max_answered.max(1);
        Ok(state)
    }
}
