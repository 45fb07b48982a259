//! A replicated or durable server's own events (`server --data-dir`): what happened to
//! this replica in its Raft group, told like the pool's events — a line of the event log
//! (`--events`), an entry of the dashboard's recent events, and a `-v` line.
//!
//! | `event` | other keys |
//! |---|---|
//! | `replica_role` | `id`, `role` (`leader`, `candidate`, `pre_candidate`, `follower`), `term`, `leader` (0: none known) |
//! | `requests_restored` | `term`, `count`: unanswered requests a new leader took up from the log |
//! | `clients_redirected` | `count` (since the previous such line), `leader`: connections told which replica leads, then closed |
//! | `snapshot_installed` | `index`: the log index of a snapshot installed from the leader |

use lsp_core::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::log::Log;

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReplicaEventKind {
    /// This replica's role, term or known leader changed.
    ReplicaRole {
        /// This replica.
        id: u64,
        /// Its role now.
        role: &'static str,
        /// The term.
        term: u64,
        /// The leader it knows of (0: none).
        leader: u64,
    },
    /// On becoming leader, this replica took up `count` unanswered requests from the log.
    RequestsRestored {
        /// The term it leads.
        term: u64,
        /// Requests restored.
        count: u64,
    },
    /// `count` connections were told that `leader` leads, and closed.
    ClientsRedirected {
        /// Connections redirected since the previous such event.
        count: u64,
        /// The leader they were sent to.
        leader: u64,
    },
    /// A snapshot from the leader was installed.
    SnapshotInstalled {
        /// Its last log index.
        index: u64,
    },
}

/// One replication event, at service time `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaEvent {
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: ReplicaEventKind,
}

impl ReplicaEvent {
    /// The event as the JSON object of its event-log line, stamped `ts` (Unix
    /// milliseconds).
    pub fn to_json(&self, ts: u64) -> Value {
        let mut value = serde_json::to_value(&self.kind).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("ts".into(), ts.into());
        }
        value
    }

    /// Tells the event on `log` at `-v` (a role change is said at level 0 by the loop).
    pub fn narrate(&self, log: &Log) {
        match &self.kind {
            ReplicaEventKind::ReplicaRole {
                id,
                role,
                term,
                leader,
            } => log.info(format_args!(
                // Worded so that only a leader's line says "leader" (tests and scripts
                // wait for it; the loop's own role line says ": leader" and ": follower").
                "replica {id} role {role} in term {term}, {}",
                match leader {
                    0 => "none known to lead".to_string(),
                    l => format!("replica {l} leads"),
                }
            )),
            ReplicaEventKind::RequestsRestored { term, count } => log.info(format_args!(
                "term {term}: {count} unanswered request(s) restored from the log"
            )),
            ReplicaEventKind::ClientsRedirected { count, leader } => log.info(format_args!(
                "{count} connection(s) told replica {leader} leads, and closed"
            )),
            ReplicaEventKind::SnapshotInstalled { index } => log.info(format_args!(
                "installed a snapshot from the leader (index {index})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_object_with_its_kind_and_stamp() {
        let event = ReplicaEvent {
            at: Timestamp::from_millis(5),
            kind: ReplicaEventKind::ReplicaRole {
                id: 2,
                role: "leader",
                term: 7,
                leader: 2,
            },
        };
        assert_eq!(
            event.to_json(1005),
            serde_json::json!({"event": "replica_role", "ts": 1005, "id": 2,
                "role": "leader", "term": 7, "leader": 2})
        );
        let restored = ReplicaEvent {
            at: Timestamp::ZERO,
            kind: ReplicaEventKind::RequestsRestored { term: 3, count: 4 },
        };
        assert_eq!(
            restored.to_json(9),
            serde_json::json!({"event": "requests_restored", "ts": 9, "term": 3, "count": 4})
        );
    }
}
