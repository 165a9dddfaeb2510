//! This broker's view of the cluster's sessions, kept current from the sessions bucket: which node
//! holds each client ID (and whether it is online and persistent), and the subscriptions of every
//! persistent session, indexed, so that a publish on any broker finds the persistent sessions it
//! must store for, wherever they live and whether they are online or not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use common::topic;
use serde::{Deserialize, Serialize};

use crate::core::offline::PersistedSub;
use crate::core::subscriptions::{SubOptions, SubscriptionIndex, Target};
use crate::message::Message;

/// A session as the cluster records it (one entry per instance and client ID).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    /// The node that holds (or last held) the session.
    pub node: String,
    pub online: bool,
    pub persistent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at_ms: Option<u64>,
    /// Subscriptions of a persistent session (a clean one's stay with its node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subs: Vec<PersistedSub>,
    /// Inbox messages up to this stream sequence were acknowledged by the client.
    #[serde(default)]
    pub acked: u64,
}

impl SessionRecord {
    pub fn expired(&self, now_ms: u64) -> bool {
        match (self.online, self.expiry_secs, self.gone_at_ms) {
            (false, Some(secs), Some(at)) => at.saturating_add(u64::from(secs) * 1000) <= now_ms,
            _ => false,
        }
    }

    pub fn sub_list(&self) -> Vec<(String, SubOptions)> {
        self.subs.iter().cloned().map(PersistedSub::into_parts).collect()
    }
}

/// Where a client's session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub online: bool,
    pub persistent: bool,
    pub acked: u64,
}

type Key = (String, String);

#[derive(Default)]
pub struct ClusterState {
    owners: RwLock<HashMap<Key, Owner>>,
    /// Subscriptions of persistent sessions, cluster-wide (`$share` ones excepted: groups pick
    /// their member through NATS queue groups).
    persistent: RwLock<SubscriptionIndex>,
    /// What each persistent session has in `persistent`, to take it out again.
    indexed: RwLock<HashMap<Key, Vec<String>>>,
    /// The bucket revision of what was applied last per client (deleted ones too, for a while).
    /// Records reach this view from two sides, this node's own writes and the bucket's watch,
    /// which may lag by seconds: without it a late, older record could undo a newer one (a
    /// persistent session's subscriptions would vanish, and messages for it go unstored). Held
    /// for the whole of an apply, so that two applies of one client cannot interleave.
    revisions: Mutex<HashMap<Key, u64>>,
}

/// Revisions of deleted records are forgotten once there are this many more entries than live
/// records (a watch event older than that many deletions is not expected).
const DELETED_KEPT: usize = 10_000;

impl ClusterState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A record changed at bucket `revision` (None: deleted). False, and nothing changed, when
    /// a newer revision of the client's record was applied already.
    pub fn apply(&self, instance: &str, client: &str, record: Option<&SessionRecord>, revision: u64) -> bool {
        let key = (instance.to_string(), client.to_string());
        let mut revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
        if revisions.get(&key).is_some_and(|seen| *seen > revision) {
            return false;
        }
        revisions.insert(key.clone(), revision);
        {
            let mut owners = self.owners.write().unwrap_or_else(|p| p.into_inner());
            match record {
                Some(r) => {
                    owners.insert(
                        key.clone(),
                        Owner {
                            node: r.node.clone(),
                            online: r.online,
                            persistent: r.persistent,
                            acked: r.acked,
                        },
                    );
                }
                None => {
                    owners.remove(&key);
                }
            }
            if revisions.len() > owners.len() + DELETED_KEPT {
                revisions.retain(|k, _| owners.contains_key(k));
            }
        }
        let mut indexed = self.indexed.write().unwrap_or_else(|p| p.into_inner());
        let mut index = self.persistent.write().unwrap_or_else(|p| p.into_inner());
        for raw in indexed.remove(&key).unwrap_or_default() {
            if let Ok(p) = topic::parse_subscription(&raw) {
                index.remove(instance, p.filter, None, client);
            }
        }
        let Some(r) = record.filter(|r| r.persistent) else {
            return true;
        };
        let mut held = Vec::new();
        for (raw, opts) in r.sub_list() {
            if let Ok(p) = topic::parse_subscription(&raw)
                && p.share_group.is_none()
            {
                index.insert(instance, p.filter, None, client, opts);
                held.push(raw);
            }
        }
        if !held.is_empty() {
            indexed.insert(key, held);
        }
        true
    }

    pub fn owner(&self, instance: &str, client: &str) -> Option<Owner> {
        let owners = self.owners.read().unwrap_or_else(|p| p.into_inner());
        owners.get(&(instance.to_string(), client.to_string())).cloned()
    }

    /// Persistent sessions (anywhere) whose subscriptions match `msg`.
    pub fn persistent_targets(&self, instance: &str, msg: &Message) -> Vec<Target> {
        let index = self.persistent.read().unwrap_or_else(|p| p.into_inner());
        index.route(instance, &msg.topic, &msg.publisher, false, &|_| true)
    }

    /// Sessions the cluster records as online, per node (for the online-status query).
    pub fn online_anywhere(&self, instance: &str, client: &str) -> bool {
        self.owner(instance, client).is_some_and(|o| o.online)
    }
}

