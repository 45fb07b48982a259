//! The miner as a sans-IO state machine: what to send, what to search and when to stop,
//! with no sockets, threads or clocks.
//!
//! [`MinerCore`] is told what happened — the connection is up
//! ([`MinerCore::handle_connected`]), a payload arrived ([`MinerCore::handle_payload`]), the
//! search it asked for finished ([`MinerCore::handle_search_finished`]), the server is lost
//! ([`MinerCore::handle_server_lost`]) — and the driver then drains
//! [`MinerCore::poll_action`]: send a message ([`Action::Send`]: Join once connected, a
//! Result per job), start a search ([`Action::Search`], at most one at a time), or exit
//! ([`Action::Exit`], once, after which nothing else happens). The real miner
//! (`apps/src/system/miner.rs`) drives it with the kernel on worker threads; the simulator
//! drives the same core with modelled search times.
//!
//! Jobs are searched one at a time, in arrival order ([`JobOrder::Arrival`]) or newest
//! first ([`JobOrder::Newest`], as a miner that searches concurrently may answer, for
//! testing servers). A payload that is not a Request is counted and ignored. At most
//! [`MAX_QUEUED`] jobs wait; a job beyond that is counted and dropped (the server's lease
//! re-issues it), so nothing the server sends grows the miner's memory without a bound.
//!
//! **Target mode** ([`crate::message::ext`]). A core built [`MinerCore::with_caps`] announces
//! its capabilities in its Join ([`Action::Announce`]); without caps its Join is the
//! reference's. A Request carrying `Zeros` is a target job ([`Job::mode`]): the driver
//! searches for the smallest qualifying nonce and reports it with
//! [`MinerCore::handle_target_finished`], and the core answers with a target Result
//! ([`Action::SendTarget`], echoing the job's range, `"Found": false` when none qualifies).
//! A Cancel naming a queued job drops it; one naming the running job makes the core emit
//! [`Action::Stop`] (the driver stops that search and forgets its answer) and start the next
//! job. A cancelled job is never answered. A Cancel naming no job is counted and ignored.
//!
//! **Job ids.** A core that announced `cancel` keeps the `"Job"` id of each Request
//! ([`Job::id`]), matches a Cancel carrying an id by that id alone, and echoes the id in
//! its answer to that job, in both modes: every answer to a job with an id is an
//! [`Action::SendTarget`] ([`Job::encode_answer`]), so the server can tell an answer that
//! crossed a Cancel from an answer to a later job over the same nonces.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::Arc;

use crate::message::{Caps, Message, Mode};

/// The most jobs that wait behind the one being searched.
pub const MAX_QUEUED: usize = 1024;

/// A job to search: the minimum of `hash(data, n)` over `lower ..= upper`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The text to hash.
    pub data: Arc<str>,
    /// First nonce.
    pub lower: u64,
    /// Last nonce (inclusive; the wire does not promise `lower <= upper`).
    pub upper: u64,
    /// What to search for: the minimum (the reference's jobs) or the first qualifying
    /// nonce.
    pub mode: Mode,
    /// The server's `"Job"` id for it, kept only by a core that announced `cancel`; echoed
    /// in its answer.
    pub id: Option<u64>,
}

impl Job {
    /// How many nonces it holds (0 if `lower > upper`).
    pub fn nonces(&self) -> u128 {
        if self.lower > self.upper {
            0
        } else {
            u128::from(self.upper - self.lower) + 1
        }
    }

