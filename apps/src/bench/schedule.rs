//! `bench -- schedule`: the scheduler in virtual time, against modelled miners.
//!
//! Each miner is modelled by a hash rate and a one-way message latency: a job sent at `t`
//! reaches it at `t + latency`, waits for the jobs before it, takes `size ÷ rate`, and its
//! answer reaches the server `latency` later. Requests reach the server at their arrival
//! times; a request's response time runs from its arrival to the server sending its result.
//! Nothing sleeps: time is a number, so minutes of mining are simulated in milliseconds.
//! Workload sizes are in seconds of the whole pool's work, so every mix carries the same
//! load.
//!
//! For each miner mix and workload it prints the mean response time of
//! - the scheduler (default configuration, or as changed by the flags),
//! - the same scheduler serving requests first come, first served (same job sizes), and
//! - the SRPT lower bound: all miners pooled into one machine of their total rate,
//!   serving the request with the least remaining work first, preemptively, with no latency
//!   and no job boundaries. No real schedule can beat its mean;
//!
//! and the worst slowdown of any request, its response time over a fair share, for two
//! meanings of fair share:
//! - *alone*: the time it would take with the whole system to itself (its size ÷ the total
//!   rate, plus one round trip to the nearest miner). When requests queue (100 equal ones
//!   arriving together), no schedule can keep every request near that: the 100th waits for
//!   99 others, so the same figure is printed for the SRPT bound;
//! - *PS*: its response time under processor sharing (the pool split equally between the
//!   requests present, again with no latency), plus one round trip: the usual yardstick of
//!   fairness, which every schedule can approach.
//!
//! The summary checks the goals (mean within 15% of the SRPT bound, no request slowed more
//! than 3× against processor sharing) and counts equal requests that finished out of
//! arrival order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use bitcoin_core::scheduler::{Config, Effect, Order, Scheduler};
use lsp_core::Timestamp;

/// A modelled miner.
#[derive(Clone, Copy, Debug)]
struct MinerModel {
    /// Nonces per second.
    rate: u64,
    /// One-way message latency, µs.
    latency_us: u64,
}

/// A set of miners.
struct Mix {
    name: &'static str,
    describe: &'static str,
    miners: Vec<MinerModel>,
}

impl Mix {
    fn total_rate(&self) -> u64 {
        self.miners.iter().map(|m| m.rate).sum()
    }

    fn min_round_trip_us(&self) -> u64 {
        self.miners
            .iter()
            .map(|m| 2 * m.latency_us)
            .min()
            .unwrap_or(0)
    }
}

fn mixes() -> Vec<Mix> {
    let m = |mega: u64, latency_us: u64| MinerModel {
        rate: mega * 1_000_000,
        latency_us,
    };
    vec![
        Mix {
            name: "equal",
            describe: "4 miners at 25 M/s, 0.5 ms latency",
            miners: vec![m(25, 500); 4],
        },
        Mix {
            name: "mixed",
            describe: "6 miners: 50, 25, 25, 10, 5, 2 M/s; 0.2 to 10 ms latency",
            miners: vec![
                m(50, 200),
                m(25, 500),
                m(25, 1_000),
                m(10, 2_000),
                m(5, 5_000),
                m(2, 10_000),
            ],
        },
        Mix {
            name: "one slow",
            describe: "4 miners at 25 M/s, 0.5 ms; one at 0.5 M/s, 100 ms latency",
            miners: vec![
                m(25, 500),
                m(25, 500),
                m(25, 500),
                m(25, 500),
                MinerModel {
                    rate: 500_000,
                    latency_us: 100_000,
                },
            ],
        },
    ]
}

/// A request of the workload: when it arrives and how many nonces it covers.
#[derive(Clone, Copy, Debug)]
struct Req {
    arrival_us: u64,
    size: u64,
}

struct Workload {
    name: &'static str,
    requests: Vec<Req>,
}

