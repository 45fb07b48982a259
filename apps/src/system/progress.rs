//! `client --progress`: asking the server for Progress messages (docs/miner.md §2) and
//! showing them on stderr — a progress bar with rate and ETA on a terminal (`indicatif`),
//! one plain line per message otherwise (a log or a pipe). Stdout is never touched.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The encoded Request `request` with the extension key `"Progress": true` added, which
/// asks the server for Progress messages. A server that does not know the key ignores it.
pub fn asking_progress(mut request: Vec<u8>) -> Vec<u8> {
    // The encoding is one JSON object: the key goes in before its closing brace.
    if request.last() == Some(&b'}') {
        request.pop();
        request.extend_from_slice(br#","Progress":true}"#);
    }
    request
}

/// `x` with an SI prefix and a space before it (`12.30 M`), or a space after it below
/// 1000 (`12 `), so that a unit can follow directly.
fn si(x: f64) -> String {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut x = x;
    let mut i = 0;
    while x.abs() >= 1000.0 && i < PREFIXES.len() - 1 {
        x /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{x:.0} ")
    } else {
        format!("{x:.2} {}", PREFIXES[i])
    }
}

/// The time left to cover `left` nonces at `rate` per second, if `rate` is known; at most
/// [`Duration::MAX`] (the numbers come from the server: any may arrive).
pub fn eta(left: u64, rate: u64) -> Option<Duration> {
    (rate > 0)
        .then(|| Duration::try_from_secs_f64(left as f64 / rate as f64).unwrap_or(Duration::MAX))
}

/// `d` as `1h 02m`, `3m 05s` or `7s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The words after the bar: `1.20 M/3.00 M nonces, 250.00 kH/s, ETA 7s`.
fn words(covered: u64, total: u64, rate: u64) -> String {
    let eta = eta(total.saturating_sub(covered), rate).map_or("?".into(), span);
    format!(
        "{}/{} nonces, {}H/s, ETA {eta}",
        si(covered as f64).trim_end(),
        si(total as f64).trim_end(),
        si(rate as f64)
    )
}

/// Shows Progress messages on stderr.
#[derive(Debug)]
pub struct ProgressView {
    bar: Option<ProgressBar>,
}

impl ProgressView {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn stderr() -> ProgressView {
        if !std::io::stderr().is_terminal() {
            return ProgressView { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{bar:40.cyan/blue} {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        ProgressView { bar: Some(bar) }
    }

    /// Shows one Progress message: `covered` of `total` nonces, at `rate` per second.
    pub fn show(&self, covered: u64, total: u64, rate: u64) {
        let text = words(covered, total, rate);
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(covered.min(total));
                bar.set_message(text);
            }
            None => {
                let pct = if total == 0 {
                    0.0
                } else {
                    100.0 * covered as f64 / total as f64
                };
                // Stderr gone: nothing to show it on.
                let _ = writeln!(std::io::stderr(), "progress {pct:.1}% {text}");
            }
        }
    }

    /// Takes the bar off the terminal (before the result is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin_core::message::ext::encode_request;
    use bitcoin_core::message::{Message, Mode};

    #[test]
    fn the_request_asks_for_progress_and_decodes_as_the_same_request() {
        let bytes = asking_progress(encode_request("msg", 3, 99, Mode::Minimum));
        let decoded = Message::decode_full(&bytes).expect("decodes");
        assert!(decoded.progress);
        assert_eq!(
            decoded.message,
            Message::Request {
                data: "msg".into(),
                lower: 3,
                upper: 99
            }
        );
    }

    #[test]
    fn words_tell_amounts_rate_and_eta() {
        assert_eq!(
            words(1_200_000, 3_000_000, 250_000),
            "1.20 M/3.00 M nonces, 250.00 kH/s, ETA 7s"
        );
        assert_eq!(words(0, 10, 0), "0/10 nonces, 0 H/s, ETA ?");
        assert_eq!(span(Duration::from_secs(3725)), "1h 02m");
        assert_eq!(span(Duration::from_secs(185)), "3m 05s");
    }

    #[test]
    fn any_numbers_a_server_sends_are_shown_without_a_panic() {
        // 2^64 nonces left at 1 H/s is more seconds than a Duration holds.
        assert_eq!(eta(u64::MAX, 1), Some(Duration::MAX));
        let view = ProgressView { bar: None };
        for (covered, total, rate) in [(0, u64::MAX, 1), (u64::MAX, 0, 0), (5, 3, u64::MAX)] {
            view.show(covered, total, rate);
        }
    }
}
