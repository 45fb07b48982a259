//! A follower pointing a client or miner to the leader (docs/replication.md, "Followers
//! point to the leader").
//!
//! A follower serves no one. Without a hint, a peer it closes learns of it only by its own
//! loss detection (`epoch_limit` epochs), since LSP has no goodbye. So a follower that
//! knows the leader first writes a NotLeader message naming it, then closes:
//!
//! ```text
//! {"Type":5,"Data":"","Lower":0,"Upper":0,"Hash":0,"Nonce":0,"Leader":3}
//! ```
//!
//! `Leader` is the leader's replica id, its 1-based position in `--cluster`. Type 5 is
//! unknown to the reference, so it goes only to a peer that announced it understands it: a
//! Request carrying `"Id"` (our client given several addresses), or a payload carrying
//! `"Redirect": true` (our miner's Join, given several addresses). Keys are read exactly as
//! written here (case matters), and a key of the wrong type is as no key.

use serde::Deserialize;

/// The `Type` of a NotLeader message.
pub const NOT_LEADER_TYPE: u64 = 5;

/// The key our miner adds to its Join to announce that it understands NotLeader.
pub const REDIRECT_KEY: &str = "Redirect";

#[derive(Deserialize)]
struct Announce {
    #[serde(rename = "Id")]
    id: Option<u64>,
    #[serde(rename = "Redirect")]
    redirect: Option<bool>,
}

#[derive(Deserialize)]
struct NotLeader {
    #[serde(rename = "Type")]
    kind: u64,
    #[serde(rename = "Leader")]
    leader: u64,
}

/// Whether `payload` (from a client or miner) announces that its sender understands a
/// NotLeader message: a JSON object with a u64 `"Id"` or with `"Redirect": true`.
/// Anything else, undecodable bytes included, does not.
#[must_use]
pub fn announces(payload: &[u8]) -> bool {
    match serde_json::from_slice::<Announce>(payload) {
        Ok(a) => a.id.is_some() || a.redirect == Some(true),
        Err(_) => false,
    }
}

/// `payload` (one encoded JSON object, such as a Join) with `"Redirect": true` added as
/// its last key. A payload that does not end with `}` is returned unchanged.
#[must_use]
pub fn with_redirect(mut payload: Vec<u8>) -> Vec<u8> {
    if payload.last() == Some(&b'}') {
        payload.pop();
        payload.extend_from_slice(format!(r#","{REDIRECT_KEY}":true}}"#).as_bytes());
    }
    payload
}

/// The NotLeader message naming replica `leader`.
#[must_use]
pub fn encode_not_leader(leader: u64) -> Vec<u8> {
    format!(
        r#"{{"Type":{NOT_LEADER_TYPE},"Data":"","Lower":0,"Upper":0,"Hash":0,"Nonce":0,"Leader":{leader}}}"#
    )
    .into_bytes()
}

/// The leader a NotLeader message names, or `None` if `payload` is not one.
#[must_use]
pub fn decode_not_leader(payload: &[u8]) -> Option<u64> {
    match serde_json::from_slice::<NotLeader>(payload) {
        Ok(m) if m.kind == NOT_LEADER_TYPE => Some(m.leader),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn not_leader_round_trips_and_nothing_else_is_one() {
        for leader in [1, 3, u64::MAX] {
            assert_eq!(decode_not_leader(&encode_not_leader(leader)), Some(leader));
        }
        assert_eq!(decode_not_leader(&Message::Join.encode()), None);
        let result = Message::Result { hash: 5, nonce: 5 }.encode();
        assert_eq!(decode_not_leader(&result), None);
        assert_eq!(decode_not_leader(br#"{"Type":5}"#), None);
        assert_eq!(decode_not_leader(b"not json"), None);
    }

    #[test]
    fn only_an_id_or_redirect_true_announces() {
        let join = Message::Join.encode();
        assert!(!announces(&join));
        assert!(announces(&with_redirect(join.clone())));
        assert!(announces(br#"{"Type":1,"Data":"x","Id":7}"#));
        assert!(!announces(br#"{"Type":0,"Redirect":false}"#));
        assert!(!announces(br#"{"Type":0,"Redirect":1}"#));
        assert!(!announces(br#"{"Type":1,"Id":"7"}"#));
        assert!(!announces(b"\xff"));
        assert_eq!(with_redirect(b"x".to_vec()), b"x".to_vec());
    }

    #[test]
    fn a_join_with_redirect_still_decodes_as_a_join() {
        let payload = with_redirect(Message::Join.encode());
        assert_eq!(Message::decode(&payload).ok(), Some(Message::Join));
    }
}