/// A small deterministic generator (splitmix64), so runs are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The workloads, with sizes in seconds of the whole pool's work so that every mix carries
/// the same load.
fn workloads(total_rate: u64, seed: u64) -> Vec<Workload> {
    let size = |pool_seconds: f64| ((pool_seconds * total_rate as f64) as u64).max(1);
    let at = |seconds: f64| (seconds * 1e6) as u64;
    let mut rng = Rng(seed);

    // One huge request, then a stream of 100 small ones (0.05 to 0.25 s of pool work,
    // one every 0.2 s: 75% load) while it runs.
    let mut huge_then_small = vec![Req {
        arrival_us: 0,
        size: size(30.0),
    }];
    for i in 0..100 {
        huge_then_small.push(Req {
            arrival_us: at(1.0 + 0.2 * f64::from(i)),
            size: size(0.05 + 0.2 * rng.unit()),
        });
    }

    // 100 equal requests of 0.5 s of pool work, 1 ms apart.
    let equal = (0..100)
        .map(|i| Req {
            arrival_us: at(0.001 * f64::from(i)),
            size: size(0.5),
        })
        .collect();

    // 200 requests, Poisson arrivals at 70% load, sizes log-uniform over 0.1 to 10 s of
    // pool work (mean 2.15 s).
    let (lo, hi) = (0.1_f64, 10.0_f64);
    let mean_size = (hi - lo) / (hi / lo).ln();
    let mean_gap = mean_size / 0.7;
    let mut t = 0.0;
    let random = (0..200)
        .map(|_| {
            t += -mean_gap * (1.0 - rng.unit()).ln();
            Req {
                arrival_us: at(t),
                size: size(lo * (hi / lo).powf(rng.unit())),
            }
        })
        .collect();

    vec![
        Workload {
            name: "huge then small",
            requests: huge_then_small,
        },
        Workload {
            name: "100 equal",
            requests: equal,
        },
        Workload {
            name: "random",
            requests: random,
        },
    ]
}

/// What one simulated run produced.
struct Outcome {
    /// Response time of each request, µs, in workload order.
    response_us: Vec<u64>,
    jobs: u64,
    backups: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive(usize),
    Answer(u32),
}

/// Runs `requests` through a scheduler built from `config` on the miners of `mix`.
fn simulate(config: &Config, mix: &Mix, requests: &[Req]) -> Result<Outcome, String> {
    // The modelled miners do not hash: every nonce "hashes" to 0, and they answer 0.
    let mut sched =
        Scheduler::<u32>::with_hash(config.clone(), |_, _| 0).map_err(|e| e.to_string())?;
    let n = mix.miners.len();
    // Miner `k` is key `k + 1`; request `i` comes from client key `CLIENT + i`.
    const CLIENT: u32 = 1_000_000;
    let mut busy_until = vec![0u64; n];
    let mut held: Vec<VecDeque<u64>> = vec![VecDeque::new(); n];
    let mut events = BinaryHeap::new();
    let mut seq = 0u64;
    let mut done: Vec<Option<u64>> = vec![None; requests.len()];
    let mut remaining = requests.len();
    for (i, r) in requests.iter().enumerate() {
        events.push(Reverse((r.arrival_us, seq, Ev::Arrive(i))));
        seq += 1;
    }
    for k in 0..n {
        sched.handle_miner_joined(Timestamp::ZERO, k as u32 + 1);
    }
    let mut now = 0u64;
    loop {
        while let Some(effect) = sched.poll_effect() {
            match effect {
                Effect::SendJob {
                    miner,
                    lower,
                    upper,
                    ..
                } => {
                    let k = (miner - 1) as usize;
                    let model = mix.miners[k];
                    let nonces = u128::from(upper - lower) + 1;
                    let work = (nonces * 1_000_000).div_ceil(u128::from(model.rate)) as u64;
                    let start = busy_until[k].max(now + model.latency_us);
                    busy_until[k] = start + work;
                    held[k].push_back(lower);
                    events.push(Reverse((
                        busy_until[k] + model.latency_us,
                        seq,
                        Ev::Answer(miner),
                    )));
                    seq += 1;
                }
                Effect::SendResult { client, .. } => {
                    let i = (client - CLIENT) as usize;
                    done[i] = Some(now - requests[i].arrival_us);
                    remaining -= 1;
                }
                Effect::Disconnect { miner, reason } => {
                    return Err(format!("model miner {miner} disconnected: {reason}"));
                }
                Effect::Cancel { .. } | Effect::SendNotFound { .. } => {
                    return Err("model miners announce no target or cancel".into());
                }
            }
        }
        if remaining == 0 {
            break;
        }
        let next_event = events.peek().map(|Reverse((t, _, _))| *t);
        let timeout = sched.poll_timeout().map(Timestamp::as_micros);
        match (next_event, timeout) {
            (_, Some(t)) if next_event.is_none_or(|e| t < e) => {
                now = t;
                sched.handle_timeout(Timestamp::from_micros(now));
            }
            (Some(_), _) => {
                let Some(Reverse((t, _, ev))) = events.pop() else {
                    unreachable!("peeked")
                };
                now = t;
                let ts = Timestamp::from_micros(now);
                match ev {
                    Ev::Arrive(i) => {
                        let upper = requests[i].size - 1;
                        sched
                            .handle_request(ts, CLIENT + i as u32, "bench", 0, upper)
                            .map_err(|e| e.to_string())?;
                    }
                    Ev::Answer(miner) => {
                        let k = (miner - 1) as usize;
                        let lower = held[k].pop_front().ok_or("answer without a job")?;
                        sched.handle_result(ts, miner, 0, lower, None);
                    }
                }
            }
            (None, _) => return Err(format!("stuck with {remaining} requests unanswered")),
        }
    }
    Ok(Outcome {
        response_us: done.into_iter().map(|d| d.unwrap_or(0)).collect(),
        jobs: sched.stats().jobs_sent,
        backups: sched.stats().backup_jobs,
    })
}

