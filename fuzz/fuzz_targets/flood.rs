//! A server endpoint fed by thousands of source addresses (Connects, Data, Acks, garbage,
//! time) with an application that never reads: every queue a peer can fill stays within
//! the bounds of `Limits` (connections, half-open connections, forgotten connections with
//! events, unread messages per connection, queued events).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lsp_core::{ConnId, Limits, Message, Params, ServerEndpoint, Timestamp};

#[derive(Arbitrary, Debug)]
enum Call {
    /// Connects from `count` consecutive addresses starting at `from`.
    Connects {
        from: u16,
        count: u8,
        isn: i64,
    },
    Data {
        from: u16,
        seq: i64,
        len: u8,
    },
    Ack {
        from: u16,
        conn: i64,
        seq: i64,
    },
    Raw {
        from: u16,
        bytes: Vec<u8>,
    },
    Write {
        conn: u8,
        len: u8,
    },
    Advance {
        millis: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    window: u8,
    max_connections: u8,
    half_open: u8,
    max_unread: u8,
    calls: Vec<Call>,
}

fuzz_target!(|input: Input| {
    let params = Params {
        epoch_limit: 3,
        epoch_millis: 100,
        window_size: u32::from(input.window % 8) + 1,
        ..Params::default()
    };
    let max_connections = u32::from(input.max_connections % 64) + 1;
    let limits = Limits {
        max_connections,
        max_half_open: u32::from(input.half_open) % max_connections + 1,
        max_unread_messages: u32::from(input.max_unread % 16) + 1,
    };
    let mut now = Timestamp::ZERO;
    let mut server = ServerEndpoint::<u16>::with_limits(params, limits, now).unwrap();
    for call in input.calls {
        match call {
            Call::Connects { from, count, isn } => {
                let connect = Message::connect(isn.rem_euclid(1 << 20)).encode();
                for k in 0..=u16::from(count) {
                    server.handle_datagram(now, from.wrapping_add(k.wrapping_mul(7)), &connect);
                }
            }
            Call::Data { from, seq, len } => {
                let m = Message::data(0, seq.rem_euclid(1 << 21), vec![7; usize::from(len)]);
                server.handle_datagram(now, from, &m.encode());
            }
            Call::Ack { from, conn, seq } => {
                server.handle_datagram(now, from, &Message::ack(conn, seq).encode());
            }
            Call::Raw { from, bytes } => server.handle_datagram(now, from, &bytes),
            Call::Write { conn, len } => {
                let _ = server.write(ConnId(i64::from(conn)), vec![1; usize::from(len)]);
            }
            Call::Advance { millis } => {
                now = now + Duration::from_millis(u64::from(millis));
                server.handle_timeout(now);
            }
        }
        // The driver sends; the application never reads.
        while let Some(t) = server.poll_transmit() {
            assert!(t.payload.len() <= lsp_core::MAX_DATAGRAM_LEN);
        }
        let live = server.connection_count();
        let lingering = server.forgotten_with_events();
        assert!(live <= limits.max_connections as usize);
        assert!(server.half_open_count() <= limits.max_half_open as usize);
        assert!(live + lingering <= 2 * limits.max_connections as usize + 1);
        let per_conn = (limits.max_unread_messages + params.window_size + 1) as usize;
        assert!(server.pending_events() <= (live + lingering) * per_conn + 1);
        for id in 0..=300 {
            let unread = server.unread(ConnId(id));
            assert!(unread < (limits.max_unread_messages + params.window_size) as usize);
        }
    }
});
