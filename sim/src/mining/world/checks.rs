//! The invariants checked after every step that look at the whole server state: no miner
//! idles while work waits, and leases end on time and their jobs are re-issued.

use lsp_core::ConnId;

use super::{covered, MiningWorld};

impl MiningWorld {
    /// No miner idles while work waits: if a request has nonces neither answered nor held
    /// by a live miner, every joined, live miner that can run its jobs holds a job — in
    /// fact as many as the scheduler allows ([`Config::jobs_per_miner`]), since it fills
    /// every free slot — except a miner past the lease of a job, which gets nothing until
    /// it answers. A miner without the caps of a target request does not count for it, and
    /// a target request's nonces above its verified hit are never handed out.
    pub(super) fn check_no_idle_miner(&mut self) {
        let server = &self.server;
        let depth = server.service.scheduler().config().jobs_per_miner;
        let free: Vec<(ConnId, usize, bitcoin_core::message::Caps)> = server
            .conns
            .iter()
            .filter(|(conn, r)| r.joined && !r.gone && !server.service.scheduler().is_late(**conn))
            .map(|(conn, r)| (*conn, r.jobs.len(), r.caps))
            .filter(|&(_, held, _)| held < depth)
            .collect();
        for (miner, held, caps) in free {
            for (data, p) in &server.pending {
                if !caps.covers(p.mode.needs()) {
                    continue;
                }
                let upper = p.hit.map_or(p.upper, |n| n.min(p.upper));
                let mut ranges = p.answered.clone();
                for record in server.conns.values().filter(|r| !r.gone) {
                    ranges.extend(
                        record
                            .jobs
                            .iter()
                            .filter(|j| j.data == *data)
                            .map(|j| (j.lower, j.upper)),
                    );
                }
                let size = u128::from(upper - p.lower) + 1;
                let done = covered(p.lower, upper, &mut ranges);
                if done < size {
                    let state = if held == 0 {
                        "idles".to_string()
                    } else {
                        format!("holds {held} of {depth} jobs")
                    };
                    let what = format!(
                        "miner {miner} {state} while request {data:?} has {} of {size} nonces \
                         unassigned",
                        size - done
                    );
                    self.fail(what);
                    return;
                }
            }
        }
    }

    /// Leases: a job whose lease ended before now has expired (the service woke for it
    /// within one step), and an expired job of a pending request not yet answered runs
    /// on another live miner, unless every other joined live miner is late.
    pub(super) fn check_leases(&mut self) {
        let server = &self.server;
        let sched = server.service.scheduler();
        let live: Vec<ConnId> = server
            .conns
            .iter()
            .filter(|(conn, r)| r.joined && !r.gone && sched.jobs_held(**conn).is_some())
            .map(|(conn, _)| *conn)
            .collect();
        for &conn in &live {
            let jobs = &server.conns[&conn].jobs;
            let leases = sched.leases(conn);
            if leases.len() != jobs.len() {
                let what = format!(
                    "{conn}: the scheduler holds {} jobs, the simulator saw {}",
                    leases.len(),
                    jobs.len()
                );
                return self.fail(what);
            }
            for (job, (lease, expired)) in jobs.iter().zip(leases) {
                if !expired && lease < self.now {
                    let what = format!("{conn}: lease of {job:?} ended at {lease}, not expired");
                    return self.fail(what);
                }
                let Some(p) = server.pending.get(&job.data) else {
                    continue;
                };
                let range = (job.lower, job.upper);
                let answered = p.answered.iter().any(|a| a.0 <= range.1 && range.0 <= a.1);
                // A target job wholly above the request's hit is no longer needed.
                let cut = p.hit.is_some_and(|n| range.0 > n);
                if !expired || answered || cut {
                    continue;
                }
                let elsewhere = live.iter().filter(|c| **c != conn).any(|c| {
                    server.conns[c]
                        .jobs
                        .iter()
                        .any(|j| j.data == job.data && (j.lower, j.upper) == range)
                });
                // Only miners that announced the job's caps can take it.
                let all_late = live
                    .iter()
                    .filter(|c| **c != conn && server.conns[*c].caps.covers(job.mode.needs()))
                    .all(|c| sched.is_late(*c));
                if !elsewhere && !all_late {
                    let what = format!("{conn}: expired {job:?} was not re-issued");
                    return self.fail(what);
                }
            }
        }
    }
}
