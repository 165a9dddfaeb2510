//! Retained messages: the last retained message per topic, handed to new subscriptions. The seam is
//! `RetainedStore`; the embedded `LocalRetained` keeps them in memory by instance and parent topic
//! (a SUBSCRIBE looks only at its parent topic's messages, under a read lock), counts them against
//! the instance's limits, and writes them through to the node's disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use common::topic;

use super::seam::{Seam, SeamResult, done};
use crate::message::Message;

/// How many retained messages, and how many bytes of them, an instance may keep.
#[derive(Debug, Clone, Copy)]
pub struct RetainedLimits {
    pub max_messages: usize,
    pub max_bytes: u64,
}

/// A retained message that does not fit its instance's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedFull;

/// The retained-message seam.
pub trait RetainedStore: Send + Sync {
    /// Keeps `msg` as its topic's retained message within `limits`; an empty payload deletes it.
    /// Durable once resolved.
    fn set(
        &self,
        instance_id: &str,
        msg: &Message,
        limits: RetainedLimits,
    ) -> Seam<'_, SeamResult<Result<(), RetainedFull>>>;
    /// Unexpired retained messages whose topics `filter` matches, at most `limit`.
    fn matching(&self, instance_id: &str, filter: &str, limit: usize) -> Seam<'_, SeamResult<Vec<Arc<Message>>>>;
    /// Deletes the instance's retained messages set more than `max_age_ms` ago (housekeeping);
    /// returns how many.
    fn expire(&self, instance_id: &str, max_age_ms: u64) -> SeamResult<usize>;
}

/// Where the embedded store keeps retained messages on this node's disk.
pub trait RetainedLog: Send + Sync {
    fn save(&self, instance_id: &str, msg: &Message) -> SeamResult<()>;
    fn remove(&self, instance_id: &str, topic_name: &str) -> SeamResult<()>;
    /// Every retained message, with its instance (records that cannot be read are skipped).
    fn load(&self) -> SeamResult<Vec<(String, Message)>>;
}

/// One instance's retained messages by parent topic and topic, and what they add up to.
#[derive(Default)]
struct InstanceRetained {
    by_parent: HashMap<String, BTreeMap<String, Arc<Message>>>,
    count: usize,
    bytes: u64,
}

fn cost(msg: &Message) -> u64 {
    (msg.topic.len() + msg.payload.len()) as u64
}

impl InstanceRetained {
    fn get(&self, topic_name: &str) -> Option<&Arc<Message>> {
        self.by_parent.get(topic::parent_of(topic_name))?.get(topic_name)
    }

    fn insert(&mut self, msg: Arc<Message>) {
        self.remove(&msg.topic);
        self.count += 1;
        self.bytes += cost(&msg);
        self.by_parent
            .entry(topic::parent_of(&msg.topic).to_string())
            .or_default()
            .insert(msg.topic.to_string(), msg);
    }

    fn remove(&mut self, topic_name: &str) -> Option<Arc<Message>> {
        let parent = topic::parent_of(topic_name);
        let topics = self.by_parent.get_mut(parent)?;
        let old = topics.remove(topic_name)?;
        if topics.is_empty() {
            self.by_parent.remove(parent);
        }
        self.count -= 1;
        self.bytes -= cost(&old);
        Some(old)
    }
}

pub struct LocalRetained {
    instances: RwLock<HashMap<String, InstanceRetained>>,
    log: Arc<dyn RetainedLog>,
}