    /// The Result answering it: `hit` is its `(hash, nonce)` (the minimum, or the first
    /// qualifying nonce), `None` for a target job's `"Found": false`; the job's range is
    /// echoed, and its id if it has one
    /// ([`crate::message::ext::encode_target_result`], [`crate::message::ext::with_job`]).
    pub fn encode_answer(&self, hit: Option<(u64, u64)>) -> Vec<u8> {
        use crate::message::ext::{encode_target_result, with_job};
        with_job(encode_target_result(hit, (self.lower, self.upper)), self.id)
    }
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this message to the server (Join, or a Result), as [`Message::encode`] writes
    /// it: the reference's bytes.
    Send(Message),
    /// Write a Join announcing these capabilities
    /// ([`crate::message::ext::encode_join`]); instead of `Send(Join)` for a core built
    /// [`MinerCore::with_caps`].
    Announce(Caps),
    /// Write the answer to the target job `job`: its smallest qualifying `(hash, nonce)`,
    /// or none; also the answer (its minimum) to a minimum-mode job with a [`Job::id`].
    /// Written with [`Job::encode_answer`] (the job's range and id echoed).
    SendTarget {
        /// The job answered.
        job: Job,
        /// Its first qualifying hash and nonce, if any.
        hit: Option<(u64, u64)>,
    },
    /// Stop searching `job`, the running one: it was cancelled. Its answer must never be
    /// reported. A [`Action::Search`] for the next job may follow.
    Stop(Job),
    /// Start searching this job, then report its answer with
    /// [`MinerCore::handle_search_finished`]. Never while another search runs.
    Search(Job),
    /// Stop: the server is lost. Nothing follows.
    Exit,
}

/// In which order queued jobs are searched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobOrder {
    /// Oldest first: answers come in the order the jobs arrived.
    #[default]
    Arrival,
    /// Newest first: answers come out of order whenever jobs queue up.
    Newest,
}

/// What the miner has done, for its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinerStats {
    /// Jobs answered.
    pub jobs: u64,
    /// Nonces in answered jobs.
    pub nonces: u128,
    /// Payloads that were not Requests; ignored.
    pub ignored: u64,
    /// Jobs dropped because [`MAX_QUEUED`] were already waiting.
    pub dropped: u64,
    /// Search answers reported while no search was running; ignored.
    pub unexpected_answers: u64,
    /// Jobs cancelled by the server (queued or running); never answered.
    pub cancelled: u64,
    /// Cancels naming no job the miner holds (already answered, or never received).
    pub unknown_cancels: u64,
    /// Requests whose `Zeros`/`Algo` were invalid, or that asked for a mode the core did
    /// not announce; ignored.
    pub unsupported: u64,
}

/// The miner's logic. See the [module documentation](self).
#[derive(Debug, Default)]
pub struct MinerCore {
    order: JobOrder,
    caps: Caps,
    joined: bool,
    exited: bool,
    /// The job being searched.
    running: Option<Job>,
    queue: VecDeque<Job>,
    actions: VecDeque<Action>,
    stats: MinerStats,
}

impl MinerCore {
    /// A miner not yet connected that searches its jobs in `order`.
    pub fn new(order: JobOrder) -> Self {
        MinerCore {
            order,
            ..MinerCore::default()
        }
    }

    /// This core, announcing `caps` in its Join and taking the target jobs they allow.
    #[must_use]
    pub fn with_caps(mut self, caps: Caps) -> Self {
        self.caps = caps;
        self
    }

    /// The capabilities it announces.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// The connection to the server is up: send Join (once).
    pub fn handle_connected(&mut self) {
        if self.exited || self.joined {
            return;
        }
        self.joined = true;
        self.actions.push_back(if self.caps.is_empty() {
            Action::Send(Message::Join)
        } else {
            Action::Announce(self.caps)
        });
    }

    /// The server sent `payload`: a Request is a job, a Cancel stops one; anything else is
    /// counted and ignored.
    pub fn handle_payload(&mut self, payload: &[u8]) {
        if self.exited {
            return;
        }
        let decoded = Message::decode_full(payload);
        let cancels = self.caps.has(crate::message::Cap::Cancel);
        match decoded.map(|d| (d.message, d.ext.mode, d.ext.job)) {
            Ok((Message::Request { data, lower, upper }, Ok(mode), id))
                if self.caps.covers(mode.needs()) =>
            {
                let job = Job {
                    data: data.into(),
                    lower,
                    upper,
                    mode,
                    id: id.filter(|_| cancels),
                };
                if self.queue.len() >= MAX_QUEUED {
                    self.stats.dropped += 1;
                } else {
                    self.queue.push_back(job);
                }
                self.start_next();
            }
            Ok((Message::Request { .. }, _, _)) => self.stats.unsupported += 1,
            Ok((Message::Cancel { data, lower, upper }, _, id)) if cancels => {
                self.cancel(&data, lower, upper, id);
            }
            Ok(_) | Err(_) => self.stats.ignored += 1,
        }
    }

