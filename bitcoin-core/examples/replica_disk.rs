//! How many bytes a replica's disk holds after answering N requests, with compaction:
//! `cargo run --release -p bitcoin-core --example replica_disk -- N [max_answered] [snapshot_every]`.
//!
//! One replica (a group of one) is driven through Accept, RangeDone and Answered for each of
//! N requests (16-byte texts, one range each); the logical size of its disk (snapshot data
//! plus entry payloads and 24 bytes per entry, `Disk::size`) is printed with the time taken.

use std::time::Instant;

use bitcoin_core::replica::{Command, Mode, Replica, ReplicaConfig, RequestKey};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().unwrap_or(0));
    let n = args.next().unwrap_or(10_000);
    let defaults = ReplicaConfig::for_id(1, vec![1]);
    let max_answered = args.next().map_or(defaults.max_answered, |v| v as usize);
    let snapshot_every = args.next().unwrap_or(defaults.snapshot_every);
    let config = ReplicaConfig {
        max_answered,
        snapshot_every,
        ..defaults
    };
    let mut replica = Replica::new(&config, bitcoin_core::replica::Disk::fresh(&[1])).unwrap();
    while !replica.is_leader() {
        replica.tick();
        while replica.poll_effect().is_some() {}
    }
    let start = Instant::now();
    let mut peak = 0;
    for id in 0..n {
        let key = RequestKey {
            client: "id".into(),
            id,
        };
        let commands = [
            Command::Accept {
                key: key.clone(),
                message: format!("request-{id:08}"),
                lower: 0,
                upper: 999_999_999,
                mode: Mode::Minimum,
            },
            Command::RangeDone {
                key: key.clone(),
                lower: 0,
                upper: 999_999_999,
                hash: id,
                nonce: id,
            },
            Command::Answered {
                key,
                hash: id,
                nonce: id,
            },
        ];
        for command in &commands {
            replica.propose(command).unwrap();
            while replica.poll_effect().is_some() {}
        }
        peak = peak.max(replica.disk().size());
    }
    println!(
        "{n} requests answered (max_answered {max_answered}, snapshot every {snapshot_every} entries): disk {} bytes now, {peak} at most; {} snapshots; {:.1} s",
        replica.disk().size(),
        replica.stats().snapshots,
        start.elapsed().as_secs_f64()
    );
}