#[cfg(test)]
mod tests {
    use common::qos::QoS;
    use ntex_bytes::Bytes;

    use super::*;

    fn record(node: &str, subs: &[&str]) -> SessionRecord {
        SessionRecord {
            node: node.into(),
            online: true,
            persistent: true,
            subs: subs
                .iter()
                .map(|f| PersistedSub::new(f, &SubOptions::qos(QoS::AtLeastOnce)))
                .collect(),
            ..SessionRecord::default()
        }
    }

    #[test]
    fn records_drive_owners_and_the_persistent_index() {
        let s = ClusterState::new();
        s.apply("i", "c1", Some(&record("n1", &["T/#", "$share/g/T/x"])), 1);
        s.apply(
            "i",
            "c2",
            Some(&SessionRecord {
                persistent: false,
                ..record("n2", &["T/x"])
            }),
            2,
        );
        let msg = Message::new("T/x", Bytes::new(), QoS::AtLeastOnce, false);
        let t = s.persistent_targets("i", &msg);
        assert_eq!(
            t.iter().map(|t| &*t.client_id).collect::<Vec<_>>(),
            ["c1"],
            "clean and shared ones are not indexed"
        );
        assert_eq!(s.owner("i", "c2").unwrap().node, "n2");
        s.apply("i", "c1", Some(&record("n3", &["U/#"])), 3);
        assert!(
            s.persistent_targets("i", &msg).is_empty(),
            "an update replaces the subscriptions"
        );
        s.apply("i", "c1", None, 4);
        assert!(s.owner("i", "c1").is_none());
    }

    #[test]
    fn an_older_record_arriving_late_changes_nothing() {
        let s = ClusterState::new();
        let msg = Message::new("T/x", Bytes::new(), QoS::AtLeastOnce, false);
        // This node wrote revision 7 (subscribed); the watch then brings revision 5 (the claim,
        // before the subscription).
        assert!(s.apply("i", "c", Some(&record("n1", &["T/#"])), 7));
        assert!(!s.apply("i", "c", Some(&record("n1", &[])), 5), "older: not applied");
        assert_eq!(
            s.persistent_targets("i", &msg).len(),
            1,
            "the subscription stays indexed"
        );
        assert!(
            s.apply("i", "c", Some(&record("n1", &["T/#"])), 7),
            "the same revision again is harmless"
        );
        // A deletion, then a late put from before it.
        assert!(s.apply("i", "c", None, 9));
        assert!(!s.apply("i", "c", Some(&record("n1", &["T/#"])), 8));
        assert!(
            s.owner("i", "c").is_none(),
            "a late put does not bring a deleted record back"
        );
    }
}
