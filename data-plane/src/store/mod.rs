//! The node's embedded store (fjall): persistent-session records, offline queues and retained
//! messages. It implements the core's `SessionRecords`, `OfflineQueue` and `RetainedLog`.
//!
//! Keys: `sessions` = `inst \0 client` -> JSON record; `queue` = `inst \0 client \0 seq` ->
//! message (`codec`); `age` = `inst \0 seq client` -> () for retention and the per-instance cap
//! (oldest first); `retained` = `inst \0 topic` -> message.
//! `seq` is `(unix ms << 20) | counter`, so it orders by age across restarts. A record that cannot
//! be read is skipped, logged and counted, never a reason not to start.
//!
//! Why it is long (about 490 lines): the three seams share one keyspace, its sequence counter and its
//! skipping of unreadable records; splitting them would spread one on-disk format over several files.

mod background;
pub(crate) mod codec;
mod journal_sync;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use self::codec::Delivery;
use crate::core::mailbox::Outbound;
use crate::core::offline::{OfflineLimits, OfflineQueue, PersistedSession, QueueEntry, Queued, SessionRecords};
use crate::core::retained::RetainedLog;
use crate::core::seam::{Seam, SeamError, SeamResult, done};
use crate::message::Message;
use crate::metrics;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Engine(#[from] fjall::Error),
}

impl From<StoreError> for SeamError {
    fn from(e: StoreError) -> Self {
        SeamError::Store(e.to_string())
    }
}

pub struct FjallStore {
    db: Database,
    sessions: Keyspace,
    queue: Keyspace,
    age: Keyspace,
    retained: Keyspace,
    last_seq: Sequence,
    /// Queued messages and their bytes per instance (the `age` keyspace holds each one's size).
    usage: Mutex<HashMap<String, Usage>>,
    _journal_sync: journal_sync::JournalSync,
}

fn now_ms() -> u64 {
    common::time::now_ms().max(0) as u64
}

/// Increasing sequence numbers for store keys: the current time in ms shifted left 20 bits, or one
/// more than the last when that is not higher (so keys sort by time across restarts).
pub(crate) struct Sequence(AtomicU64);

impl Sequence {
    /// Continues after `last`, the highest number already stored.
    pub(crate) fn new(last: u64) -> Self {
        Self(AtomicU64::new(last))
    }

    pub(crate) fn next(&self) -> u64 {
        let floor = now_ms() << 20;
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = floor.max(cur + 1);
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// `inst \0 name`: the key of a session (name = client ID) or a retained message (name = topic).
fn instance_key(inst: &str, name: &str) -> Vec<u8> {
    [inst.as_bytes(), b"\0", name.as_bytes()].concat()
}

/// Splits an `instance_key` back into (instance, name).
fn split_instance_key(key: &[u8]) -> Option<(&str, &str)> {
    std::str::from_utf8(key).ok().and_then(|text| text.split_once('\0'))
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

/// Queued messages of an instance and the bytes of their records.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    messages: u64,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, bytes: u64) {
        self.messages += 1;
        self.bytes += bytes;
    }

    fn remove(&mut self, bytes: u64) {
        self.remove_many(1, bytes);
    }

    fn remove_many(&mut self, messages: u64, bytes: u64) {
        self.messages = self.messages.saturating_sub(messages);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    fn over(self, limits: OfflineLimits) -> bool {
        self.messages > limits.max_messages || self.bytes > limits.max_bytes
    }
}

/// The record size an `age` entry holds (entries written before sizes were kept hold none: 0).
fn size_of_age(value: &[u8]) -> u64 {
    value
        .try_into()
        .map_or(0, |b: [u8; 4]| u64::from(u32::from_be_bytes(b)))
}

/// A record that cannot be read: reported, and left out.
fn skip_corrupt(what: &'static str, key: &[u8]) {
    metrics::store_error("corrupt_record");
    tracing::error!(record = what, key = %String::from_utf8_lossy(key), "unreadable store record skipped");
}

/// How the store's keyspaces are created. Each write is handed to the OS by the `persist()` that
/// follows it (before an acknowledgement), not by the write itself: fjall's default hands every
/// insert and removal over on its own, one `write` system call each (a stored QoS 1 message took
/// three: its record, its age entry and the persist). fjall keeps a keyspace's options from its
/// creation, so keyspaces made before this option still write on every change (correct, slower).
pub(crate) fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().manual_journal_persist(true)
}

/// Opens a database as the broker keeps them (the store, the message trace): journal writes reach
/// the OS on every `persist()` (what survives kill -9), and its background threads run below the
/// MQTT workers.
pub(crate) fn open_database(dir: &Path) -> fjall::Result<Database> {
    background::below_workers(|| Database::builder(dir).manual_journal_persist(true).open())
}

impl FjallStore {
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let db = open_database(dir)?;
        let sessions = db.keyspace("sessions", keyspace_options)?;
        let queue = db.keyspace("queue", keyspace_options)?;
        let age = db.keyspace("age", keyspace_options)?;
        let retained = db.keyspace("retained", keyspace_options)?;
        let mut usage: HashMap<String, Usage> = HashMap::new();
        let mut last_seq = 0;
        for kv in age.iter() {
            let (key, value) = kv.into_inner()?;
            let Some((inst, seq, _)) = parse_age_key(&key) else {
                skip_corrupt("age", &key);
                continue;
            };
            usage.entry(inst).or_default().add(size_of_age(&value));
            last_seq = last_seq.max(seq);
        }
        Ok(Self {
            _journal_sync: journal_sync::JournalSync::start(db.clone(), dir),
            db,
            sessions,
            queue,
            age,
            retained,
            last_seq: Sequence::new(last_seq),
            usage: Mutex::new(usage),
        })
    }