/// Response times (µs) under preemptive SRPT on one machine of `rate` nonces per second
/// with no latency: a lower bound on any schedule's mean.
fn srpt_bound(rate: u64, requests: &[Req]) -> Vec<f64> {
    let rate = rate as f64 / 1e6; // nonces per µs
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| (requests[i].arrival_us, i));
    let mut response = vec![0.0; requests.len()];
    // (remaining nonces, index) of the requests present.
    let mut present: Vec<(f64, usize)> = Vec::new();
    let mut t = 0.0_f64;
    let mut next = 0;
    while next < order.len() || !present.is_empty() {
        let arrival = order.get(next).map(|&i| requests[i].arrival_us as f64);
        let shortest = present
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.1 .1.cmp(&b.1 .1)))
            .map(|(pos, _)| pos);
        match (shortest, arrival) {
            (Some(pos), arrival) => {
                let finish = t + present[pos].0 / rate;
                match arrival {
                    Some(a) if a < finish => {
                        present[pos].0 -= (a - t) * rate;
                        t = a;
                        present.push((requests[order[next]].size as f64, order[next]));
                        next += 1;
                    }
                    _ => {
                        t = finish;
                        let (_, i) = present.swap_remove(pos);
                        response[i] = t - requests[i].arrival_us as f64;
                    }
                }
            }
            (None, Some(a)) => {
                t = t.max(a);
                present.push((requests[order[next]].size as f64, order[next]));
                next += 1;
            }
            (None, None) => break,
        }
    }
    response
}

