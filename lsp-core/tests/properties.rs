//! Quickcheck properties over the two-endpoint harness: reliable in-order delivery under any
//! network that eventually heals, and robustness against arbitrary input.

mod common;

use std::time::Duration;

use common::{params, Fate, Rng, World};
use lsp_core::{ClientEndpoint, ConnId, Message, MsgType, Params, ServerEndpoint, Timestamp};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// How many cases each property runs (reported in the closing note of the core issue).
const DELIVERY_CASES: u64 = 400;
const FUZZ_CASES: u64 = 1000;

/// A workload and a faulty network that heals at `heal_after_ms`.
#[derive(Clone, Debug)]
struct DeliveryCase {
    seed: u64,
    /// Per client: message sizes up (client → server) and down (server → client).
    up: Vec<Vec<u16>>,
    down: Vec<Vec<u16>>,
    server: (u32, u32, u32),
    client: (u32, u32, u32),
    drop_pct: u64,
    dup_pct: u64,
    delay_pct: u64,
    heal_after_ms: u64,
    /// Per client: its initial sequence number, anywhere in the valid domain.
    isns: Vec<i64>,
}

/// An initial sequence number from the whole valid domain `0 ..= MAX_ISN`, its edges
/// (0, 1, the largest few) drawn often.
fn isn(g: &mut Gen) -> i64 {
    use lsp_core::MAX_ISN;
    match u8::arbitrary(g) % 8 {
        0 => 0,
        1 => *g.choose(&[1, 2, MAX_ISN, MAX_ISN - 1]).unwrap_or(&0),
        2 => MAX_ISN - i64::from(u16::arbitrary(g)),
        3 => i64::from(u8::arbitrary(g)),
        _ => (u64::arbitrary(g) % (MAX_ISN as u64 + 1)) as i64,
    }
}

fn small(g: &mut Gen, lo: u32, hi: u32) -> u32 {
    lo + u32::arbitrary(g) % (hi - lo + 1)
}

fn sizes(g: &mut Gen) -> Vec<u16> {
    let n = usize::arbitrary(g) % 25;
    (0..n).map(|_| u16::arbitrary(g) % 300).collect()
}

impl Arbitrary for DeliveryCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let clients = 1 + usize::arbitrary(g) % 3;
        DeliveryCase {
            seed: u64::arbitrary(g),
            up: (0..clients).map(|_| sizes(g)).collect(),
            down: (0..clients).map(|_| sizes(g)).collect(),
            server: (small(g, 1, 8), small(g, 1, 8), small(g, 0, 4)),
            client: (small(g, 1, 8), small(g, 1, 8), small(g, 0, 4)),
            drop_pct: u64::from(small(g, 0, 60)),
            dup_pct: u64::from(small(g, 0, 30)),
            delay_pct: u64::from(small(g, 0, 50)),
            heal_after_ms: u64::from(small(g, 0, 3000)),
            isns: (0..clients).map(|_| isn(g)).collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let mut out = vec![];
        for (field, value) in [
            (0, self.drop_pct),
            (1, self.dup_pct),
            (2, self.delay_pct),
            (3, self.heal_after_ms),
        ] {
            if value > 0 {
                let mut c = self.clone();
                match field {
                    0 => c.drop_pct = 0,
                    1 => c.dup_pct = 0,
                    2 => c.delay_pct = 0,
                    _ => c.heal_after_ms = 0,
                }
                out.push(c);
            }
        }
        if self.up.len() > 1 {
            let mut c = self.clone();
            c.up.pop();
            c.down.pop();
            c.isns.pop();
            out.push(c);
        }
        if self.isns.iter().any(|&i| i != 0) {
            let mut c = self.clone();
            c.isns.iter_mut().for_each(|i| *i = 0);
            out.push(c);
        }
        for i in 0..self.up.len() {
            for dir in 0..2 {
                let list = if dir == 0 { &self.up[i] } else { &self.down[i] };
                if !list.is_empty() {
                    let mut c = self.clone();
                    let l = if dir == 0 {
                        &mut c.up[i]
                    } else {
                        &mut c.down[i]
                    };
                    l.truncate(l.len() / 2);
                    out.push(c);
                }
            }
        }
        Box::new(out.into_iter())
    }
}

