//! Target mode and cancellation: requests that ask for the smallest nonce whose hash has
//! `z` leading zero bits ([`Mode::Target`]), and the Cancel that withdraws a job from a
//! miner that announced `cancel`.
//!
//! **Who runs what.** A target job goes only to a miner whose Join listed the caps its mode
//! needs ([`Mode::needs`]: `target`, and `sha256d` for that hash), fresh, backup or
//! re-issued alike; while no such miner is joined, the request waits. Jobs are cut from
//! the front of the request's unassigned nonces, so they go out in ascending nonce order
//! (a lost miner's job goes back to the front, to be handed out next).
//!
//! **A hit.** When a job answers with a verified qualifying nonce `n` that is the
//! request's smallest so far, nothing above `n` is handed out any more (the unassigned
//! nonces above `n` are dropped) and every running job wholly above `n` is withdrawn:
//! cancelled on the miners that announced `cancel` ([`Effect::Cancel`]), and on the others
//! left to finish, their answers then stale. Jobs below `n` go on. The request is answered
//! as soon as no nonce below its smallest hit is unanswered: the hit is then provably the
//! smallest qualifying nonce of the range. If every job answers `"Found": false`, the
//! client gets `"Found": false` ([`Effect::SendNotFound`]).
//!
//! **Verification**, as in minimum mode ([`super::verify`]): the reported nonce must lie in
//! the job and hash to the reported hash under the request's algorithm, that hash must
//! have the zeros asked for ([`Misbehaviour::NotAHit`]), and [`super::SPOT_CHECKS`] nonces
//! sampled from the part of the job the miner says holds no hit (below its nonce, or the
//! whole job for `"Found": false`) must not qualify ([`Misbehaviour::MissedHit`]). A
//! `"Found": false` is matched to the job whose range the miner echoed, else to its oldest
//! target job.
//!
//! **Cancellation.** Besides the jobs above a hit, the scheduler withdraws, on the miners
//! that announced `cancel`, every job of a request whose client is lost (in both modes) and
//! the other copy of a job answered first by its backup or re-issue. A withdrawn job no
//! longer occupies its miner, which gets new work at once. Each miner remembers its last
//! [`CANCELLED_KEPT`] withdrawn jobs, so an answer that crossed the Cancel on the wire is
//! counted as stale instead of taken for a lie: by its job id when it echoes one (see
//! [`super::job_id`]; the only airtight way, as the miner may already hold a new job its
//! content verifies against), else by content, only while no job it holds matches it.

use std::sync::Arc;

use lsp_core::Timestamp;

use super::answer::Verdict;
use super::range::NonceRange;
use super::state::{Assignment, ChunkId, Miner, CANCELLED_KEPT};
use super::verify::{self, HashFn};
use super::{Covered, Effect, Misbehaviour, RequestError, RequestId, Scheduler};
use crate::hash::{Algo, Zeros};
use crate::message::{Cap, Caps, Mode};

/// [`crate::hash::hash_sha256d`] as a [`HashFn`].
fn sha256d(msg: &str, nonce: u64) -> u64 {
    crate::hash::hash_sha256d(msg, nonce)
}

impl<K: Ord + Copy> Scheduler<K> {
    /// `miner` sent Join announcing `caps`: like [`Scheduler::handle_miner_joined`], and it
    /// may be given target jobs its caps allow and be sent Cancels if it listed `cancel`.
    pub fn handle_miner_joined_with(&mut self, now: Timestamp, miner: K, caps: Caps) {
        self.advance(now);
        self.join(miner, caps);
        self.dispatch();
    }

    /// `client` asks for `mode` over `msg` and `lower ..= upper`: like
    /// [`Scheduler::handle_request`] (which is this with [`Mode::Minimum`]), the same
    /// refusals.
    pub fn handle_request_in(
        &mut self,
        now: Timestamp,
        client: K,
        msg: impl Into<Arc<str>>,
        lower: u64,
        upper: u64,
        mode: Mode,
    ) -> Result<RequestId, RequestError> {
        self.advance(now);
        let id = self.request(client, msg.into(), lower, upper, mode);
        self.dispatch();
        id
    }