/// Response times (µs) under processor sharing on one machine of `rate` nonces per second
/// with no latency: every request present gets an equal share of the pool. This is the
/// usual yardstick of fairness: a request served no later than under processor sharing got
/// at least its fair share.
fn processor_sharing(rate: u64, requests: &[Req]) -> Vec<f64> {
    let rate = rate as f64 / 1e6; // nonces per µs
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| (requests[i].arrival_us, i));
    let mut response = vec![0.0; requests.len()];
    let mut present: Vec<(f64, usize)> = Vec::new();
    let mut t = 0.0_f64;
    let mut next = 0;
    while next < order.len() || !present.is_empty() {
        let arrival = order.get(next).map(|&i| requests[i].arrival_us as f64);
        let share = rate / present.len().max(1) as f64;
        let first_done = present
            .iter()
            .map(|p| t + p.0 / share)
            .min_by(f64::total_cmp);
        match (first_done, arrival) {
            (Some(done), arrival) if arrival.is_none_or(|a| done <= a) => {
                for p in &mut present {
                    p.0 -= (done - t) * share;
                }
                t = done;
                // Requests within a nonce of done finish together.
                present.retain(|&(left, i)| {
                    if left > 0.5 {
                        return true;
                    }
                    response[i] = t - requests[i].arrival_us as f64;
                    false
                });
            }
            (_, Some(a)) => {
                for p in &mut present {
                    p.0 -= (a - t).max(0.0) * share;
                }
                t = t.max(a);
                present.push((requests[order[next]].size as f64, order[next]));
                next += 1;
            }
            (_, None) => break,
        }
    }
    response
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// The worst `response[i] ÷ fair[i]`.
fn worst_ratio(response: &[f64], fair: &[f64]) -> f64 {
    response
        .iter()
        .zip(fair)
        .map(|(r, f)| r / f)
        .fold(0.0, f64::max)
}

/// The options of `bench schedule`: the scheduler's configuration and the workload seed.
#[derive(clap::Args, Clone, Debug)]
pub struct Options {
    /// Seed of the workloads' arrival times and sizes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Target duration of one job, in milliseconds (default: the scheduler's).
    #[arg(long)]
    target_ms: Option<u64>,
    /// Jobs outstanding per miner (default: the scheduler's).
    #[arg(long)]
    jobs_per_miner: Option<usize>,
    /// Shortest remaining request first, a request active longer than this factor times its
    /// alone time going first (0: pure SRPT; default: the scheduler's order).
    #[arg(long)]
    overdue_factor: Option<u32>,
    /// No backup jobs for the last jobs of a request.
    #[arg(long)]
    no_backups: bool,
}