    /// A keyspace of its own in the same database, and the handle that makes its writes durable
    /// (the rules' outboxes: one journal, one fsync policy for everything the broker stores).
    pub fn keyspace(&self, name: &str) -> StoreResult<(Database, Keyspace)> {
        let ks = self.db.keyspace(name, keyspace_options)?;
        Ok((self.db.clone(), ks))
    }

    /// Opened as the shared handle the core's parts take.
    pub fn open_shared(dir: &Path) -> StoreResult<Arc<Self>> {
        Self::open(dir).map(Arc::new)
    }

    /// Sets (or with None removes) one record and makes it durable.
    fn write(&self, keyspace: &Keyspace, key: Vec<u8>, value: Option<Vec<u8>>) -> SeamResult<()> {
        match value {
            Some(v) => keyspace.insert(key, v),
            None => keyspace.remove(key),
        }
        .map_err(StoreError::from)?;
        Ok(self.persist()?)
    }

    fn persist(&self) -> StoreResult<()> {
        self.db.persist(PersistMode::Buffer)?;
        Ok(())
    }

    fn usage_of(&self, inst: &str) -> Usage {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.get(inst).copied().unwrap_or_default()
    }

    fn change_usage(&self, inst: &str, f: impl FnOnce(&mut Usage)) -> Usage {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = usage.entry(inst.to_string()).or_default();
        f(u);
        *u
    }

    fn remove_msg(&self, inst: &str, client: &str, seq: u64) -> StoreResult<bool> {
        let key = queue_key(inst, client, seq);
        let Some(record) = self.queue.get(&key)? else {
            return Ok(false);
        };
        self.queue.remove(key)?;
        self.age.remove(age_key(inst, seq, client))?;
        self.change_usage(inst, |u| u.remove(record.len() as u64));
        Ok(true)
    }

