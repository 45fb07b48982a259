//! A scripted measurement for issue 11's admission-control figure: a flood of Connects from
//! distinct source addresses (127.0.0.2, 127.0.0.3, …, fresh ephemeral ports) against an
//! echo server, then the server's RSS growth and how long a real client takes to connect
//! and get an echo. Linux only (reads `/proc/self/status`; needs the 127.0.0.0/8 loopback).
//!
//! ```sh
//! cargo run --release -p lsp-mio --example connect_flood -- 100000            # default Limits
//! cargo run --release -p lsp-mio --example connect_flood -- 100000 unlimited  # baseline
//! ```
//!
//! `unlimited` sets both connection caps to `u32::MAX`, which behaves as before admission
//! control. Addresses repeat when the kernel hands out a port again: the server's
//! connection count shows how many were distinct.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lsp_core::Message;
use lsp_mio::{Client, Limits, Params, Server, ServerReadError};

/// Connects sent from each loopback host before moving to the next.
const PER_HOST: usize = 2_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let limits = match args.next().as_deref() {
        Some("unlimited") => Limits {
            max_connections: u32::MAX,
            max_half_open: u32::MAX,
            ..Limits::default()
        },
        _ => Limits::default(),
    };
    let params = Params::default();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = match Server::bind_with_limits(loopback, params, limits) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("server: {e}");
            std::process::exit(1);
        }
    };
    let addr = server.local_addr();
    {
        let server = Arc::clone(&server);
        thread::spawn(move || loop {
            match server.read() {
                Ok((conn, payload)) => {
                    let _ = server.write(conn, payload);
                }
                Err(ServerReadError::ConnectionLost(_) | ServerReadError::ConnectionClosed(_)) => {}
                Err(_) => return,
            }
        });
    }
    let before = rss_kib();
    let connect = Message::connect(0).encode();
    let start = Instant::now();
    let mut sent = 0;
    'hosts: for host in 2..=254u8 {
        for _ in 0..PER_HOST {
            if sent == n {
                break 'hosts;
            }
            let Ok(socket) = UdpSocket::bind(SocketAddr::from(([127, 0, 0, host], 0))) else {
                break;
            };
            let _ = socket.send_to(&connect, addr);
            sent += 1;
            if sent % 2_000 == 0 {
                // Pace the flood so that the kernel's receive buffer does not drop it.
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let flood = start.elapsed();
    // Let the server's thread take what is still in its socket buffer.
    thread::sleep(Duration::from_millis(300));
    let after = rss_kib();
    let stats = server.stats();
    let asked = Instant::now();
    let answered = Client::connect(addr, 0, params)
        .and_then(|client| {
            let _ = client.write(&b"ping"[..]);
            client
                .read()
                .map_err(|e| lsp_core::runtime::StartError::Io(std::io::Error::other(e)))
        })
        .map(|echo| (echo, asked.elapsed()));
    println!(
        "{sent} Connects in {flood:?}: RSS {before} KiB -> {after} KiB (+{} KiB); \
         {} connections kept, {} half-open evicted, {} Connects dropped",
        after.saturating_sub(before),
        server.connection_count(),
        stats.half_open_evicted,
        stats.dropped.connection_limit,
    );
    match answered {
        Ok((echo, took)) => println!(
            "a real client then connected and got its echo {:?} in {took:?}",
            String::from_utf8_lossy(&echo)
        ),
        Err(e) => println!("a real client then failed: {e}"),
    }
}
