//! `mine [MESSAGE] [MAX_NONCE]`: the whole miner system in one process, one command.
//!
//! Starts a server and miners on loopback, asks for the minimum hash of MESSAGE over
//! `0 ..= MAX_NONCE` (default `hello` over 100 million nonces: a second or two), shows
//! progress on stderr while it runs, and prints `Result <hash> <nonce>` on stdout (exit 0)
//! and how long it took on stderr. With `--zeros Z [--algo sha256d]` it asks for the
//! smallest nonce whose hash has Z leading zero bits instead, and prints `NotFound` (exit 0)
//! if none qualifies. If the run fails it prints `Disconnected` and exits 1,
//! with no timing line; a bad command line (a message too long for one LSP message among
//! them) is refused with the reason and exit code 2.

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apps::system::args::LspArgs;
use apps::system::client::Outcome;
use apps::system::local::LocalRun;
use apps::system::mode_args::ModeArgs;
use bitcoin_core::kernel::{Kernel, Path};
use bitcoin_core::request_size;
use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser};

/// Mine locally: a server and miners in this process, one request, its answer.
#[derive(Parser, Debug)]
#[command(name = "mine", version)]
struct Cli {
    /// The message to search.
    #[arg(default_value = "hello")]
    message: String,
    /// The last nonce of the range (inclusive).
    #[arg(default_value_t = 100_000_000)]
    max_nonce: u64,
    /// The first nonce of the range.
    #[arg(long, default_value_t = 0)]
    lower: u64,
    /// How many miners to start.
    #[arg(long, default_value_t = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN))]
    miners: NonZeroUsize,
    /// Search threads per miner (default: the cores shared among the miners).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// Kernel path: scalar, sha-ni, avx2 or avx512 (default: the fastest available).
    #[arg(long)]
    kernel: Option<Path>,
    /// No progress on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// Log the server's, miners' and client's events to stderr (`-vv` every job).
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    mode: ModeArgs,
    #[command(flatten)]
    lsp: LspArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.lower > cli.max_nonce {
        Cli::command()
            .error(
                ErrorKind::ValueValidation,
                format!("--lower {} exceeds MAX_NONCE {}", cli.lower, cli.max_nonce),
            )
            .exit();
    }
    if let Err(e) = request_size::check_mode(&cli.message, cli.max_nonce, cli.mode.mode()) {
        Cli::command().error(ErrorKind::ValueValidation, e).exit();
    }
    match run(&cli) {
        Ok(answer @ (Outcome::Answer { .. } | Outcome::NotFound)) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Disconnected) => {
            println!("{}", Outcome::Disconnected);
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("mine: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<Outcome, String> {
    let mut local = LocalRun::new(cli.miners);
    local.params = cli.lsp.params()?;
    local.log_level = cli.verbose;
    local.mode = cli.mode.mode();
    if let Some(threads) = cli.threads {
        local.threads = threads;
    }
    if let Some(path) = cli.kernel {
        local.kernel = Kernel::new(path).map_err(|e| e.to_string())?;
    }
    let total = u128::from(cli.max_nonce - cli.lower) + 1;
    // In target mode the search stops at the first hit: a share of the range says nothing.
    let of = (!local.mode.is_target()).then_some(total);
    let tty = std::io::stderr().is_terminal();
    let show = !cli.quiet;
    if show {
        eprintln!(
            "mine: {} miner(s) x {} thread(s), {} kernel, searching {:?} over {}..={}",
            local.miners,
            local.threads,
            local.kernel.path(),
            cli.message,
            cli.lower,
            cli.max_nonce
        );
    }
    let started = Instant::now();
    let outcome = local
        .run(
            &cli.message,
            cli.lower,
            cli.max_nonce,
            Duration::from_secs(1),
            |searched, elapsed| {
                if show {
                    progress(&progress_line(searched, of, elapsed), tty);
                }
            },
        )
        .map_err(|e| e.to_string())?;
    if show && matches!(outcome, Outcome::Answer { .. } | Outcome::NotFound) {
        let elapsed = started.elapsed();
        let rate = total as f64 / elapsed.as_secs_f64() / 1e6;
        let end = if tty { "\r\x1b[K" } else { "" };
        if local.mode.is_target() {
            // The search stopped at the first hit: the range's size says nothing of speed.
            eprintln!("{end}mine: done in {elapsed:.2?}");
        } else {
            eprintln!("{end}mine: done in {elapsed:.2?} ({rate:.1} M nonces/s)");
        }
    }
    Ok(outcome)
}

/// One progress report: the nonces the miners searched in `elapsed`, their rate, and the
/// share of the range's `total` nonces they are (`None`: target mode, where the search
/// stops at the first hit and has no share to tell).
fn progress_line(searched: u64, total: Option<u128>, elapsed: Duration) -> String {
    let rate = searched as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
    let share = match total {
        Some(total) => {
            let percent = (u128::from(searched) * 100 / total.max(1)).min(100);
            format!("{percent:3}% searched ({searched} nonces)")
        }
        None => format!("{searched} nonces searched"),
    };
    format!("mine: {share} in {elapsed:.0?}, {rate:.1} M nonces/s")
}

/// Shows `line` on stderr: rewritten in place on a terminal, a line otherwise.
fn progress(line: &str, tty: bool) {
    let mut stderr = std::io::stderr().lock();
    let _ = if tty {
        write!(stderr, "\r\x1b[K{line}").and_then(|()| stderr.flush())
    } else {
        writeln!(stderr, "{line}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_tells_a_share_of_the_range_only_in_minimum_mode() {
        let second = Duration::from_secs(1);
        assert_eq!(
            progress_line(25_000_000, Some(100_000_001), second),
            "mine:  24% searched (25000000 nonces) in 1s, 25.0 M nonces/s"
        );
        assert_eq!(
            progress_line(25_000_000, None, second),
            "mine: 25000000 nonces searched in 1s, 25.0 M nonces/s"
        );
    }
}