    /// Deletes the instance's oldest messages while they are older than `older_than_seq` or the
    /// instance is over its `limits`.
    fn drop_oldest(&self, inst: &str, limits: OfflineLimits, older_than_seq: u64) -> StoreResult<u64> {
        let prefix = [inst.as_bytes(), b"\0"].concat();
        let mut dropped = 0;
        for kv in self.age.prefix(&prefix) {
            let key = kv.key()?;
            let Some((_, seq, client)) = parse_age_key(&key) else {
                continue;
            };
            if !self.usage_of(inst).over(limits) && seq >= older_than_seq {
                break;
            }
            if self.remove_msg(inst, &client, seq)? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    fn enqueue_now(
        &self,
        inst: &str,
        msg: &Message,
        entries: &[QueueEntry],
        limits: OfflineLimits,
    ) -> StoreResult<usize> {
        let mut over = false;
        for e in entries {
            let seq = self.last_seq.next();
            let delivery = Delivery {
                qos: e.qos,
                retain: e.retain,
                sub_ids: e.sub_ids.clone(),
            };
            let record = codec::encode(msg, &delivery);
            let size = record.len() as u64;
            self.queue.insert(queue_key(inst, &e.client_id, seq), record)?;
            self.age
                .insert(age_key(inst, seq, &e.client_id), (size as u32).to_be_bytes())?;
            over |= self.change_usage(inst, |u| u.add(size)).over(limits);
        }
        if over {
            let dropped = self.drop_oldest(inst, limits, 0)?;
            metrics::offline_dropped(metrics::OFFLINE_CAP, dropped);
        }
        // Durable before the publisher's acknowledgement.
        self.persist()?;
        Ok(entries.len())
    }

    fn fetch_now(
        &self,
        inst: &str,
        client: &str,
        after: u64,
        limit: usize,
        max_age_ms: u64,
    ) -> StoreResult<Vec<Queued>> {
        let prefix_len = queue_prefix(inst, client).len();
        let start = queue_key(inst, client, after.saturating_add(1));
        let end = queue_key(inst, client, u64::MAX);
        let now = now_ms();
        let oldest = now.saturating_sub(max_age_ms) << 20;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for kv in self.queue.range(start..=end) {
            let (key, value) = kv.into_inner()?;
            let Some(seq) = key
                .get(prefix_len..)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                skip_corrupt("queue key", &key);
                continue;
            };
            if seq < oldest {
                gone.push((seq, metrics::OFFLINE_EXPIRED));
                continue;
            }
            let Some((msg, d)) = codec::decode(&value) else {
                skip_corrupt("queued message", &key);
                gone.push((seq, metrics::OFFLINE_CORRUPT));
                continue;
            };
            if msg.expired(now as i64) {
                gone.push((seq, metrics::OFFLINE_EXPIRED));
                continue;
            }
            out.push(Queued {
                seq,
                out: Outbound {
                    msg: Arc::new(msg),
                    qos: d.qos,
                    retain: d.retain,
                    sub_ids: d.sub_ids,
                },
            });
            if out.len() >= limit {
                break;
            }
        }
        for (seq, reason) in gone {
            self.remove_msg(inst, client, seq)?;
            metrics::offline_dropped(reason, 1);
        }
        Ok(out)
    }

    /// Deletes the client's queue; returns how many messages it held.
    /// Deletes a client's whole queue in one write batch: one pass over its keys (their values give
    /// the sizes the usage needs), no read per message, one journal write. A clean start over a
    /// backlog of tens of thousands of messages holds its worker for milliseconds, not seconds.
    fn purge_now(&self, inst: &str, client: &str) -> StoreResult<u64> {
        let prefix = queue_prefix(inst, client);
        let mut batch = self.db.batch();
        let (mut purged, mut bytes) = (0u64, 0u64);
        for kv in self.queue.prefix(&prefix) {
            let (key, value) = kv.into_inner()?;
            let Some(seq) = key
                .get(prefix.len()..)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            batch.remove(&self.queue, key.clone());
            batch.remove(&self.age, age_key(inst, seq, client));
            purged += 1;
            bytes += value.len() as u64;
        }
        if purged == 0 {
            return Ok(0);
        }
        batch.commit()?;
        self.change_usage(inst, |u| u.remove_many(purged, bytes));
        self.persist()?;
        Ok(purged)
    }
}

impl SessionRecords for FjallStore {
    fn load(&self) -> SeamResult<Vec<(String, String, PersistedSession)>> {
        let mut out = Vec::new();
        let mut lost = Vec::new();
        for kv in self.sessions.iter() {
            let (key, value) = kv.into_inner().map_err(StoreError::from)?;
            let Some((inst, client)) = split_instance_key(&key) else {
                skip_corrupt("session", &key);
                continue;
            };
            match serde_json::from_slice(&value) {
                Ok(session) => out.push((inst.to_string(), client.to_string(), session)),
                Err(_) => {
                    skip_corrupt("session", &key);
                    lost.push((inst.to_string(), client.to_string()));
                }
            }
        }
        // The queue of a session that cannot be read belongs to no session any more: a new one with
        // that client ID must not receive it.
        for (inst, client) in lost {
            let purged = self.purge_now(&inst, &client).map_err(SeamError::from)?;
            metrics::offline_dropped(metrics::OFFLINE_CORRUPT, purged);
        }
        Ok(out)
    }

