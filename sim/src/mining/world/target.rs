//! Target mode in the miner world: the scalar truth of a target request, the Cancels the
//! service writes, and a target client's answer (see docs/miner.md §9).

use bitcoin_core::message::{Cap, Caps, Message, Mode};
use lsp_core::ConnId;

use super::{ClientEnd, MiningWorld};

/// Target mode: the smallest nonce of `lower ..= upper` whose hash under the mode's
/// algorithm qualifies, with its hash, by a scalar scan; `None` if none does or for
/// [`Mode::Minimum`].
pub(crate) fn first_hit(data: &str, lower: u64, upper: u64, mode: Mode) -> Option<(u64, u64)> {
    let Mode::Target { zeros, algo } = mode else {
        return None;
    };
    (lower..=upper)
        .map(|n| (algo.hash(data, n), n))
        .find(|(h, _)| zeros.accepts(*h))
}

impl MiningWorld {
    /// The service wrote a Cancel of `data`, `lower ..= upper` to `conn`, whose Join
    /// announced `caps`: it must have announced `cancel` and hold that job, which it then
    /// no longer holds.
    pub(super) fn on_cancel_written(
        &mut self,
        conn: ConnId,
        caps: Caps,
        data: &str,
        lower: u64,
        upper: u64,
        id: Option<u64>,
    ) {
        if !caps.has(Cap::Cancel) || id.is_none() {
            self.fail(format!(
                "Cancel sent to {conn} (caps {caps}) with job id {id:?}"
            ));
        }
        let record = self.server.conns.get_mut(&conn);
        let held = record.and_then(|r| {
            let i = r
                .jobs
                .iter()
                .position(|j| (&*j.data, j.lower, j.upper, j.id) == (data, lower, upper, id))?;
            r.jobs.remove(i)
        });
        if held.is_none() {
            self.fail(format!(
                "Cancel of {data:?} {lower}..={upper} to {conn}, which holds no such job"
            ));
        }
        self.tally.cancels += 1;
    }

    /// Target client `client` received `payload`: it must be its Result, equal to the
    /// scalar scan's first hit (or `"Found": false` when there is none) unless a lazy
    /// `"Found": false` escaped the spot check for its request; then it exits.
    pub(super) fn on_target_answer(&mut self, client: usize, payload: &[u8]) {
        let answer = Message::decode_full(payload).map(|d| match d.message {
            Message::Result { hash, nonce } if d.ext.found => Some(Some((hash, nonce))),
            Message::Result { .. } => Some(None),
            _ => None,
        });
        let truth = self.target_truth[client];
        match answer {
            Ok(Some(got)) => {
                self.trace(|| format!("client{client} answered {got:?}"));
                let escaped = self.tainted.contains(&self.case.clients[client].data);
                if got != truth && escaped {
                    self.tally.lazy_escaped += 1;
                } else if got != truth {
                    self.fail(format!(
                        "client{client} got {got:?}, the first hit is {truth:?}"
                    ));
                }
                self.tally.target_answered += 1;
                let node = &mut self.clients[client];
                node.end = Some(ClientEnd::Answered);
                node.ep = None;
            }
            other => self.fail(format!("client{client} received {other:?}")),
        }
    }
}
