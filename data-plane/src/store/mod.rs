//! Embedded store for persistent sessions, offline QoS 1/2 messages and retained messages, behind
//! the narrow `SessionStore` trait so a distributed engine can replace it. fjall implementation.
//!
//! Keys: `sessions` = `inst \0 client` -> JSON subscriptions; `queue` = `inst \0 client \0 seq` ->
//! message; `age` = `inst \0 seq client` -> () for retention and the per-instance cap (oldest first);
//! `retained` = `inst \0 topic` -> message.
//! `seq` is `(unix ms << 20) | counter`, so it orders by age across restarts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Engine(#[from] fjall::Error),
    #[error("store: corrupt record: {0}")]
    Corrupt(String),
}

/// A persistent session: its subscriptions (raw filters incl. `$share/...`, with granted QoS) and
/// how long it outlives its connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PersistedSession {
    pub subs: Vec<(String, u8)>,
    /// MQTT 5 session expiry interval in seconds; absent: until a clean start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u32>,
    /// When its last connection closed (unix ms); absent while connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at_ms: Option<u64>,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMsg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// What the broker needs from a session store.
pub trait SessionStore: Send + Sync {
    fn load_sessions(&self) -> StoreResult<Vec<(String, String, PersistedSession)>>;
    fn save_session(&self, inst: &str, client: &str, session: &PersistedSession) -> StoreResult<()>;
    /// Removes the session and all its queued messages.
    fn delete_session(&self, inst: &str, client: &str) -> StoreResult<()>;
    /// Appends a message; drops the instance's oldest messages beyond `cap`. Returns its sequence.
    fn enqueue(&self, inst: &str, client: &str, msg: &StoredMsg, cap: u64) -> StoreResult<u64>;
    /// Up to `limit` messages with a sequence above `after`, oldest first, skipping expired ones.
    fn fetch(
        &self,
        inst: &str,
        client: &str,
        after: u64,
        limit: usize,
        max_age_ms: u64,
    ) -> StoreResult<Vec<(u64, StoredMsg)>>;
    /// Deletes an acknowledged message.
    fn ack(&self, inst: &str, client: &str, seq: u64) -> StoreResult<()>;
    /// Deletes an instance's messages older than `max_age_ms`; returns how many.
    fn expire(&self, inst: &str, max_age_ms: u64) -> StoreResult<u64>;
    /// Makes all writes so far survive a process crash (kill -9).
    fn flush(&self) -> StoreResult<()>;
    /// Queued messages per instance.
    fn counts(&self) -> HashMap<String, u64>;
    /// Keeps `msg` as its instance's retained message for `msg.topic`; an empty payload removes it.
    fn set_retained(&self, inst: &str, msg: &StoredMsg) -> StoreResult<()>;
    /// Every retained message, with its instance.
    fn load_retained(&self) -> StoreResult<Vec<(String, StoredMsg)>>;
}

pub struct FjallStore {
    db: Database,
    sessions: Keyspace,
    queue: Keyspace,
    age: Keyspace,
    retained: Keyspace,
    last_seq: AtomicU64,
    counts: Mutex<HashMap<String, u64>>,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `inst \0 name`: the key of a session (name = client ID) or a retained message (name = topic).
fn instance_key(inst: &str, name: &str) -> Vec<u8> {
    [inst.as_bytes(), b"\0", name.as_bytes()].concat()
}

/// Splits an `instance_key` back into (instance, name).
fn split_instance_key(key: &[u8]) -> StoreResult<(&str, &str)> {
    std::str::from_utf8(key)
        .ok()
        .and_then(|text| text.split_once('\0'))
        .ok_or_else(|| StoreError::Corrupt("instance key".into()))
}

fn queue_prefix(inst: &str, client: &str) -> Vec<u8> {
    [inst.as_bytes(), b"\0", client.as_bytes(), b"\0"].concat()
}

fn queue_key(inst: &str, client: &str, seq: u64) -> Vec<u8> {
    [queue_prefix(inst, client).as_slice(), &seq.to_be_bytes()].concat()
}

fn age_key(inst: &str, seq: u64, client: &str) -> Vec<u8> {
    [inst.as_bytes(), b"\0", &seq.to_be_bytes(), client.as_bytes()].concat()
}

/// Splits an `age` key into (instance, seq, client).
fn parse_age_key(key: &[u8]) -> Option<(String, u64, String)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let inst = std::str::from_utf8(&key[..nul]).ok()?;
    let seq = u64::from_be_bytes(key.get(nul + 1..nul + 9)?.try_into().ok()?);
    let client = std::str::from_utf8(key.get(nul + 9..)?).ok()?;
    Some((inst.to_string(), seq, client.to_string()))
}