    /// The server cancelled the job with id `id`, or without one the job `data`,
    /// `lower ..= upper`: drop it from the queue, or stop it if it runs.
    fn cancel(&mut self, data: &str, lower: u64, upper: u64, id: Option<u64>) {
        let is = |j: &Job| match id {
            Some(id) => j.id == Some(id),
            None => (&*j.data, j.lower, j.upper) == (data, lower, upper),
        };
        if let Some(i) = self.queue.iter().position(is) {
            self.queue.remove(i);
            self.stats.cancelled += 1;
        } else if self.running.as_ref().is_some_and(is) {
            if let Some(job) = self.running.take() {
                self.actions.push_back(Action::Stop(job));
            }
            self.stats.cancelled += 1;
            self.start_next();
        } else {
            self.stats.unknown_cancels += 1;
        }
    }

    /// The target search asked for by the last [`Action::Search`] finished: `hit` is its
    /// smallest qualifying `(hash, nonce)`, or `None`. Answer it, and start the next job.
    /// Counted and ignored if no search runs.
    pub fn handle_target_finished(&mut self, hit: Option<(u64, u64)>) {
        if self.exited {
            return;
        }
        let Some(job) = self.running.take() else {
            self.stats.unexpected_answers += 1;
            return;
        };
        self.stats.jobs += 1;
        self.stats.nonces += job.nonces();
        self.actions.push_back(Action::SendTarget { job, hit });
        self.start_next();
    }

    /// The search asked for by the last [`Action::Search`] found `hash` at `nonce`: answer
    /// it, and start the next job.
    pub fn handle_search_finished(&mut self, hash: u64, nonce: u64) {
        if self.exited {
            return;
        }
        let Some(job) = self.running.take() else {
            self.stats.unexpected_answers += 1;
            return;
        };
        self.stats.jobs += 1;
        self.stats.nonces += job.nonces();
        if job.mode.is_target() || job.id.is_some() {
            // A driver reporting a target job's hit this way: it is the hit. A job with an
            // id is answered with its id echoed.
            self.actions.push_back(Action::SendTarget {
                job,
                hit: Some((hash, nonce)),
            });
            self.start_next();
            return;
        }
        self.actions
            .push_back(Action::Send(Message::Result { hash, nonce }));
        self.start_next();
    }

    /// The server is lost (or could not be reached): exit.
    pub fn handle_server_lost(&mut self) {
        if self.exited {
            return;
        }
        self.exited = true;
        self.running = None;
        self.queue.clear();
        self.actions.clear();
        self.actions.push_back(Action::Exit);
    }

    /// The next thing to do, oldest first.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The job being searched, if any.
    pub fn running(&self) -> Option<&Job> {
        self.running.as_ref()
    }

    /// How many jobs wait behind the running one.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// What it has done.
    pub fn stats(&self) -> &MinerStats {
        &self.stats
    }

