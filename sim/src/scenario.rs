//! The 64 conformance scenarios of `docs/conformance.md`, as plain data.
//!
//! Each [`Scenario`] says *what* is run — family and mode, clients, messages, parameters,
//! initial-sequence-number policy, fault plan and deadline — and nothing about *how*: the
//! per-mode driving logic belongs to a runner. This crate's runner
//! ([`crate::conformance`]) drives them in virtual time; a real-UDP runtime can iterate the
//! same [`SCENARIOS`] table with its own driver and a fault-injecting proxy.

use std::time::Duration;

use lsp_core::Params;

/// The six sections of `docs/conformance.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// §1 Echo and robustness.
    Echo,
    /// §2 Windows, back-off, ordering.
    Window,
    /// §3 Close.
    Close,
    /// §4 Buffering while the network is down.
    Buffering,
    /// §5 Sequence numbers and CAck.
    SeqNum,
    /// §6 Integrity.
    Integrity,
}

/// What a scenario does; the runner implements each mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The server echoes; every client writes its messages and checks the echoes in order.
    Echo,
    /// Echo that must complete before the first epoch fires (no retransmission needed).
    EchoBeforeFirstEpoch,
    /// The receiver's Acks are blocked while the writer streams: exactly `min(ω, M)` arrive;
    /// then the rest. Clients→server, then the mirror image.
    MaxCapacity,
    /// The first half is written while the writer drops everything, the second half is
    /// delivered; after retransmission all arrive in order. Both directions.
    Scattered,
    /// First quarter lost, 2 s pause, second quarter delivered, then Acks blocked and the
    /// rest written: exactly three quarters arrive, the last is never sent; Acks unblocked →
    /// the rest. Both directions.
    OutOfWindow,
    /// 50 % of datagrams delayed 500 ms from the start; the server reads every stream in
    /// order.
    MessageOrder,
    /// The server drops all its writes while clients stream; Data transmissions over 14
    /// epochs lie within `[4, 6] × ω × clients`.
    ExpBackoff,
    /// The server starts 3 epochs after the clients begin connecting; then echo.
    ServerSlowStart,
    /// Echo, then the server closes: clients' reads fail, server writes fail.
    ServerClose,
    /// Echo, then `close_conn` on every client: each client's read fails.
    ServerCloseConns,
    /// Echo, then clients close: the server reports each lost, then closes.
    ClientClose,
    /// Network off/on: both directions, the server closes while the network is off.
    ServerFastClose,
    /// Network off/on: server→clients; the server closes while off; clients read after.
    ServerToClient,
    /// Network off/on: clients→server; clients close while off.
    ClientToServer,
    /// Network off/on: both directions; clients close, then the server.
    RoundTrip,
    /// Each client writes one message; the sniffer shows `Ack(isn)`, `Data(isn+1)`,
    /// `Ack(isn+1)` per connection and distinct non-zero ids.
    BasicIsn,
    /// A middlebox turns the last Ack of each connection into a CAck; afterwards no Data
    /// is sent for 12 epochs.
    CAckServer,
    /// A clean message to the server arrives; a corrupted one never does.
    CorruptedToServer,
    /// The mirror image of [`Mode::CorruptedToServer`].
    CorruptedToClient,
    /// To the server: normal arrives, lengthened arrives at its original length, shortened
    /// never arrives.
    VariableLengthToServer,
    /// The mirror image of [`Mode::VariableLengthToServer`].
    VariableLengthToClient,
}

/// How many messages each client exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Messages {
    /// Exactly this many.
    Exactly(u32),
    /// A random count in `1..=n`, drawn per client.
    UpTo(u32),
}

/// How clients pick their initial sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IsnPolicy {
    /// Always 0.
    Zero,
    /// Uniform in `1..=256` per client.
    Random,
}

/// Faults that hold for a whole scenario (the scripted on/off toggles of a mode are the
/// runner's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultPlan {
    /// Write drop on both sides, in percent, switched on once every client is connected.
    pub write_drop_after_connect: u32,
    /// Datagrams delayed by 500 ms, in percent, from the very start.
    pub delay_percent: u32,
    /// The server application sleeps uniformly `0..=n` ms before each echo.
    pub server_sleep_ms: u32,
    /// CAck middlebox: percent of the server's non-final Acks it drops (100 = all).
    pub middlebox_ack_drop: u32,
}

