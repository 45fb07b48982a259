//! The random event sequences and configurations of the scheduler's properties.

use std::time::Duration;

use quickcheck::{Arbitrary, Gen};

use super::super::{Config, Order};

/// Miners are keys 1..=MINERS, clients 101..=100+CLIENTS.
pub(super) const MINERS: u32 = 5;
pub(super) const CLIENTS: u32 = 5;
pub(super) const MESSAGES: [&str; 4] = ["", "msg", "bitcoin", "a longer message with spaces"];

/// A cheap stand-in for the real hash, with few distinct values so that ties are common,
/// and distinct values for distinct messages (as with the real hash, an answer to one text
/// never verifies against another; below 1000, so that 1000 and above are lies).
pub(super) fn test_hash(msg: &str, nonce: u64) -> u64 {
    let text = MESSAGES
        .iter()
        .position(|m| *m == msg)
        .unwrap_or(MESSAGES.len());
    100 * text as u64 + mixed_hash(msg, nonce)
}

/// Sixty-one values, spread over the nonces of each message.
pub(super) fn mixed_hash(msg: &str, nonce: u64) -> u64 {
    let mut x = msg.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) ^ nonce;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % 61
}

/// The true answer for `lower ..= upper`: minimum hash, smallest nonce on ties.
pub(super) fn true_min(msg: &str, lower: u64, upper: u64) -> (u64, u64) {
    (lower..=upper)
        .map(|n| (test_hash(msg, n), n))
        .min()
        .unwrap_or((u64::MAX, lower))
}

#[derive(Clone, Debug)]
pub(super) enum Event {
    Advance(u32),
    Join(u32),
    LoseMiner(u32),
    Request {
        client: u32,
        msg: &'static str,
        lower: u64,
        upper: u64,
    },
    LoseClient(u32),
    Answer(u32),
    AnswerNewest(u32),
    Lie(u32, LieKind),
    Timeout,
}

/// How a lying miner answers its oldest job.
#[derive(Clone, Copy, Debug)]
pub(super) enum LieKind {
    /// With a nonce outside the job.
    OutOfRange,
    /// With the right nonce and a hash no nonce has.
    WrongHash,
    /// With its first nonce, unsearched (when that is not the job's minimum and the job is
    /// small enough to be checked in full).
    Lazy,
}

impl Arbitrary for Event {
    fn arbitrary(g: &mut Gen) -> Self {
        let miner = 1 + u32::arbitrary(g) % MINERS;
        let client = 101 + u32::arbitrary(g) % CLIENTS;
        match u8::arbitrary(g) % 100 {
            0..=17 => Event::Advance(u32::arbitrary(g) % 5_000),
            18..=27 => Event::Join(miner),
            28..=32 => Event::LoseMiner(miner),
            33..=47 => {
                let len = u64::from(u16::arbitrary(g) % 300);
                let lower = match u8::arbitrary(g) % 4 {
                    0 => u64::MAX - len,
                    1 => u64::MAX - u64::from(u16::arbitrary(g) % 600),
                    _ => u64::from(u16::arbitrary(g) % 1000),
                };
                // About one request in eleven is empty (lower > upper).
                let (lower, upper) = if u8::arbitrary(g) % 11 == 0 {
                    let lower = lower.max(1 + len);
                    (lower, lower - 1 - len)
                } else {
                    (lower, lower.saturating_add(len))
                };
                Event::Request {
                    client,
                    msg: g.choose(&MESSAGES).unwrap_or(&""),
                    lower,
                    upper,
                }
            }
            48..=51 => Event::LoseClient(client),
            52..=79 => Event::Answer(miner),
            80..=89 => Event::AnswerNewest(miner),
            90 => Event::Lie(miner, LieKind::OutOfRange),
            91 => Event::Lie(miner, LieKind::WrongHash),
            92 => Event::Lie(miner, LieKind::Lazy),
            _ => Event::Timeout,
        }
    }
}

/// A random configuration and event sequence.
#[derive(Clone, Debug)]
pub(super) struct Case {
    pub(super) config: Config,
    pub(super) events: Vec<Event>,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        let target = Duration::from_micros(1 + u64::arbitrary(g) % 20_000);
        let min = Duration::from_micros(u64::arbitrary(g) % (target.as_micros() as u64 + 1));
        // Small limits often enough that refusals happen, large ones the rest of the time.
        let max_requests_per_client = match u8::arbitrary(g) % 8 {
            0 => 1,
            1 => 2,
            2 => 3,
            _ => usize::MAX / 8,
        };
        let config = Config {
            target_job_duration: target,
            min_job_duration: min,
            initial_job_nonces: 1 + u64::arbitrary(g) % 60,
            jobs_per_miner: 1 + usize::arbitrary(g) % 3,
            tail_split: 1 + u32::arbitrary(g) % 4,
            order: if u8::arbitrary(g) % 4 == 0 {
                Order::Arrival
            } else {
                Order::ShortestRemainingFirst {
                    overdue_factor: u32::arbitrary(g) % 6,
                }
            },
            backup_jobs: u8::arbitrary(g) % 4 != 0,
            backup_budget_percent: [0, 5, 100, 1000][usize::arbitrary(g) % 4],
            lease_factor: 1 + u32::arbitrary(g) % 4,
            lease_slack: Duration::from_micros(u64::arbitrary(g) % 20_000),
            max_requests_per_client,
            max_requests: max_requests_per_client + usize::arbitrary(g) % 4,
        };
        Case {
            config,
            events: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let config = self.config.clone();
        Box::new(self.events.shrink().map(move |events| Case {
            config: config.clone(),
            events,
        }))
    }
}
