//! Talking to `server --http`: plain `GET`s over fresh TCP connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::{Proc, PATIENCE};

/// The HTTP address `server` logs (`http on ADDR`), once it has.
pub fn http_addr(server: &Proc) -> SocketAddr {
    let line = server.wait_stderr("http on ");
    line.rsplit("http on ")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// `GET path` over a fresh connection: the status code, the headers' text and the body.
pub fn get(http: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(http).expect("connects");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request sent");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("answer read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (code, head.to_string(), body.to_string())
}

/// `GET path?fresh`: a snapshot taken after the request. Asked again while the server
/// answers `503` (its loop published none within the wait, as on a busy machine); panics
/// after [`PATIENCE`].
pub fn get_fresh(http: SocketAddr, path: &str) -> (u16, String, String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (code, head, body) = get(http, &format!("{path}?fresh"));
        if code != 503 || Instant::now() > deadline {
            return (code, head, body);
        }
    }
}
