//! `lsp-echo`: an LSP echo server and a token-per-message client, on lsp-mio or lsp-smol,
//! for humans and for interop with other LSP implementations.
//!
//! `lsp-echo server --port P` echoes every message back to its sender (`--port 0` picks a
//! free port; `-v` logs `listening on ADDR`). `lsp-echo client --addr HOST:PORT` writes
//! each whitespace-separated token of stdin as one message and prints each echo on its own
//! line; once stdin ends and every echo arrived it closes the connection and exits.
//! `--runtime smol` runs either on lsp-smol instead of lsp-mio. Errors go to stderr, with a
//! non-zero exit.

use std::io::{self, BufReader};
use std::process::ExitCode;

use apps::echo::{self, Runtime};
use apps::system::args::{resolve, LspArgs};
use apps::system::log::Log;
use clap::{ArgAction, Args, Parser, Subcommand};

/// An LSP echo server and client, on lsp-mio or lsp-smol.
#[derive(Parser, Debug)]
#[command(name = "lsp-echo", version)]
struct Cli {
    /// Log to stderr: `-v` connection events, `-vv` every message too.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Echo every message back to its sender.
    Server {
        /// UDP port to listen on, on every interface, IPv6 and IPv4 (0 picks a free one).
        #[arg(long)]
        port: u16,
        #[command(flatten)]
        common: Common,
    },
    /// Send stdin's whitespace-separated tokens, one message each, and print the echoes.
    Client {
        /// Server address, HOST:PORT.
        #[arg(long)]
        addr: String,
        /// Initial sequence number.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        isn: i64,
        #[command(flatten)]
        common: Common,
    },
}

/// The options of both subcommands.
#[derive(Args, Debug)]
struct Common {
    /// The LSP runtime to run on.
    #[arg(long, value_enum, default_value_t)]
    runtime: Runtime,
    #[command(flatten)]
    lsp: LspArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = Log::new("lsp-echo", cli.verbose);
    log.exit(run(cli.command, log))
}

fn run(command: Command, log: Log) -> Result<(), String> {
    match command {
        Command::Server { port, common } => {
            let params = common.lsp.params()?;
            match echo::run_server(common.runtime, port, params, log) {
                Ok(never) => match never {},
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Client { addr, isn, common } => {
            let params = common.lsp.params()?;
            let server = resolve(&addr)?;
            let (input, output) = (BufReader::new(io::stdin()), io::stdout().lock());
            echo::run_client(common.runtime, server, isn, params, input, output, log)
                .map_err(|e| e.to_string())
        }
    }
}
