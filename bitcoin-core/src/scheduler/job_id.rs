//! Answers matched by job id: a miner that announced `cancel` is sent each job with a
//! `"Job"` id ([`super::Effect::SendJob`]'s `job`) and echoes it in its Result.
//!
//! **Why.** A Cancel and the answer to the job it withdraws can cross on the wire, and the
//! freed miner is at once given new work, often over the same nonces (the next request's
//! job over the same range, or the same message over an overlapping range). Matching such
//! an answer by its content would judge it against the new job: a `"Found": false` carries
//! no hash at all, and a minimum-mode answer over an overlapping range of the same message
//! verifies against both jobs. The client would get a wrong answer, or an honest miner
//! would be disconnected as a liar.
//!
//! **Rule.** A Result carrying a job id from a miner that announced `cancel` is matched by
//! that id only: a job it holds with that id → judged against that job alone (verified and
//! spot-checked as any answer); one of its remembered withdrawn jobs
//! ([`super::state::CANCELLED_KEPT`]) → stale: counted, never credited, never a lie; any
//! other id → counted as unexpected and ignored. Ids are unique for the scheduler's
//! lifetime, so no id ever names two jobs. Results without an id (and ids from miners that
//! were never sent any) keep the content matching of [`super::answer`].

use lsp_core::Timestamp;

use super::answer::Verdict;
use super::Scheduler;
use crate::message::Cap;

impl<K: Ord + Copy> Scheduler<K> {
    /// `miner` answered the job it was sent with id `job`: `hit` is its `(hash, nonce)`
    /// (the minimum, or a target job's first qualifying nonce), `None` for
    /// `"Found": false`. Judged against that job only (see the module documentation); a
    /// lie disconnects the miner as in [`Scheduler::handle_result`]. From a miner that did
    /// not announce `cancel` (it was never sent ids) the id is ignored: `hint` (the range it
    /// echoed) and the content match as in [`Scheduler::handle_result`] and
    /// [`Scheduler::handle_not_found`].
    pub fn handle_job_answer(
        &mut self,
        now: Timestamp,
        miner: K,
        job: u64,
        hit: Option<(u64, u64)>,
        hint: Option<(u64, u64)>,
    ) {
        let caps = self.miners.get(&miner).map(|m| m.caps);
        if !caps.is_some_and(|c| c.has(Cap::Cancel)) {
            return match hit {
                Some((hash, nonce)) => self.handle_result(now, miner, hash, nonce, hint),
                None => self.handle_not_found(now, miner, hint),
            };
        }
        self.advance(now);
        self.job_answer(miner, job, hit);
        self.dispatch();
    }

    /// Matches `miner`'s answer to its job `job` and acts on it.
    fn job_answer(&mut self, miner: K, job: u64, hit: Option<(u64, u64)>) {
        let Some(m) = self.miners.get(&miner) else {
            self.stats.unexpected_results += 1;
            return;
        };
        if let Some(i) = m.jobs.iter().position(|a| a.job == job) {
            let a = &m.jobs[i];
            let verdict = match hit {
                Some((hash, nonce)) => Some(self.hit_verdict(i, a, hash, nonce)),
                None => self.not_found_verdict_on(i, a),
            };
            match verdict {
                Some(verdict) => self.judged(miner, verdict, hit),
                // `"Found": false` for a minimum-mode job: no answer to it.
                None => self.stats.unexpected_results += 1,
            }
        } else if m.cancelled.iter().any(|a| a.job == job) {
            self.stats.stale_results += 1;
        } else {
            self.stats.unexpected_results += 1;
        }
    }

    /// The verdict on `(hash, nonce)` as the answer to the job `a` (index `i`) alone.
    fn hit_verdict(
        &self,
        i: usize,
        a: &super::state::Assignment,
        hash: u64,
        nonce: u64,
    ) -> Verdict {
        use super::Misbehaviour;
        if !a.range.contains(nonce) {
            return Verdict::Lie(Misbehaviour::OutOfRange { nonce });
        }
        let h = self.hash_for(a.mode);
        if !super::verify::verifies(h, &a.msg, a.range, hash, nonce) {
            return Verdict::Lie(Misbehaviour::WrongHash {
                nonce,
                claimed: hash,
                actual: h(&a.msg, nonce),
            });
        }
        self.checked_verdict(i, a, hash, nonce)
    }
}