/// One conformance scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Its name in `docs/conformance.md`.
    pub name: &'static str,
    /// Its section.
    pub family: Family,
    /// What it does.
    pub mode: Mode,
    /// Number of clients.
    pub clients: u32,
    /// Messages per client.
    pub messages: Messages,
    /// Parameters, the same on both sides.
    pub params: Params,
    /// Initial sequence numbers.
    pub isn: IsnPolicy,
    /// Whole-scenario faults.
    pub faults: FaultPlan,
    /// It must pass within this much (virtual or wall) time.
    pub deadline: Duration,
}

impl Scenario {
    /// The scenario called `name`, if any.
    pub fn by_name(name: &str) -> Option<&'static Scenario> {
        SCENARIOS.iter().find(|s| s.name == name)
    }
}

const fn params(k: u32, ms: u64, w: u32, m: u32, bo: u32) -> Params {
    Params {
        epoch_limit: k,
        epoch_millis: ms,
        window_size: w,
        max_backoff_interval: bo,
        max_unacked_messages: m,
    }
}

const NO_FAULTS: FaultPlan = FaultPlan {
    write_drop_after_connect: 0,
    delay_percent: 0,
    server_sleep_ms: 0,
    middlebox_ack_drop: 0,
};
const SLEEPY: FaultPlan = FaultPlan {
    server_sleep_ms: 100,
    ..NO_FAULTS
};
const LOSSY: FaultPlan = FaultPlan {
    write_drop_after_connect: 20,
    ..NO_FAULTS
};
const DELAYED: FaultPlan = FaultPlan {
    delay_percent: 50,
    ..NO_FAULTS
};
const CACK_ALL: FaultPlan = FaultPlan {
    middlebox_ack_drop: 100,
    ..NO_FAULTS
};
const CACK_HALF: FaultPlan = FaultPlan {
    middlebox_ack_drop: 50,
    ..NO_FAULTS
};

#[allow(clippy::too_many_arguments)]
const fn sc(
    name: &'static str,
    family: Family,
    mode: Mode,
    clients: u32,
    messages: Messages,
    params: Params,
    isn: IsnPolicy,
    faults: FaultPlan,
    deadline_ms: u64,
) -> Scenario {
    Scenario {
        name,
        family,
        mode,
        clients,
        messages,
        params,
        isn,
        faults,
        deadline: Duration::from_millis(deadline_ms),
    }
}

use Family as F;
use IsnPolicy::{Random as RND, Zero as ZERO};
use Messages::{Exactly as N, UpTo};
use Mode as M;

