//! What happened in the pool, as a stream of events for logs and monitors.

use std::sync::Arc;
use std::time::Duration;

use lsp_core::Timestamp;

use crate::message::Mode;
use crate::scheduler::{Misbehaviour, RequestId};
use crate::service::CloseReason;

/// One thing that happened, at service time `at` (the driver's clock).
#[derive(Clone, Debug, PartialEq)]
pub struct PoolEvent<K> {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: PoolEventKind<K>,
}

impl<K> PoolEvent<K> {
    /// The same event with every connection key passed through `f`: for a driver that
    /// tells its connections by other names than the service's keys (a replicated
    /// leader's request slots, told by the connection waiting for each).
    #[must_use]
    pub fn map_conns<L>(self, f: impl FnMut(K) -> L) -> PoolEvent<L> {
        PoolEvent {
            at: self.at,
            kind: self.kind.map_conns(f),
        }
    }
}

/// What happened. `K` is the driver's connection key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PoolEventKind<K> {
    /// A connection sent Join and became a miner.
    MinerJoined {
        /// Its connection.
        miner: K,
    },
    /// A miner's connection ended (lost or closed); its unanswered jobs went back to their
    /// requests.
    MinerLost {
        /// Its connection.
        miner: K,
        /// Jobs it held, given back.
        jobs_returned: usize,
        /// What it did while it was joined.
        totals: MinerTotals,
    },
    /// A miner's answer was a lie: the miner is dropped and its connection closed.
    MinerRejected {
        /// Its connection.
        miner: K,
        /// What it did wrong.
        reason: Misbehaviour,
        /// What it did while it was joined (valid answers before the lie).
        totals: MinerTotals,
    },
    /// A client's request was accepted (it may wait behind the client's earlier ones).
    RequestAccepted {
        /// The client's connection.
        client: K,
        /// The request.
        request: RequestId,
        /// Its text.
        msg: Arc<str>,
        /// Its first nonce.
        lower: u64,
        /// Its last nonce (inclusive).
        upper: u64,
        /// What it asks for: the minimum, or the first hit of a target.
        mode: Mode,
    },
    /// A client's request was refused and its connection is being closed.
    RequestRefused {
        /// The client's connection.
        client: K,
        /// Why.
        reason: CloseReason,
    },
    /// A request was answered: its Result is being written to the client.
    RequestAnswered {
        /// The client's connection.
        client: K,
        /// The request.
        request: RequestId,
        /// Its text.
        msg: Arc<str>,
        /// Its first nonce.
        lower: u64,
        /// Its last nonce (inclusive).
        upper: u64,
        /// What it asks for.
        mode: Mode,
        /// The answer sent, `(hash, nonce)`: the minimum hash over the range and its nonce,
        /// or in target mode the smallest qualifying nonce and its hash. `None`: a target
        /// request that no nonce of its range met (`"Found": false`).
        answer: Option<(u64, u64)>,
        /// The nonces its answers say were searched: each answered job's whole range,
        /// except that a target job that found a hit searched only up to it. Its size in
        /// minimum mode and for `"Found": false`; at most its size.
        nonces: u128,
        /// From acceptance to answer.
        took: Duration,
    },
    /// A job's lease ended without an answer, and the job was sent to another miner.
    JobReissued {
        /// The request the job is part of.
        request: RequestId,
        /// The late miner it was re-issued away from.
        from: K,
        /// The miner it was re-issued to.
        to: K,
        /// The job's first nonce.
        lower: u64,
        /// The job's last nonce (inclusive).
        upper: u64,
    },
    /// A client's connection ended with requests unanswered; they are dropped.
    ClientLost {
        /// The client's connection.
        client: K,
        /// Requests dropped (its active one and those waiting behind it).
        dropped: u64,
    },
}

/// A miner's counts, as reported when it leaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinerTotals {
    /// When it joined.
    pub joined: Timestamp,
    /// Nonces covered by its valid answers (stale ones included: they were searched).
    pub nonces: u128,
    /// Valid answers (verified and spot-checked).
    pub valid: u64,
    /// Of those, answers to jobs already answered by another miner or dropped.
    pub stale: u64,
    /// Invalid answers (a lie disconnects the miner, so at most one).
    pub invalid: u64,
    /// Its jobs re-issued to another miner because their lease ended.
    pub reissued_away: u64,
}

impl<K> PoolEventKind<K> {
    /// The same event with every connection key passed through `f`, in field order
    /// (see [`PoolEvent::map_conns`]).
    #[must_use]
    pub fn map_conns<L>(self, mut f: impl FnMut(K) -> L) -> PoolEventKind<L> {
        match self {
            PoolEventKind::MinerJoined { miner } => PoolEventKind::MinerJoined { miner: f(miner) },
            PoolEventKind::MinerLost {
                miner,
                jobs_returned,
                totals,
            } => PoolEventKind::MinerLost {
                miner: f(miner),
                jobs_returned,
                totals,
            },
            PoolEventKind::MinerRejected {
                miner,
                reason,
                totals,
            } => PoolEventKind::MinerRejected {
                miner: f(miner),
                reason,
                totals,
            },
            PoolEventKind::RequestAccepted {
                client,
                request,
                msg,
                lower,
                upper,
                mode,
            } => PoolEventKind::RequestAccepted {
                client: f(client),
                request,
                msg,
                lower,
                upper,
                mode,
            },
            PoolEventKind::RequestRefused { client, reason } => PoolEventKind::RequestRefused {
                client: f(client),
                reason,
            },
            PoolEventKind::RequestAnswered {
                client,
                request,
                msg,
                lower,
                upper,
                mode,
                answer,
                nonces,
                took,
            } => PoolEventKind::RequestAnswered {
                client: f(client),
                request,
                msg,
                lower,
                upper,
                mode,
                answer,
                nonces,
                took,
            },
            PoolEventKind::JobReissued {
                request,
                from,
                to,
                lower,
                upper,
            } => {
                let from = f(from);
                PoolEventKind::JobReissued {
                    request,
                    from,
                    to: f(to),
                    lower,
                    upper,
                }
            }
            PoolEventKind::ClientLost { client, dropped } => PoolEventKind::ClientLost {
                client: f(client),
                dropped,
            },
        }
    }

    /// The client a request event is about (accepted, refused, answered, or its client
    /// lost); `None` for a miner's or a job's event.
    #[must_use]
    pub fn client(&self) -> Option<&K> {
        match self {
            PoolEventKind::RequestAccepted { client, .. }
            | PoolEventKind::RequestRefused { client, .. }
            | PoolEventKind::RequestAnswered { client, .. }
            | PoolEventKind::ClientLost { client, .. } => Some(client),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_conns_renames_every_connection_and_keeps_the_rest() {
        let reissued = PoolEventKind::JobReissued {
            request: RequestId(3),
            from: 1u32,
            to: 2,
            lower: 5,
            upper: 9,
        };
        assert_eq!(reissued.client(), None);
        let mapped = reissued.map_conns(|k| u64::from(k) * 10);
        assert_eq!(
            mapped,
            PoolEventKind::JobReissued {
                request: RequestId(3),
                from: 10u64,
                to: 20,
                lower: 5,
                upper: 9,
            }
        );
        let lost = PoolEvent {
            at: Timestamp::from_millis(7),
            kind: PoolEventKind::ClientLost {
                client: 4u32,
                dropped: 2,
            },
        };
        let mapped = lost.map_conns(|k| k + 1);
        assert_eq!(mapped.at, Timestamp::from_millis(7));
        assert_eq!(mapped.kind.client(), Some(&5));
    }
}