fn encode(msg: &StoredMsg) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + msg.topic.len() + msg.payload.len());
    out.push(msg.qos);
    out.push(u8::from(msg.retain));
    out.extend_from_slice(&(msg.topic.len() as u16).to_be_bytes());
    out.extend_from_slice(msg.topic.as_bytes());
    out.extend_from_slice(&msg.payload);
    out
}

fn decode(raw: &[u8]) -> Option<StoredMsg> {
    let qos = *raw.first()?;
    let retain = *raw.get(1)? != 0;
    let len = u16::from_be_bytes(raw.get(2..4)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(raw.get(4..4 + len)?).ok()?.to_string();
    let payload = raw.get(4 + len..)?.to_vec();
    Some(StoredMsg {
        topic,
        payload,
        qos,
        retain,
    })
}

impl FjallStore {
    pub fn open(dir: &Path) -> StoreResult<Self> {
        // Journal writes reach the OS on every `flush()`; that is what survives kill -9.
        let db = Database::builder(dir).manual_journal_persist(true).open()?;
        let sessions = db.keyspace("sessions", KeyspaceCreateOptions::default)?;
        let queue = db.keyspace("queue", KeyspaceCreateOptions::default)?;
        let age = db.keyspace("age", KeyspaceCreateOptions::default)?;
        let retained = db.keyspace("retained", KeyspaceCreateOptions::default)?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut last_seq = 0;
        for kv in age.iter() {
            let key = kv.key()?;
            let (inst, seq, _) = parse_age_key(&key).ok_or_else(|| StoreError::Corrupt("age key".into()))?;
            *counts.entry(inst).or_default() += 1;
            last_seq = last_seq.max(seq);
        }
        Ok(Self {
            db,
            sessions,
            queue,
            age,
            retained,
            last_seq: AtomicU64::new(last_seq),
            counts: Mutex::new(counts),
        })
    }

    fn next_seq(&self) -> u64 {
        let floor = now_ms() << 20;
        let mut cur = self.last_seq.load(Ordering::Relaxed);
        loop {
            let next = floor.max(cur + 1);
            match self
                .last_seq
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    fn remove_msg(&self, inst: &str, client: &str, seq: u64) -> StoreResult<bool> {
        let key = queue_key(inst, client, seq);
        let existed = self.queue.contains_key(&key)?;
        if existed {
            self.queue.remove(key)?;
            self.age.remove(age_key(inst, seq, client))?;
            if let Some(c) = self.counts.lock().unwrap_or_else(|p| p.into_inner()).get_mut(inst) {
                *c = c.saturating_sub(1);
            }
        }
        Ok(existed)
    }

    /// Deletes the instance's oldest messages while `stop(seq)` is false or the count exceeds `cap`.
    fn drop_oldest(&self, inst: &str, cap: u64, older_than_seq: u64) -> StoreResult<u64> {
        let prefix = [inst.as_bytes(), b"\0"].concat();
        let mut dropped = 0;
        for kv in self.age.prefix(&prefix) {
            let key = kv.key()?;
            let Some((_, seq, client)) = parse_age_key(&key) else {
                continue;
            };
            let over_cap = self.counts().get(inst).copied().unwrap_or(0) > cap;
            if !over_cap && seq >= older_than_seq {
                break;
            }
            if self.remove_msg(inst, &client, seq)? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

impl SessionStore for FjallStore {
    fn load_sessions(&self) -> StoreResult<Vec<(String, String, PersistedSession)>> {
        let mut out = Vec::new();
        for kv in self.sessions.iter() {
            let (key, value) = kv.into_inner()?;
            let (inst, client) = split_instance_key(&key)?;
            let session = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((inst.to_string(), client.to_string(), session));
        }
        Ok(out)
    }

    fn save_session(&self, inst: &str, client: &str, session: &PersistedSession) -> StoreResult<()> {
        let value = serde_json::to_vec(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.sessions.insert(instance_key(inst, client), value)?;
        Ok(())
    }

    fn delete_session(&self, inst: &str, client: &str) -> StoreResult<()> {
        self.sessions.remove(instance_key(inst, client))?;
        let prefix = queue_prefix(inst, client);
        let seqs: Vec<u64> = self
            .queue
            .prefix(&prefix)
            .filter_map(|kv| kv.key().ok())
            .filter_map(|k| {
                k.get(prefix.len()..)
                    .and_then(|s| s.try_into().ok())
                    .map(u64::from_be_bytes)
            })
            .collect();
        for seq in seqs {
            self.remove_msg(inst, client, seq)?;
        }
        Ok(())
    }

    fn enqueue(&self, inst: &str, client: &str, msg: &StoredMsg, cap: u64) -> StoreResult<u64> {
        let seq = self.next_seq();
        self.queue.insert(queue_key(inst, client, seq), encode(msg))?;
        self.age.insert(age_key(inst, seq, client), [])?;
        let count = {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let c = counts.entry(inst.to_string()).or_default();
            *c += 1;
            *c
        };
        if count > cap {
            let dropped = self.drop_oldest(inst, cap, 0)?;
            metrics::counter!("broker_offline_dropped_total", "reason" => "cap").increment(dropped);
        }
        Ok(seq)
    }

    fn fetch(
        &self,
        inst: &str,
        client: &str,
        after: u64,
        limit: usize,
        max_age_ms: u64,
    ) -> StoreResult<Vec<(u64, StoredMsg)>> {
        let prefix = queue_prefix(inst, client);
        let start = queue_key(inst, client, after.saturating_add(1));
        let end = queue_key(inst, client, u64::MAX);
        let oldest = now_ms().saturating_sub(max_age_ms) << 20;
        let mut out = Vec::new();
        let mut expired = Vec::new();
        for kv in self.queue.range(start..=end) {
            let (key, value) = kv.into_inner()?;
            let seq = key
                .get(prefix.len()..)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt("queue key".into()))?;
            if seq < oldest {
                expired.push(seq);
                continue;
            }
            let msg = decode(&value).ok_or_else(|| StoreError::Corrupt("queued message".into()))?;
            out.push((seq, msg));
            if out.len() >= limit {
                break;
            }
        }
        for seq in expired {
            self.remove_msg(inst, client, seq)?;
            metrics::counter!("broker_offline_dropped_total", "reason" => "expired").increment(1);
        }
        Ok(out)
    }

    fn ack(&self, inst: &str, client: &str, seq: u64) -> StoreResult<()> {
        self.remove_msg(inst, client, seq)?;
        Ok(())
    }

    fn expire(&self, inst: &str, max_age_ms: u64) -> StoreResult<u64> {
        let cutoff = now_ms().saturating_sub(max_age_ms) << 20;
        self.drop_oldest(inst, u64::MAX, cutoff)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.persist(PersistMode::Buffer)?;
        Ok(())
    }

    fn counts(&self) -> HashMap<String, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_retained(&self, inst: &str, msg: &StoredMsg) -> StoreResult<()> {
        let key = instance_key(inst, &msg.topic);
        if msg.payload.is_empty() {
            self.retained.remove(key)?;
        } else {
            self.retained.insert(key, encode(msg))?;
        }
        Ok(())
    }

    fn load_retained(&self) -> StoreResult<Vec<(String, StoredMsg)>> {
        let mut out = Vec::new();
        for kv in self.retained.iter() {
            let (key, value) = kv.into_inner()?;
            let (inst, _topic) = split_instance_key(&key)?;
            let msg = decode(&value).ok_or_else(|| StoreError::Corrupt("retained message".into()))?;
            out.push((inst.to_string(), msg));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> StoredMsg {
        StoredMsg {
            topic: "T/a".into(),
            payload: vec![n],
            qos: 1,
            retain: false,
        }
    }

    #[test]
    fn queue_order_ack_cap_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = FjallStore::open(dir.path()).unwrap();
            for n in 0..5 {
                s.enqueue("i", "c", &msg(n), 4).unwrap();
            }
            let got = s.fetch("i", "c", 0, 10, u64::MAX >> 21).unwrap();
            // The cap of 4 dropped the oldest.
            assert_eq!(
                got.iter().map(|(_, m)| m.payload[0]).collect::<Vec<_>>(),
                vec![1, 2, 3, 4]
            );
            s.ack("i", "c", got[0].0).unwrap();
            s.save_session(
                "i",
                "c",
                &PersistedSession {
                    subs: vec![("T/#".into(), 1)],
                    expiry_secs: Some(60),
                    gone_at_ms: Some(1),
                },
            )
            .unwrap();
            s.flush().unwrap();
        }
        let s = FjallStore::open(dir.path()).unwrap();
        assert_eq!(s.counts().get("i"), Some(&3));
        assert_eq!(s.load_sessions().unwrap().len(), 1);
        let got = s.fetch("i", "c", 0, 10, u64::MAX >> 21).unwrap();
        assert_eq!(got.iter().map(|(_, m)| m.payload[0]).collect::<Vec<_>>(), vec![2, 3, 4]);
        s.delete_session("i", "c").unwrap();
        assert!(s.fetch("i", "c", 0, 10, u64::MAX >> 21).unwrap().is_empty());
        assert_eq!(s.counts().get("i"), Some(&0));
    }

    #[test]
    fn retained_messages_replace_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let retained = |topic: &str, payload: &[u8]| StoredMsg {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: 0,
            retain: true,
        };
        {
            let s = FjallStore::open(dir.path()).unwrap();
            s.set_retained("i1", &retained("T/a", b"one")).unwrap();
            s.set_retained("i1", &retained("T/a", b"two")).unwrap();
            s.set_retained("i1", &retained("T/b", b"gone")).unwrap();
            s.set_retained("i1", &retained("T/b", b"")).unwrap();
            s.set_retained("i2", &retained("T/a", b"other")).unwrap();
            s.flush().unwrap();
        }
        let s = FjallStore::open(dir.path()).unwrap();
        let mut all = s.load_retained().unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            all,
            vec![
                ("i1".into(), retained("T/a", b"two")),
                ("i2".into(), retained("T/a", b"other"))
            ]
        );
    }

    #[test]
    fn retention_expires_old_messages_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = FjallStore::open(dir.path()).unwrap();
        s.enqueue("i", "c", &msg(1), 100).unwrap();
        s.enqueue("j", "c", &msg(2), 100).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.enqueue("i", "c", &msg(3), 100).unwrap();
        // Older than 10 ms: only the first message of instance i.
        assert_eq!(s.expire("i", 10).unwrap(), 1);
        let left = s.fetch("i", "c", 0, 10, 60_000).unwrap();
        assert_eq!(left.iter().map(|(_, m)| m.payload[0]).collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.counts().get("j"), Some(&1));
        // fetch() skips and deletes what is past the retention too.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(s.fetch("i", "c", 0, 10, 10).unwrap().is_empty());
        assert_eq!(s.counts().get("i"), Some(&0));
    }
}