fn payload(client: usize, n: usize, size: u16) -> Vec<u8> {
    let mut p = vec![(client as u8) ^ (n as u8); usize::from(size)];
    p.extend_from_slice(&(n as u32).to_le_bytes());
    p
}

fn delivery_holds(case: DeliveryCase) -> TestResult {
    let (sw, sm, sbo) = case.server;
    let (cw, cm, cbo) = case.client;
    // K is large enough that no loss is declared while the network misbehaves.
    let server_params = params(60, 100, sw, sm, sbo);
    let client_params = params(60, 100, cw, cm, cbo);
    let n = case.up.len();
    let isns = &case.isns;
    let mut world = World::new(server_params, client_params, n, |i| isns[i]);
    let mut rng = Rng(case.seed);
    let heal_at = Timestamp::from_millis(case.heal_after_ms);
    let (drop_pct, dup_pct, delay_pct) = (case.drop_pct, case.dup_pct, case.delay_pct);
    world.faults = Box::new(move |now, _, _, _| {
        if now >= heal_at {
            return Fate::Deliver(Duration::from_millis(1));
        }
        if rng.chance(drop_pct) {
            return Fate::Drop;
        }
        let delay = if rng.chance(delay_pct) {
            1 + rng.below(500)
        } else {
            1
        };
        if rng.chance(dup_pct) {
            Fate::Duplicate(
                Duration::from_millis(delay),
                Duration::from_millis(1 + rng.below(300)),
            )
        } else {
            Fate::Deliver(Duration::from_millis(delay))
        }
    });
    for (i, list) in case.up.iter().enumerate() {
        for (k, &size) in list.iter().enumerate() {
            world.clients[i].write(payload(i, k, size)).unwrap();
        }
    }
    world.collect();
    if !world.run_until_cond(Duration::from_secs(5), |w| w.all_connected()) {
        return TestResult::error("clients did not connect");
    }
    for i in 0..n {
        let conn = world.conn_of(i).unwrap();
        for (k, &size) in case.down[i].iter().enumerate() {
            world.server.write(conn, payload(i + 100, k, size)).unwrap();
        }
    }
    world.collect();
    let done = |w: &World| {
        (0..n).all(|i| {
            w.server_messages(w.conn_of(i).unwrap()).len() >= case.up[i].len()
                && w.client_messages(i).len() >= case.down[i].len()
        })
    };
    world.run_until_cond(Duration::from_secs(60), done);
    for i in 0..n {
        let conn = world.conn_of(i).unwrap();
        let up: Vec<Vec<u8>> = case.up[i]
            .iter()
            .enumerate()
            .map(|(k, &s)| payload(i, k, s))
            .collect();
        let down: Vec<Vec<u8>> = case.down[i]
            .iter()
            .enumerate()
            .map(|(k, &s)| payload(i + 100, k, s))
            .collect();
        if world.server_messages(conn) != up {
            return TestResult::error(format!(
                "client {i} → server: delivered {} of {}",
                world.server_messages(conn).len(),
                up.len()
            ));
        }
        if world.client_messages(i) != down {
            return TestResult::error(format!(
                "server → client {i}: delivered {} of {}",
                world.client_messages(i).len(),
                down.len()
            ));
        }
        if world.clients[i].buffered_out_of_order() >= cw as usize {
            return TestResult::error("client buffered beyond its window");
        }
    }
    // No spurious loss, and every id distinct.
    let lost = world
        .server_events
        .iter()
        .any(|e| matches!(e, lsp_core::ServerEvent::ConnectionLost { .. }));
    let ids: std::collections::BTreeSet<ConnId> = (0..n).filter_map(|i| world.conn_of(i)).collect();
    TestResult::from_bool(!lost && ids.len() == n)
}

#[test]
fn every_message_is_delivered_exactly_once_in_order() {
    QuickCheck::new()
        .tests(DELIVERY_CASES)
        .quickcheck(delivery_holds as fn(DeliveryCase) -> TestResult);
}

