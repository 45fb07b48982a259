//! A miner's answer: matched to one of its jobs by content, verified, spot-checked, then
//! used, or the miner is disconnected as a liar. See the [module documentation](super).

use super::state::{ChunkId, Miner};
use super::verify;
use super::{Covered, Effect, Misbehaviour, RequestId, Scheduler};
use crate::accounting::PoolEventKind;
use std::sync::Arc;

/// What a miner's answer turned out to be.
pub(super) enum Verdict {
    /// It verifies against the miner's job at this index, and survived the spot check.
    Answers(usize),
    /// It is a lie.
    Lie(Misbehaviour),
}

impl<K: Ord + Copy> Scheduler<K> {
    /// Matches `miner`'s answer to a job, verifies and spot-checks it, and uses it or
    /// disconnects the miner.
    pub(super) fn result(&mut self, miner: K, hash: u64, nonce: u64, hint: Option<(u64, u64)>) {
        if self.answers_cancelled(miner, Some((hash, nonce)), hint) {
            return;
        }
        let verdict = match self.miners.get(&miner) {
            Some(m) if !m.jobs.is_empty() => self.verdict(m, hash, nonce, hint),
            _ => {
                self.stats.unexpected_results += 1;
                return;
            }
        };
        self.judged(miner, verdict, Some((hash, nonce)));
    }

    /// Acts on the verdict on `miner`'s answer `hit` (`None`: a target job's
    /// `"Found": false`).
    pub(super) fn judged(&mut self, miner: K, verdict: Verdict, hit: Option<(u64, u64)>) {
        let index = match verdict {
            Verdict::Answers(index) => index,
            Verdict::Lie(reason) => {
                self.stats.invalid_results += 1;
                match reason {
                    Misbehaviour::OutOfRange { .. } => self.stats.out_of_range_results += 1,
                    Misbehaviour::WrongHash { .. } | Misbehaviour::NotAHit { .. } => {
                        self.stats.wrong_hash_results += 1
                    }
                    Misbehaviour::Lazy { .. } | Misbehaviour::MissedHit { .. } => {
                        self.stats.lazy_results += 1
                    }
                }
                self.stats.miners_disconnected += 1;
                self.accounting.lied(self.now, miner, reason.clone());
                self.lose_miner(miner);
                self.effects.push_back(Effect::Disconnect { miner, reason });
                return;
            }
        };
        let Some(m) = self.miners.get_mut(&miner) else {
            return;
        };
        let Some(job) = m.jobs.remove(index) else {
            return;
        };
        // A target job's search stops at its first hit: the nonces above it were not
        // searched (the spot check vouches for those below).
        let searched = match hit {
            Some((_, nonce)) if job.mode.is_target() => {
                u128::from(nonce.saturating_sub(job.range.first())) + 1
            }
            _ => job.range.len(),
        };
        m.observe(&job, searched, self.now);
        let chunk = self.chunks.get(&job.chunk);
        let fresh = chunk.is_some();
        if let Some(r) = chunk.and_then(|c| self.requests.get_mut(&c.request)) {
            r.searched += searched;
        }
        self.accounting.credited(self.now, miner, searched, !fresh);
        if !fresh {
            self.stats.stale_results += 1;
        } else if job.mode.is_target() {
            self.complete_target(miner, job.chunk, hit);
        } else if let Some((hash, nonce)) = hit {
            self.complete(miner, job.chunk, hash, nonce);
        }
    }

    /// Judges `miner`'s answer against the jobs it holds: the job whose range is `hint`
    /// first, then the others oldest first; the first one it verifies against is
    /// spot-checked.
    fn verdict(&self, m: &Miner, hash: u64, nonce: u64, hint: Option<(u64, u64)>) -> Verdict {
        let hinted = hint.and_then(|(lower, upper)| {
            m.jobs
                .iter()
                .position(|a| (a.range.first(), a.range.last()) == (lower, upper))
        });
        let order = hinted
            .into_iter()
            .chain((0..m.jobs.len()).filter(|i| Some(*i) != hinted));
        let mut holder = None;
        for i in order {
            let a = &m.jobs[i];
            if !a.range.contains(nonce) {
                continue;
            }
            let h = self.hash_for(a.mode);
            if verify::verifies(h, &a.msg, a.range, hash, nonce) {
                return self.checked_verdict(i, a, hash, nonce);
            }
            holder.get_or_insert(i);
        }
        Verdict::Lie(match holder {
            Some(i) => Misbehaviour::WrongHash {
                nonce,
                claimed: hash,
                actual: self.hash_for(m.jobs[i].mode)(&m.jobs[i].msg, nonce),
            },
            None => Misbehaviour::OutOfRange { nonce },
        })
    }

    /// The verdict on `(hash, nonce)`, which verifies against `a` (the job at index `i`):
    /// spot-checked as its mode asks.
    pub(super) fn checked_verdict(
        &self,
        i: usize,
        a: &super::state::Assignment,
        hash: u64,
        nonce: u64,
    ) -> Verdict {
        if let crate::message::Mode::Target { zeros, .. } = a.mode {
            return self.target_verdict(i, a, hash, nonce, zeros);
        }
        match verify::spot_check(self.hash, &a.msg, a.range, hash) {
            None => Verdict::Answers(i),
            Some((nonce, better)) => Verdict::Lie(Misbehaviour::Lazy {
                claimed: hash,
                nonce,
                hash: better,
            }),
        }
    }

    /// `chunk` was answered with `(hash, nonce)` by `miner`; its other copy is withdrawn
    /// from a miner that can be told to stop; answers the request if it was the last.
    pub(super) fn complete(&mut self, miner: K, chunk: ChunkId, hash: u64, nonce: u64) {
        let Some(c) = self.chunks.get(&chunk) else {
            return;
        };
        let (request, range, len) = (c.request, c.range, c.range.len());
        self.drop_chunk(chunk, Some(miner));
        let Some(r) = self.requests.get_mut(&request) else {
            return;
        };
        r.remaining -= len;
        if let Some(covered) = self.covered.as_mut() {
            covered.push_back(Covered::new(r.client, range, hash, nonce));
        }
        r.best = Some(r.best.map_or((hash, nonce), |best| best.min((hash, nonce))));
        if r.remaining == 0 {
            self.answer(request);
        }
    }

    /// Answers `request` with its best answer (`"Found": false` for a target request
    /// without one), forgets it, and activates its client's next request.
    pub(super) fn answer(&mut self, request: RequestId) {
        let Some(done) = self.requests.remove(&request) else {
            return;
        };
        for chunk in &done.chunks {
            self.chunks.remove(chunk);
        }
        self.stats.results_sent += 1;
        let answered = PoolEventKind::RequestAnswered {
            client: done.client,
            request,
            msg: Arc::clone(&done.msg),
            lower: done.range.first(),
            upper: done.range.last(),
            mode: done.mode,
            answer: done.best,
            nonces: done.searched,
            took: self.now.saturating_duration_since(done.accepted),
        };
        self.accounting.record(self.now, answered);
        self.effects.push_back(match done.best {
            Some((hash, nonce)) => Effect::SendResult {
                client: done.client,
                request,
                hash,
                nonce,
            },
            None => {
                self.stats.not_found_sent += 1;
                Effect::SendNotFound {
                    client: done.client,
                    request,
                }
            }
        });
        let next = self
            .clients
            .get_mut(&done.client)
            .and_then(|cl| cl.waiting.pop_front().inspect(|w| cl.active = w.id));
        match next {
            Some(w) => self.activate(done.client, w),
            None => {
                self.clients.remove(&done.client);
            }
        }
    }
}
