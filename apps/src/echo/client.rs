//! The echo client: input tokens out as messages, their echoes back as output lines.
//!
//! Two threads share the client: the sender writes each token as it is read, and once the
//! input ends and every echo was printed, closes the client; the printer (the caller's
//! thread) prints every message that arrives until the client is closed. The close is what
//! ends the printer, and the printer's count of echoes is what allows the close.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use lsp_core::runtime::ClientReadError;
use lsp_core::Params;

use super::{Client, EchoError, Runtime};
use crate::system::log::Log;

/// Connects to `server`, writes each token of `input` (separated by ASCII whitespace) as
/// one message as soon as its line is read, and writes each message that arrives to
/// `output` followed by a newline. Once `input` ends and as many messages arrived as
/// tokens were sent, closes the client (waiting until every token was acknowledged) and
/// returns. On failure it returns without waiting for `input` to end.
pub fn run_client(
    runtime: Runtime,
    server: SocketAddr,
    isn: i64,
    params: Params,
    input: impl BufRead + Send + 'static,
    output: impl Write,
    log: Log,
) -> Result<(), EchoError> {
    let client = Client::connect(runtime, server, isn, params)
        .map_err(|source| EchoError::Connect { server, source })?;
    log.info(format_args!(
        "connected to {server} as conn {} ({})",
        client.conn_id(),
        client.runtime()
    ));
    let client = Arc::new(client);
    let result = converse(&client, input, output);
    log.info(format_args!("stats: {:?}", client.stats()));
    result
}

/// How many echoes the printer has printed, and whether it has stopped: what the sender
/// waits on before closing. A count rather than a queue, so that a server echoing more than
/// it was sent costs no memory.
#[derive(Default)]
struct Echoes {
    /// Echoes printed, and whether the printer has stopped.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Echoes {
    fn update(&self, change: impl FnOnce(&mut (usize, bool))) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
        self.changed.notify_all();
    }

    /// One more echo was printed.
    fn printed(&self) {
        self.update(|state| state.0 += 1);
    }

    /// The printer has stopped; nothing more will be printed.
    fn printer_stopped(&self) {
        self.update(|state| state.1 = true);
    }

    /// Waits until `count` echoes were printed: true, or false if the printer stopped first.
    fn wait_for(&self, count: usize) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.0 >= count {
                return true;
            }
            if state.1 {
                return false;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Runs the sender on a new thread and the printer on this one.
fn converse(
    client: &Arc<Client>,
    input: impl BufRead + Send + 'static,
    output: impl Write,
) -> Result<(), EchoError> {
    let echoes = Arc::new(Echoes::default());
    let sender = {
        let (client, echoes) = (Arc::clone(client), Arc::clone(&echoes));
        thread::spawn(move || send_then_close(&client, input, &echoes))
    };
    let printed = print_echoes(client, output, &echoes);
    echoes.printer_stopped();
    match printed {
        // The sender closed the client, or aborted it on a failure: its result says which.
        Ok(()) => sender.join().unwrap_or(Err(EchoError::SenderPanicked)),
        // The sender may wait for input forever: stop the client (so that it stops at its
        // next token) and leave it.
        Err(e) => {
            client.abort();
            Err(e)
        }
    }
}

/// The sender: writes every token, waits for as many echoes, closes. On a failure it
/// aborts the client instead, which ends the printer.
fn send_then_close(client: &Client, input: impl BufRead, echoes: &Echoes) -> Result<(), EchoError> {
    let sent = send_tokens(client, input).inspect_err(|_| client.abort())?;
    if !echoes.wait_for(sent) {
        return Ok(()); // The printer ended first, and reports why.
    }
    client.close().map_err(EchoError::Close)
}

/// Writes each token of `input` as one message as soon as its line is read; returns how
/// many were written once `input` ends.
fn send_tokens(client: &Client, mut input: impl BufRead) -> Result<usize, EchoError> {
    let mut sent = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .map_err(EchoError::Input)?
            == 0
        {
            return Ok(sent);
        }
        for token in line
            .split(u8::is_ascii_whitespace)
            .filter(|t| !t.is_empty())
        {
            client.write(token.to_vec()).map_err(EchoError::Write)?;
            sent += 1;
        }
    }
}

/// The printer: writes each message to `output` on its own line and tells the sender,
/// until the client is closed (`Ok`) or its connection ends.
fn print_echoes(client: &Client, mut output: impl Write, echoes: &Echoes) -> Result<(), EchoError> {
    loop {
        let payload = match client.read() {
            Ok(payload) => payload,
            Err(ClientReadError::Closed) => return Ok(()),
            Err(e) => return Err(EchoError::ClientRead(e)),
        };
        print_line(&mut output, &payload).map_err(EchoError::Output)?;
        echoes.printed();
    }
}

/// Writes `payload` and a newline, and flushes, so each echo shows as it arrives.
fn print_line(output: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    output.write_all(payload)?;
    output.write_all(b"\n")?;
    output.flush()
}