/// All 64 scenarios, in the order of `docs/conformance.md`.
#[rustfmt::skip]
pub const SCENARIOS: [Scenario; 64] = [
    // §1 Echo and robustness.
    sc("basic-1", F::Echo, M::Echo, 1, N(3), params(5, 2000, 1, 1, 0), RND, NO_FAULTS, 2000),
    sc("basic-2", F::Echo, M::Echo, 1, N(50), params(5, 2000, 1, 1, 0), RND, NO_FAULTS, 2000),
    sc("basic-3", F::Echo, M::Echo, 2, N(50), params(5, 2000, 1, 1, 0), RND, NO_FAULTS, 2000),
    sc("basic-4", F::Echo, M::Echo, 10, N(50), params(5, 2000, 2, 2, 0), RND, NO_FAULTS, 2000),
    sc("basic-5", F::Echo, M::Echo, 2, N(500), params(5, 2000, 2, 1, 0), RND, NO_FAULTS, 2000),
    sc("basic-6", F::Echo, M::Echo, 10, N(500), params(5, 2000, 20, 10, 0), RND, NO_FAULTS, 15000),
    sc("basic-7", F::Echo, M::Echo, 4, N(10), params(5, 2000, 2, 2, 0), RND, SLEEPY, 15000),
    sc("basic-8", F::Echo, M::Echo, 5, N(10), params(5, 2000, 10, 10, 0), RND, SLEEPY, 15000),
    sc("basic-9", F::Echo, M::Echo, 2, N(50), params(5, 2000, 10, 10, 0), RND, SLEEPY, 15000),
    sc("send-receive-1", F::Echo, M::EchoBeforeFirstEpoch, 1, N(6), params(3, 5000, 1, 1, 0), RND, NO_FAULTS, 5000),
    sc("send-receive-2", F::Echo, M::Echo, 4, N(6), params(3, 5000, 1, 1, 0), RND, NO_FAULTS, 5000),
    sc("send-receive-3", F::Echo, M::Echo, 4, N(6), params(3, 10000, 1, 1, 0), RND, SLEEPY, 10000),
    sc("robust-1", F::Echo, M::Echo, 1, N(10), params(20, 50, 1, 1, 0), RND, LOSSY, 15000),
    sc("robust-2", F::Echo, M::Echo, 3, N(15), params(20, 50, 1, 1, 0), RND, LOSSY, 15000),
    sc("robust-3", F::Echo, M::Echo, 5, N(10), params(20, 50, 1, 1, 0), RND, LOSSY, 15000),
    sc("robust-4", F::Echo, M::Echo, 1, N(10), params(20, 50, 2, 2, 0), RND, LOSSY, 15000),
    sc("robust-5", F::Echo, M::Echo, 3, N(15), params(20, 50, 5, 5, 0), RND, LOSSY, 15000),
    sc("robust-6", F::Echo, M::Echo, 5, N(10), params(20, 50, 10, 10, 0), RND, LOSSY, 15000),
    // §2 Windows, back-off, ordering.
    sc("exp-backoff-1", F::Window, M::ExpBackoff, 1, N(10), params(100, 2000, 5, 5, 4), ZERO, NO_FAULTS, 38000),
    sc("exp-backoff-2", F::Window, M::ExpBackoff, 10, N(15), params(100, 2000, 5, 5, 4), ZERO, NO_FAULTS, 38000),
    sc("window-1", F::Window, M::MaxCapacity, 1, N(10), params(3, 500, 5, 50, 0), ZERO, NO_FAULTS, 2500),
    sc("window-2", F::Window, M::MaxCapacity, 5, N(25), params(3, 500, 10, 50, 0), ZERO, NO_FAULTS, 2500),
    sc("window-3", F::Window, M::MaxCapacity, 10, N(25), params(3, 500, 10, 50, 0), ZERO, NO_FAULTS, 2500),
    sc("window-4", F::Window, M::Scattered, 1, N(10), params(3, 1000, 20, 20, 0), ZERO, NO_FAULTS, 5000),
    sc("window-5", F::Window, M::Scattered, 5, N(10), params(3, 1000, 20, 20, 0), ZERO, NO_FAULTS, 5000),
    sc("window-6", F::Window, M::Scattered, 10, N(10), params(3, 1000, 20, 20, 0), ZERO, NO_FAULTS, 5000),
    sc("max-unacked-1", F::Window, M::MaxCapacity, 1, N(10), params(3, 500, 50, 5, 0), ZERO, NO_FAULTS, 2500),
    sc("max-unacked-2", F::Window, M::MaxCapacity, 5, N(25), params(3, 500, 50, 10, 0), ZERO, NO_FAULTS, 2500),
    sc("max-unacked-3", F::Window, M::MaxCapacity, 10, N(25), params(3, 500, 50, 10, 0), ZERO, NO_FAULTS, 2500),
    sc("max-unacked-4", F::Window, M::OutOfWindow, 1, N(20), params(100, 1000, 20, 10, 10), ZERO, NO_FAULTS, 20000),
    sc("max-unacked-5", F::Window, M::OutOfWindow, 5, N(20), params(100, 1000, 15, 10, 10), ZERO, NO_FAULTS, 20000),
    sc("max-unacked-6", F::Window, M::OutOfWindow, 5, N(20), params(100, 1000, 20, 10, 10), ZERO, NO_FAULTS, 20000),
    sc("out-of-order-1", F::Window, M::MessageOrder, 1, N(10), params(3, 5000, 30, 30, 0), ZERO, DELAYED, 25000),
    sc("out-of-order-2", F::Window, M::MessageOrder, 5, N(25), params(3, 5000, 30, 30, 0), ZERO, DELAYED, 25000),
    sc("out-of-order-3", F::Window, M::MessageOrder, 10, N(25), params(3, 5000, 30, 30, 0), ZERO, DELAYED, 25000),
    // §3 Close.
    sc("server-slow-start-1", F::Close, M::ServerSlowStart, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 2500),
    sc("server-slow-start-2", F::Close, M::ServerSlowStart, 3, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 2500),
    sc("server-close-1", F::Close, M::ServerClose, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 5000),
    sc("server-close-2", F::Close, M::ServerClose, 3, N(10), params(2, 500, 1, 1, 0), ZERO, NO_FAULTS, 2500),
    sc("server-close-conns-1", F::Close, M::ServerCloseConns, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 5000),
    sc("server-close-conns-2", F::Close, M::ServerCloseConns, 3, N(10), params(2, 500, 1, 1, 0), ZERO, NO_FAULTS, 2500),
    sc("client-close-1", F::Close, M::ClientClose, 2, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 5000),
    sc("client-close-2", F::Close, M::ClientClose, 3, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 7500),
    // §4 Buffering while the network is down.
    sc("server-fast-close-1", F::Buffering, M::ServerFastClose, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("server-fast-close-2", F::Buffering, M::ServerFastClose, 3, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("server-fast-close-3", F::Buffering, M::ServerFastClose, 5, N(500), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 40000),
    sc("server-to-client-1", F::Buffering, M::ServerToClient, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("server-to-client-2", F::Buffering, M::ServerToClient, 3, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("server-to-client-3", F::Buffering, M::ServerToClient, 5, N(500), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 40000),
    sc("client-to-server-1", F::Buffering, M::ClientToServer, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("client-to-server-2", F::Buffering, M::ClientToServer, 3, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("client-to-server-3", F::Buffering, M::ClientToServer, 5, N(500), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 40000),
    sc("round-trip-1", F::Buffering, M::RoundTrip, 1, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("round-trip-2", F::Buffering, M::RoundTrip, 3, N(10), params(5, 500, 1, 1, 0), ZERO, NO_FAULTS, 6000),
    sc("round-trip-3", F::Buffering, M::RoundTrip, 5, N(500), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 40000),
    // §5 Sequence numbers and CAck.
    sc("basic-isn", F::SeqNum, M::BasicIsn, 100, N(1), params(5, 2000, 1, 1, 0), RND, NO_FAULTS, 5000),
    sc("cack-server-1", F::SeqNum, M::CAckServer, 5, N(1), params(5, 1000, 1, 1, 0), RND, CACK_ALL, 20000),
    sc("cack-server-2", F::SeqNum, M::CAckServer, 5, N(50), params(5, 1000, 100, 50, 0), RND, CACK_ALL, 20000),
    sc("cack-server-3", F::SeqNum, M::CAckServer, 5, UpTo(50), params(5, 1000, 100, 50, 0), RND, CACK_ALL, 20000),
    sc("cack-server-4", F::SeqNum, M::CAckServer, 5, UpTo(100), params(5, 1000, 100, 100, 0), RND, CACK_HALF, 20000),
    // §6 Integrity.
    sc("corrupted-to-server", F::Integrity, M::CorruptedToServer, 1, N(2), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 10000),
    sc("corrupted-to-client", F::Integrity, M::CorruptedToClient, 1, N(2), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 10000),
    sc("variable-length-to-server", F::Integrity, M::VariableLengthToServer, 1, N(3), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 10000),
    sc("variable-length-to-client", F::Integrity, M::VariableLengthToClient, 1, N(3), params(5, 2000, 1, 1, 0), ZERO, NO_FAULTS, 10000),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_table_has_64_distinct_scenarios_with_valid_parameters() {
        let names: BTreeSet<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), 64);
        for s in &SCENARIOS {
            assert_eq!(s.params.validate(), Ok(()), "{}", s.name);
            assert!(s.clients >= 1 && !s.deadline.is_zero(), "{}", s.name);
        }
        let count = |f| SCENARIOS.iter().filter(|s| s.family == f).count();
        assert_eq!(
            [
                F::Echo,
                F::Window,
                F::Close,
                F::Buffering,
                F::SeqNum,
                F::Integrity
            ]
            .map(count),
            [18, 17, 8, 12, 5, 4]
        );
        assert_eq!(Scenario::by_name("window-3").map(|s| s.clients), Some(10));
    }
}
