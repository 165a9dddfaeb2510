//! Retained messages: the last retained message per topic, handed to new subscriptions. The seam is
//! `RetainedStore`; the embedded `LocalRetained` keeps them in memory by instance and parent topic
//! (a SUBSCRIBE looks only at its parent topic's messages, under a read lock) and writes them
//! through to the node's disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use common::topic;

use super::seam::{BoxFuture, SeamResult, done};
use crate::message::Message;

/// The retained-message seam.
pub trait RetainedStore: Send + Sync {
    /// Keeps `msg` as its topic's retained message; an empty payload deletes it. Durable once resolved.
    fn set(&self, instance_id: &str, msg: &Message) -> BoxFuture<'_, SeamResult<()>>;
    /// Unexpired retained messages whose topics `filter` matches, at most `limit`.
    fn matching(&self, instance_id: &str, filter: &str, limit: usize) -> BoxFuture<'_, SeamResult<Vec<Arc<Message>>>>;
}

/// Where the embedded store keeps retained messages on this node's disk.
pub trait RetainedLog: Send + Sync {
    fn save(&self, instance_id: &str, msg: &Message) -> SeamResult<()>;
    fn remove(&self, instance_id: &str, topic_name: &str) -> SeamResult<()>;
    /// Every retained message, with its instance (records that cannot be read are skipped).
    fn load(&self) -> SeamResult<Vec<(String, Message)>>;
}

/// Instance -> parent topic -> topic -> message.
type ByInstance = HashMap<String, HashMap<String, BTreeMap<String, Arc<Message>>>>;

pub struct LocalRetained {
    messages: RwLock<ByInstance>,
    log: Arc<dyn RetainedLog>,
}

impl LocalRetained {
    /// Loads what the log holds.
    pub fn open(log: Arc<dyn RetainedLog>) -> SeamResult<Self> {
        let mut messages = ByInstance::new();
        for (inst, msg) in log.load()? {
            insert(&mut messages, &inst, Arc::new(msg));
        }
        Ok(Self {
            messages: RwLock::new(messages),
            log,
        })
    }
}

fn insert(map: &mut ByInstance, inst: &str, msg: Arc<Message>) {
    map.entry(inst.to_string())
        .or_default()
        .entry(topic::parent_of(&msg.topic).to_string())
        .or_default()
        .insert(msg.topic.to_string(), msg);
}

impl RetainedStore for LocalRetained {
    fn set(&self, instance_id: &str, msg: &Message) -> BoxFuture<'_, SeamResult<()>> {
        let res = if msg.payload.is_empty() {
            self.log.remove(instance_id, &msg.topic)
        } else {
            self.log.save(instance_id, msg)
        };
        // Memory follows the disk: what a subscriber sees is what a restart will see.
        if res.is_ok() {
            let mut map = self.messages.write().unwrap_or_else(|p| p.into_inner());
            if msg.payload.is_empty() {
                let parent = topic::parent_of(&msg.topic);
                if let Some(parents) = map.get_mut(instance_id) {
                    if let Some(topics) = parents.get_mut(parent) {
                        topics.remove(msg.topic.as_str());
                        if topics.is_empty() {
                            parents.remove(parent);
                        }
                    }
                    if parents.is_empty() {
                        map.remove(instance_id);
                    }
                }
            } else {
                // Its own copy: the message may point into a connection's read buffer.
                let kept = Message {
                    retain: true,
                    ..msg.detached()
                };
                insert(&mut map, instance_id, Arc::new(kept));
            }
        }
        done(res)
    }

    fn matching(&self, instance_id: &str, filter: &str, limit: usize) -> BoxFuture<'_, SeamResult<Vec<Arc<Message>>>> {
        let now = common::time::now_ms();
        let map = self.messages.read().unwrap_or_else(|p| p.into_inner());
        let Some(parents) = map.get(instance_id) else {
            return done(Ok(Vec::new()));
        };
        let parent = topic::parent_of(filter);
        let wildcard_parent = parent == "+" || parent == "#";
        let found = parents
            .iter()
            .filter(|(p, _)| {
                if wildcard_parent {
                    !p.starts_with('$')
                } else {
                    p.as_str() == parent
                }
            })
            .flat_map(|(_, topics)| topics.values())
            .filter(|m| topic::matches(filter, &m.topic) && !m.expired(now))
            .take(limit)
            .cloned()
            .collect();
        done(Ok(found))
    }
}
