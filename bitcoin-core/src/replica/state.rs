//! The replicated state machine: requests, the nonces covered and their best answer so far,
//! and the answers given. Pure and deterministic (`BTreeMap`s only): every replica that
//! applies the same log holds the same state, byte for byte in its snapshot.
//!
//! A minimum-mode request is answerable once every nonce is covered, with the least
//! `(hash, nonce)`. A target-mode request is answerable once every nonce below its
//! smallest known hit is covered (that hit is then the range's smallest qualifying nonce,
//! whatever lies above it), or, with no hit, once every nonce is covered (`"Found": false`).
//! Snapshots of minimum-mode requests are the same bytes as before target mode existed.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::command::{Asked, Command, Mode, RequestKey};

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
    /// The least `(hash, nonce)` over the covered nonces; in target mode, the hit with the
    /// smallest nonce.
    pub best: Option<(u64, u64)>,
    /// The answer given, once [`Command::Answered`] is applied.
    pub answer: Option<(u64, u64)>,
    /// Whether the request was answered `"Found": false`
    /// ([`Command::AnsweredNotFound`], target mode only). Absent from snapshots when
    /// false, so that a minimum-mode request's snapshot is what it was before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub not_found: bool,
}

impl Request {
    /// Whether this is the request `asked` describes (same text, range and mode).
    #[must_use]
    pub fn asks(&self, asked: &Asked) -> bool {
        self.message == asked.message
            && (self.lower, self.upper, self.mode) == (asked.lower, asked.upper, asked.mode)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How a request is (or may be) answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A Result with this hash and nonce.
    Found {
        /// The hash.
        hash: u64,
        /// The nonce.
        nonce: u64,
    },
    /// A target-mode Result with `"Found": false`.
    NotFound,
}

impl Request {
    /// Whether every nonce of the range has been searched.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.covered.get(&self.lower) == Some(&self.upper)
    }

    /// Whether the request has been answered (found or not).
    #[must_use]
    pub fn answered(&self) -> bool {
        self.answer.is_some() || self.not_found
    }

    /// The answer given, if any.
    #[must_use]
    pub fn outcome(&self) -> Option<Outcome> {
        match (self.answer, self.not_found) {
            (Some((hash, nonce)), _) => Some(Outcome::Found { hash, nonce }),
            (None, true) => Some(Outcome::NotFound),
            (None, false) => None,
        }
    }

    /// The answer the covered nonces prove, if they prove one (see the
    /// [module documentation](self)); `None` once answered.
    #[must_use]
    pub fn answerable(&self) -> Option<Outcome> {
        if self.answered() {
            return None;
        }
        let found = |(hash, nonce)| Outcome::Found { hash, nonce };
        match self.mode {
            Mode::Target { .. } => match self.best {
                // Every nonce from `lower` up to the hit is covered (the hit itself is).
                Some(hit) => self
                    .covered
                    .get(&self.lower)
                    .is_some_and(|&end| end >= hit.1)
                    .then(|| found(hit)),
                None => self.complete().then_some(Outcome::NotFound),
            },
            _ => self.best.filter(|_| self.complete()).map(found),
        }
    }