    /// `miner` answered a target job with `"Found": false`; `hint` is the range it echoed.
    /// Matched to the job with that range, else to its oldest target job; spot-checked;
    /// a lie disconnects it as in [`Scheduler::handle_result`]. Counted and ignored if it
    /// holds no target job.
    pub fn handle_not_found(&mut self, now: Timestamp, miner: K, hint: Option<(u64, u64)>) {
        self.advance(now);
        if !self.answers_cancelled(miner, None, hint) {
            match self
                .miners
                .get(&miner)
                .and_then(|m| self.not_found_verdict(m, hint))
            {
                Some(verdict) => self.judged(miner, verdict, None),
                None => self.stats.unexpected_results += 1,
            }
        }
        self.dispatch();
    }

    /// The hash that jobs of `mode` are verified with.
    pub(super) fn hash_for(&self, mode: Mode) -> HashFn {
        match mode {
            Mode::Target {
                algo: Algo::Sha256d,
                ..
            } => sha256d,
            _ => self.hash,
        }
    }

    /// Whether `miner` may be given a job of `request`.
    pub(super) fn capable(&self, miner: K, request: RequestId) -> bool {
        match (self.miners.get(&miner), self.requests.get(&request)) {
            (Some(m), Some(r)) => m.can_run(r.mode),
            _ => false,
        }
    }

    /// The verdict on a verified hit `(hash, nonce)` of the target job `a` (index `i`).
    pub(super) fn target_verdict(
        &self,
        i: usize,
        a: &Assignment,
        hash: u64,
        nonce: u64,
        zeros: Zeros,
    ) -> Verdict {
        if !zeros.accepts(hash) {
            let zeros = zeros.get();
            return Verdict::Lie(Misbehaviour::NotAHit { nonce, hash, zeros });
        }
        let below = nonce
            .checked_sub(1)
            .and_then(|last| NonceRange::new(a.range.first(), last));
        let missed =
            below.and_then(|r| verify::target_spot_check(self.hash_for(a.mode), &a.msg, r, zeros));
        match missed {
            None => Verdict::Answers(i),
            Some((skipped, h)) => Verdict::Lie(Misbehaviour::MissedHit {
                reported: Some(nonce),
                nonce: skipped,
                hash: h,
            }),
        }
    }

    /// The verdict on a `"Found": false` from `m`, or `None` if it holds no target job.
    fn not_found_verdict(&self, m: &Miner, hint: Option<(u64, u64)>) -> Option<Verdict> {
        let is_target = |a: &Assignment| a.mode.is_target();
        let hinted = hint.and_then(|(lower, upper)| {
            m.jobs
                .iter()
                .position(|a| is_target(a) && (a.range.first(), a.range.last()) == (lower, upper))
        });
        let i = hinted.or_else(|| m.jobs.iter().position(is_target))?;
        self.not_found_verdict_on(i, &m.jobs[i])
    }

    /// The verdict on a `"Found": false` for `a` (index `i`), or `None` if it is not a
    /// target job.
    pub(super) fn not_found_verdict_on(&self, i: usize, a: &Assignment) -> Option<Verdict> {
        let Mode::Target { zeros, .. } = a.mode else {
            return None;
        };
        Some(
            match verify::target_spot_check(self.hash_for(a.mode), &a.msg, a.range, zeros) {
                None => Verdict::Answers(i),
                Some((nonce, hash)) => Verdict::Lie(Misbehaviour::MissedHit {
                    reported: None,
                    nonce,
                    hash,
                }),
            },
        )
    }

