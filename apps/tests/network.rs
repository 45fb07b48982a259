//! The server on the network as a user meets it: reachable over IPv6 and IPv4 at once, or on
//! the one address `--bind` names, and a `-v` log that tells each request's story.

mod support;

use std::net::UdpSocket;

use support::{client, conn_of, miner, server};

/// Whether this host has an IPv6 loopback (some containers have none); tests that need it
/// say so and skip without it.
fn has_ipv6_loopback() -> bool {
    let ok = UdpSocket::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("skipped: this host has no IPv6 loopback ([::1])");
    }
    ok
}

/// The port of a `127.0.0.1:PORT` address.
fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().expect("HOST:PORT")
}

#[test]
fn one_server_serves_ipv6_and_ipv4_peers_by_default() {
    if !has_ipv6_loopback() {
        return;
    }
    let (server, addr4) = server(&[]);
    let addr6 = format!("[::1]:{}", port_of(&addr4));
    let _miner = miner(&addr6, &["--threads", "1"]);
    server.wait_stderr("miner joined");
    for addr in [&addr6, &addr4] {
        let mut c = client(addr, "msg", 0, 2);
        let (status, stdout) = c.wait_exit();
        assert!(status.success(), "{addr}: {}", c.stderr_text());
        assert_eq!(stdout, "Result 4754799531757243342 1", "{addr}");
    }
}

#[test]
fn bind_listens_on_the_one_address_it_names() {
    let (server4, addr4) = server(&["--bind", "127.0.0.1"]);
    assert!(server4.wait_stderr("listening on").contains("127.0.0.1:"));
    let _miner4 = miner(&addr4, &["--threads", "1"]);
    let mut c = client(&addr4, "msg", 0, 2);
    assert_eq!(c.wait_exit().1, "Result 4754799531757243342 1");

    if !has_ipv6_loopback() {
        return;
    }
    let (server6, addr) = server(&["--bind", "::1"]);
    assert!(server6.wait_stderr("listening on").contains("[::1]:"));
    let addr6 = format!("[::1]:{}", port_of(&addr));
    let _miner6 = miner(&addr6, &["--threads", "1"]);
    let mut c = client(&addr6, "msg", 0, 2);
    assert_eq!(c.wait_exit().1, "Result 4754799531757243342 1");
}

#[test]
fn the_log_names_each_request_accepted_and_answered_and_the_client_leaving() {
    let (server, addr) = server(&[]);
    let _miner = miner(&addr, &["--threads", "1"]);
    server.wait_stderr("miner joined");
    let mut c = client(&addr, "msg", 0, 2);
    let conn = conn_of(&c);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, "Result 4754799531757243342 1");
    server.wait_stderr(&format!("conn {conn}: request \"msg\" 0..=2 accepted"));
    let answered = server.wait_stderr(&format!(
        "conn {conn}: request \"msg\" 0..=2 answered: Result 4754799531757243342 1 in "
    ));
    assert!(answered.ends_with("M nonces/s)"), "{answered}");
    // The client closed after its answer; the server learns of it as silence and says so
    // as a departure, not as a loss.
    server.wait_stderr(&format!("conn {conn}: client left after 1 answer(s)"));
    assert_eq!(
        server.count_stderr(&format!("conn {conn}: lost")),
        0,
        "{}",
        server.stderr_text()
    );
}
