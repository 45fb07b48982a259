//! `client <host:port> <message> <maxNonce> [--zeros Z [--algo sha256d]]`: one request
//! (docs/miner.md §3; target mode with `--zeros`).
//!
//! Prints exactly one line on stdout, `Result <hash> <nonce>`, `NotFound` (target mode, no
//! nonce qualifies) or `Disconnected`, and exits
//! 0; if it cannot connect at all it prints `Disconnected` and exits 1. With `--zeros`, an
//! answer whose hash is not the nonce's hash under the algorithm or lacks the zeros (a
//! server that ignores `Zeros`, such as the reference) is still printed, but said so on
//! stderr, with exit code 3. A bad command line —
//! among them a message too long for one LSP message (see
//! [`bitcoin_core::request_size`]) — is refused before connecting, with the reason on
//! stderr and exit code 2. Logs go to stderr.

use std::io::Write;
use std::process::ExitCode;

use apps::system::args::{resolve, LspArgs};
use apps::system::client::{self, Outcome};
use apps::system::log::Log;
use apps::system::mode_args::ModeArgs;
use apps::system::progress::{asking_progress, ProgressView};
use bitcoin_core::message::ext::encode_request;
use bitcoin_core::request_size;
use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser};

/// A client: asks for the minimum hash of MESSAGE over LOWER..=MAX_NONCE and prints it.
#[derive(Parser, Debug)]
#[command(name = "client", version)]
struct Cli {
    /// The server's address, HOST:PORT; or a replicated server's addresses,
    /// comma-separated: the request then carries an "Id" and goes to the next address
    /// whenever the server is lost (docs/replication.md).
    server: String,
    /// The message to search.
    message: String,
    /// The last nonce of the range (inclusive).
    max_nonce: u64,
    /// The first nonce of the range.
    #[arg(long, default_value_t = 0)]
    lower: u64,
    /// Log to stderr.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// Ask the server for progress and show it on stderr: a bar with rate and ETA on a
    /// terminal, a `progress …` line per update otherwise. Stdout is unchanged. A server
    /// that does not know the request's `Progress` key (the reference) just answers.
    #[arg(long)]
    progress: bool,
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
                format!("--lower {} exceeds maxNonce {}", cli.lower, cli.max_nonce),
            )
            .exit();
    }
    if let Err(e) = request_size::check_mode(&cli.message, cli.max_nonce, cli.mode.mode()) {
        Cli::command().error(ErrorKind::ValueValidation, e).exit();
    }
    let log = Log::new("client", cli.verbose);
    let (outcome, mut code) = match run(&cli, &log) {
        Ok(outcome) => (outcome, ExitCode::SUCCESS),
        Err(message) => {
            log.error(format_args!("{message}"));
            (Outcome::Disconnected, ExitCode::FAILURE)
        }
    };
    if let Some(why) = client::not_a_target_answer(&cli.message, cli.mode.mode(), &outcome) {
        log.error(format_args!("{why}"));
        code = ExitCode::from(3);
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{outcome}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    code
}

fn run(cli: &Cli, log: &Log) -> Result<Outcome, String> {
    let params = cli.lsp.params()?;
    let view = cli.progress.then(ProgressView::stderr);
    let mut show = |covered, total, rate| {
        if let Some(view) = &view {
            view.show(covered, total, rate);
        }
    };
    let asking = |request| match view {
        Some(_) => asking_progress(request),
        None => request,
    };
    let progress: Option<&mut client::ShowProgress<'_>> = match view {
        Some(_) => Some(&mut show),
        None => None,
    };
    let outcome = if cli.server.contains(',') {
        let servers = cli
            .server
            .split(',')
            .map(resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let request = asking(encode_request(
            &cli.message,
            cli.lower,
            cli.max_nonce,
            cli.mode.mode(),
        ));
        Ok(client::request_replicated_with(
            &servers, params, request, 10, log, progress,
        ))
    } else {
        let server = resolve(&cli.server)?;
        let request = asking(encode_request(
            &cli.message,
            cli.lower,
            cli.max_nonce,
            cli.mode.mode(),
        ));
        client::request_encoded(server, params, request, log, progress)
            .map_err(|e| format!("cannot connect to {server}: {e}"))
    };
    if let Some(view) = &view {
        view.finish();
    }
    outcome
}