impl LocalRetained {
    /// Loads what the log holds.
    pub fn open(log: Arc<dyn RetainedLog>) -> SeamResult<Self> {
        let mut instances: HashMap<String, InstanceRetained> = HashMap::new();
        for (inst, msg) in log.load()? {
            instances.entry(inst).or_default().insert(Arc::new(msg));
        }
        Ok(Self {
            instances: RwLock::new(instances),
            log,
        })
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, InstanceRetained>> {
        self.instances.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `msg` fits the instance's limits in place of its topic's current message.
    pub fn fits(&self, instance_id: &str, msg: &Message, limits: RetainedLimits) -> bool {
        let instances = self.instances.read().unwrap_or_else(|p| p.into_inner());
        let (count, bytes, replaced) = instances
            .get(instance_id)
            .map_or((0, 0, None), |i| (i.count, i.bytes, i.get(&msg.topic).map(|m| cost(m))));
        let count = count + usize::from(replaced.is_none());
        let bytes = bytes - replaced.unwrap_or(0) + cost(msg);
        count <= limits.max_messages && bytes <= limits.max_bytes
    }

    /// Keeps `msg` in memory as its topic's retained message (an empty payload removes it),
    /// without writing it anywhere: for a replica of retained messages kept elsewhere.
    pub fn apply(&self, instance_id: &str, msg: &Message) {
        if msg.payload.is_empty() {
            let mut instances = self.write();
            if let Some(inst) = instances.get_mut(instance_id) {
                inst.remove(&msg.topic);
                if inst.count == 0 {
                    instances.remove(instance_id);
                }
            }
        } else {
            // Its own copy: the message may point into a connection's read buffer.
            let kept = Message {
                retain: true,
                ..msg.detached()
            };
            self.write()
                .entry(instance_id.to_string())
                .or_default()
                .insert(Arc::new(kept));
        }
    }

    /// Topics of the instance's retained messages older than `max_age_ms` or past their expiry.
    pub fn expired_topics(&self, instance_id: &str, max_age_ms: u64) -> Vec<String> {
        let now = common::time::now_ms();
        let oldest = now - i64::try_from(max_age_ms).unwrap_or(i64::MAX);
        let instances = self.instances.read().unwrap_or_else(|p| p.into_inner());
        let Some(inst) = instances.get(instance_id) else {
            return Vec::new();
        };
        inst.by_parent
            .values()
            .flat_map(|topics| topics.values())
            .filter(|m| m.id.time_ms() <= oldest || m.expired(now))
            .map(|m| m.topic.to_string())
            .collect()
    }

    /// Retained messages matching `filter` (see `RetainedStore::matching`).
    pub fn find(&self, instance_id: &str, filter: &str, limit: usize) -> Vec<Arc<Message>> {
        let now = common::time::now_ms();
        let instances = self.instances.read().unwrap_or_else(|p| p.into_inner());
        let Some(inst) = instances.get(instance_id) else {
            return Vec::new();
        };
        let parent = topic::parent_of(filter);
        let wildcard_parent = parent == "+" || parent == "#";
        inst.by_parent
            .iter()
            // A first-level wildcard (development listener) never matches a `$` topic.
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
            .collect()
    }
}

impl RetainedStore for LocalRetained {
    fn set(
        &self,
        instance_id: &str,
        msg: &Message,
        limits: RetainedLimits,
    ) -> Seam<'_, SeamResult<Result<(), RetainedFull>>> {
        if !msg.payload.is_empty() && !self.fits(instance_id, msg, limits) {
            return done(Ok(Err(RetainedFull)));
        }
        let res = if msg.payload.is_empty() {
            self.log.remove(instance_id, &msg.topic)
        } else {
            self.log.save(instance_id, msg)
        };
        // Memory follows the disk: what a subscriber sees is what a restart will see.
        if res.is_ok() {
            self.apply(instance_id, msg);
        }
        done(res.map(Ok))
    }

    fn matching(&self, instance_id: &str, filter: &str, limit: usize) -> Seam<'_, SeamResult<Vec<Arc<Message>>>> {
        done(Ok(self.find(instance_id, filter, limit)))
    }

    fn expire(&self, instance_id: &str, max_age_ms: u64) -> SeamResult<usize> {
        let old = self.expired_topics(instance_id, max_age_ms);
        for topic_name in &old {
            self.log.remove(instance_id, topic_name)?;
            if let Some(inst) = self.write().get_mut(instance_id) {
                inst.remove(topic_name);
            }
        }
        Ok(old.len())
    }
}

/// The log of a replica that keeps nothing itself (the cluster keeps retained messages in NATS).
pub struct NoLog;

impl RetainedLog for NoLog {
    fn save(&self, _: &str, _: &Message) -> SeamResult<()> {
        Ok(())
    }
    fn remove(&self, _: &str, _: &str) -> SeamResult<()> {
        Ok(())
    }
    fn load(&self) -> SeamResult<Vec<(String, Message)>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use ntex_bytes::Bytes;

    use super::*;
    use crate::message::QoS;

    fn msg(topic: &str, payload: &'static [u8]) -> Message {
        Message::new(topic.to_string(), Bytes::from_static(payload), QoS::AtMostOnce, true)
    }

    #[tokio::test]
    async fn limits_count_messages_and_bytes_and_a_replacement_fits_in_place() {
        let r = LocalRetained::open(Arc::new(NoLog)).unwrap();
        let limits = RetainedLimits {
            max_messages: 2,
            max_bytes: 20,
        };
        assert_eq!(r.set("i", &msg("T/a", b"12345"), limits).await.unwrap(), Ok(()));
        assert_eq!(r.set("i", &msg("T/b", b"12345"), limits).await.unwrap(), Ok(()));
        assert_eq!(
            r.set("i", &msg("T/c", b"1"), limits).await.unwrap(),
            Err(RetainedFull),
            "third message"
        );
        assert_eq!(
            r.set("i", &msg("T/a", b"123456"), limits).await.unwrap(),
            Ok(()),
            "replaces T/a"
        );
        assert_eq!(
            r.set("i", &msg("T/a", b"1234567890"), limits).await.unwrap(),
            Err(RetainedFull),
            "too many bytes"
        );
        assert_eq!(
            r.set("i", &msg("T/b", b""), limits).await.unwrap(),
            Ok(()),
            "deleting always works"
        );
        assert_eq!(r.set("i", &msg("T/c", b"1"), limits).await.unwrap(), Ok(()));
        assert_eq!(
            r.set("j", &msg("T/c", b"1"), limits).await.unwrap(),
            Ok(()),
            "instances are separate"
        );
        let all = r.matching("i", "T/#", 10).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(r.expire("i", 0).unwrap(), 2, "everything is older than no age at all");
        assert!(r.matching("i", "T/#", 10).await.unwrap().is_empty());
        assert_eq!(r.matching("j", "T/#", 10).await.unwrap().len(), 1);
    }
}