/// Arbitrary input to both endpoints: raw bytes or well-formed messages with random fields.
#[derive(Clone, Debug)]
enum Input {
    Bytes(Vec<u8>),
    Message {
        kind: u8,
        conn_id: i64,
        seq_offset: i64,
        payload: Vec<u8>,
        good_checksum: bool,
        size_delta: i8,
    },
    Tick,
    Write(u16),
}

impl Arbitrary for Input {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0 | 1 => Input::Bytes(Vec::arbitrary(g)),
            2 => Input::Tick,
            3 => Input::Write(u16::arbitrary(g) % 1200),
            _ => Input::Message {
                kind: u8::arbitrary(g) % 4,
                conn_id: *g.choose(&[0, 1, 2, -1, i64::MAX, i64::MIN]).unwrap_or(&1),
                seq_offset: match u8::arbitrary(g) % 3 {
                    0 => i64::arbitrary(g),
                    _ => i64::from(i8::arbitrary(g)),
                },
                payload: Vec::arbitrary(g),
                good_checksum: bool::arbitrary(g),
                size_delta: i8::arbitrary(g) % 3,
            },
        }
    }
}

impl Input {
    fn datagram(&self, base_seq: i64) -> Option<Vec<u8>> {
        match self {
            Input::Bytes(b) => Some(b.clone()),
            Input::Message {
                kind,
                conn_id,
                seq_offset,
                payload,
                good_checksum,
                size_delta,
            } => {
                let seq = base_seq.wrapping_add(*seq_offset);
                let mut m = match kind {
                    0 => Message::connect(seq),
                    1 => Message::data(*conn_id, seq, payload.clone()),
                    2 => Message::ack(*conn_id, seq),
                    _ => Message::cack(*conn_id, seq),
                };
                if m.kind == MsgType::Data {
                    m.size = (m.size + i64::from(*size_delta)).max(0);
                    if !good_checksum {
                        m.checksum = m.checksum.wrapping_add(1);
                    }
                }
                Some(m.encode())
            }
            _ => None,
        }
    }
}

fn fuzz_endpoints(inputs: Vec<Input>, window: u8, max_unacked: u8) -> bool {
    let window = u32::from(window % 8) + 1;
    let max_unacked = u32::from(max_unacked % 8) + 1;
    let p = Params {
        window_size: window,
        max_unacked_messages: max_unacked,
        ..params(3, 100, 1, 1, 2)
    };
    let mut server = ServerEndpoint::<u8>::new(p, Timestamp::ZERO).unwrap();
    let mut client = ClientEndpoint::new(p, 0, Timestamp::ZERO).unwrap();
    client.handle_datagram(Timestamp::ZERO, &Message::ack(1, 0).encode());
    let mut now = Timestamp::ZERO;
    for (i, input) in inputs.iter().enumerate() {
        let from = (i % 3) as u8;
        match input {
            Input::Tick => {
                now = now + Duration::from_millis(100);
                server.handle_timeout(now);
                client.handle_timeout(now);
            }
            Input::Write(len) => {
                let _ = client.write(vec![1; usize::from(*len)]);
                for conn in 1..4 {
                    let _ = server.write(ConnId(conn), vec![2; usize::from(*len)]);
                }
            }
            other => {
                if let Some(d) = other.datagram(1) {
                    server.handle_datagram(now, from, &d);
                    client.handle_datagram(now, &d);
                }
            }
        }
        while let Some(t) = server.poll_transmit() {
            if t.payload.len() > lsp_core::MAX_DATAGRAM_LEN {
                return false;
            }
        }
        while client.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        // Memory stays bounded by the window whatever the peer sends.
        if server.connection_count() > 3 || client.buffered_out_of_order() >= window as usize {
            return false;
        }
        for conn in 1..=8 {
            let c = ConnId(conn);
            if server.buffered_out_of_order(c).unwrap_or(0) >= window as usize
                || server.in_flight(c).unwrap_or(0) > max_unacked as usize
            {
                return false;
            }
        }
        if client.in_flight() > max_unacked as usize {
            return false;
        }
    }
    true
}

