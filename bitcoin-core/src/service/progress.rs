//! Progress messages for clients that ask for them (`"Progress": true` in a Request).

use std::time::Duration;

use lsp_core::Timestamp;

use super::MinerService;
use crate::message::Message;

/// How often a client that asked is told its request's progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

impl<K: Ord + Copy> MinerService<K> {
    /// `client` asked, in a Request accepted at `now`, for Progress messages: the first is
    /// due one interval later, then one every [`PROGRESS_INTERVAL`] while it has a request
    /// (a replicated coordinator asks it for a restored request's slot).
    pub fn want_progress(&mut self, now: Timestamp, client: K) {
        self.progress
            .entry(client)
            .or_insert(now.saturating_add(PROGRESS_INTERVAL));
    }

    /// Writes a Progress message to every client that asked and is due one at `now`, and
    /// forgets those with no request left (answered, dropped) or closed.
    pub(super) fn tick_progress(&mut self, now: Timestamp) {
        if self.progress.is_empty() {
            return;
        }
        let mut done = Vec::new();
        let mut due = Vec::new();
        for (&client, &next) in &self.progress {
            if self.closed.contains(&client) {
                done.push(client);
                continue;
            }
            match self.scheduler.progress(client, now) {
                None => done.push(client),
                Some(report) if next <= now => due.push((client, report)),
                Some(_) => {}
            }
        }
        for client in done {
            self.progress.remove(&client);
        }
        for (client, report) in due {
            let clamp = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
            let message = Message::Progress {
                covered: clamp(report.covered),
                total: clamp(report.total),
                rate: report.rate as u64,
            };
            self.outbox.push_back((client, message.encode()));
            self.progress
                .insert(client, now.saturating_add(PROGRESS_INTERVAL));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash;
    use crate::scheduler::Config;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn request(progress: bool) -> Vec<u8> {
        let key = if progress { r#","Progress":true"# } else { "" };
        format!(r#"{{"Type":1,"Data":"prog","Lower":0,"Upper":99999,"Hash":0,"Nonce":0{key}}}"#)
            .into_bytes()
    }

    /// Runs one request answered one job per second; returns what client 7 was written.
    fn run(progress: bool) -> Vec<Message> {
        let config = Config {
            backup_jobs: false,
            jobs_per_miner: 1,
            ..Config::default()
        };
        let mut s = MinerService::<u32>::new(config).unwrap();
        s.handle_payload(at(0), 1, &Message::Join.encode());
        s.handle_payload(at(0), 7, &request(progress));
        let mut to_client = Vec::new();
        let mut now = 0;
        let mut jobs = Vec::new();
        loop {
            while let Some((to, bytes)) = s.poll_write() {
                let message = Message::decode(&bytes).unwrap();
                if to == 7 {
                    to_client.push(message);
                } else {
                    jobs.push(message);
                }
            }
            if matches!(to_client.last(), Some(Message::Result { .. })) {
                return to_client;
            }
            // Wake for deadlines up to the next answer, 700 ms on.
            now += 700;
            while let Some(deadline) = s.poll_timeout().filter(|d| *d < at(now)) {
                s.handle_timeout(deadline);
            }
            if let Some(Message::Request { data, lower, upper }) = jobs.pop() {
                let (hash, nonce) = (lower..=upper).map(|n| (hash(&data, n), n)).min().unwrap();
                s.handle_payload(at(now), 1, &Message::Result { hash, nonce }.encode());
            }
        }
    }

    #[test]
    fn a_client_that_asks_is_told_its_progress_about_once_a_second_and_others_never() {
        let told = run(true);
        let progress: Vec<(u64, u64, u64)> = told
            .iter()
            .filter_map(|m| match m {
                Message::Progress {
                    covered,
                    total,
                    rate,
                } => Some((*covered, *total, *rate)),
                _ => None,
            })
            .collect();
        assert!(progress.len() >= 3, "{told:?}");
        assert!(progress.iter().all(|p| p.1 == 100_000));
        assert!(
            progress.windows(2).all(|w| w[0].0 <= w[1].0),
            "{progress:?}"
        );
        assert!(progress.iter().any(|p| p.0 > 0 && p.2 > 0), "{progress:?}");
        assert!(matches!(told.last(), Some(Message::Result { .. })));
        let silent = run(false);
        assert_eq!(silent.len(), 1, "{silent:?}");
        assert_eq!(silent, told[told.len() - 1..]);
    }
}
