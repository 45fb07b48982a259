//! Shrinking a failing sweep [`Case`] to a smaller one that still fails.
//!
//! [`Case`] implements [`quickcheck::Arbitrary`]: `arbitrary` draws a case from a random
//! seed and `shrink` proposes simpler variants — fewer clients, outages and crashes, fewer
//! messages, faults switched off or halved, an earlier heal, simpler parameters. The same
//! `shrink` serves quickcheck's own minimisation (in property tests) and [`minimize`], a
//! greedy loop that starts from a given failing seed: it keeps the first proposal that
//! still fails and repeats until no proposal fails. Shrinking is deterministic, so a shrunk
//! case is reproducible from its seed alone.

use quickcheck::{Arbitrary, Gen};

use crate::net::Faults;
use crate::rng::Prob;
use crate::sweep::{run_case, Case, CaseFailure};

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Case {
        Case::generate(u64::arbitrary(g))
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Case>> {
        Box::new(candidates(self).into_iter())
    }
}

/// Simpler variants of `case`, most aggressive first.
fn candidates(case: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut Case)| {
        let mut c = case.clone();
        f(&mut c);
        if c != *case {
            out.push(c);
        }
    };
    // Structure: clients, outages, crashes.
    for i in 0..case.clients.len() {
        if case.clients.len() > 1 {
            push(&|c: &mut Case| {
                c.clients.remove(i);
                c.outages.retain(|o| o.client != i);
                for o in &mut c.outages {
                    if o.client > i {
                        o.client -= 1;
                    }
                }
            });
        }
    }
    for i in 0..case.outages.len() {
        push(&|c: &mut Case| {
            c.outages.remove(i);
        });
    }
    for i in 0..case.clients.len() {
        push(&|c: &mut Case| c.clients[i].restart_after = None);
        push(&|c: &mut Case| {
            c.clients[i].crash_at = None;
            c.clients[i].restart_after = None;
        });
    }
    // Faults: all off, then one at a time off, then halved.
    push(&|c: &mut Case| {
        c.faults = Faults {
            latency: c.faults.latency,
            ..Faults::default()
        }
    });
    let probs: [fn(&mut Faults) -> &mut Prob; 9] = [
        |f| &mut f.read_drop[0],
        |f| &mut f.read_drop[1],
        |f| &mut f.write_drop[0],
        |f| &mut f.write_drop[1],
        |f| &mut f.delay,
        |f| &mut f.duplicate,
        |f| &mut f.shorten,
        |f| &mut f.lengthen,
        |f| &mut f.corrupt,
    ];
    for field in &probs {
        push(&|c: &mut Case| *field(&mut c.faults) = Prob::NEVER);
    }
    push(&|c: &mut Case| c.faults.jitter = std::time::Duration::ZERO);
    push(&|c: &mut Case| c.cack_rewrite = Prob::NEVER);
    push(&|c: &mut Case| c.echo_sleep = std::time::Duration::ZERO);
    push(&|c: &mut Case| c.heal_at /= 2);
    // Workload.
    for i in 0..case.clients.len() {
        push(&|c: &mut Case| c.clients[i].messages /= 2);
        push(&|c: &mut Case| c.clients[i].messages = c.clients[i].messages.saturating_sub(1));
        push(&|c: &mut Case| c.clients[i].gap = std::time::Duration::ZERO);
        push(&|c: &mut Case| {
            let plan = &mut c.clients[i];
            plan.first_write = plan.start + (plan.first_write.saturating_sub(plan.start)) / 2;
        });
        push(&|c: &mut Case| c.clients[i].isn = 0);
        push(&|c: &mut Case| {
            let plan = &mut c.clients[i];
            plan.first_write = plan.first_write.saturating_sub(plan.start);
            plan.start = std::time::Duration::ZERO;
        });
    }
    // Parameters, towards the defaults.
    push(&|c: &mut Case| c.server_params = c.params);
    push(&|c: &mut Case| c.params.max_backoff_interval = 0);
    push(&|c: &mut Case| c.params.window_size = (c.params.window_size / 2).max(1));
    push(&|c: &mut Case| {
        c.params.max_unacked_messages = (c.params.max_unacked_messages / 2).max(1)
    });
    push(&|c: &mut Case| {
        c.params.epoch_limit = (c.params.epoch_limit - 1).max(2);
        c.server_params.epoch_limit = c.params.epoch_limit;
        c.clamp_to_lifetime();
    });
    for field in &probs {
        push(&|c: &mut Case| {
            let p = field(&mut c.faults);
            p.0 /= 2;
        });
    }
    out
}

/// The result of [`minimize`].
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing case found.
    pub case: Case,
    /// How it fails.
    pub failure: CaseFailure,
    /// Successful shrink steps taken.
    pub steps: usize,
    /// Cases tried.
    pub tries: usize,
}

/// Greedily shrinks `case`, which fails with `failure`, trying at most `budget` cases.
/// Any failure counts (a shrink may turn one violation into another, as quickcheck does).
pub fn minimize(case: Case, failure: CaseFailure, budget: usize) -> Shrunk {
    let mut best = Shrunk {
        case,
        failure,
        steps: 0,
        tries: 0,
    };
    'outer: while best.tries < budget {
        for candidate in best.case.shrink() {
            if best.tries >= budget {
                break 'outer;
            }
            best.tries += 1;
            if let Err(failure) = run_case(&candidate, false) {
                best.case = candidate;
                best.failure = failure;
                best.steps += 1;
                continue 'outer;
            }
        }
        break;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_all_different_and_simpler_parameters_stay_valid() {
        let case = Case::generate(42);
        for c in case.shrink() {
            assert_ne!(c, case);
            assert_eq!(c.params.validate(), Ok(()));
            assert_eq!(c.server_params.epoch_limit, c.params.epoch_limit);
            assert!(c.outages.iter().all(|o| o.client < c.clients.len()));
        }
    }
}