#[test]
fn arbitrary_input_never_panics_or_grows_memory() {
    QuickCheck::new()
        .tests(FUZZ_CASES)
        .rng(Gen::new(60))
        .quickcheck(fuzz_endpoints as fn(Vec<Input>, u8, u8) -> bool);
}

#[test]
fn decode_never_panics_on_arbitrary_bytes() {
    fn prop(bytes: Vec<u8>) -> bool {
        let _ = Message::decode(&bytes);
        true
    }
    fn prop_json_like(fields: Vec<(u8, i64)>, payload: Option<String>) -> bool {
        let keys = ["Type", "ConnID", "SeqNum", "Size", "Checksum", "Other"];
        let mut text = String::from("{");
        for (k, v) in &fields {
            text.push_str(&format!(
                "\"{}\":{},",
                keys[usize::from(*k) % keys.len()],
                v
            ));
        }
        match &payload {
            Some(p) => text.push_str(&format!(
                "\"Payload\":{}",
                serde_json::to_string(p).unwrap()
            )),
            None => text.push_str("\"Payload\":null"),
        }
        text.push('}');
        if let Ok(m) = Message::decode(text.as_bytes()) {
            // Whatever decodes re-encodes into something that decodes to the same message.
            return Message::decode(&m.encode()) == Ok(m);
        }
        true
    }
    QuickCheck::new()
        .tests(FUZZ_CASES)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
    QuickCheck::new()
        .tests(FUZZ_CASES)
        .quickcheck(prop_json_like as fn(Vec<(u8, i64)>, Option<String>) -> bool);
}

/// decode → encode → decode is the identity on everything the decoder accepts, including
/// datagrams with any subset of the keys and a valid base64 payload on any message type
/// (the fuzz target `decode` found `{"Payload":"yloa"}`, a Connect that kept its payload).
#[test]
fn decode_encode_decode_is_the_identity() {
    fn prop(fields: Vec<(u8, i64)>, payload: Option<Vec<u8>>, canonical: bool) -> bool {
        use base64::Engine as _;
        let keys = ["Type", "ConnID", "SeqNum", "Size", "Checksum"];
        let mut text = String::from("{");
        for (k, v) in &fields {
            let key = keys[usize::from(*k) % keys.len()];
            // Small values for Type, Size and Checksum reach the valid ranges often.
            let v = match key {
                "Type" => v.rem_euclid(5),
                "Size" | "Checksum" => v.rem_euclid(70_000),
                _ => *v,
            };
            text.push_str(&format!("\"{key}\":{v},"));
        }
        match &payload {
            Some(p) => text.push_str(&format!(
                "\"Payload\":\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(p)
            )),
            None if canonical => text.push_str("\"Payload\":null"),
            None => {
                if text.ends_with(',') {
                    text.pop();
                }
            }
        }
        text.push('}');
        match Message::decode(text.as_bytes()) {
            Ok(m) => {
                let again = Message::decode(&m.encode());
                again == Ok(m.clone()) && (m.kind == MsgType::Data || m.payload.is_empty())
            }
            Err(_) => true,
        }
    }
    QuickCheck::new()
        .tests(FUZZ_CASES)
        .quickcheck(prop as fn(Vec<(u8, i64)>, Option<Vec<u8>>, bool) -> bool);
}

#[test]
fn encode_decode_round_trip() {
    fn prop(kind: u8, conn_id: i64, seq: i64, payload: Vec<u8>) -> bool {
        let m = match kind % 4 {
            0 => Message::connect(seq),
            1 => Message::data(conn_id, seq, payload),
            2 => Message::ack(conn_id, seq),
            _ => Message::cack(conn_id, seq),
        };
        let bytes = m.encode();
        bytes.len() == m.encoded_len() && Message::decode(&bytes).as_ref() == Ok(&m)
            || bytes.len() > lsp_core::MAX_DATAGRAM_LEN
    }
    QuickCheck::new()
        .tests(FUZZ_CASES)
        .quickcheck(prop as fn(u8, i64, i64, Vec<u8>) -> bool);
}
