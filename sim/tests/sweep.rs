//! Swarm testing in the normal test run: a few hundred seeds (a larger sweep is
//! `cargo run --release -p sim -- sweep --seeds 10000`), a quickcheck property over
//! arbitrary cases, and checks that the invariant checker does catch misbehaviour.

use std::time::Duration;

use lsp_core::{Message, MsgType, Params, Timestamp};
use quickcheck::{QuickCheck, TestResult};
use sim::sweep::{check_seed, run_case, Case};
use sim::{Addr, Echo, Prob, Rng, Verdict, World};

#[test]
fn a_sweep_of_300_seeds_passes_and_replays_identically() {
    let failures: Vec<String> = (0..300)
        .filter_map(|seed| check_seed(seed).err().map(|e| format!("seed {seed}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn different_seeds_draw_different_cases_and_traces() {
    let a = run_case(&Case::generate(1), false).expect("seed 1 passes");
    let b = run_case(&Case::generate(2), false).expect("seed 2 passes");
    assert_ne!(Case::generate(1), Case::generate(2));
    assert_ne!(a.digest, b.digest);
}

#[test]
fn quickcheck_finds_no_failing_case() {
    fn prop(case: Case) -> TestResult {
        match run_case(&case, false) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(format!("{e}\n{case}")),
        }
    }
    QuickCheck::new()
        .tests(100)
        .quickcheck(prop as fn(Case) -> TestResult);
}

fn echo_world(seed: u64) -> (World, Addr) {
    let params = Params::default();
    let mut w = World::new(seed);
    w.start_server(params, Echo::Immediate)
        .expect("valid params");
    let client = w.add_client(params, 0).expect("valid params");
    w.run_for(Duration::from_millis(10));
    (w, client)
}

#[test]
fn the_checker_catches_a_message_that_was_never_written() {
    let (mut w, client) = echo_world(1);
    // A middlebox that forges a well-formed Data message with another payload.
    w.net.middlebox =
        Some(Box::new(
            |from: Addr, _: Addr, d: &[u8], _: &mut Rng| match Message::decode(d) {
                Ok(m) if m.kind == MsgType::Data && from != Addr::SERVER => Verdict::Rewrite(
                    Message::data(m.conn_id, m.seq_num, b"forged".to_vec()).encode(),
                ),
                _ => Verdict::Pass,
            },
        ));
    w.client_write(client, b"42".to_vec()).expect("write");
    w.run_for(Duration::from_millis(10));
    let v = w.violation().expect("the forged message is caught");
    assert!(v.what.contains("\"forged\" instead of \"42\""), "{v}");
}

#[test]
fn the_checker_catches_a_replayed_message() {
    let (mut w, client) = echo_world(2);
    // The server's first echo is sent again later under the next sequence number.
    w.net.middlebox =
        Some(Box::new(
            |from: Addr, _: Addr, d: &[u8], _: &mut Rng| match Message::decode(d) {
                Ok(m) if m.kind == MsgType::Data && from == Addr::SERVER && m.seq_num == 2 => {
                    Verdict::Rewrite(Message::data(m.conn_id, 2, b"1".to_vec()).encode())
                }
                _ => Verdict::Pass,
            },
        ));
    w.client_write(client, b"1".to_vec()).expect("write");
    w.client_write(client, b"2".to_vec()).expect("write");
    w.run_for(Duration::from_millis(10));
    let v = w.violation().expect("the replay is caught");
    assert!(v.what.contains("message #1"), "{v}");
}

#[test]
fn a_dead_network_ends_in_timely_losses_not_violations() {
    let (mut w, client) = echo_world(3);
    w.net.faults.set_write_drop(Prob::ALWAYS);
    w.run_until(Timestamp::from_millis(20_000));
    assert_eq!(w.check(), Ok(()));
    assert!(w.client(client).is_some_and(|l| l.lost));
    let server = w.server().expect("server");
    assert!(server.conns.values().all(|c| c.lost));
}

#[test]
fn cack_rewriting_produces_cacks_and_loses_nothing() {
    let params = Params {
        window_size: 4,
        max_unacked_messages: 4,
        ..Params::default()
    };
    let mut w = World::new(4);
    w.start_server(params, Echo::Immediate)
        .expect("valid params");
    let client = w.add_client(params, 9).expect("valid params");
    w.cack_rewrite = Prob::ALWAYS;
    w.net.faults.jitter = Duration::from_millis(3);
    w.net.sniffer = Some(Vec::new());
    for i in 0..40 {
        w.client_write(client, i.to_string().into_bytes())
            .expect("write");
    }
    w.run_for(Duration::from_secs(30));
    assert_eq!(w.check(), Ok(()));
    let life = w.client(client).expect("client");
    assert_eq!(life.reads, life.written);
    let cacks = w.net.sniffer.as_ref().map_or(0, |log| {
        log.iter()
            .filter(|r| r.message.as_ref().is_some_and(|m| m.kind == MsgType::CAck))
            .count()
    });
    assert!(cacks > 0, "no CAck was produced");
}