    fn start_next(&mut self) {
        if self.running.is_some() {
            return;
        }
        let next = match self.order {
            JobOrder::Arrival => self.queue.pop_front(),
            JobOrder::Newest => self.queue.pop_back(),
        };
        if let Some(job) = next {
            self.running = Some(job.clone());
            self.actions.push_back(Action::Search(job));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lower: u64, upper: u64) -> Vec<u8> {
        Message::Request {
            data: "m".into(),
            lower,
            upper,
        }
        .encode()
    }

    fn actions(core: &mut MinerCore) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn job(lower: u64, upper: u64) -> Job {
        Job {
            data: "m".into(),
            lower,
            upper,
            mode: Mode::Minimum,
            id: None,
        }
    }

    fn search(lower: u64, upper: u64) -> Action {
        Action::Search(job(lower, upper))
    }

    #[test]
    fn joins_searches_one_job_at_a_time_answers_and_exits() {
        let mut core = MinerCore::new(JobOrder::Arrival);
        core.handle_connected();
        core.handle_connected();
        assert_eq!(actions(&mut core), [Action::Send(Message::Join)]);
        core.handle_payload(&request(0, 9));
        core.handle_payload(&request(10, 19));
        core.handle_payload(b"junk");
        core.handle_payload(&Message::Join.encode());
        assert_eq!(actions(&mut core), [search(0, 9)]);
        assert_eq!(core.queued(), 1);
        core.handle_search_finished(5, 3);
        assert_eq!(
            actions(&mut core),
            [
                Action::Send(Message::Result { hash: 5, nonce: 3 }),
                search(10, 19)
            ]
        );
        core.handle_server_lost();
        core.handle_search_finished(1, 11);
        core.handle_payload(&request(20, 29));
        assert_eq!(actions(&mut core), [Action::Exit]);
        let stats = *core.stats();
        assert_eq!((stats.jobs, stats.nonces, stats.ignored), (1, 10, 2));
    }

    #[test]
    fn newest_first_answers_out_of_order() {
        let mut core = MinerCore::new(JobOrder::Newest);
        core.handle_connected();
        for i in 0..3 {
            core.handle_payload(&request(i * 10, i * 10 + 9));
        }
        core.handle_search_finished(1, 1);
        core.handle_search_finished(2, 2);
        let searched: Vec<_> = actions(&mut core)
            .into_iter()
            .filter(|a| matches!(a, Action::Search(_)))
            .collect();
        assert_eq!(searched, [search(0, 9), search(20, 29), search(10, 19)]);
    }

    #[test]
    fn an_answer_without_a_search_and_jobs_beyond_the_bound_are_counted() {
        let mut core = MinerCore::new(JobOrder::Arrival);
        core.handle_search_finished(0, 0);
        for i in 0..=MAX_QUEUED as u64 + 1 {
            core.handle_payload(&request(i, i));
        }
        assert_eq!(core.queued(), MAX_QUEUED);
        assert_eq!(core.stats().dropped, 1);
        assert_eq!(core.stats().unexpected_answers, 1);
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;
    use crate::hash::{Algo, Zeros};
    use crate::message::ext::encode_request;

    fn actions(core: &mut MinerCore) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn target() -> Mode {
        Mode::Target {
            zeros: Zeros::new(8).unwrap(),
            algo: Algo::Sha256d,
        }
    }

    fn job(lower: u64, upper: u64, mode: Mode) -> Job {
        Job {
            data: "m".into(),
            lower,
            upper,
            mode,
            id: None,
        }
    }

    fn cancel(lower: u64, upper: u64) -> Vec<u8> {
        Message::Cancel {
            data: "m".into(),
            lower,
            upper,
        }
        .encode()
    }

    #[test]
    fn a_capable_core_announces_takes_target_jobs_and_answers_them_with_their_range() {
        let mut core = MinerCore::new(JobOrder::Arrival).with_caps(Caps::ALL);
        core.handle_connected();
        assert_eq!(actions(&mut core), [Action::Announce(Caps::ALL)]);
        core.handle_payload(&encode_request("m", 0, 9, target()));
        core.handle_payload(&encode_request("m", 10, 19, Mode::Minimum));
        assert_eq!(actions(&mut core), [Action::Search(job(0, 9, target()))]);
        core.handle_target_finished(None);
        assert_eq!(
            actions(&mut core),
            [
                Action::SendTarget {
                    job: job(0, 9, target()),
                    hit: None
                },
                Action::Search(job(10, 19, Mode::Minimum))
            ]
        );
        // A target job's hit reported as a minimum still answers as a target job.
        core.handle_search_finished(1, 12);
        core.handle_payload(&encode_request("m", 20, 29, target()));
        core.handle_search_finished(3, 21);
        let sent = actions(&mut core);
        assert_eq!(
            sent.last(),
            Some(&Action::SendTarget {
                job: job(20, 29, target()),
                hit: Some((3, 21))
            })
        );
    }

    #[test]
    fn cancel_drops_a_queued_job_and_stops_the_running_one() {
        let mut core = MinerCore::new(JobOrder::Arrival).with_caps(Caps::ALL);
        core.handle_connected();
        for i in 0..3 {
            core.handle_payload(&encode_request("m", i * 10, i * 10 + 9, target()));
        }
        actions(&mut core);
        core.handle_payload(&cancel(10, 19));
        assert_eq!(core.queued(), 1);
        assert!(actions(&mut core).is_empty());
        core.handle_payload(&cancel(0, 9));
        assert_eq!(
            actions(&mut core),
            [
                Action::Stop(job(0, 9, target())),
                Action::Search(job(20, 29, target()))
            ]
        );
        core.handle_payload(&cancel(0, 9));
        core.handle_payload(&cancel(20, 29));
        assert_eq!(actions(&mut core), [Action::Stop(job(20, 29, target()))]);
        assert_eq!(core.running(), None);
        let stats = *core.stats();
        assert_eq!(
            (stats.cancelled, stats.unknown_cancels, stats.jobs),
            (3, 1, 0)
        );
    }

    #[test]
    fn a_cancel_core_matches_cancels_by_job_id_and_echoes_it_in_both_modes() {
        use crate::message::ext::with_job;
        let mut core = MinerCore::new(JobOrder::Arrival).with_caps(Caps::ALL);
        core.handle_connected();
        // The same range twice (as after a Cancel that crossed an answer): ids tell them
        // apart.
        core.handle_payload(&with_job(encode_request("m", 0, 9, Mode::Minimum), Some(7)));
        core.handle_payload(&with_job(encode_request("m", 0, 9, Mode::Minimum), Some(8)));
        actions(&mut core);
        let cancel8 = with_job(cancel(0, 9), Some(8));
        core.handle_payload(&cancel8);
        assert_eq!(
            core.queued(),
            0,
            "the queued job 8 is cancelled, not the running 7"
        );
        core.handle_search_finished(5, 3);
        let Some(Action::SendTarget { job, hit }) = core.poll_action() else {
            panic!("an answer with the id echoed");
        };
        assert_eq!((job.id, hit), (Some(7), Some((5, 3))));
        let d = Message::decode_full(&job.encode_answer(hit)).unwrap();
        assert_eq!(
            (d.message, d.range, d.ext.job, d.ext.found),
            (Message::Result { hash: 5, nonce: 3 }, (0, 9), Some(7), true)
        );
        core.handle_payload(&with_job(encode_request("m", 0, 9, target()), Some(9)));
        actions(&mut core);
        core.handle_target_finished(None);
        let Some(Action::SendTarget { job, hit: None }) = core.poll_action() else {
            panic!("a Found: false");
        };
        let d = Message::decode_full(&job.encode_answer(None)).unwrap();
        assert_eq!((d.ext.job, d.ext.found), (Some(9), false));
        // A core without `cancel` keeps no id: its answers are the reference's.
        let mut plain = MinerCore::new(JobOrder::Arrival);
        plain.handle_payload(&with_job(encode_request("m", 0, 9, Mode::Minimum), Some(1)));
        assert_eq!(plain.running().map(|j| j.id), Some(None));
    }

    #[test]
    fn a_reference_style_core_joins_plainly_and_ignores_what_it_did_not_announce() {
        let mut core = MinerCore::new(JobOrder::Arrival);
        core.handle_connected();
        assert_eq!(actions(&mut core), [Action::Send(Message::Join)]);
        core.handle_payload(&encode_request("m", 0, 9, target()));
        core.handle_payload(&cancel(0, 9));
        assert!(actions(&mut core).is_empty());
        let stats = *core.stats();
        assert_eq!((stats.unsupported, stats.ignored), (1, 1));
        // sha256d needs its own cap.
        let mut core = MinerCore::new(JobOrder::Arrival)
            .with_caps(Caps::NONE.with(crate::message::Cap::Target));
        core.handle_payload(&encode_request("m", 0, 9, target()));
        assert_eq!(core.stats().unsupported, 1);
    }
}
