//! Benchmark modes of the `bench` binary. Each mode prints its figures next to a baseline
//! measured in the same run, and returns an error message on bad arguments.

mod cluster;
pub mod codec;
pub mod e2e;
pub mod e2e_target;
pub mod echo;
pub mod failover;
pub mod hash;
pub mod replica_disk;
pub mod replicas;
pub mod schedule;
pub mod scrape;
pub mod timing;
