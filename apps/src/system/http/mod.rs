//! `server --http ADDR`: the pool's numbers over HTTP (docs/miner.md §7.3) — `/metrics`
//! (Prometheus), `/status` (JSON) and `/` (a live dashboard page).
//!
//! # Bounded by construction
//!
//! A fixed pool of [`WORKERS`] threads each accepts one TCP connection at a time from the
//! shared listener, reads one request (its head at most [`MAX_HEAD`] bytes, all of it
//! within [`REQUEST_TIMEOUT`]), answers it (all of it within another
//! [`REQUEST_TIMEOUT`]) and closes the connection. So at most [`WORKERS`] connections are
//! open at once; more wait in the kernel's accept backlog, and a slow or silent peer holds a
//! worker for at most twice [`REQUEST_TIMEOUT`] (plus the wait for a snapshot). Requests are parsed
//! by `httparse` (hyper's parser). The `tiny_http` crate was the first choice, but it starts
//! a thread per accepted connection without a bound (its task pool grows on demand) and
//! queues requests without one, and it takes no connections from outside; a fixed worker
//! pool over a plain listener gives the bound itself.
//!
//! # Never in the serving loop's way
//!
//! The workers see the pool only through the [`board::Board`]: the loop publishes
//! snapshots there when someone watches, and the workers format them.

pub mod board;
pub mod metrics;
pub mod replication;
pub mod status;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use board::Board;

/// Worker threads, and so connections served at once.
pub const WORKERS: usize = 4;

/// The longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8192;

/// How long a connection may take to send its request, and then to take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The dashboard page (`GET /`), embedded in the binary.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// The HTTP server: [`WORKERS`] threads serving `/metrics`, `/status` and `/` from a
/// [`Board`]. The threads run until the process ends.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
}

impl HttpServer {
    /// Listens on `addr` (port 0 picks a free one) and starts the workers; fails if the
    /// address cannot be bound or a thread cannot be started.
    pub fn start(addr: SocketAddr, board: Arc<Board>) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        for i in 0..WORKERS {
            let listener = listener.try_clone()?;
            let board = Arc::clone(&board);
            thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || work(&listener, &board))?;
        }
        Ok(HttpServer { local_addr })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// One worker: accept, answer, close, forever.
fn work(listener: &TcpListener, board: &Board) {
    loop {
        match listener.accept() {
            // A failed connection concerns only its peer.
            Ok((stream, _)) => {
                let _ = answer(stream, board);
            }
            // Out of descriptors or similar: let it pass rather than spin.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// An answer: status, content type, body.
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: &'static str, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream, board: &Board) -> io::Result<()> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let (reply, head_only) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or("");
                let path = request.path.unwrap_or("");
                break (route(method, path, board), method == "HEAD");
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            Ok(httparse::Status::Partial) => {
                break (
                    Reply::text("431 Request Header Fields Too Large", ""),
                    false,
                )
            }
            Err(_) => break (Reply::text("400 Bad Request", "bad request\n"), false),
        }
    };
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    // The answer gets its own REQUEST_TIMEOUT, all of it: a peer reading slowly cannot
    // hold the worker longer.
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    write_by(&mut stream, head.as_bytes(), deadline)?;
    if !head_only {
        write_by(&mut stream, &reply.body, deadline)?;
    }
    linger(&mut stream, deadline)
}

/// Writes all of `bytes` before `deadline`, or fails.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends the connection without losing the answer: closing a socket with unread input
/// makes the kernel reset the connection, which can destroy the answer still in flight.
/// So: no more writes, then read and discard what the peer still sends (at most
/// [`MAX_HEAD`] bytes, until the request's deadline but at most 500 ms) until it closes.
fn linger(stream: &mut TcpStream, deadline: Instant) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .min(Duration::from_millis(500));
    if left.is_zero() {
        return Ok(());
    }
    stream.set_read_timeout(Some(left))?;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < MAX_HEAD {
        match stream.read(&mut sink)? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// The answer to `method path`.
fn route(method: &str, path: &str, board: &Board) -> Reply {
    if method != "GET" && method != "HEAD" {
        return Reply::text("405 Method Not Allowed", "GET only\n");
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let fresh = query.split('&').any(|q| q == "fresh");
    match path {
        "/" | "/index.html" => Reply {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            body: DASHBOARD.as_bytes().to_vec(),
        },
        "/metrics" | "/status" => {
            let snapshot = if fresh {
                board.read_fresh()
            } else {
                board.read()
            };
            let Some(snapshot) = snapshot else {
                let why = if fresh {
                    "no snapshot newer than the request yet; ask again\n"
                } else {
                    "no snapshot yet\n"
                };
                return Reply::text("503 Service Unavailable", why);
            };
            if path == "/metrics" {
                Reply {
                    status: "200 OK",
                    content_type: metrics::CONTENT_TYPE,
                    body: metrics::render(&snapshot).into_bytes(),
                }
            } else {
                Reply {
                    status: "200 OK",
                    content_type: "application/json",
                    body: status::render(&snapshot).into_bytes(),
                }
            }
        }
        _ => Reply::text("404 Not Found", "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request` raw to a fresh server; returns the status line.
    fn status_line(server: &HttpServer, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(server.local_addr()).expect("connects");
        stream.write_all(request).expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer.lines().next().unwrap_or("").to_string()
    }

    #[test]
    fn paths_methods_and_malformed_heads_get_their_status() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = HttpServer::start(addr, Board::new()).expect("starts");
        let cases: [(&[u8], &str); 5] = [
            (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
            (b"HEAD /index.html HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
            (b"GET /nowhere HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                "HTTP/1.1 405 Method Not Allowed",
            ),
            (
                b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                status_line(&server, request),
                expected,
                "{}",
                String::from_utf8_lossy(request)
            );
        }
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_HEAD + 10, b'a');
        assert_eq!(
            status_line(&server, &huge),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
    }

    #[test]
    fn the_dashboard_polls_status_and_fetches_nothing_from_elsewhere() {
        assert!(DASHBOARD.contains("fetch(\"/status\""));
        assert!(!DASHBOARD.contains("http://") && !DASHBOARD.contains("https://"));
        assert!(!DASHBOARD.contains("<script src") && !DASHBOARD.contains("<link"));
    }
}