    /// Whether `miner`'s answer without a `"Job"` id (`hit`, or `"Found": false` with the
    /// echoed `hint`) may answer a job withdrawn from it; then it is counted stale and that
    /// withdrawn job forgotten (a job is answered at most once).
    ///
    /// Deliberately conservative: such an answer is stale whenever it fits a withdrawn job
    /// (a hit verifying against it, or a `"Found": false` echoing its bounds), even if it
    /// also fits a job the miner holds. Without an id nothing tells the two apart, and
    /// crediting the held job could hand its client a wrong answer; taking an honest
    /// answer for stale only delays that job until its lease re-issues it.
    pub(super) fn answers_cancelled(
        &mut self,
        miner: K,
        hit: Option<(u64, u64)>,
        hint: Option<(u64, u64)>,
    ) -> bool {
        let Some(m) = self.miners.get(&miner) else {
            return false;
        };
        let bounds = |a: &Assignment| (a.range.first(), a.range.last());
        let withdrawn = match hit {
            None => m.cancelled.iter().position(|a| Some(bounds(a)) == hint),
            Some((hash, nonce)) => m.cancelled.iter().position(|a| {
                verify::verifies(self.hash_for(a.mode), &a.msg, a.range, hash, nonce)
            }),
        };
        let Some(i) = withdrawn else {
            return false;
        };
        if let Some(m) = self.miners.get_mut(&miner) {
            m.cancelled.remove(i);
        }
        self.stats.stale_results += 1;
        true
    }

    /// Withdraws `chunk` of `request` from `miner` if it announced `cancel` and holds it:
    /// the job is forgotten (remembered as cancelled) and [`Effect::Cancel`] emitted.
    pub(super) fn withdraw(&mut self, miner: K, chunk: ChunkId, request: RequestId) {
        let Some(m) = self.miners.get_mut(&miner) else {
            return;
        };
        if !m.caps.has(Cap::Cancel) {
            return;
        }
        let Some(i) = m.jobs.iter().position(|a| a.chunk == chunk) else {
            return;
        };
        let Some(job) = m.jobs.remove(i) else {
            return;
        };
        self.effects.push_back(Effect::Cancel {
            miner,
            request,
            msg: Arc::clone(&job.msg),
            lower: job.range.first(),
            upper: job.range.last(),
            job: Some(job.job),
        });
        if m.cancelled.len() >= CANCELLED_KEPT {
            m.cancelled.pop_front();
        }
        m.cancelled.push_back(job);
        self.stats.cancelled_jobs += 1;
    }

    /// Forgets `chunk` (if it still runs) and withdraws it from its runners other than
    /// `except`.
    pub(super) fn drop_chunk(&mut self, chunk: ChunkId, except: Option<K>) {
        let Some(c) = self.chunks.remove(&chunk) else {
            return;
        };
        if let Some(r) = self.requests.get_mut(&c.request) {
            r.chunks.remove(&chunk);
        }
        for runner in c.runners.into_iter().filter(|r| Some(*r) != except) {
            self.withdraw(runner, chunk, c.request);
        }
    }

    /// `miner` answered the target job `chunk`: `hit` is its verified smallest qualifying
    /// `(hash, nonce)`, or `None`. Cuts the request above a new smallest hit, and answers
    /// it once nothing below its hit (or nothing at all) is unanswered.
    pub(super) fn complete_target(&mut self, miner: K, chunk: ChunkId, hit: Option<(u64, u64)>) {
        let Some((request, range)) = self.chunks.get(&chunk).map(|c| (c.request, c.range)) else {
            return;
        };
        self.drop_chunk(chunk, Some(miner));
        let Some(r) = self.requests.get_mut(&request) else {
            return;
        };
        if let Some(covered) = self.covered.as_mut() {
            covered.push_back(Covered::target(r.client, range, hit));
        }
        if let Some((hash, nonce)) = hit {
            if r.best.is_none_or(|(_, best)| nonce < best) {
                r.best = Some((hash, nonce));
                r.unassigned.truncate_above(nonce);
                let above: Vec<ChunkId> = r
                    .chunks
                    .iter()
                    .copied()
                    .filter(|id| self.chunks.get(id).is_some_and(|c| c.range.first() > nonce))
                    .collect();
                for id in above {
                    self.drop_chunk(id, None);
                }
            }
        }
        let Some(r) = self.requests.get_mut(&request) else {
            return;
        };
        r.remaining = r.unassigned.len()
            + r.chunks
                .iter()
                .filter_map(|id| self.chunks.get(id))
                .map(|c| c.range.len())
                .sum::<u128>();
        if r.remaining == 0 {
            self.answer(request);
        }
    }
}
