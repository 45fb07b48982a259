//! Arbitrary call sequences against a server and a client endpoint: datagrams (raw or
//! well-formed with arbitrary fields), application calls and time. Nothing panics, memory
//! stays bounded by the windows, and no datagram over 1500 bytes is ever produced.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lsp_core::{ClientEndpoint, ConnId, Message, Params, ServerEndpoint, Timestamp};

#[derive(Arbitrary, Debug)]
enum Call {
    Raw { from: u8, bytes: Vec<u8> },
    Connect { from: u8, isn: i64 },
    Data { from: u8, conn: i64, seq: i64, size_delta: i8, payload: Vec<u8>, bad_checksum: bool },
    Ack { from: u8, conn: i64, seq: i64, cumulative: bool },
    ServerWrite { conn: i64, len: u16 },
    ServerCloseConn { conn: i64 },
    ServerClose,
    ClientWrite { len: u16 },
    ClientClose,
    Advance { millis: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    window: u8,
    max_unacked: u8,
    backoff: u8,
    calls: Vec<Call>,
}

fuzz_target!(|input: Input| {
    let params = Params {
        epoch_limit: 3,
        epoch_millis: 100,
        window_size: u32::from(input.window % 16) + 1,
        max_unacked_messages: u32::from(input.max_unacked % 16) + 1,
        max_backoff_interval: u32::from(input.backoff % 8),
    };
    let mut now = Timestamp::ZERO;
    let mut server = ServerEndpoint::<u8>::new(params, now).unwrap();
    let mut client = ClientEndpoint::new(params, 0, now).unwrap();
    for call in input.calls {
        match call {
            Call::Raw { from, bytes } => {
                server.handle_datagram(now, from, &bytes);
                client.handle_datagram(now, &bytes);
            }
            Call::Connect { from, isn } => server.handle_datagram(now, from, &Message::connect(isn).encode()),
            Call::Data { from, conn, seq, size_delta, payload, bad_checksum } => {
                let mut m = Message::data(conn, seq, payload);
                m.size = (m.size + i64::from(size_delta)).max(0);
                if bad_checksum {
                    m.checksum ^= 1;
                }
                let bytes = m.encode();
                server.handle_datagram(now, from, &bytes);
                client.handle_datagram(now, &bytes);
            }
            Call::Ack { from, conn, seq, cumulative } => {
                let m = if cumulative { Message::cack(conn, seq) } else { Message::ack(conn, seq) };
                server.handle_datagram(now, from, &m.encode());
                client.handle_datagram(now, &m.encode());
            }
            Call::ServerWrite { conn, len } => {
                let _ = server.write(ConnId(conn), vec![1; usize::from(len)]);
            }
            Call::ServerCloseConn { conn } => {
                let _ = server.close_conn(ConnId(conn));
            }
            Call::ServerClose => {
                let _ = server.close();
            }
            Call::ClientWrite { len } => {
                let _ = client.write(vec![2; usize::from(len)]);
            }
            Call::ClientClose => {
                let _ = client.close();
            }
            Call::Advance { millis } => {
                now = now + Duration::from_millis(u64::from(millis));
                server.handle_timeout(now);
                client.handle_timeout(now);
            }
        }
        while let Some(t) = server.poll_transmit() {
            assert!(t.payload.len() <= lsp_core::MAX_DATAGRAM_LEN);
        }
        while let Some(d) = client.poll_transmit() {
            assert!(d.len() <= lsp_core::MAX_DATAGRAM_LEN);
        }
        while server.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        assert!(server.connection_count() <= 256);
        assert!(client.buffered_out_of_order() < params.window_size as usize);
        assert!(client.in_flight() <= params.max_unacked_messages as usize);
    }
});
