//! What a run reports: its [`Outcome`], and how each client's run ended.

use std::time::Duration;

/// What a finished run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Virtual time at the end.
    pub virtual_time: Duration,
    /// Steps executed.
    pub steps: u64,
    /// The trace digest.
    pub digest: u64,
    /// Clients answered (each with the true minimum).
    pub answered: u64,
    /// Clients that crashed before their answer.
    pub crashed: u64,
    /// Clients whose connection was lost or never made.
    pub lost: u64,
    /// Jobs the service sent, backups included.
    pub jobs: u64,
    /// Backup jobs.
    pub backups: u64,
    /// Jobs given back because their miner was lost.
    pub requeued: u64,
    /// Nonces in the jobs the service sent, backups and re-issues included.
    pub nonces_sent: u128,
    /// Nonces in the requests the service accepted.
    pub nonces_requested: u128,
    /// Lazy answers (a job's first nonce, not its minimum) miners sent.
    pub lazy_answers: u64,
    /// Verified answers that came while an older job of the same miner was unanswered.
    pub out_of_order_answers: u64,
    /// Of the lazy answers, how many the server caught (and disconnected their miner
    /// for).
    pub lazy_caught: u64,
    /// Clients answered wrongly because a lazy answer escaped the spot check (allowed:
    /// the check is probabilistic; every other wrong answer is a violation).
    pub lazy_escaped: u64,
    /// Lies (wrong hash, nonce out of range, caught lazy answers) the server caught.
    pub lies_caught: u64,
    /// Jobs whose lease ended, and jobs re-issued for it.
    pub expired_leases: u64,
    /// Jobs re-issued because their lease ended.
    pub reissued: u64,
    /// Nonces of the jobs answered by results the service verified and used (stale ones
    /// included): the pool's nonces in its accounting, checked equal at every step.
    pub nonces_credited: u128,
    /// Target-mode clients answered (each with the smallest qualifying nonce, or none).
    pub target_answered: u64,
    /// Cancels the service wrote.
    pub cancels: u64,
    /// Lazy `"Found": false` answers to target jobs that held a hit (not in
    /// `lazy_answers`), and how many the spot check caught: about 1 − (1 − 2⁻ᶻ)³² each.
    pub target_lazy_answers: u64,
    /// Of those, caught.
    pub target_lazy_caught: u64,
    /// Answers carrying the `"Job"` id of a job already withdrawn from their miner (they
    /// crossed its Cancel): stale, never matched to another job.
    pub crossed_answers: u64,
    /// Of those, how many verify against (or, for `"Found": false`, name the range of) a
    /// job the miner holds at that moment: matching them by content would have taken them
    /// for that job's answer.
    pub crossed_misleading: u64,
}

/// How a client's run ended, if it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEnd {
    /// It received its Result.
    Answered,
    /// It crashed.
    Crashed,
    /// Its connection was lost, or never made.
    Lost,
}