    /// The nonces still to search, as inclusive intervals in ascending order: those not
    /// yet searched, and in target mode only those below the smallest known hit.
    #[must_use]
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut gaps = self.uncovered();
        if let (Mode::Target { .. }, Some((_, hit))) = (self.mode, self.best) {
            gaps.retain(|&(start, _)| start < hit);
            if let Some(last) = gaps.last_mut() {
                last.1 = last.1.min(hit - 1);
            }
        }
        gaps
    }

    /// The nonces of the range not yet searched, in ascending order.
    fn uncovered(&self) -> Vec<(u64, u64)> {
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
    /// Nonces were covered; `complete` once the request is answerable
    /// ([`Request::answerable`]: in minimum mode, once the whole range is searched).
    Covered {
        /// The request.
        key: RequestKey,
        /// Whether the request is now answerable.
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
    /// The (target-mode) request is answered `"Found": false`.
    NotFound {
        /// The request.
        key: RequestKey,
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

/// [`ReplicatedState`]'s JSON form (the same fields, in the same order), borrowing.
#[derive(Serialize)]
struct SnapshotView<'a> {
    requests: Vec<(&'a RequestKey, &'a Request)>,
    answered: &'a VecDeque<RequestKey>,
    max_answered: usize,
    applied_index: u64,
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
                        not_found: false,
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
                let request = match self.searching(key, *lower, *upper) {
                    Ok(r) if !r.mode.is_target() => r,
                    Ok(_) => return Applied::Ignored("a minimum chunk of a target request"),
                    Err(why) => return Applied::Ignored(why),
                };
                if nonce < lower || nonce > upper {
                    return Applied::Ignored("nonce outside the range");
                }
                request.cover(*lower, *upper);
                let candidate = (*hash, *nonce);
                request.best = Some(request.best.map_or(candidate, |b| b.min(candidate)));
                Applied::Covered {
                    key: key.clone(),
                    complete: request.answerable().is_some(),
                }
            }
            Command::TargetDone {
                key,
                lower,
                upper,
                hit,
            } => {
                let request = match self.searching(key, *lower, *upper) {
                    Ok(r) => r,
                    Err(why) => return Applied::Ignored(why),
                };
                let Mode::Target { zeros, .. } = request.mode else {
                    return Applied::Ignored("a target chunk of a minimum request");
                };
                match *hit {
                    None => request.cover(*lower, *upper),
                    Some((hash, nonce)) => {
                        if nonce < *lower || nonce > *upper {
                            return Applied::Ignored("nonce outside the range");
                        }
                        if !zeros.accepts(hash) {
                            return Applied::Ignored("not a hit");
                        }
                        // Searched up to the hit; nothing is known above it.
                        request.cover(*lower, nonce);
                        if request.best.is_none_or(|(_, best)| nonce < best) {
                            request.best = Some((hash, nonce));
                        }
                    }
                }
                Applied::Covered {
                    key: key.clone(),
                    complete: request.answerable().is_some(),
                }
            }
            Command::Answered { key, hash, nonce } => {
                let outcome = Outcome::Found {
                    hash: *hash,
                    nonce: *nonce,
                };
                self.answer(key, outcome)
            }
            Command::AnsweredNotFound { key } => self.answer(key, Outcome::NotFound),
        }
    }

    /// The unanswered request `key`, if `lower..=upper` is a range inside it.
    fn searching(
        &mut self,
        key: &RequestKey,
        lower: u64,
        upper: u64,
    ) -> Result<&mut Request, &'static str> {
        let request = self.map.get_mut(key).ok_or("unknown request")?;
        if request.answered() {
            return Err("already answered");
        }
        if lower > upper || lower < request.lower || upper > request.upper {
            return Err("range outside the request");
        }
        Ok(request)
    }

    /// Answers `key` with `outcome` if that is what its covered nonces prove.
    fn answer(&mut self, key: &RequestKey, outcome: Outcome) -> Applied {
        let Some(request) = self.map.get_mut(key) else {
            return Applied::Ignored("unknown request");
        };
        if request.answered() {
            return Applied::Ignored("already answered");
        }
        if request.answerable() != Some(outcome) {
            return Applied::Ignored("not the answer the covered nonces prove");
        }
        match outcome {
            Outcome::Found { hash, nonce } => request.answer = Some((hash, nonce)),
            Outcome::NotFound => request.not_found = true,
        }
        request.covered.clear();
        self.answered.push_back(key.clone());
        while self.answered.len() > self.max_answered {
            if let Some(old) = self.answered.pop_front() {
                self.map.remove(&old);
            }
        }
        let key = key.clone();
        match outcome {
            Outcome::Found { hash, nonce } => Applied::Answered { key, hash, nonce },
            Outcome::NotFound => Applied::NotFound { key },
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
        self.map.iter().filter(|(_, r)| !r.answered())
    }

    /// Index of the last log entry applied.
    #[must_use]
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The state as bytes (JSON), for a Raft snapshot. Written from borrowed parts: the
    /// requests are not copied first (the copy was a second full-size image in memory; it
    /// was not what makes a snapshot slow, see `bench replica-disk`'s longest stall).
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        let view = SnapshotView {
            requests: self.map.iter().collect(),
            answered: &self.answered,
            max_answered: self.max_answered,
            applied_index: self.applied_index,
        };
        serde_json::to_vec(&view).unwrap_or_default()
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