    fn save(&self, inst: &str, client: &str, session: &PersistedSession) -> SeamResult<()> {
        let value = serde_json::to_vec(session).map_err(|e| SeamError::Store(e.to_string()))?;
        self.write(&self.sessions, instance_key(inst, client), Some(value))
    }

    fn delete(&self, inst: &str, client: &str) -> SeamResult<()> {
        self.write(&self.sessions, instance_key(inst, client), None)
    }
}

impl OfflineQueue for FjallStore {
    fn enqueue(
        &self,
        inst: &str,
        msg: &Message,
        entries: &[QueueEntry],
        limits: OfflineLimits,
    ) -> Seam<'_, SeamResult<usize>> {
        done(self.enqueue_now(inst, msg, entries, limits).map_err(SeamError::from))
    }

    fn fetch(
        &self,
        inst: &str,
        client: &str,
        after: u64,
        limit: usize,
        max_age_ms: u64,
    ) -> Seam<'_, SeamResult<Vec<Queued>>> {
        done(
            self.fetch_now(inst, client, after, limit, max_age_ms)
                .map_err(SeamError::from),
        )
    }

    fn ack(&self, inst: &str, client: &str, seq: u64) -> Seam<'_, SeamResult<()>> {
        let res = self.remove_msg(inst, client, seq).and_then(|_| self.persist());
        done(res.map_err(SeamError::from))
    }

    fn purge(&self, inst: &str, client: &str) -> Seam<'_, SeamResult<()>> {
        done(self.purge_now(inst, client).map(|_| ()).map_err(SeamError::from))
    }

    fn expire(&self, inst: &str, max_age_ms: u64) -> SeamResult<u64> {
        let cutoff = now_ms().saturating_sub(max_age_ms) << 20;
        let no_limits = OfflineLimits {
            max_messages: u64::MAX,
            max_bytes: u64::MAX,
            retention_secs: u64::MAX,
        };
        let n = self.drop_oldest(inst, no_limits, cutoff)?;
        if n > 0 {
            self.persist()?;
        }
        Ok(n)
    }

    fn counts(&self) -> HashMap<String, u64> {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.iter().map(|(i, u)| (i.clone(), u.messages)).collect()
    }

    fn flush(&self) -> SeamResult<()> {
        Ok(self.persist()?)
    }
}

impl RetainedLog for FjallStore {
    fn save(&self, inst: &str, msg: &Message) -> SeamResult<()> {
        let delivery = Delivery {
            qos: msg.qos,
            retain: true,
            sub_ids: Vec::new(),
        };
        let value = codec::encode(msg, &delivery);
        self.write(&self.retained, instance_key(inst, &msg.topic), Some(value))
    }

    fn remove(&self, inst: &str, topic_name: &str) -> SeamResult<()> {
        self.write(&self.retained, instance_key(inst, topic_name), None)
    }

    fn load(&self) -> SeamResult<Vec<(String, Message)>> {
        let mut out = Vec::new();
        for kv in self.retained.iter() {
            let (key, value) = kv.into_inner().map_err(StoreError::from)?;
            let record = split_instance_key(&key).zip(codec::decode(&value));
            match record {
                Some(((inst, _), (msg, _))) => out.push((inst.to_string(), Message { retain: true, ..msg })),
                None => skip_corrupt("retained message", &key),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
