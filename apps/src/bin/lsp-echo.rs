//! `lsp-echo`: an LSP echo server and a line-oriented client, on the lsp-mio runtime.
//!
//! `lsp-echo server --port P` echoes every message back to its sender.
//! `lsp-echo client --addr HOST:PORT` writes each whitespace-separated token of stdin as one
//! message and prints each echo on its own line; once stdin ends and every echo arrived it
//! closes the connection and exits.

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use clap::{Args, Parser, Subcommand};
use lsp_core::Params;
use lsp_mio::{Client, ClientReadError, Server, ServerReadError};

/// LSP echo server and client.
#[derive(Parser, Debug)]
#[command(name = "lsp-echo", version, about)]
struct Cli {
    /// Log connection events and errors to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Echo every message back to its sender.
    Server {
        /// UDP port to listen on.
        #[arg(long)]
        port: u16,
        #[command(flatten)]
        params: ParamArgs,
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
        params: ParamArgs,
    },
}

/// The LSP parameters (lsp.md §5), defaulting to the reference's.
#[derive(Args, Debug)]
struct ParamArgs {
    /// Epochs of silence after which the peer is declared lost.
    #[arg(long, default_value_t = 5)]
    epoch_limit: u32,
    /// Epoch length in milliseconds.
    #[arg(long, default_value_t = 2000)]
    epoch_millis: u64,
    /// Sliding window size.
    #[arg(long, default_value_t = 1)]
    window: u32,
    /// Cap on messages in flight.
    #[arg(long, default_value_t = 1)]
    max_unacked: u32,
    /// Cap on a message's back-off, in epochs.
    #[arg(long, default_value_t = 0)]
    max_backoff: u32,
}

impl ParamArgs {
    fn params(&self) -> Result<Params, String> {
        let params = Params {
            epoch_limit: self.epoch_limit,
            epoch_millis: self.epoch_millis,
            window_size: self.window,
            max_backoff_interval: self.max_backoff,
            max_unacked_messages: self.max_unacked,
        };
        params.validate().map_err(|e| e.to_string())?;
        Ok(params)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Server { port, params } => run_server(*port, params, cli.verbose),
        Command::Client { addr, isn, params } => run_client(addr, *isn, params, cli.verbose),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lsp-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(port: u16, params: &ParamArgs, verbose: bool) -> Result<(), String> {
    let server = Server::listen(port, params.params()?).map_err(|e| e.to_string())?;
    if verbose {
        eprintln!("listening on {}", server.local_addr());
    }
    loop {
        match server.read() {
            Ok((conn, payload)) => {
                if let Err(e) = server.write(conn, payload) {
                    if verbose {
                        eprintln!("conn {conn}: echo failed: {e}");
                    }
                }
            }
            Err(
                ServerReadError::ConnectionLost(conn) | ServerReadError::ConnectionClosed(conn),
            ) => {
                if verbose {
                    eprintln!("conn {conn}: gone");
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address `{addr}`: {e}"))?
        .next()
        .ok_or_else(|| format!("address `{addr}` resolves to nothing"))
}

fn run_client(addr: &str, isn: i64, params: &ParamArgs, verbose: bool) -> Result<(), String> {
    let server = resolve(addr)?;
    let client = Client::connect(server, isn, params.params()?).map_err(|e| e.to_string())?;
    if verbose {
        eprintln!("connected to {server} as conn {}", client.conn_id());
    }
    let client = Arc::new(client);
    let (echoed_tx, echoed_rx) = mpsc::channel::<()>();
    // The writer: stdin tokens to messages; at the end of stdin, wait for every echo and
    // close, which ends the reader's loop below.
    let writer = {
        let client = Arc::clone(&client);
        thread::spawn(move || -> Result<(), String> {
            let mut written = 0usize;
            for line in io::stdin().lock().lines() {
                let line = line.map_err(|e| format!("reading stdin: {e}"))?;
                for token in line.split_whitespace() {
                    client
                        .write(token.as_bytes().to_vec())
                        .map_err(|e| e.to_string())?;
                    written += 1;
                }
            }
            for _ in 0..written {
                if echoed_rx.recv().is_err() {
                    return Ok(()); // The reader ended first and reports why.
                }
            }
            client.close().map_err(|e| format!("close: {e}"))
        })
    };
    let mut stdout = io::stdout().lock();
    let read_result = loop {
        match client.read() {
            Ok(payload) => {
                let shown = String::from_utf8_lossy(&payload);
                if writeln!(stdout, "{shown}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    break Err("stdout closed".to_string());
                }
                let _ = echoed_tx.send(());
            }
            Err(ClientReadError::Closed) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    drop(echoed_tx);
    let write_result = match read_result {
        // The writer may be blocked on stdin forever; don't wait for it after a failure.
        Err(_) => Ok(()),
        Ok(()) => writer
            .join()
            .unwrap_or_else(|_| Err("writer thread panicked".to_string())),
    };
    if verbose {
        eprintln!("stats: {:?}", client.stats());
    }
    read_result.and(write_result)
}
