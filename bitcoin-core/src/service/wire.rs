//! The scheduler's effects as the bytes the service writes: the reference's messages for
//! everything the reference knows, the target-mode extension ([`crate::message::ext`]) for
//! target jobs, not-found answers and Cancels.

use crate::message::ext::{encode_request, encode_target_result, with_job};
use crate::message::Message;
use crate::scheduler::{Effect, Misbehaviour};

/// What to do for one effect.
pub(super) enum Encoded<K> {
    /// Write these bytes to this connection.
    Write(K, Vec<u8>),
    /// Close this miner's connection: it lied.
    Close(K, Misbehaviour),
}

/// Encodes `effect`.
pub(super) fn encode<K>(effect: Effect<K>) -> Encoded<K> {
    match effect {
        Effect::SendJob {
            miner,
            msg,
            lower,
            upper,
            mode,
            job,
            ..
        } => Encoded::Write(
            miner,
            with_job(encode_request(&msg, lower, upper, mode), job),
        ),
        Effect::SendResult {
            client,
            hash,
            nonce,
            ..
        } => Encoded::Write(client, Message::Result { hash, nonce }.encode()),
        Effect::SendNotFound { client, .. } => {
            Encoded::Write(client, encode_target_result(None, (0, 0)))
        }
        Effect::Cancel {
            miner,
            msg,
            lower,
            upper,
            job,
            ..
        } => {
            let data = msg.to_string();
            let cancel = Message::Cancel { data, lower, upper }.encode();
            Encoded::Write(miner, with_job(cancel, job))
        }
        Effect::Disconnect { miner, reason } => Encoded::Close(miner, reason),
    }
}