impl Options {
    /// The scheduler configuration the flags describe, validated.
    fn config(&self) -> Result<Config, String> {
        let mut config = Config::default();
        if let Some(ms) = self.target_ms {
            config.target_job_duration = Duration::from_millis(ms);
        }
        if let Some(jobs) = self.jobs_per_miner {
            config.jobs_per_miner = jobs;
        }
        if let Some(overdue_factor) = self.overdue_factor {
            config.order = Order::ShortestRemainingFirst { overdue_factor };
        }
        if self.no_backups {
            config.backup_jobs = false;
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// The figures of one (mix, workload) pair.
struct Row {
    bound_mean: f64,
    ours_mean: f64,
    fifo_mean: f64,
    /// Worst slowdown against the request's time alone: bound, ours, FIFO.
    alone: [f64; 3],
    /// Worst slowdown against processor sharing: bound, ours, FIFO.
    shared: [f64; 3],
    jobs: u64,
    backups: u64,
    /// Pairs of requests of equal size that finished in the opposite order of arrival.
    out_of_order: usize,
}

/// The number of pairs of equal-size requests that finished in the opposite order of their
/// arrival.
fn out_of_order(requests: &[Req], response_us: &[u64]) -> usize {
    let finish: Vec<u64> = requests
        .iter()
        .zip(response_us)
        .map(|(r, d)| r.arrival_us + d)
        .collect();
    let mut count = 0;
    for i in 0..requests.len() {
        for j in i + 1..requests.len() {
            let (a, b) = (&requests[i], &requests[j]);
            if a.size == b.size && (a.arrival_us < b.arrival_us) != (finish[i] < finish[j]) {
                count += 1;
            }
        }
    }
    count
}

fn measure(config: &Config, fifo: &Config, mix: &Mix, w: &Workload) -> Result<Row, String> {
    let rate = mix.total_rate();
    let rtt = mix.min_round_trip_us() as f64;
    let bound = srpt_bound(rate, &w.requests);
    let ours = simulate(config, mix, &w.requests)?;
    let base = simulate(fifo, mix, &w.requests)?;
    let as_f64 = |o: &Outcome| -> Vec<f64> { o.response_us.iter().map(|&r| r as f64).collect() };
    let (ours_resp, base_resp) = (as_f64(&ours), as_f64(&base));
    let alone: Vec<f64> = w
        .requests
        .iter()
        .map(|r| r.size as f64 / (rate as f64 / 1e6) + rtt)
        .collect();
    let shared: Vec<f64> = processor_sharing(rate, &w.requests)
        .into_iter()
        .map(|t| t + rtt)
        .collect();
    let worst = |fair: &[f64]| {
        [
            worst_ratio(&bound, fair),
            worst_ratio(&ours_resp, fair),
            worst_ratio(&base_resp, fair),
        ]
    };
    Ok(Row {
        bound_mean: mean(&bound),
        ours_mean: mean(&ours_resp),
        fifo_mean: mean(&base_resp),
        alone: worst(&alone),
        shared: worst(&shared),
        jobs: ours.jobs,
        backups: ours.backups,
        out_of_order: out_of_order(&w.requests, &ours.response_us),
    })
}

/// Runs the `schedule` benchmark.
pub fn run(options: &Options) -> Result<(), String> {
    let (seed, config) = (options.seed, options.config()?);
    let fifo = Config {
        order: Order::Arrival,
        ..config.clone()
    };
    println!(
        "bench schedule: virtual time, seed {seed}; scheduler: jobs of {:?}, {} per miner, \
         {:?}, backups {}; FIFO: the same, first come first served",
        config.target_job_duration,
        config.jobs_per_miner,
        config.order,
        if config.backup_jobs { "on" } else { "off" }
    );
    println!(
        "mean: mean response time, ×: ÷ the SRPT lower bound's mean. worst slowdown: the \
         largest response ÷ fair share, where fair share is\n  alone = the request alone on \
         the pool + one round trip, or PS = its response under processor sharing + one round \
         trip\n"
    );
    let mut worst_mean: f64 = 0.0;
    let mut worst_shared: f64 = 0.0;
    let mut worst_alone_vs_bound: f64 = 0.0;
    let mut inversions = 0;
    for mix in mixes() {
        println!(
            "{}: {} (total {} M/s)",
            mix.name,
            mix.describe,
            mix.total_rate() / 1_000_000
        );
        println!(
            "  {:<15} {:>4} | {:>9} {:>9} {:>6} {:>9} {:>6} | {:>21} | {:>18} | {:>6} {:>7}",
            "workload",
            "reqs",
            "SRPT mean",
            "ours",
            "×",
            "FIFO",
            "×",
            "worst ÷ alone b/o/F",
            "worst ÷ PS b/o/F",
            "jobs",
            "backups"
        );
        for w in workloads(mix.total_rate(), seed) {
            let r = measure(&config, &fifo, &mix, &w)?;
            worst_mean = worst_mean.max(r.ours_mean / r.bound_mean);
            worst_shared = worst_shared.max(r.shared[1]);
            worst_alone_vs_bound = worst_alone_vs_bound.max(r.alone[1] / r.alone[0]);
            inversions += r.out_of_order;
            let triple = |x: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", x[0], x[1], x[2]);
            println!(
                "  {:<15} {:>4} | {:>8.3}s {:>8.3}s {:>6.3} {:>8.3}s {:>6.2} | {:>21} | {:>18} | {:>6} {:>7}",
                w.name,
                w.requests.len(),
                r.bound_mean / 1e6,
                r.ours_mean / 1e6,
                r.ours_mean / r.bound_mean,
                r.fifo_mean / 1e6,
                r.fifo_mean / r.bound_mean,
                triple(r.alone),
                triple(r.shared),
                r.jobs,
                r.backups
            );
        }
        println!();
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "summary: worst mean ÷ SRPT bound {worst_mean:.3} (goal ≤ 1.15: {}); worst slowdown \
         against processor sharing {worst_shared:.2}× (goal ≤ 3: {});\n  worst slowdown \
         against the request alone, ÷ the same figure for the SRPT bound: \
         {worst_alone_vs_bound:.2}; equal requests finished out of arrival order: \
         {inversions} pairs",
        verdict(worst_mean <= 1.15),
        verdict(worst_shared <= 3.0)
    );
    Ok(())
}
