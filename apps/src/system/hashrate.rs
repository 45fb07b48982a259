//! `miner -v`: the miner's own hash rate every few seconds on stderr, as CPU miners print
//! it, from the search's progress counter ([`super::search::Searcher::with_progress`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::log::Log;

/// How often `miner -v` reports, unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// `--hashrate-every SECS`: a positive, finite number of seconds (`0.5`, `5`), else why
/// not.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

/// Turns readings of the nonces-searched counter into report lines.
#[derive(Debug)]
pub struct Meter {
    last: (u64, Instant),
    idle: bool,
}

impl Meter {
    /// A meter whose first reading is `nonces` at `at`.
    pub fn new(nonces: u64, at: Instant) -> Meter {
        Meter {
            last: (nonces, at),
            idle: true,
        }
    }

    /// The line for the counter reading `nonces` at `at`: the rate since the previous
    /// reading and the total. While nothing is searched it says `idle` once, then nothing.
    pub fn read(&mut self, nonces: u64, at: Instant) -> Option<String> {
        let (before, then) = std::mem::replace(&mut self.last, (nonces, at));
        let searched = nonces.saturating_sub(before);
        let secs = at.saturating_duration_since(then).as_secs_f64();
        if searched == 0 {
            let was_idle = std::mem::replace(&mut self.idle, true);
            return (!was_idle)
                .then(|| format!("hashrate 0 H/s (idle), {} searched", nonces_text(nonces)));
        }
        self.idle = false;
        let rate = searched as f64 / secs.max(1e-9);
        Some(format!(
            "hashrate {} over {secs:.1} s, {} searched",
            si(rate, "H/s"),
            nonces_text(nonces)
        ))
    }
}

/// `x` `unit` with an SI prefix: `12.35 MH/s`, `512 H/s`.
fn si(x: f64, unit: &str) -> String {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut x = x;
    let mut i = 0;
    while x >= 1000.0 && i < PREFIXES.len() - 1 {
        x /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{x:.0} {unit}")
    } else {
        format!("{x:.2} {}{unit}", PREFIXES[i])
    }
}

/// `n` nonces with an SI prefix: `50.00 M nonces`, `512 nonces`.
fn nonces_text(n: u64) -> String {
    format!("{} nonces", si(n as f64, "").trim_end())
}

/// Starts a thread that logs (at `-v`) the rate at which `searched` grows every
/// `interval`, for as long as the process runs.
pub fn report(searched: Arc<AtomicU64>, log: Log, interval: Duration) -> std::io::Result<()> {
    thread::Builder::new()
        .name("hashrate".into())
        .spawn(move || {
            let mut meter = Meter::new(searched.load(Ordering::Relaxed), Instant::now());
            loop {
                thread::sleep(interval);
                if let Some(line) = meter.read(searched.load(Ordering::Relaxed), Instant::now()) {
                    log.info(format_args!("{line}"));
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_tells_the_rate_between_readings_and_idleness_once() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut m = Meter::new(0, t0);
        assert_eq!(
            m.read(0, at(5)),
            None,
            "idle from the start: nothing to say"
        );
        assert_eq!(
            m.read(50_000_000, at(10)).as_deref(),
            Some("hashrate 10.00 MH/s over 5.0 s, 50.00 M nonces searched")
        );
        assert_eq!(
            m.read(50_002_500, at(15)).as_deref(),
            Some("hashrate 500 H/s over 5.0 s, 50.00 M nonces searched")
        );
        assert_eq!(
            m.read(50_002_500, at(20)).as_deref(),
            Some("hashrate 0 H/s (idle), 50.00 M nonces searched")
        );
        assert_eq!(m.read(50_002_500, at(25)), None);
    }

    #[test]
    fn an_interval_is_a_positive_finite_number_of_seconds() {
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("5"), Ok(DEFAULT_INTERVAL));
        for bad in ["0", "-3", "nan", "inf", "1e300", "five", ""] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
    }
}
